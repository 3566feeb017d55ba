"""What every bibliographic format's reader shares: the fields it fills, cleaning LaTeX and wrapped text, and
reading ids and dates the way the records write them."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from email.utils import parsedate_to_datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rag.errors import IngestError
from rag.types import PaperRecord, ParseProblem, Source

# The fields a table (CSV, JSON lines) may hold, and the column names read for each when no --field maps them.
FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "abstract": ("abstract", "summary", "abstractnote", "abstract note"),
    "authors": ("authors", "author", "creators"),
    "date": ("date", "published", "publication date", "publication_date"),
    "year": ("year", "publication year", "publication_year"),
    "doi": ("doi",),
    "arxiv_id": ("arxiv_id", "arxiv id", "arxiv", "eprint"),
    "url": ("url", "link"),
    "categories": ("categories", "category", "tags"),
    "venue": ("venue", "journal", "publication title", "booktitle"),
}

_ARXIV_NEW = re.compile(r"(?<!\d)(?<!\d\.)(\d{4}\.\d{4,5})(?:v(\d+))?\b")
_ARXIV_OLD = re.compile(r"\b([a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?\b")
_DOI = re.compile(r"\b(10\.\d{4,9}/\S+)", re.I)
# Inline math, which is kept as written.
_MATH = re.compile(r"(\$[^$]*\$)")
# The LaTeX outside math that is rendered: a macro with its braced arguments (`\textbf{two words}`) or with the
# space that ends its name (`\ss is`, read as LaTeX and pylatexenc read it), an accent or escape with the letter
# it applies to (`\"o`, `\&`), a braced group (`{\"{o}}`, `{BERT}`), a tie, dashes and TeX quotes. Only these
# pieces go through pylatexenc, one at a time: rendering a whole abstract costs about 12 ms, which bounds a
# snapshot's read at under 100 records/s.
_BRACED = r"\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"
_LATEX = re.compile(
    rf"\\[a-zA-Z]+\*?(?:(?:\s*{_BRACED})+| ?)|\\[^a-zA-Z\s](?:\s*{_BRACED}|[a-zA-Z])?|{_BRACED}|~|-{{2,3}}|``|''"
)


@dataclass(frozen=True)
class Options:
    """How files are read: the format (None: told by each file's content), table columns mapped to fields
    (`--field abstract=summary`), the categories a paper must be listed under (any of them, any case; none: every
    paper), and at most how many papers to take from all the files together."""

    format: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    categories: frozenset[str] = frozenset()
    limit: int | None = None

    def keeps(self, record: PaperRecord) -> bool:
        """Whether `record` is listed under one of the wanted categories (always, when none is wanted)."""
        return self.wants([record.category or "", *(record.categories or [])])

    def wants(self, categories: Sequence[str]) -> bool:
        """Whether a paper listed under `categories` is wanted: a reader asks before it builds the record, so
        that the part of a big file left out costs no more than reading its lines."""
        return not self.categories or any(c.casefold() in self.categories for c in categories if c)

    @classmethod
    def parse_fields(cls, pairs: Sequence[str]) -> dict[str, str]:
        """`--field` values ("abstract=summary") as field → column; a malformed or unknown one is a ValueError
        naming it."""
        out = {}
        for pair in pairs:
            key, equals, column = pair.partition("=")
            key = key.strip().casefold()
            if not equals or not column.strip():
                raise ValueError(f"--field {pair!r}: write FIELD=COLUMN, e.g. --field abstract=summary")
            if key not in FIELDS:
                raise ValueError(f"--field {pair!r}: unknown field {key!r}; the fields are {', '.join(FIELDS)}")
            out[key] = column.strip()
        return out


class Reading:
    """Collects one file's records and problems as a reader yields them, with the file's name for each."""

    def __init__(self, path: Path, latex: bool = False, options: Options | None = None) -> None:
        self.path = path
        self.options = options or Options()
        self.file = path.name
        self.position = 0
        self.latex = latex  # whether the text is LaTeX source (BibTeX, arXiv), not plain text
        self.bytes_read = 0  # how far a streamed reader has got, for a progress bar over the file

    def record(self, line: int, abstract: str | None, key: str, **fields: Any) -> PaperRecord | ParseProblem:
        """A record from the fields a reader found at `line` (1-based), or the problem that keeps it out: no
        abstract. `key` names the entry in the message (a BibTeX key, an id, a title)."""
        text = clean(abstract or "", self.latex)
        if not text:
            return ParseProblem(file=self.file, line=line, message=f"{key}: no abstract; the entry is not stored")
        source = Source(file=self.file, position=self.position, line=max(1, line))
        self.position += 1
        title = clean(fields.pop("title", None) or "", self.latex) or None
        names = [clean(name, self.latex) for name in fields.pop("authors", None) or []]
        authors = [name for name in names if name] or None
        return PaperRecord(
            source=source,
            abstract=text,
            title=title,
            authors=authors,
            n_authors=len(authors) if authors else None,
            **{name: value for name, value in fields.items() if value not in (None, "", [])},
        )

    def problem(self, line: int | None, message: str) -> ParseProblem:
        return ParseProblem(file=self.file, line=line, message=message)


def clean(text: str, latex: bool = False) -> str:
    """`text` as one paragraph: HTML entities and LaTeX accents, braces and escapes turned to Unicode (math kept
    as written), hard wraps and runs of spaces folded."""
    text = html.unescape(text)
    if latex:
        text = "".join(part if n % 2 else _LATEX.sub(_rendered, part) for n, part in enumerate(_MATH.split(text)))
    return " ".join(text.split())


def _rendered(found: re.Match[str]) -> str:
    return _render(found.group())


@lru_cache(maxsize=8192)
def _render(piece: str) -> str:
    """One piece of LaTeX as text; as written where pylatexenc cannot read it (seen: `\\href` with a space). The
    same pieces (dashes, quotes, accents) recur across a file's abstracts, and pylatexenc takes about 1 ms each."""
    try:
        return str(_latex().latex_to_text(piece))
    except Exception:
        return piece


@cache
def _latex() -> Any:
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text(math_mode="verbatim", strict_latex_spaces=True)


def arxiv_id(text: str | None) -> tuple[str | None, int | None]:
    """The arXiv id in `text` (an id, an abs/pdf link, "arXiv:2312.02896v2") without its version, and the version."""
    if not text:
        return None, None
    found = _ARXIV_NEW.search(text) or _ARXIV_OLD.search(text)
    if found is None:
        return None, None
    return found.group(1), int(found.group(2)) if found.group(2) else None


def arxiv_link(*links: str | None) -> str | None:
    """The first of `links` that points at arxiv.org (only there does a number like 2312.02896 name a paper)."""
    return next((link for link in links if link and "arxiv.org" in link), None)


def doi(text: str | None) -> str | None:
    """The DOI in `text` (bare, "doi:…" or a doi.org link), lower-cased, as the key it is."""
    found = _DOI.search(text or "")
    return found.group(1).rstrip(".,;").lower() if found else None


def parse_date(text: str | None) -> Date | None:
    """An ISO date ("2023-05-01", "2023-05", "2023"), an RFC 2822 one ("Mon, 2 Apr 2007 19:18:42 GMT"), or
    "2023/05/01" as RIS writes it; None when there is none."""
    text = (text or "").strip()
    if not text:
        return None
    found = re.match(r"(\d{4})(?:[-/](\d{1,2}))?(?:[-/](\d{1,2}))?", text)
    if found is not None:
        year, month, day = (int(part) if part else 1 for part in found.groups())
        try:
            return Date(year, month, day)
        except ValueError:
            return Date(year, 1, 1) if 1 <= year <= 9999 else None
    try:
        return parsedate_to_datetime(text).date()
    except (TypeError, ValueError):
        return None


def split_authors(text: str) -> list[str]:
    """Authors written as one string: "A and B", "A, B, and C", "Last, First; Last, First"."""
    text = " ".join(text.split())
    if ";" in text:
        return [first_last(part) for part in text.split(";") if part.strip()]
    if re.search(r"\band\b", text) and "," not in text.replace(", and", " and"):
        return [part.strip() for part in re.split(r"\s+and\s+", text) if part.strip()]
    return [part.strip() for part in re.split(r",\s*(?:and\s+)?|\s+and\s+", text) if part.strip()]


def first_last(name: str) -> str:
    """ "Last, First" → "First Last"; a name without a comma as it is."""
    last, comma, first = name.partition(",")
    return f"{first.strip()} {last.strip()}" if comma and first.strip() else name.strip()


def objects(path: Path, reading: Reading, what: str) -> Iterator[tuple[int, dict[str, Any]] | ParseProblem]:
    """The JSON objects of a JSON-lines file with their line numbers, one at a time; a line that is not one is
    a problem naming it (`what`: what each line must be)."""
    for number, line in lines_of(path, reading):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield reading.problem(number, f"not JSON ({exc.msg}); each line must be {what}")
            continue
        if not isinstance(row, dict):
            yield reading.problem(number, f"not a JSON object; each line must be {what}")
            continue
        yield number, row


def lines_of(path: Path, reading: Reading) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file one at a time, numbered from 1, counting the bytes read into `reading`:
    big files are never read whole."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            reading.bytes_read += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(reading.file, number, raw[exc.start]) from exc
            yield number, line.removeprefix("\ufeff") if number == 1 else line


def not_utf8(file: str, line: int, byte: int) -> IngestError:
    """The error for a file whose line `line` holds `byte`, which is not UTF-8 (as rag.corpus words it)."""
    return IngestError(f"{file} line {line}: not UTF-8 (byte 0x{byte:02x}); convert it, e.g. iconv -t UTF-8")


def first_not_utf8(path: Path) -> IngestError:
    """The error naming the first line of `path` that is not UTF-8, read a line at a time (a UTF-8 sequence never
    holds a newline byte, so each line decodes on its own)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return not_utf8(path.name, number, raw[exc.start])
    return IngestError(f"{path.name}: not UTF-8; convert it, e.g. iconv -t UTF-8")


__all__ = [
    "FIELDS",
    "Options",
    "Reading",
    "arxiv_id",
    "arxiv_link",
    "clean",
    "doi",
    "first_last",
    "first_not_utf8",
    "lines_of",
    "not_utf8",
    "objects",
    "parse_date",
    "split_authors",
]
