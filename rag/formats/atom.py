"""arXiv API results: the Atom feed an `…/api/query` call returns, saved to a file (read with feedparser)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from xml.sax import SAXParseException

from rag.formats.common import Reading, arxiv_id, clean, doi, parse_date
from rag.types import PaperRecord, ParseProblem

NAME = "arxiv-atom"


def sniff(head: str) -> bool:
    """Whether the file's first bytes are an Atom feed."""
    return "<feed" in head and "http://www.w3.org/2005/Atom" in head


def read(path: Path, reading: Reading, fields: dict[str, str]) -> Iterator[PaperRecord | ParseProblem]:
    """One record per feed entry. An API error comes as a feed whose one entry is titled "Error": its message is
    reported, nothing stored."""
    import feedparser

    text = path.read_text(encoding="utf-8-sig")
    feed = feedparser.parse(text)
    starts = [text.count("\n", 0, found.start()) + 1 for found in re.finditer(r"<entry[\s>]", text)]
    if not feed.entries and feed.get("bozo"):
        yield reading.problem(None, f"not a readable Atom feed ({feed.bozo_exception}); save the API response as is")
        return
    broken = feed.get("bozo_exception")
    if isinstance(broken, SAXParseException):  # read on by feedparser's lenient parser: say where and why
        yield reading.problem(
            broken.getLineNumber(),
            f"not well-formed XML ({broken.getMessage()}); the entries from here on may be cut short or missing: "
            "save the API response as is",
        )
    for number, entry in enumerate(feed.entries):
        line = starts[number] if number < len(starts) else 1
        if " ".join(entry.get("title", "").split()) == "Error":
            yield reading.problem(line, f"the arXiv API returned an error: {clean(entry.get('summary', ''))}")
            continue
        identifier, version = arxiv_id(entry.get("id"))
        primary = (entry.get("arxiv_primary_category") or {}).get("term")
        tags = [tag["term"] for tag in entry.get("tags", []) if tag.get("term")]
        categories = list(dict.fromkeys([primary, *tags] if primary else tags)) or None
        published = parse_date(entry.get("published"))
        yield reading.record(
            line,
            entry.get("summary"),
            identifier or clean(entry.get("title", "")) or f"entry {number + 1}",
            title=entry.get("title"),
            authors=[author.get("name", "") for author in entry.get("authors", [])],
            arxiv_id=identifier,
            version=version,
            doi=doi(entry.get("arxiv_doi")),
            url=entry.get("link") or entry.get("id"),
            published=published,
            date=published.isoformat() if published else None,
            updated=parse_date(entry.get("updated")),
            category=categories[0] if categories else None,
            categories=categories,
            venue=clean(entry.get("arxiv_journal_ref", "")) or None,
        )
