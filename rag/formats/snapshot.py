"""The arXiv metadata snapshot: one JSON object per line (about 2.9 million of them), read a line at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rag.formats.common import Reading, arxiv_id, doi, objects, parse_date, split_authors
from rag.types import PaperRecord, ParseProblem

NAME = "arxiv-snapshot"


def sniff(head: str) -> bool:
    """Whether the first line is a snapshot record: an object with `id`, `abstract` and `versions` or
    `authors_parsed`."""
    first = head.lstrip().split("\n", 1)[0]
    return first.startswith("{") and '"abstract"' in first and ('"versions"' in first or '"authors_parsed"' in first)


def read(path: Path, reading: Reading, fields: dict[str, str]) -> Iterator[PaperRecord | ParseProblem]:
    """One record per line; a line that is not a JSON object is reported by its number."""
    for item in objects(path, reading, "one snapshot record"):
        if isinstance(item, ParseProblem):
            yield item
        elif reading.options.wants(str(item[1].get("categories") or "").split()):
            yield record(item[1], item[0], reading)


def record(row: dict, number: int, reading: Reading) -> PaperRecord | ParseProblem:
    """One snapshot record: the first version's `created` is the submission date, `update_date` the last."""
    identifier, _ = arxiv_id(str(row.get("id") or ""))
    versions = row.get("versions") or []
    published = parse_date(versions[0].get("created")) if versions and isinstance(versions[0], dict) else None
    last = versions[-1].get("version", "") if versions and isinstance(versions[-1], dict) else ""
    categories = str(row.get("categories") or "").split() or None
    parsed = row.get("authors_parsed")
    if isinstance(parsed, list) and parsed:
        authors = [" ".join(part for part in (name[1:2] + name[0:1] + name[2:3]) if part) for name in parsed]
    else:
        authors = split_authors(str(row.get("authors") or ""))
    return reading.record(
        number,
        str(row.get("abstract") or ""),
        str(row.get("id") or f"line {number}"),
        title=str(row.get("title") or ""),
        authors=authors,
        arxiv_id=identifier,
        version=int(last[1:]) if last[1:].isdigit() else None,
        doi=doi(row.get("doi")),
        url=f"https://arxiv.org/abs/{identifier}" if identifier else None,
        published=published,
        date=published.isoformat() if published else None,
        updated=parse_date(row.get("update_date")),
        category=categories[0] if categories else None,
        categories=categories,
        venue=str(row.get("journal-ref") or "").strip() or None,
    )
