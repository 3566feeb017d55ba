"""Files of papers → PaperRecords, one reader per format: the scraped listings the project ships (rag.corpus) and
the standard formats users bring (arXiv API feeds and the metadata snapshot, BibTeX, RIS, CSV and JSON lines,
OpenAlex works).

A file's format is told by its content first, then by its extension; `Options.format` overrides both. The
bibliographic readers yield records one at a time, so a file is never held whole beyond what its parser needs
(the snapshot, CSV and JSON lines are streamed a line at a time)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from rag.corpus import LAYOUTS, MAX_FILE_BYTES, ParsedFile, parse_file
from rag.errors import IngestError
from rag.formats import atom, bibtex, openalex, ris, snapshot, table
from rag.formats.common import Options, Reading, first_not_utf8
from rag.types import PaperRecord, ParseProblem

Reader = Callable[[Path, Reading, dict[str, str]], Iterator[PaperRecord | ParseProblem]]
# Tried in this order on the file's first bytes: the more specific formats first.
READERS: dict[str, tuple[Callable[[str], bool], Reader]] = {
    atom.NAME: (atom.sniff, atom.read),
    openalex.NAME: (openalex.sniff, openalex.read),
    snapshot.NAME: (snapshot.sniff, snapshot.read),
    table.JSONL: (table.sniff_jsonl, table.read_jsonl),
    bibtex.NAME: (bibtex.sniff, bibtex.read),
    ris.NAME: (ris.sniff, ris.read),
    table.CSV: (table.sniff_csv, table.read_csv),
}
SCRAPED = "scraped"
FORMATS = (*READERS, SCRAPED)
EXTENSIONS = {".bib": bibtex.NAME, ".bibtex": bibtex.NAME, ".ris": ris.NAME, ".csv": table.CSV, ".jsonl": table.JSONL}
HEAD_BYTES = 8192
PROGRESS_EVERY = 1000  # records between two progress reports while a file is read
# The scraped listings are parsed whole, and so are capped (rag.corpus.MAX_FILE_BYTES); these are read as
# they go and are not.
STREAMED = (snapshot.NAME, table.JSONL, table.CSV)
# Formats whose text is LaTeX source: accents, braces and escapes are rendered (math is kept as written).
LATEX = (atom.NAME, snapshot.NAME, bibtex.NAME)


def detect(path: Path) -> str:
    """The format of the file at `path`, by content, then by extension; the scraped listings otherwise."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES).decode("utf-8", errors="ignore")
    for name, (sniff, _) in READERS.items():
        if sniff(head):
            return name
    return EXTENSIONS.get(path.suffix.casefold(), SCRAPED)


def with_format(path: Path, options: Options | None = None) -> Options:
    """`options` naming the format `path` is read as: the one given, else the one its content and name tell."""
    options = options or Options()
    return options if options.format else replace(options, format=detect(path))


def read_file(
    path: Path,
    options: Options | None = None,
    limit: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ParsedFile:
    """The records of one file in any known format (those `options` keeps, at most `limit`), and its problems,
    all at once (`read_records` hands them on as they are read). Raises IngestError as `read_records` does."""
    options = with_format(path, options)
    if options.format == SCRAPED:  # kept whole, for the layout it was written in
        return _scraped(path, options, limit)
    records: list[PaperRecord] = []
    problems: list[ParseProblem] = []
    for item in read_records(path, options, limit, progress):
        (problems if isinstance(item, ParseProblem) else records).append(item)  # type: ignore[arg-type]
    return ParsedFile(file=path.name, path=path, layout=str(options.format), records=records, problems=problems)


def read_records(
    path: Path,
    options: Options | None = None,
    limit: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[PaperRecord | ParseProblem]:
    """The records of one file in any known format (those `options` keeps, at most `limit`) and its problems,
    one at a time. `progress` is told ("read FILE", bytes read, file size) as a streamed file is read. Raises
    IngestError when the file cannot be used at all (found by the end of the file, when no record was read), or
    names an unknown format."""
    options = with_format(path, options)
    name = options.format
    if name not in FORMATS:
        raise IngestError(f"{path.name}: unknown format {name!r}; the formats read are {', '.join(FORMATS)}")
    if name == SCRAPED:
        parsed = _scraped(path, options, limit)
        yield from parsed.records
        yield from parsed.problems
        return
    size = path.stat().st_size
    if name not in STREAMED and size > MAX_FILE_BYTES:
        raise IngestError(
            f"{path.name}: {size:,} bytes of {name} is more than the {MAX_FILE_BYTES:,} bytes read whole; split the "
            "file, or convert it to JSON lines, which are read as they go"
        )
    _, reader = READERS[name]
    reading = Reading(path, latex=name in LATEX, options=options)
    kept = 0
    first_problem: ParseProblem | None = None
    stage = f"read {path.name}"
    report = progress if name in STREAMED else None  # only the streamed readers count the bytes they have read
    try:
        for count, item in enumerate(reader(path, reading, options.fields), 1):
            if report is not None and count % PROGRESS_EVERY == 0:
                report(stage, reading.bytes_read, size)
            if isinstance(item, ParseProblem):
                first_problem = first_problem or item
                yield item
            elif options.keeps(item):
                yield item
                kept += 1
                if limit is not None and kept >= limit:
                    break
    except UnicodeDecodeError as exc:  # a reader that decodes the file whole: find the line it stopped at
        raise first_not_utf8(path) from exc
    if report is not None:
        report(stage, size, size)
    if not kept and (first_problem or not options.categories):
        detail = f"; first problem: {first_problem}" if first_problem else ""
        raise IngestError(f"{path.name}: no paper with an abstract could be read ({name}){detail}")


def _scraped(path: Path, options: Options, limit: int | None) -> ParsedFile:
    """A scraped listing, parsed whole (rag.corpus), with the records `options` keeps, at most `limit`."""
    parsed = parse_file(path)
    kept = [r for r in parsed.records if options.keeps(r)][:limit]
    return ParsedFile(parsed.file, parsed.path, parsed.layout, kept, parsed.problems)


__all__ = ["FORMATS", "LAYOUTS", "Options", "detect", "read_file", "read_records", "with_format"]
