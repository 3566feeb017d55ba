"""Which papers a question may draw on. Each filter is defined once, in RULES, and yields the three forms the
stages need: a test of one paper record (`Filters.allows`), an SQL condition on the catalogue's `papers` table
(`Filters.sql`) and a Chroma condition on chunk metadata (`Filters.chroma_where`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from rag.types import Paper


@dataclass(frozen=True)
class Rule:
    """One filter in its three forms."""

    allows: Callable[[Paper, Any], bool]  # whether a paper passes, given the filter's value
    sql: str  # a condition on `papers`, its one parameter a "?" ("{marks}": one "?" per value of a set)
    param: Callable[[Any], list[object]]  # the SQL parameters for the value
    chroma: Callable[[Any], dict[str, Any]] | None  # a condition on chunk metadata; None: by the papers' ids


def _one(value: Any) -> list[object]:
    return [value]


def _folded(value: str) -> list[object]:
    return [value.casefold()]


RULES: dict[str, Rule] = {
    "paper_ids": Rule(
        lambda paper, ids: paper.paper_id in ids,
        "papers.paper_id IN ({marks})",
        lambda ids: sorted(ids),
        None,
    ),
    "year_from": Rule(
        lambda paper, year: paper.year is not None and paper.year >= year,
        "papers.year >= ?",
        _one,
        lambda year: {"year": {"$gte": year}},
    ),
    "year_to": Rule(
        lambda paper, year: paper.year is not None and paper.year <= year,
        "papers.year <= ?",
        _one,
        lambda year: {"year": {"$lte": year}},
    ),
    "author": Rule(
        lambda paper, part: any(part.casefold() in name.casefold() for name in paper.authors or []),
        "EXISTS (SELECT 1 FROM authors WHERE authors.paper_id = papers.paper_id AND instr(authors.folded, ?))",
        _folded,
        None,
    ),
    "category": Rule(
        lambda paper, code: code.casefold() in paper.listed_categories,
        "EXISTS (SELECT 1 FROM categories WHERE categories.paper_id = papers.paper_id AND categories.folded = ?)",
        _folded,
        lambda code: {"categories": {"$contains": code.casefold()}},
    ),
    "has_code": Rule(
        lambda paper, flag: paper.has_code is flag,
        "papers.has_code = ?",
        lambda flag: [int(flag)],
        lambda flag: {"has_code": {"$eq": flag}},
    ),
    "source_file": Rule(
        lambda paper, name: name in paper.files,
        "EXISTS (SELECT 1 FROM files WHERE files.paper_id = papers.paper_id AND files.file = ?)",
        _one,
        None,
    ),
}


class Filters(BaseModel):
    """Which papers a question may draw on; every field left None lets every paper through."""

    model_config = ConfigDict(frozen=True)

    year_from: int | None = Field(default=None, description="Published in this year or later (unknown years excluded).")
    year_to: int | None = Field(default=None, description="Published in this year or earlier (unknown years excluded).")
    author: str | None = Field(default=None, description="Part of an author's name, any case.")
    category: str | None = Field(
        default=None,
        description="arXiv category code, e.g. 'LG' or 'cs.LG', any case: the primary one or a cross-list.",
    )
    has_code: bool | None = Field(default=None, description="Listed with (True) or without (False) code.")
    source_file: str | None = Field(default=None, description="Name of a corpus file the paper was found in.")
    paper_ids: frozenset[str] | None = Field(default=None, description="Only these papers.")

    def _set(self) -> list[tuple[Rule, Any]]:
        return [(RULES[name], value) for name, value in self if value is not None]

    @property
    def active(self) -> bool:
        """Whether any paper can be filtered out."""
        return bool(self._set())

    @property
    def by_paper_ids(self) -> bool:
        """Whether Chroma can apply these filters only as a list of the papers they let through."""
        return any(rule.chroma is None for rule, _ in self._set())

    def allows(self, paper: Paper) -> bool:
        """Whether `paper` passes every filter that is set."""
        return all(rule.allows(paper, value) for rule, value in self._set())

    def sql(self) -> tuple[str, list[object]]:
        """An SQL condition on the catalogue's `papers` table that holds exactly where `allows` does."""
        parts: list[str] = []
        params: list[object] = []
        for rule, value in self._set():
            values = rule.param(value)
            if "{marks}" in rule.sql:
                parts.append(rule.sql.format(marks=", ".join("?" * len(values))) if values else "0")
            else:
                parts.append(rule.sql)
            params += values
        return (" AND ".join(parts) or "1"), params

    def chroma_where(
        self, paper_ids: Sequence[str] | None, primaries: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """A Chroma condition on chunk metadata: each filter Chroma can test on a chunk directly, and the others as
        `paper_ids`, the ids of the papers the catalogue lets through (None when `by_paper_ids` is false). A store
        of the first schema has no `categories` on its chunks: there the category is one of `primaries`, the
        primary categories that match, as the records spell them. Neither list may be empty: the caller knows
        then that no paper passes."""
        parts: list[dict[str, Any]] = []
        for name, value in self:
            rule = RULES[name]
            if value is None or rule.chroma is None:
                continue
            if name == "category" and primaries is not None:
                parts.append({"category": {"$in": list(primaries)}})
            else:
                parts.append(rule.chroma(value))
        if paper_ids is not None:
            parts.append({"paper_id": {"$in": list(paper_ids)}})
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}
