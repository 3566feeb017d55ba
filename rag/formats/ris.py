"""RIS, as reference managers export it (read with rispy): `TY  -` opens a record, `ER  -` closes it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from rag.formats.common import Reading, arxiv_id, arxiv_link, doi, first_last, parse_date
from rag.types import PaperRecord, ParseProblem

NAME = "ris"


def sniff(head: str) -> bool:
    """Whether the file's first tag line is `TY  - …`."""
    return re.search(r"^TY  - ", head.lstrip("\ufeff"), re.M) is not None


def read(path: Path, reading: Reading, fields: dict[str, str]) -> Iterator[PaperRecord | ParseProblem]:
    """One record per RIS entry; an entry without an abstract (`AB` or `N2`) is reported with its line, and so is
    one not closed by `ER  -` before the next `TY  -` or the end of the file (rispy would merge it into the next
    entry, or drop it)."""
    import rispy

    lines = path.read_text(encoding="utf-8-sig").split("\n")
    starts = [number for number, line in enumerate(lines) if line.startswith("TY  - ")]
    if not starts:
        yield reading.problem(None, "no `TY  - ` line opens an entry; export it again as RIS")
        return
    for number, (start, end) in enumerate(zip(starts, [*starts[1:], len(lines)], strict=True)):
        line = start + 1
        try:
            parsed = rispy.loads("\n".join(lines[start:end]))  # each entry on its own
        except (OSError, ValueError) as exc:
            yield reading.problem(line, f"entry does not parse ({exc}); export it again as RIS")
            continue
        if not parsed:
            message = "entry has no `ER  - ` line before the next entry or the end of the file; add one"
            yield reading.problem(line, f"{message} (the entry is not stored)")
            continue
        entry = parsed[0]
        links = entry.get("urls") or []
        identifier, version = arxiv_id(arxiv_link(*links))
        published = parse_date(entry.get("date") or entry.get("publication_year") or entry.get("year"))
        title = entry.get("title") or entry.get("primary_title") or ""
        yield reading.record(
            line,
            entry.get("abstract") or entry.get("notes_abstract"),
            f"entry {title[:60]!r}" if title else f"entry {number + 1}",
            title=title,
            authors=[first_last(name) for name in entry.get("authors") or entry.get("first_authors") or []],
            arxiv_id=identifier,
            version=version,
            doi=doi(entry.get("doi")),
            url=links[0] if links else None,
            published=published,
            date=published.isoformat() if published else None,
            venue=entry.get("journal_name") or entry.get("secondary_title") or None,
        )
