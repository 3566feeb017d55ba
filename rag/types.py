"""The records that cross module boundaries: sources, papers, chunks and parse problems."""

from __future__ import annotations

import hashlib
from datetime import date as Date

from pydantic import BaseModel, ConfigDict, Field


def paper_id_for(abstract: str) -> str:
    """The stable id of the paper with this abstract: the same text in any file gives the same id.

    Whitespace is folded first so that a re-wrapped copy of an abstract is still the same paper.
    """
    folded = " ".join(abstract.split())
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()[:16]


class Source(BaseModel):
    """Where a paper was found: a corpus file, its 0-based order among that file's papers, and its first line."""

    model_config = ConfigDict(frozen=True)

    file: str = Field(description="File name, without folders, e.g. '003_38268af9df130c14.txt'.")
    position: int = Field(ge=0, description="0-based order of the paper within the file.")
    line: int = Field(ge=1, description="1-based line at which the paper's block starts.")


class PaperRecord(BaseModel):
    """One paper as one file gives it; several records with the same abstract make one Paper."""

    model_config = ConfigDict(frozen=True)

    source: Source
    abstract: str = Field(description="The abstract exactly as written (outer whitespace removed).")
    title: str | None = None
    authors: list[str] | None = Field(default=None, description="Author names as listed; None where not given.")
    et_al: bool = Field(default=False, description="True when the listing cut the author list short ('et al.').")
    n_authors: int | None = Field(default=None, description="Number of authors, where the file states or implies it.")
    date: str | None = Field(default=None, description="The date as written, e.g. 'Mar 18, 2024' or 'Jan 4'.")
    published: Date | None = Field(default=None, description="The date as an ISO date; None when the year is unknown.")
    upvotes: int | None = Field(default=None, description="Vote count shown beside the date on daily-papers pages.")
    category: str | None = Field(default=None, description="arXiv category code, e.g. 'LG'.")
    has_code: bool | None = Field(default=None, description="Whether the listing marks the paper as having code.")
    organization: str | None = Field(default=None, description="Organisation tag shown after the authors.")

    @property
    def paper_id(self) -> str:
        """Id of the paper this record belongs to."""
        return paper_id_for(self.abstract)


class Paper(BaseModel):
    """A paper with everything the corpus says about it, merged over every file it was found in."""

    model_config = ConfigDict(frozen=True)

    paper_id: str
    title: str | None
    abstract: str
    authors: list[str] | None
    et_al: bool
    n_authors: int | None
    date: str | None
    published: Date | None
    upvotes: int | None
    category: str | None
    has_code: bool | None
    organization: str | None
    sources: list[Source]

    @property
    def year(self) -> int | None:
        """Year of publication, where known."""
        return self.published.year if self.published else None

    @property
    def files(self) -> list[str]:
        """Distinct files the paper was found in, in order."""
        return list(dict.fromkeys(source.file for source in self.sources))

    def label(self, width: int = 80) -> str:
        """The title, or the opening of the abstract for papers listed without one."""
        text = self.title or f"(untitled) {self.abstract}"
        return text if len(text) <= width else text[: width - 1] + "…"


class Chunk(BaseModel):
    """A run of whole sentences of one abstract: the unit that is embedded, retrieved and cited."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    paper_id: str
    index: int = Field(ge=0, description="0-based order of the chunk within its abstract.")
    text: str = Field(description="Exactly abstract[start:end].")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    tokens: int = Field(ge=0, description="cl100k token count of the text.")


class ParseProblem(BaseModel):
    """Something in a corpus file that could not be read as intended; line is None for the file as a whole."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file} line {self.line}"
        return f"{where}: {self.message}"
