"""Scraped abstract listings → PaperRecords, one parser per layout, and records → merged Papers.

Three layouts are known, told apart by their content rather than their name:

* ``lines``: one abstract per line, nothing else (no titles, no metadata).
* ``daily``: a dump of a "daily papers" web page: page boilerplate, then blocks separated by blank lines:
  a title, its abstract, and an optional metadata block (``• 8 authors``, ``·``, a date such as
  ``Mar 18, 2024``, ``Jan 4`` or ``Jul 17, 2023 1`` where the trailing number is a vote count).
* ``arxiv``: an arXiv-style listing: ``LGOct 11, 2022Code`` (category, date, optional "Code" glued together),
  then the title glued to its author list (``...to 1 MBLingzhi Li, Zhen Shen, Zhongshu Wang et al.``),
  optionally followed by `` · org``, then the abstract.

Anything that does not parse cleanly becomes a ParseProblem with its line number; a paper is never
silently dropped or merged into its neighbour.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from pathlib import Path
from typing import Any

from rag.errors import IngestError
from rag.identity import assign
from rag.types import Paper, PaperRecord, ParseProblem, Source, paper_id_for

MAX_FILE_BYTES = 64 * 1024 * 1024
# The longest abstract in the seed corpus has 1,911 characters; arXiv caps abstracts at 1,920.
MAX_ABSTRACT_CHARS = 20_000
MAX_TITLE_CHARS = 300
# In the one-abstract-per-line layout, a shorter line is not taken for an abstract.
MIN_LINE_ABSTRACT_CHARS = 200

LAYOUTS = ("lines", "daily", "arxiv")

BOILERPLATE = frozenset(
    {
        "new",
        "Get trending papers in your email inbox!",
        "Subscribe",
        "Daily Papers",
        "byAK and the research community",
    }
)

# Not strptime's "%b": it reads month names in the process's locale (LC_TIME), and the listings are English in any.
MONTHS = {
    name: number
    for number, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_MONTH = "(?P<month>" + "|".join(MONTHS) + ")"
_DATE_LINE = re.compile(_MONTH + r" (?P<day>\d{1,2})(?:, (?P<year>\d{4}))?(?: (?P<votes>\d+))?")
_AUTHORS_LINE = re.compile(r"•\s*(?P<count>\d+)\s+authors?")
_SEPARATOR = "·"
_ARXIV_HEADER = re.compile(
    r"(?P<category>[A-Za-z][A-Za-z.\-]{0,15}?)(?P<date>"
    + _MONTH
    + r" (?P<day>\d{1,2}), (?P<year>\d{4}))(?P<code>Code)?"
)
_ORG_SUFFIX = re.compile(r"\s·\s(?P<org>\S+)$")
_ET_AL = " et al."
_Report = Callable[[int, str], None]
_PARTICLES = frozenset({"de", "del", "della", "der", "den", "di", "da", "dos", "du", "la", "le", "van", "von", "bin"})


@dataclass(frozen=True)
class ParsedFile:
    """What one corpus file yielded: its layout, its paper records in file order, and its problems."""

    file: str
    path: Path
    layout: str
    records: list[PaperRecord]
    problems: list[ParseProblem] = field(default_factory=list)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def read_text(path: Path) -> str:
    """The text of a corpus file; anything that is not a readable UTF-8 text file is an IngestError."""
    name = path.name
    if not path.exists():
        raise IngestError(f"{path}: no such file or folder; check the path")
    if not path.is_file():
        raise IngestError(f"{path}: not a regular file; pass a text file or a folder of them")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise IngestError(f"{name}: {size:,} bytes is larger than the {MAX_FILE_BYTES:,}-byte limit; split the file")
    data = path.read_bytes()
    if b"\x00" in data:
        raise IngestError(f"{name}: binary file (contains NUL bytes); pass the scraped text listing instead")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IngestError(
            f"{name} line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}); convert it, e.g. iconv -t UTF-8"
        ) from exc
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise IngestError(f"{name}: empty file; nothing to ingest")
    return text


def parse_file(path: Path) -> ParsedFile:
    """Parse one corpus file; raises IngestError when the file as a whole cannot be used."""
    return parse_text(read_text(path), file=path.name, path=path)


def parse_text(text: str, file: str, path: Path | None = None) -> ParsedFile:
    """Parse the text of a corpus file named `file`; raises IngestError when no paper can be read from it."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    layout = detect_layout(lines)
    if layout is None:
        first = next((line.strip() for line in lines if line.strip()), "")
        raise IngestError(
            f"{file}: no known layout (one abstract per line, a daily-papers page, or an arXiv-style listing); "
            f"first line: {_clip(first)!r}"
        )
    parser = {"lines": _parse_lines, "daily": _parse_daily, "arxiv": _parse_arxiv}[layout]
    records, problems = parser(lines, file)
    if not records:
        detail = f"; first problem: {problems[0]}" if problems else ""
        raise IngestError(f"{file}: no paper could be read ({layout} layout){detail}")
    return ParsedFile(file=file, path=path or Path(file), layout=layout, records=records, problems=problems)


def detect_layout(lines: Sequence[str]) -> str | None:
    """The layout these lines are in, or None when they are in none of the known ones."""
    nonblank = [line.strip() for line in lines if line.strip()]
    if not nonblank:
        return None
    if _ARXIV_HEADER.fullmatch(nonblank[0]):
        return "arxiv"
    if any(line in BOILERPLATE or _AUTHORS_LINE.fullmatch(line) for line in nonblank):
        return "daily"
    # Without boilerplate or metadata, a daily page is title/abstract pairs of single lines; prose wrapped over
    # several lines (a README, a paper) is not. The pairs must make up nearly all of the blocks.
    blocks = [block for _, block in _blocks(lines)]
    pairs = sum(
        len(first) == 1 and len(first[0]) <= MAX_TITLE_CHARS and len(second) == 1 and len(second[0]) > MAX_TITLE_CHARS
        for first, second in itertools.pairwise(blocks)
    )
    if pairs and 2 * pairs >= 0.8 * len(blocks):
        return "daily"
    long_lines = sum(len(line) >= MIN_LINE_ABSTRACT_CHARS for line in nonblank)
    if long_lines and long_lines * 2 >= len(nonblank):
        return "lines"
    return None


def _blocks(lines: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines as (first line number, stripped lines)."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line:
            if not current:
                start = number
            current.append(line)
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _too_long(line: str) -> str:
    return (
        f"{len(line):,} characters on one line, longer than any abstract ({MAX_ABSTRACT_CHARS:,}); is this a listing?"
    )


# --- one abstract per line -----------------------------------------------------------------------------------


def _parse_lines(lines: Sequence[str], file: str) -> tuple[list[PaperRecord], list[ParseProblem]]:
    records: list[PaperRecord] = []
    problems: list[ParseProblem] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_ABSTRACT_CHARS:
            problems.append(ParseProblem(file=file, line=number, message=_too_long(line)))
        elif len(line) < MIN_LINE_ABSTRACT_CHARS:
            problems.append(
                ParseProblem(
                    file=file,
                    line=number,
                    message=f"{len(line)} characters is too short for an abstract in a one-abstract-per-line file: "
                    f"{_clip(line)!r}",
                )
            )
        else:
            source = Source(file=file, position=len(records), line=number)
            records.append(PaperRecord(source=source, abstract=line))
    return records, problems


# --- daily-papers page ---------------------------------------------------------------------------------------


@dataclass
class _Block:
    kind: str  # "meta" | "short" | "text"
    line: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _is_meta_line(line: str) -> bool:
    return line == _SEPARATOR or bool(_AUTHORS_LINE.fullmatch(line) or _DATE_LINE.fullmatch(line))


def _daily_blocks(lines: Sequence[str]) -> list[_Block]:
    """Blank-line separated blocks, with metadata lines and a leading title line split off where no blank line
    separates them from the abstract."""
    out: list[_Block] = []
    for start, block in _blocks(lines):
        body = list(block)
        tail: list[str] = []
        while len(body) > 1 and _is_meta_line(body[-1]):
            tail.insert(0, body.pop())
        if all(_is_meta_line(line) for line in body):
            out.append(_Block("meta", start, body + tail))
            continue
        if len(body) > 1 and len(body[0]) <= MAX_TITLE_CHARS and len(body[1]) > MAX_TITLE_CHARS:
            out.append(_Block("short", start, [body[0]]))
            out.append(_Block("text", start + 1, body[1:]))
        elif len(body) == 1 and len(body[0]) <= MAX_TITLE_CHARS:
            out.append(_Block("short", start, body))
        else:
            out.append(_Block("text", start, body))
        if tail:
            out.append(_Block("meta", start + len(body), tail))
    return out


def _skip_header(blocks: list[_Block]) -> list[_Block]:
    """Drop the page boilerplate (and the page's own date) that precedes the first paper."""
    index = 0
    seen_boilerplate = False
    while index < len(blocks):
        block = blocks[index]
        if block.kind == "short" and block.lines[0] in BOILERPLATE:
            seen_boilerplate = True
        elif seen_boilerplate and block.kind == "meta" and all(_DATE_LINE.fullmatch(x) for x in block.lines):
            pass  # the page's date, e.g. "Mar 11"
        else:
            break
        index += 1
    return blocks[index:]


def _parse_daily(lines: Sequence[str], file: str) -> tuple[list[PaperRecord], list[ParseProblem]]:
    records: list[PaperRecord] = []
    problems: list[ParseProblem] = []
    blocks = _skip_header(_daily_blocks(lines))

    def problem(line: int, message: str) -> None:
        problems.append(ParseProblem(file=file, line=line, message=message))

    def kind(index: int) -> str | None:
        return blocks[index].kind if index < len(blocks) else None

    i = 0
    while i < len(blocks):
        block = blocks[i]
        if block.kind == "meta":
            problem(block.line, f"metadata block with no paper before it: {_clip(' '.join(block.lines))!r}")
            i += 1
            continue
        title: str | None = None
        first_line = block.line
        if block.kind == "short":
            following = kind(i + 1)
            # A short block is a title unless nothing that could be its abstract follows it.
            short_abstract = following == "short" and kind(i + 2) in (None, "meta", "short")
            if following == "text" or short_abstract:
                title, block = block.lines[0], blocks[i + 1]
                i += 1
            else:
                problem(block.line, f"title with no abstract after it: {_clip(block.lines[0])!r}")
                i += 1
                continue
        else:
            problem(block.line, "abstract with no title line before it; kept without a title")
        i += 1
        abstract = block.text
        if len(abstract) > MAX_ABSTRACT_CHARS:
            problem(block.line, _too_long(abstract))
            if kind(i) == "meta":
                i += 1
            continue
        meta: dict[str, object] = {}
        if kind(i) == "meta":
            meta = _parse_meta(blocks[i], problem)
            i += 1
        source = Source(file=file, position=len(records), line=first_line)
        records.append(PaperRecord(source=source, abstract=abstract, title=title, **meta))  # type: ignore[arg-type]
    return records, problems


def _parse_meta(block: _Block, problem: _Report) -> dict[str, object]:
    meta: dict[str, object] = {}
    for offset, line in enumerate(block.lines):
        number = block.line + offset
        if line == _SEPARATOR:
            continue
        authors = _AUTHORS_LINE.fullmatch(line)
        if authors:
            meta["n_authors"] = int(authors["count"])
            continue
        found = _DATE_LINE.fullmatch(line)
        if found:
            meta.update(_date_fields(found, line, number, problem))
    return meta


def _date_fields(found: re.Match[str], line: str, number: int, problem: _Report) -> dict[str, object]:
    written = line if found["votes"] is None else line[: found.start("votes") - 1]
    fields: dict[str, object] = {"date": written}
    if found["votes"] is not None:
        fields["upvotes"] = int(found["votes"])
    if found["year"] is not None:
        published = _iso_date(int(found["year"]), MONTHS[found["month"]], int(found["day"]))
        if published is None:
            problem(number, f"no such date: {written!r}; kept as written")
        fields["published"] = published
    return fields


def _iso_date(year: int, month: int, day: int) -> Date | None:
    try:
        return Date(year, month, day)
    except ValueError:
        return None


# --- arXiv-style listing -------------------------------------------------------------------------------------


def _is_person_name(name: str) -> bool:
    """Whether `name` reads as one person's name: two to six capitalised words, particles and initials."""
    words = name.split(" ")
    if not 2 <= len(words) <= 6:
        return False
    return all(_is_name_word(word) for word in words)


def _is_name_word(word: str) -> bool:
    if word in _PARTICLES:
        return True
    if len(word) == 2 and word[0].isupper() and word[1] == ".":
        return True
    parts = word.split("-")
    for number, part in enumerate(parts):
        core = part.replace("'", "").replace("’", "")
        if not core.isalpha():
            return False
        if number == 0 and not core[0].isupper():
            return False
        if not (core[1:].islower() or len(core) == 1):
            return False
    return True


def split_title_authors(line: str) -> tuple[str, list[str], bool, str | None] | None:
    """Split an arXiv listing line into (title, authors, et_al, organisation), or None when no split is sure.

    The title is glued to the first author ("...to 1 MBLingzhi Li, ..."): the split is the leftmost capital
    letter not preceded by a space after which the rest reads as a comma-separated list of names.
    """
    organization = None
    org = _ORG_SUFFIX.search(line)
    if org:
        organization = org["org"]
        line = line[: org.start()]
    et_al = line.endswith(_ET_AL)
    body = line[: -len(_ET_AL)] if et_al else line
    for index in range(1, len(body)):
        if body[index].isupper() and not body[index - 1].isspace():
            names = body[index:].split(", ")
            if all(_is_person_name(name) for name in names):
                title = body[:index].strip()
                if title:
                    return title, names, et_al, organization
    return None


def _parse_arxiv(lines: Sequence[str], file: str) -> tuple[list[PaperRecord], list[ParseProblem]]:
    records: list[PaperRecord] = []
    problems: list[ParseProblem] = []
    rows = [(number, raw.strip()) for number, raw in enumerate(lines, 1) if raw.strip()]

    def problem(line: int, message: str) -> None:
        problems.append(ParseProblem(file=file, line=line, message=message))

    def is_header(index: int) -> bool:
        return index < len(rows) and bool(_ARXIV_HEADER.fullmatch(rows[index][1]))

    i = 0
    while i < len(rows):
        number, text = rows[i]
        header = _ARXIV_HEADER.fullmatch(text)
        meta: dict[str, object] = {}
        if header:
            meta = {
                "category": header["category"],
                "date": header["date"],
                "has_code": header["code"] is not None,
                "published": _iso_date(int(header["year"]), MONTHS[header["month"]], int(header["day"])),
            }
            if meta["published"] is None:
                problem(number, f"no such date: {header['date']!r}; kept as written")
            start = i
            i += 1
        else:
            start = i
            looks_like_paper = i + 1 < len(rows) and not is_header(i + 1) and len(text) <= MAX_TITLE_CHARS
            if not looks_like_paper:
                problem(number, f"expected a category+date line, got {_clip(text)!r}; line skipped")
                i += 1
                continue
            problem(number, f"expected a category+date line, got {_clip(text)!r}; paper kept without them")
        if i >= len(rows) or is_header(i):
            problem(rows[start][0], "category+date line with no title and abstract after it")
            continue
        title_number, title_line = rows[i]
        if i + 1 >= len(rows) or is_header(i + 1):
            problem(title_number, f"title with no abstract after it: {_clip(title_line)!r}")
            i += 1
            continue
        abstract_number, abstract = rows[i + 1]
        i += 2
        if len(abstract) > MAX_ABSTRACT_CHARS:
            problem(abstract_number, _too_long(abstract))
            continue
        split = split_title_authors(title_line)
        if split is None:
            problem(title_number, f"cannot tell the title from the authors in {_clip(title_line)!r}; kept as title")
            meta.update(title=title_line)
        else:
            title, authors, et_al, organization = split
            meta.update(title=title, authors=authors, et_al=et_al, organization=organization)
            meta["n_authors"] = None if et_al else len(authors)
        source = Source(file=file, position=len(records), line=rows[start][0])
        records.append(PaperRecord(source=source, abstract=abstract, **meta))  # type: ignore[arg-type]
    return records, problems


# --- records → papers ----------------------------------------------------------------------------------------


def merge_records(records: Iterable[PaperRecord]) -> list[Paper]:
    """One Paper per paper the records describe (rag.identity: one arXiv id, DOI, or title and opening), merging
    what each file says about it, in order of first appearance.

    A field takes the first value given, in (file, position) order, except: the abstract is the latest arXiv
    version's where versions are known, the date prefers a form with a year, the vote count takes the highest
    (pages are snapshots; votes only grow) and the revision date the latest.
    """
    groups: dict[str, list[PaperRecord]] = defaultdict(list)
    for record in assign(list(records)):
        groups[record.paper_id].append(record)
    return [merge_paper(paper_id, group) for paper_id, group in groups.items()]


def merge_paper(paper_id: str, records: Sequence[PaperRecord]) -> Paper:
    """The paper `paper_id` from records already known to be of it (a stored paper's), merged as merge_records
    merges a group."""
    group = sorted(records, key=lambda r: (r.source.file, r.source.position))

    def first(attribute: str) -> Any:
        return next((getattr(r, attribute) for r in group if getattr(r, attribute) is not None), None)

    with_authors = next((r for r in group if r.authors is not None), None)
    dated = next((r for r in group if r.published is not None), None) or next(
        (r for r in group if r.date is not None), None
    )
    votes = [r.upvotes for r in group if r.upvotes is not None]
    revised = [r.updated for r in group if r.updated is not None]
    latest = max(group, key=lambda r: r.version or 0)
    return Paper(
        paper_id=paper_id,
        title=first("title"),
        abstract=latest.abstract,
        authors=with_authors.authors if with_authors else None,
        et_al=with_authors.et_al if with_authors else False,
        n_authors=first("n_authors"),
        date=dated.date if dated else None,
        published=dated.published if dated else None,
        upvotes=max(votes) if votes else None,
        category=first("category"),
        has_code=first("has_code"),
        organization=first("organization"),
        sources=[r.source for r in group],
        arxiv_id=first("arxiv_id"),
        doi=first("doi"),
        url=first("url"),
        categories=first("categories"),
        venue=first("venue"),
        updated=max(revised) if revised else None,
    )


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[ParseProblem]]:
    """The corpus files named by `paths` (folders give their non-hidden files, sorted), and the paths that
    name nothing readable."""
    files: list[Path] = []
    problems: list[ParseProblem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not found:
                problems.append(ParseProblem(file=str(path), line=None, message="folder has no files to ingest"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(ParseProblem(file=str(path), line=None, message="no such file or folder; check the path"))
    by_name: dict[str, Path] = {}
    unique: list[Path] = []
    for file in files:
        other = by_name.get(file.name)
        if other is not None and other.resolve() != file.resolve():
            problems.append(
                ParseProblem(
                    file=str(file),
                    line=None,
                    message=f"has the same name as {other}; papers are tracked by file name, rename one of them",
                )
            )
            continue
        if other is None:
            by_name[file.name] = file
            unique.append(file)
    return unique, problems


__all__ = [
    "LAYOUTS",
    "ParsedFile",
    "collect_files",
    "detect_layout",
    "merge_paper",
    "merge_records",
    "paper_id_for",
    "parse_file",
    "parse_text",
    "read_text",
    "split_title_authors",
]
