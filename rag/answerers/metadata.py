"""Answers to metadata questions (authors, author counts, dates, votes, categories, code, "papers by X", "papers
from 2023"), written from the paper records rather than the abstracts' text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from rag.citations import with_markers
from rag.question import IntentKind, MetadataIntent
from rag.readable import quoted_title
from rag.types import Paper, Passage

# "Which of them has code?" is answered for this many of the best papers.
EACH_PAPERS = 3


def metadata_sentences(intent: MetadataIntent, passages: Sequence[Passage]) -> list[str]:
    """Sentences that answer a metadata question from the records of the passages' papers, each with its
    marker; empty when the records do not hold the answer."""
    first: dict[str, int] = {}
    for number, passage in enumerate(passages, 1):
        first.setdefault(passage.paper_id, number)
    papers = {p.paper_id: p.paper for p in passages}
    out: list[str] = []
    if intent.lists_papers:
        order = list(first.items())
        if intent.kind == IntentKind.PAPERS_BY_DATE:  # the oldest (or newest) first
            order.sort(key=lambda item: papers[item[0]].published or date.max, reverse=intent.newest)
        for pid, number in order:
            paper = papers[pid]
            if intent.kind == IntentKind.PAPERS_BY and intent.author in (paper.authors or []):
                out.append(with_markers(f"{quoted_title(paper)} lists {intent.author} among its authors.", [number]))
            elif (
                intent.kind == IntentKind.PAPERS_IN_YEARS and paper.year is not None and _in_span(paper.year, intent)
            ) or (intent.kind == IntentKind.PAPERS_BY_DATE and paper.published is not None):
                out.append(with_markers(f"{quoted_title(paper)} was published {paper.date}.", [number]))
            elif intent.kind == IntentKind.SINGLE_AUTHOR and author_count(paper) == 1:
                out.append(with_markers(f"{quoted_title(paper)} has a single author{_named(paper)}.", [number]))
            elif intent.kind == IntentKind.ORGANIZATION and _carries(paper, intent.organization):
                dated = f" and is dated {paper.date}" if paper.date else ""
                sentence = f"{quoted_title(paper)} carries the organisation tag {paper.organization}{dated}."
                out.append(with_markers(sentence, [number]))
        return out
    if intent.kind == IntentKind.CODE:
        shown = list(first.items())[: EACH_PAPERS if intent.each else 1]
        for pid, number in shown:
            paper = papers[pid]
            if paper.has_code is not None:
                listed = "lists code" if paper.has_code else "lists no code"
                out.append(with_markers(f"{quoted_title(paper)} {listed} in the listing.", [number]))
        return out
    number, paper = 1, passages[0].paper
    if intent.kind == IntentKind.AUTHORS and paper.authors:
        names = ", ".join(paper.authors) + (" et al." if paper.et_al else "")
        out.append(
            with_markers(
                f"The listed authors of {quoted_title(paper)} are {names}" + ("" if paper.et_al else "."), [number]
            )
        )
    elif intent.kind in (IntentKind.AUTHORS, IntentKind.N_AUTHORS) and paper.n_authors is not None:
        out.append(with_markers(f"{quoted_title(paper)} has {paper.n_authors} authors.", [number]))
    elif intent.kind == IntentKind.N_AUTHORS and paper.authors and not paper.et_al:
        out.append(with_markers(f"{quoted_title(paper)} has {len(paper.authors)} authors.", [number]))
    elif intent.kind == IntentKind.DATE and paper.date:
        out.append(with_markers(f"{quoted_title(paper)} was published {paper.date}.", [number]))
    elif intent.kind == IntentKind.CATEGORY and paper.category:
        out.append(with_markers(f"{quoted_title(paper)} is listed under category {paper.category}.", [number]))
    elif intent.kind == IntentKind.UPVOTES and paper.upvotes is not None:
        out.append(with_markers(f"{quoted_title(paper)} has {paper.upvotes} upvotes in the listing.", [number]))
    return out


def author_count(paper: Paper) -> int | None:
    """The number of authors, as the listing states it or as a complete author list (no "et al.") shows it; the
    catalogue's N_AUTHORS computes the same in SQL."""
    if paper.n_authors is not None:
        return paper.n_authors
    return len(paper.authors) if paper.authors and not paper.et_al else None


def _carries(paper: Paper, organization: str | None) -> bool:
    """Whether the paper carries the organisation tag, or any tag when `organization` is None."""
    return bool(paper.organization) and organization in (None, paper.organization)


def _named(paper: Paper) -> str:
    return f", {paper.authors[0]}" if paper.authors else ""


def _in_span(year: int, intent: MetadataIntent) -> bool:
    return (intent.year_from is None or year >= intent.year_from) and (intent.year_to is None or year <= intent.year_to)
