"""Tables of papers: CSV with a header row, or JSON lines with keys. Columns are found by their usual names
(common.FIELDS) or mapped by the user (`--field abstract=summary`)."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path

from rag.errors import IngestError
from rag.formats.common import FIELDS, Reading, arxiv_id, arxiv_link, doi, lines_of, objects, parse_date, split_authors
from rag.types import PaperRecord, ParseProblem

CSV, JSONL = "csv", "jsonl"


def sniff_csv(head: str) -> bool:
    """Whether the first line is a CSV header naming an abstract column."""
    first = head.lstrip("\ufeff").split("\n", 1)[0].casefold()
    return "," in first and any(name in first for name in FIELDS["abstract"])


def sniff_jsonl(head: str) -> bool:
    """Whether the first line is a JSON object with an abstract-like key."""
    first = head.lstrip("\ufeff").lstrip().split("\n", 1)[0]
    return first.startswith("{") and any(f'"{name}"' in first.casefold() for name in FIELDS["abstract"])


def columns(names: list[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Which column holds each field: the user's mapping first, else the first usual name present (any case)."""
    folded = {name.casefold().strip(): name for name in names}
    found = {key: folded[value.casefold()] for key, value in mapping.items() if value.casefold() in folded}
    for key, usual in FIELDS.items():
        if key not in found:
            hit = next((folded[name] for name in usual if name in folded), None)
            if hit is not None:
                found[key] = hit
    return found


def read_csv(path: Path, reading: Reading, fields: dict[str, str]) -> Iterator[PaperRecord | ParseProblem]:
    """One record per row; rows are streamed, so a file of any size is read in constant memory. A row with more or
    fewer fields than the header is reported and not stored: its values are not under their columns (a comma or
    line break in an unquoted field). A quote never closed is an IngestError naming the row it opens."""
    # strict: a quote left open is an error, not the rows after it read as one field.
    rows = csv.reader((line for _, line in lines_of(path, reading)), strict=True)
    line = 1
    try:
        names = next(rows, [])
        found = columns(names, fields)
        if "abstract" not in found:
            yield reading.problem(1, f"no abstract column among {names}; name it with --field abstract=NAME")
            return
        where = {key: names.index(column) for key, column in found.items()}
        line = rows.line_num + 1
        for values in rows:
            if len(values) == len(names):
                yield record({key: values[index] for key, index in where.items()}, line, reading)
            elif values:  # a blank line is no row
                yield reading.problem(
                    line,
                    f"{len(values)} field{'s' * (len(values) != 1)} where the header has {len(names)}; quote the "
                    "fields that hold commas or line breaks (the row is not stored)",
                )
            line = rows.line_num + 1
    except csv.Error as exc:
        raise IngestError(
            f"{reading.file} line {line}: not readable as CSV ({exc}); close the quote this row opens, or quote its "
            "fields that hold commas or quotes"
        ) from exc


def read_jsonl(path: Path, reading: Reading, fields: dict[str, str]) -> Iterator[PaperRecord | ParseProblem]:
    """One record per line holding a JSON object."""
    for item in objects(path, reading, "one object"):
        if isinstance(item, ParseProblem):
            yield item
            continue
        number, row = item
        found = columns(list(row), fields)
        yield record({key: row.get(column) for key, column in found.items()}, number, reading)


def record(values: Mapping[str, object], line: int, reading: Reading) -> PaperRecord | ParseProblem:
    """A record from one row's values by field."""
    text = {key: value for key, value in values.items() if isinstance(value, str)}
    authors = values.get("authors")
    names = [str(name) for name in authors] if isinstance(authors, list) else split_authors(text.get("authors", ""))
    categories = values.get("categories")
    tags = (
        [str(c) for c in categories]
        if isinstance(categories, list)
        else text.get("categories", "").replace(",", " ").split()
    )
    identifier, version = arxiv_id(text.get("arxiv_id") or arxiv_link(text.get("url")))
    given = text.get("date") or str(values.get("year") or "").strip()
    published = parse_date(given)
    title = text.get("title", "")
    return reading.record(
        line,
        text.get("abstract"),
        f"row {title[:40]!r}" if title else "row",
        title=title,
        authors=names,
        arxiv_id=identifier,
        version=version,
        doi=doi(text.get("doi")),
        url=text.get("url") or None,
        published=published,
        date=given if published else None,
        category=tags[0] if tags else None,
        categories=tags or None,
        venue=text.get("venue") or None,
    )
