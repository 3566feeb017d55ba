"""The records that cross module boundaries: sources, papers, chunks and parse problems."""

from __future__ import annotations

import hashlib
from datetime import date as Date
from enum import StrEnum

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
    arxiv_id: str | None = Field(default=None, description="arXiv id without its version, e.g. '2312.02896'.")
    version: int | None = Field(default=None, description="The arXiv version the abstract is from.")
    doi: str | None = Field(default=None, description="DOI, lower-cased, without a resolver prefix.")
    url: str | None = Field(default=None, description="A link to the paper, as the source gives it.")
    categories: list[str] | None = Field(default=None, description="Every category listed, primary first.")
    venue: str | None = Field(default=None, description="Journal, proceedings or journal reference.")
    updated: Date | None = Field(default=None, description="When the abstract was last revised, where given.")

    assigned_id: str | None = Field(
        default=None, description="The paper this record was merged into, where its own id differs (rag.identity)."
    )

    @property
    def own_id(self) -> str:
        """The id this record gives its paper: from its arXiv id, else its DOI, else its abstract (which is what
        the shipped listings' papers have always been known by)."""
        if self.arxiv_id:
            return paper_id_for(f"arxiv:{self.arxiv_id.casefold()}")
        if self.doi:
            return paper_id_for(f"doi:{self.doi.casefold()}")
        return paper_id_for(self.abstract)

    @property
    def paper_id(self) -> str:
        """Id of the paper this record belongs to."""
        return self.assigned_id or self.own_id


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
    arxiv_id: str | None = None
    doi: str | None = None
    url: str | None = None
    categories: list[str] | None = None
    venue: str | None = None
    updated: Date | None = None

    @property
    def year(self) -> int | None:
        """Year of publication, where known."""
        return self.published.year if self.published else None

    @property
    def files(self) -> list[str]:
        """Distinct files the paper was found in, in order."""
        return list(dict.fromkeys(source.file for source in self.sources))

    @property
    def listed_categories(self) -> list[str]:
        """What a category filter matches, case-folded: every category the paper is listed under, primary
        first (a cross-listed paper passes a filter on any of them), each also without its archive ("cs.LG"
        is matched by "LG" too, the code the shipped listings write)."""
        listed = [code.casefold() for code in self.categories or ([self.category] if self.category else [])]
        return list(dict.fromkeys([*listed, *(code.split(".", 1)[1] for code in listed if "." in code)]))

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


class Origin(StrEnum):
    """How an answer came about."""

    DRAFT = "draft"  # the answerer's text, its citations checked
    RECORDS = "records"  # written from the paper records: authors, dates, votes
    NAMED = "named"  # a model's draft named the papers by their headings only: each named, and quoted from
    FALLBACK = "fallback"  # no sentence of a model's draft survived the check, so the offline answerer's
    DECLINED = "declined"  # the answerer said the passages do not answer
    NO_EVIDENCE = "no-evidence"  # the decline model judged that the passages do not answer the question


class Passage(BaseModel):
    """A retrieved chunk with its paper and how it was found."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    paper: Paper
    text: str = Field(description="The chunk, exactly as stored.")
    start: int
    end: int
    score: float = Field(
        description="The paper's fused ranking score (rag.ranking.fusion); higher is better. When reranked, it "
        "includes the reranker's judgement, with the best passage keeping the best ranking score."
    )
    dense: float = Field(description="Cosine similarity of the chunk to the question.")
    lexical: float = Field(description="BM25 score of the chunk, divided by the best BM25 score of the question.")
    rerank: float | None = Field(
        default=None,
        description="When reranked: the mean log-probability per token of the question after the passage's paper "
        "(its title and whole abstract).",
    )
    signals: dict[str, float] = Field(
        default_factory=dict,
        description="Why its paper ranked where it did: each ranking signal's value (rag.ranking.signals), whose "
        "weighted mean is `score`.",
    )
    expanded: bool = Field(
        default=False,
        description="Not retrieved itself: another chunk of a retrieved paper, added so that the answer can draw on "
        "its whole abstract.",
    )
    excerpt: str | None = Field(
        default=None,
        description="What a language model read of the passage's paper instead of the chunk: the paper's sentences "
        "that best match the question, in the abstract's order (rag.evidence.excerpts); None: the chunk.",
    )

    @property
    def paper_id(self) -> str:
        """Id of the passage's paper."""
        return self.paper.paper_id

    @property
    def read(self) -> str:
        """What the answerer read of this passage, and so what its citations are checked against and quote: the
        excerpt, else the chunk."""
        return self.excerpt if self.excerpt is not None else self.text


class Citation(BaseModel):
    """One numbered source of an answer: the passage a [n] marker points at, with its paper's metadata."""

    model_config = ConfigDict(frozen=True)

    number: int
    paper_id: str
    title: str | None
    authors: list[str] | None
    n_authors: int | None
    date: str | None
    published: Date | None
    category: str | None
    sources: list[Source]
    chunk_id: str
    passage: str = Field(
        description="What the answer rests on: the cited chunk as stored, or the excerpt of its paper a language "
        "model read (Passage.read)."
    )
    score: float = Field(description="Retrieval score of the passage.")
    arxiv_id: str | None = None
    doi: str | None = None
    url: str | None = Field(default=None, description="The paper's link as its source gives it; never fetched.")

    @property
    def identifier(self) -> str | None:
        """ "arXiv:2312.02896" or "doi:10.…" where the paper has either."""
        return f"arXiv:{self.arxiv_id}" if self.arxiv_id else f"doi:{self.doi}" if self.doi else None


class AnswerSentence(BaseModel):
    """One sentence of an answer, the markers it carries, and how well its cited passages support it."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="The sentence as shown, markers included.")
    claim: str = Field(description="The sentence without its markers.")
    markers: list[int]
    support: float = Field(description="0..1: how much of the sentence its cited passages back.")
    supported: bool
    problems: list[str] = Field(default_factory=list, description="Why the check failed, where it did.")
    attributed: bool = Field(
        default=False,
        description="True when the checker chose the markers (post-hoc citation): the writer gave none, or cited "
        "passages that do not support the sentence.",
    )


class Usage(BaseModel):
    """Tokens an LLM call consumed, as the endpoint reported them (or as counted with tiktoken)."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int
    completion_tokens: int
    counted: bool = Field(default=False, description="True when counted locally because the endpoint gave none.")


class Answer(BaseModel):
    """The answer to a question: text whose sentences end with [n] markers, and the sources they cite."""

    model_config = ConfigDict(frozen=True)

    question: str
    text: str
    abstained: bool
    citations: list[Citation]
    sentences: list[AnswerSentence]
    removed_markers: list[int] = Field(description="Markers that pointed at no passage and were taken out.")
    passages: list[Passage] = Field(description="Every retrieved passage, in rank order; [n] is passages[n-1].")
    backend: str = Field(description="The answerer asked: extractive, openai or local.")
    origin: Origin = Field(default=Origin.DRAFT, description="How the answer came about (Origin).")
    hedged: bool = Field(
        default=False,
        description="The answer opens with rag.HEDGE_PHRASE: the passages are close to the question, but the decline "
        "model is not confident that they state what it asks.",
    )
    confidence: float | None = Field(
        default=None,
        description="The decline model's probability that the passages answer the question (rag/confidence.py); "
        "None for answers written from the paper records.",
    )
    usage: Usage | None = None
    seconds: dict[str, float] = Field(default_factory=dict)

    @property
    def unsupported(self) -> list[AnswerSentence]:
        """Sentences the citation check could not back with their cited passages."""
        return [sentence for sentence in self.sentences if not sentence.supported]

    def to_dict(self) -> dict[str, object]:
        """A JSON-serialisable form with stable field names."""
        data = self.model_dump(mode="json", exclude={"passages"})
        data["retrieved"] = [
            {"chunk_id": p.chunk_id, "paper_id": p.paper_id, "title": p.paper.title, "score": p.score}
            for p in self.passages
        ]
        return data
