"""OpenAlex works: the JSON an `api.openalex.org/works` call returns (`{"results": [...]}`), a single work, or
JSON lines of works. The abstract arrives as `abstract_inverted_index` (word → positions) and is rebuilt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rag.formats.common import Reading, arxiv_id, arxiv_link, doi, objects, parse_date
from rag.types import PaperRecord, ParseProblem

NAME = "openalex"


def sniff(head: str) -> bool:
    """Whether the file holds OpenAlex works: their ids are openalex.org links."""
    return "openalex.org/W" in head and ("abstract_inverted_index" in head or '"results"' in head)


def read(path: Path, reading: Reading, fields: dict[str, str]) -> Iterator[PaperRecord | ParseProblem]:
    """One record per work; a JSON file is read whole (within the size cap), JSON lines one at a time."""
    with path.open(encoding="utf-8-sig") as handle:
        text_start = handle.read(4096).lstrip()
    if text_start.startswith("{") and "\n{" in text_start and '"results"' not in text_start:
        for item in objects(path, reading, "one work"):
            yield item if isinstance(item, ParseProblem) else checked_record(item[1], item[0], reading)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        yield reading.problem(exc.lineno, f"not JSON ({exc.msg}); save the API response as is")
        return
    works = data.get("results", [data]) if isinstance(data, dict) else data
    if not isinstance(works, list):
        expected = 'expected {"results": [...]}, one work or a list of works'
        yield reading.problem(None, f"not OpenAlex works: {expected}; save the API response as is")
        return
    for number, work in enumerate(works, 1):
        yield checked_record(work, number, reading)


def abstract_text(index: object) -> str:
    """The abstract rebuilt from an inverted index: each word at each of its positions."""
    if not isinstance(index, dict):
        return ""
    placed = sorted((position, word) for word, positions in index.items() for position in positions or [])
    return " ".join(word for _, word in placed)


def checked_record(work: object, line: int, reading: Reading) -> PaperRecord | ParseProblem:
    """work_record's record, or the problem that `work` is not an OpenAlex work: not an object, or one whose
    fields are not of the types OpenAlex gives them."""
    if not isinstance(work, dict):
        return reading.problem(
            line, f"work {line}: not a JSON object, so not an OpenAlex work; the entry is not stored"
        )
    try:
        return work_record(work, line, reading)
    except (AttributeError, TypeError, ValueError) as exc:
        key = str(work.get("id") or f"work {line}")
        message = f"not an OpenAlex work, a field is not of the type OpenAlex gives it ({exc})"
        return reading.problem(line, f"{key}: {message}; the entry is not stored")


def work_record(work: dict, line: int, reading: Reading) -> PaperRecord | ParseProblem:
    """One OpenAlex work; `line` is its line in a JSON-lines file, or its order in a JSON one."""
    ids = work.get("ids") or {}
    location = work.get("primary_location") or {}
    source = location.get("source") or {}
    identifier, version = arxiv_id(ids.get("arxiv") or arxiv_link(location.get("landing_page_url")))
    published = parse_date(work.get("publication_date") or str(work.get("publication_year") or ""))
    topic = (work.get("primary_topic") or {}).get("display_name")
    return reading.record(
        line,
        abstract_text(work.get("abstract_inverted_index")),
        str(work.get("id") or f"work {line}"),
        title=work.get("title") or work.get("display_name") or "",
        authors=[
            (a.get("author") or {}).get("display_name") or a.get("raw_author_name") or ""
            for a in work.get("authorships") or []
        ],
        arxiv_id=identifier,
        version=version,
        doi=doi(work.get("doi") or ids.get("doi")),
        url=location.get("landing_page_url") or work.get("doi") or work.get("id"),
        published=published,
        date=published.isoformat() if published else None,
        category=topic,
        categories=[topic] if topic else None,
        venue=source.get("display_name"),
    )
