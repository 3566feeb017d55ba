"""Files → store, incrementally: parse, compare with what is stored, then chunk, embed and write only what changed.

What a run does to the store:

* a paper found in a file is stored once, with every {file, position} it was found at;
* a paper whose text changed (same title, or same position for untitled papers, new abstract) replaces the
  old one, chunks and all; a title or metadata change rewrites the record, re-embedding only if the title
  (which is embedded with each chunk) changed;
* a paper no longer in a re-read file stays unless `prune` is set; with `prune` the store keeps exactly the
  papers of the files given (a file that could not be read keeps its papers: bad input never removes data);
* writes go in batches, chunks before the paper record that commits them, so a run killed at any point
  leaves a store the next run completes: no duplicate chunks, no half-stored paper.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rag.catalogue import Catalogue, open_catalogue
from rag.chunking import Chunker, embedding_text
from rag.config import Settings
from rag.corpus import collect_files, merge_records
from rag.embedding import Embedder, embedder_name, load_embedder
from rag.errors import IngestError, StoreError
from rag.formats import Options, read_file
from rag.identity import assign, known_keys
from rag.lexical import ChunkRow
from rag.store import PaperWrite, Store, StoredPaper, open_store
from rag.types import Chunk, Paper, PaperRecord, ParseProblem
from rag.worker import EmbeddingPool, embedding_pool

Progress = Callable[[str, int, int], None]


@dataclass
class FileReport:
    """What one file gave: its layout and number of paper records, or the error that kept it out."""

    file: str
    layout: str | None
    papers: int
    error: str | None = None


@dataclass
class IngestReport:
    """The outcome of one ingest run."""

    files: list[FileReport] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)
    found: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    papers_total: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed_files(self) -> list[FileReport]:
        """Files that could not be ingested at all."""
        return [f for f in self.files if f.error is not None]


@dataclass
class Plan:
    """What a run will do: papers to embed and write, to update in place, and to delete."""

    write: list[tuple[Paper, list[PaperRecord]]] = field(default_factory=list)
    update: list[tuple[Paper, list[PaperRecord], StoredPaper]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0


def content_hash(paper: Paper, chunker: Chunker) -> str:
    """Hash of everything that decides a paper's chunks and vectors."""
    return _hash([paper.title, paper.abstract, chunker.signature])


def meta_hash(paper: Paper) -> str:
    """Hash of every stored field of a paper."""
    # Fields added to Paper after stores were written have defaults and are left out while unset, so that those
    # stores' papers keep their hashes.
    return _hash([paper.model_dump(mode="json", exclude_defaults=True)])


def _hash(parts: list[object]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]


def _slot(record: PaperRecord) -> tuple[str, str, object]:
    """Where in a file a paper sits, for telling an edited paper from a new one: its title, else its position."""
    if record.title:
        return (record.source.file, "title", " ".join(record.title.casefold().split()))
    return (record.source.file, "position", record.source.position)


def plan_ingest(
    stored: dict[str, StoredPaper],
    parsed: dict[str, list[PaperRecord]],
    unreadable: set[str],
    chunker: Chunker,
    prune: bool = False,
    damaged: frozenset[str] = frozenset(),
) -> Plan:
    """Compare what was parsed (records by file) with what is stored and decide what to write.

    `unreadable` files could not be read at all, `damaged` ones had blocks that did not parse: prune removes
    nothing of theirs, since a paper missing from them may only be unreadable."""
    target: dict[str, list[PaperRecord]] = {pid: list(sp.records) for pid, sp in stored.items()}
    replaced_by: dict[str, str] = {}
    for file, records in parsed.items():
        found_ids = {record.paper_id for record in records}
        new_at_slot = {_slot(record): record.paper_id for record in records}
        for pid, rows in target.items():
            kept = []
            for row in rows:
                if row.source.file != file:
                    kept.append(row)
                elif pid in found_ids:
                    continue  # found again: the fresh record takes its place
                elif new_at_slot.get(_slot(row), pid) != pid:
                    replaced_by.setdefault(pid, new_at_slot[_slot(row)])
                elif not prune or file in damaged:
                    kept.append(row)
            target[pid] = kept
        for record in records:
            target.setdefault(record.paper_id, []).append(record)
    if prune:
        keep_files = set(parsed) | unreadable
        target = {pid: [r for r in rows if r.source.file in keep_files] for pid, rows in target.items()}

    found = {record.paper_id for records in parsed.values() for record in records}
    replacing = set(replaced_by.values())
    plan = Plan()
    for pid, rows in target.items():
        old = stored.get(pid)
        if not rows:
            if old is not None:
                plan.delete.append(pid)
                plan.removed += pid not in replaced_by
            continue
        (paper,) = merge_records(rows)
        if old is None:
            plan.write.append((paper, rows))
            if pid in replacing:
                plan.changed += 1
            else:
                plan.new += 1
        elif old.content_hash != content_hash(paper, chunker):
            plan.write.append((paper, rows))
            plan.changed += 1
        elif old.meta_hash != meta_hash(paper):
            plan.update.append((paper, rows, old))
            plan.changed += 1
        elif pid in found:
            plan.unchanged += 1
    return plan


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """One ingest at a time per store folder."""
    if settings.server_mode:
        yield
        return
    settings.home.mkdir(parents=True, exist_ok=True)
    lock_path = settings.home / "ingest.lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreError(f"another `rag ingest` is writing to {settings.home}; wait for it to finish") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _repair(store: Store) -> dict[str, StoredPaper]:
    """Drop what an interrupted run left half-done; returns the committed papers whose chunks are all there."""
    stored = store.papers()
    counts = store.chunk_counts()
    orphans = [pid for pid in counts if pid not in stored]
    if orphans:
        store.delete_orphans(orphans)
    # A committed paper with missing chunks cannot come from this program's writes, but a store edited by hand
    # can have one: treat it as not stored, so it is written again.
    return {pid: sp for pid, sp in stored.items() if counts.get(pid, 0) == sp.n_chunks}


def ingest(
    paths: Sequence[Path] | None = None,
    *,
    settings: Settings,
    prune: bool = False,
    progress: Progress | None = None,
    options: Options | None = None,
) -> IngestReport:
    """Parse, chunk, embed and store the papers of `paths` (the default corpus when None), read as `options`
    says (rag.formats)."""
    options = options or Options()
    report = IngestReport()
    started = time.perf_counter()
    tick = time.perf_counter()
    files, problems = collect_files(list(paths) if paths else [settings.corpus])
    report.problems.extend(problems)
    for problem in problems:
        report.files.append(FileReport(file=problem.file, layout=None, papers=0, error=str(problem)))
    parsed: dict[str, list[PaperRecord]] = {}
    unreadable: set[str] = set()
    taken = 0
    for path in files:
        left = None if options.limit is None else options.limit - taken
        if left is not None and left <= 0:
            break
        try:
            result = read_file(path, options, left, progress)
        except IngestError as exc:
            unreadable.add(path.name)
            report.files.append(FileReport(file=path.name, layout=None, papers=0, error=str(exc)))
            continue
        parsed[path.name] = result.records
        taken += len(result.records)
        report.problems.extend(result.problems)
        report.files.append(FileReport(file=path.name, layout=result.layout, papers=len(result.records)))
    report.seconds["parse"] = time.perf_counter() - tick

    chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap)
    with _locked(settings):
        tick = time.perf_counter()
        store = open_store(settings, embedder_name(settings))
        store.upgrade()
        stored = _repair(store)
        parsed = _identified(parsed, stored)
        report.found = len({r.paper_id for records in parsed.values() for r in records})
        catalogue = open_catalogue(settings)
        catalogue.sync(store)
        damaged = frozenset(p.file for p in report.problems if p.file in parsed)
        plan = plan_ingest(stored, parsed, unreadable, chunker, prune=prune, damaged=damaged)
        report.seconds["plan"] = time.perf_counter() - tick
        report.new, report.changed, report.unchanged, report.removed = (
            plan.new,
            plan.changed,
            plan.unchanged,
            plan.removed,
        )
        tick = time.perf_counter()
        changes = bool(plan.delete or plan.update or plan.write)
        if changes:
            catalogue.mark(None)  # until the store is stamped below, the catalogue may lag behind it
        store.delete(plan.delete)
        catalogue.remove(plan.delete)
        updates = [
            StoredPaper(paper, rows, old.content_hash, meta_hash(paper), old.n_chunks)
            for paper, rows, old in plan.update
        ]
        store.update(updates)
        catalogue.update([item.paper for item in updates])
        report.seconds["store"] = time.perf_counter() - tick
        _write(store, catalogue, plan.write, chunker, settings, report, progress)
        if changes:
            catalogue.mark(store.stamp())
        report.papers_total = store.count_papers()
        report.chunks_total = store.count_chunks()
    report.seconds["total"] = time.perf_counter() - started
    return report


def _identified(parsed: dict[str, list[PaperRecord]], stored: dict[str, StoredPaper]) -> dict[str, list[PaperRecord]]:
    """The parsed records with their papers settled across every file and the store (rag.identity)."""
    settled = iter(
        assign(
            [r for records in parsed.values() for r in records],
            known_keys({pid: item.records for pid, item in stored.items()}),
        )
    )
    return {file: [next(settled) for _ in records] for file, records in parsed.items()}


class _InProcess:
    """The embedder of this process behind `EmbeddingPool`'s interface: it embeds when asked for the result."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._texts: list[str] = []

    def submit(self, texts: list[str]) -> None:
        self._texts = texts

    def result(self) -> list[list[float]]:
        return self._embedder.embed_documents(self._texts)


def _embedding(settings: Settings, papers: int) -> _InProcess | EmbeddingPool:
    """Where the batches are embedded: the local model in a child process when there is more than one batch
    to overlap with writing (`rag/worker.py`), else this process's embedder."""
    if settings.embedding == "local" and settings.embed_process and papers > settings.ingest_batch:
        from rag.models import models_dir

        return embedding_pool(settings.embed_batch, settings.embed_precision, models_dir(settings.home))
    return _InProcess(load_embedder(settings))


def _write(
    store: Store,
    catalogue: Catalogue,
    items: list[tuple[Paper, list[PaperRecord]]],
    chunker: Chunker,
    settings: Settings,
    report: IngestReport,
    progress: Progress | None,
) -> None:
    """Chunk, embed and store papers in batches, each committed before the next; a batch is chunked and written
    while the next is embedded. `embed` in the report is the time spent waiting for vectors."""
    for stage in ("chunk", "embed", "store"):
        report.seconds.setdefault(stage, 0.0)
    if not items:
        return
    embedding = _embedding(settings, len(items))  # the model is loaded only when there is something to embed
    if progress:
        progress("embed", 0, len(items))
    batches = [items[start : start + settings.ingest_batch] for start in range(0, len(items), settings.ingest_batch)]
    done = 0
    previous: list[tuple[Paper, list[PaperRecord], list[Chunk]]] = []
    for batch in [*batches, []]:
        tick = time.perf_counter()
        chunked = [(paper, rows, chunker.chunk(paper)) for paper, rows in batch]
        report.seconds["chunk"] += time.perf_counter() - tick
        vectors: list[list[float]] = []
        if previous:
            tick = time.perf_counter()
            vectors = embedding.result()
            report.seconds["embed"] += time.perf_counter() - tick
        if chunked:
            embedding.submit([embedding_text(paper, chunk) for paper, _, chunks in chunked for chunk in chunks])
        if previous:
            tick = time.perf_counter()
            _store(store, catalogue, previous, vectors, chunker)
            report.seconds["store"] += time.perf_counter() - tick
            report.chunks_embedded += len(vectors)
            done += len(previous)
            if progress:
                progress("embed", done, len(items))
        previous = chunked


def _store(
    store: Store,
    catalogue: Catalogue,
    chunked: list[tuple[Paper, list[PaperRecord], list[Chunk]]],
    vectors: list[list[float]],
    chunker: Chunker,
) -> None:
    """Write one embedded batch to the store and the catalogue."""
    remaining = iter(vectors)
    writes = [
        PaperWrite(
            paper=paper,
            records=rows,
            content_hash=content_hash(paper, chunker),
            meta_hash=meta_hash(paper),
            n_chunks=len(chunks),
            chunks=chunks,
            vectors=[next(remaining) for _ in chunks],
        )
        for paper, rows, chunks in chunked
    ]
    store.write(writes)
    catalogue.add(
        [item.paper for item in writes],
        [
            ChunkRow(chunk.chunk_id, item.paper.paper_id, chunk.start, chunk.end, chunk.text)
            for item in writes
            for chunk in item.chunks
        ],
    )
