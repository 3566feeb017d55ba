"""BibTeX, as Zotero, Mendeley, JabRef and Google Scholar export it (read with bibtexparser 2; LaTeX accents and
braces turned to Unicode with pylatexenc)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from rag.formats.common import Reading, arxiv_id, arxiv_link, clean, doi, first_last, parse_date
from rag.types import PaperRecord, ParseProblem

NAME = "bibtex"
_MONTHS = {m: n for n, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}


def sniff(head: str) -> bool:
    """Whether the file starts (after comments) with a BibTeX entry."""
    return re.search(r"^\s*@\s*[A-Za-z]+\s*[{(]", head, re.M) is not None


def read(path: Path, reading: Reading, fields: dict[str, str]) -> Iterator[PaperRecord | ParseProblem]:
    """One record per entry with an abstract; an entry without one, or one that does not parse, is reported with
    its line and key."""
    import bibtexparser

    library = bibtexparser.parse_string(path.read_text(encoding="utf-8-sig"))
    for failed in library.failed_blocks:
        reason = next(iter(str(getattr(failed, "error", "") or "").splitlines()), "")
        detail = f" ({reason})" if reason else ""
        yield reading.problem((failed.start_line or 0) + 1, f"entry does not parse; fix its braces or quotes{detail}")
    for entry in library.entries:
        values = {key.casefold(): str(field.value) for key, field in entry.fields_dict.items()}
        line = (entry.start_line or 0) + 1
        prefix = values.get("archiveprefix", values.get("eprinttype", "")).casefold()
        identifier, version = arxiv_id(values.get("eprint")) if prefix in ("arxiv", "") else (None, None)
        if identifier is None:
            identifier, version = arxiv_id(arxiv_link(values.get("url")))
        given = _date(values)
        published = parse_date(given)
        primary = values.get("primaryclass")
        yield reading.record(
            line,
            values.get("abstract"),
            f"entry {entry.key}",
            title=values.get("title"),
            authors=[
                first_last(clean(part, latex=True))
                for part in re.split(r"\s+and\s+", " ".join(values.get("author", "").split()))
            ],
            arxiv_id=identifier,
            version=version,
            doi=doi(values.get("doi")),
            url=values.get("url"),
            published=published,
            date=given if published else None,
            category=primary,
            categories=[primary] if primary else None,
            venue=clean(values.get("journal") or values.get("booktitle") or "", latex=True) or None,
        )


def _date(values: dict[str, str]) -> str | None:
    """The date as precisely as the entry gives it: the `date` field (biblatex), else `year` with `month` (a
    number or jan … dec), as "2023-03" or "2023"."""
    if values.get("date"):
        return values["date"].strip()
    year = values.get("year", "").strip()
    if not year[:4].isdigit():
        return None
    month_text = values.get("month", "").strip().casefold()[:3]
    month = _MONTHS.get(month_text) or (int(month_text) if month_text.isdigit() and 1 <= int(month_text) <= 12 else 0)
    return f"{year[:4]}-{month:02d}" if month else year[:4]
