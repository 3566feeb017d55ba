"""Files → store, incrementally: parse, compare with what is stored, then chunk, embed and write only what changed.

What a run does to the store:

* a paper found in a file is stored once, with every {file, position} it was found at;
* a paper whose text changed (same title, or same position for untitled papers, new abstract) replaces the
  old one, chunks and all; a title or metadata change rewrites the record, re-embedding only if the title
  (which is embedded with each chunk) changed;
* a paper no longer in a re-read file stays unless `prune` is set; with `prune` the store keeps exactly the
  papers of the files given (a file that could not be read keeps its papers: bad input never removes data);
* writes go in batches, chunks before the paper record that commits them, so a run killed at any point
  leaves a store the next run completes: no duplicate chunks, no half-stored paper;
* records are read, settled and written a window at a time, each window reading from the store only the papers
  its records may be (looked up by their keys in the catalogue), so a run's memory grows with neither its files
  nor the store; only `prune` reads the whole store, a page at a time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rag.catalogue import SENTENCES_FLAG, Catalogue, SentenceRow, open_catalogue
from rag.chunking import Chunker, embedding_text, paper_text
from rag.citations import paper_header
from rag.config import Settings
from rag.corpus import collect_files, merge_paper
from rag.embedding import Embedder, embedder_name, load_embedder, packed, sentence_key
from rag.errors import IngestError
from rag.formats import Options, read_records, with_format
from rag.identity import TITLE, assign, keys, slot
from rag.lexical import ChunkRow
from rag.store import PaperWrite, Store, StoredPaper, open_store
from rag.text import sentence_spans
from rag.types import Chunk, Paper, PaperRecord, ParseProblem
from rag.worker import EmbeddingPool, embedding_pool
from rag.writers import Lease, file_lock, leased

Progress = Callable[[str, int, int], None]
# Records settled, planned and written together: a run holds one window of records and the ids it found, not
# its files or the store. Wide enough that a window keeps the embedding pipeline full (many `ingest_batch`es).
WINDOW = 4096


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
    """What a run will do: papers to embed and write, to update in place, and to delete, and which papers are new,
    changed, unchanged and removed."""

    write: list[tuple[Paper, list[PaperRecord]]] = field(default_factory=list)
    update: list[tuple[Paper, list[PaperRecord], StoredPaper]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    new: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    # (stored paper id, its place in a file, the id of the paper found there instead): see plan_ingest.
    displaced: list[tuple[str, tuple[str, str], str]] = field(default_factory=list)


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


def _slot(record: PaperRecord) -> tuple[str, str]:
    """Where in a file a paper sits, for telling an edited paper from a new one: its title, else its position."""
    return (record.source.file, slot(record))


def plan_ingest(stored: Mapping[str, StoredPaper], parsed: Mapping[str, list[PaperRecord]], chunker: Chunker) -> Plan:
    """Compare what was parsed (records by file) with the stored papers they may be and decide what to write.

    A stored paper's record from a parsed file is replaced by the fresh one when the paper is found again; its
    other records are kept. A stored record at the place in its file where another paper was found now (an
    edited abstract) is listed in `Plan.displaced`: whether it goes is known only once the whole file is read."""
    target: dict[str, list[PaperRecord]] = {pid: list(sp.records) for pid, sp in stored.items()}
    displaced: list[tuple[str, tuple[str, str], str]] = []
    for file, records in parsed.items():
        found_ids = {record.paper_id for record in records}
        new_at_slot = {_slot(record): record.paper_id for record in records}
        for pid, rows in target.items():
            kept = []
            for row in rows:
                if row.source.file == file and pid in found_ids:
                    continue  # found again: the fresh record takes its place
                kept.append(row)
                if row.source.file == file and new_at_slot.get(_slot(row), pid) != pid:
                    displaced.append((pid, _slot(row), new_at_slot[_slot(row)]))
            target[pid] = kept
        for record in records:
            target.setdefault(record.paper_id, []).append(record)
    found = {record.paper_id for records in parsed.values() for record in records}
    plan = _settle(stored, target, found, chunker)
    plan.displaced = displaced
    return plan


def plan_replacements(
    stored: Mapping[str, StoredPaper], displaced: Sequence[tuple[str, tuple[str, str]]], chunker: Chunker
) -> Plan:
    """What drops each displaced record (a paper's id and the place in a file another paper took), once its
    file was read to the end without finding that paper again. A paper left without records is deleted: it was
    replaced, not removed."""
    gone = set(displaced)
    target = {pid: [r for r in sp.records if (pid, _slot(r)) not in gone] for pid, sp in stored.items()}
    return _settle(stored, target, set(), chunker, replaced={pid for pid, _ in displaced})


def plan_prune(
    stored: Mapping[str, StoredPaper],
    found: Mapping[str, AbstractSet[str]],
    kept_whole: AbstractSet[str],
    chunker: Chunker,
) -> Plan:
    """What keeps the store to exactly the papers of a run's files: a stored record stays if its paper was found
    in its file (`found`: paper ids by file read) or its file is one to keep whole (`kept_whole`: files that
    could not be read, or had blocks that did not parse, where a paper missing may only be unreadable)."""
    target = {
        pid: [r for r in sp.records if r.source.file in kept_whole or pid in found.get(r.source.file, ())]
        for pid, sp in stored.items()
    }
    return _settle(stored, target, set(), chunker)


def _settle(
    stored: Mapping[str, StoredPaper],
    target: Mapping[str, list[PaperRecord]],
    found: AbstractSet[str],
    chunker: Chunker,
    replaced: AbstractSet[str] = frozenset(),
) -> Plan:
    """The plan that turns the stored papers into `target` (each paper's records after the run); a `replaced`
    paper that is deleted is not counted as removed."""
    plan = Plan()
    for pid, rows in target.items():
        old = stored.get(pid)
        if not rows:
            if old is not None:
                plan.delete.append(pid)
                if pid not in replaced:
                    plan.removed.add(pid)
            continue
        paper = merge_paper(pid, rows)
        if old is None:
            plan.write.append((paper, rows))
            plan.new.add(pid)
        elif old.content_hash != content_hash(paper, chunker):
            plan.write.append((paper, rows))
            plan.changed.add(pid)
        elif old.meta_hash != meta_hash(paper):
            plan.update.append((paper, rows, old))
            plan.changed.add(pid)
        elif pid in found:
            plan.unchanged.add(pid)
    return plan


def ingest(
    paths: Sequence[Path] | None = None,
    *,
    settings: Settings,
    prune: bool = False,
    progress: Progress | None = None,
    options: Options | None = None,
) -> IngestReport:
    """Parse, chunk, embed and store the papers of `paths` (the default corpus when None), read as `options`
    says (rag.formats). Records are settled, planned and written a window at a time, so that a run's memory
    does not grow with its files or the store."""
    options = options or Options()
    report = IngestReport()
    started = time.perf_counter()
    for stage in ("parse", "plan", "chunk", "embed", "store"):
        report.seconds[stage] = 0.0
    files, problems = collect_files(list(paths) if paths else [settings.corpus])
    report.problems.extend(problems)
    for problem in problems:
        report.files.append(FileReport(file=problem.file, layout=None, papers=0, error=str(problem)))
    with ExitStack() as held:
        if not settings.server_mode:
            held.enter_context(file_lock(settings, progress))
        store = open_store(settings, embedder_name(settings))
        lease = store.lease()
        if lease is not None:
            held.enter_context(leased(lease, progress))
        run = _Run(settings, store, lease, report, progress)
        unreadable: set[str] = set()
        for window in _windows(files, options, report, unreadable, progress):
            run.apply(window)
        run.replace()
        if prune:
            run.prune(unreadable | {problem.file for problem in report.problems})
        run.fill_sentences()  # after prune: a pruned paper's sentences are not embedded
        run.finish()
    report.seconds["total"] = time.perf_counter() - started
    return report


def _windows(
    files: Sequence[Path],
    options: Options,
    report: IngestReport,
    unreadable: set[str],
    progress: Progress | None,
) -> Iterator[dict[str, list[PaperRecord]]]:
    """The records of `files` (at most `options.limit` in all), by file, in windows of at most WINDOW records.
    A file that cannot be used is reported, and what was read of it but not yet handed on is dropped."""
    window: dict[str, list[PaperRecord]] = {}
    size = taken = 0
    tick = time.perf_counter()
    for path in files:
        if options.limit is not None and taken >= options.limit:
            break
        left = None if options.limit is None else options.limit - taken
        count = 0
        reading = with_format(path, options)  # told once: the file's head is read for it
        try:
            for item in read_records(path, reading, left, progress):
                if isinstance(item, ParseProblem):
                    report.problems.append(item)
                    continue
                window.setdefault(path.name, []).append(item)
                count += 1
                size += 1
                if size >= WINDOW:
                    report.seconds["parse"] += time.perf_counter() - tick
                    yield window
                    tick = time.perf_counter()
                    window, size = {}, 0
        except IngestError as exc:
            size -= len(window.pop(path.name, []))
            unreadable.add(path.name)
            report.files.append(FileReport(file=path.name, layout=None, papers=0, error=str(exc)))
            continue
        taken += count
        report.files.append(FileReport(file=path.name, layout=reading.format, papers=count))
    report.seconds["parse"] += time.perf_counter() - tick
    if window:
        yield window


class _Run:
    """One ingest under the store's lock: the store and catalogue it writes, and what its windows found."""

    def __init__(
        self, settings: Settings, store: Store, lease: Lease | None, report: IngestReport, progress: Progress | None
    ) -> None:
        tick = time.perf_counter()
        self.settings = settings
        self.report = report
        self.progress = progress
        self.chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap)
        self.store = store
        self.lease = lease  # renewed at every batch committed to a server
        self.store.upgrade(lambda texts: load_embedder(settings).embed_documents(texts))
        self.catalogue = open_catalogue(settings)
        self.incomplete = _repair(self.store, self.catalogue, settings)
        self.catalogue.sync(self.store)
        self.found: dict[str, set[str]] = {}  # file → ids of the papers found in it
        self.new: set[str] = set()
        self.changed: set[str] = set()
        self.unchanged: set[str] = set()
        self.removed: set[str] = set()
        self.displaced: list[tuple[str, tuple[str, str], str]] = []
        self.changes = False
        self.embedding: _InProcess | EmbeddingPool | None = None
        self.planned = self.done = 0
        report.seconds["plan"] += time.perf_counter() - tick

    def apply(self, window: dict[str, list[PaperRecord]]) -> None:
        """Settle, plan and write one window of records against the stored papers they may be."""
        tick = time.perf_counter()
        records = [record for rows in window.values() for record in rows]
        record_keys = [keys(record) for record in records]
        files_holding: dict[str, set[str]] = {}
        for record, its_keys in zip(records, record_keys, strict=True):
            for key in its_keys:
                files_holding.setdefault(key, set()).add(record.source.file)
        held = self.catalogue.holding(files_holding)
        known: dict[str, dict[str, str]] = {}
        for key, file, pid in held:
            known.setdefault(key, {})[file] = pid
        settled = assign(records, known, record_keys)
        rows_of = iter(settled)
        parsed = {file: [next(rows_of) for _ in rows] for file, rows in window.items()}
        # The stored papers these records may be (sharing a key, a title key only across files, or an id), and
        # those a new paper may have displaced (at its place in its file: an edited abstract).
        ids = {pid for key, file, pid in held if not key.startswith(TITLE) or files_holding[key] - {file}}
        stored = self.store.papers(sorted(ids | {record.paper_id for record in settled}))
        places = self.catalogue.holders(slot(record) for record in settled if record.paper_id not in stored)
        stored.update(self.store.papers(sorted(places - stored.keys())))
        stored = {pid: sp for pid, sp in stored.items() if pid not in self.incomplete}
        plan = plan_ingest(stored, parsed, self.chunker)
        self.displaced.extend(plan.displaced)
        for file, rows in parsed.items():
            self.found.setdefault(file, set()).update(record.paper_id for record in rows)
        self.report.seconds["plan"] += time.perf_counter() - tick
        self._carry_out(plan)

    def prune(self, kept_whole: set[str]) -> None:
        """Remove what the run's files no longer hold, a page of the store at a time."""
        for page in self.store.stored_pages():
            tick = time.perf_counter()
            stored = {sp.paper.paper_id: sp for sp in page if sp.paper.paper_id not in self.incomplete}
            plan = plan_prune(stored, self.found, kept_whole, self.chunker)
            self.report.seconds["plan"] += time.perf_counter() - tick
            self._carry_out(plan)

    def replace(self) -> None:
        """Drop the displaced records (an edited paper's old version) whose paper was not found again in their
        file: a paper left without records was replaced by the one found at its place."""
        left = [(old, place, new) for old, place, new in self.displaced if old not in self.found.get(place[0], ())]
        if not left:
            return
        tick = time.perf_counter()
        stored = self.store.papers(sorted({old for old, _, _ in left}))
        plan = plan_replacements(stored, [(old, place) for old, place, _ in left], self.chunker)
        self.report.seconds["plan"] += time.perf_counter() - tick
        self._carry_out(plan)
        for old, _, new in left:
            if old in plan.delete and new in self.new:
                self.new.discard(new)
                self.changed.add(new)

    def finish(self) -> None:
        """Stamp the store when the run changed it, and count what it holds."""
        report = self.report
        if self.changes:
            self.catalogue.mark(self.store.stamp())
        report.found = len(set().union(*self.found.values())) if self.found else 0
        report.new = len(self.new)
        report.changed = len(self.changed - self.new)
        report.unchanged = len(self.unchanged - self.changed - self.new)
        report.removed = len(self.removed)
        report.papers_total = self.store.count_papers()
        report.chunks_total = self.store.count_chunks()

    def _carry_out(self, plan: Plan) -> None:
        """Delete, update and write what `plan` says, and count it."""
        self.new |= plan.new
        self.changed |= plan.changed
        self.unchanged |= plan.unchanged
        self.removed |= plan.removed
        if not (plan.delete or plan.update or plan.write):
            return
        tick = time.perf_counter()
        if not self.changes:
            self.catalogue.mark(None)  # until the store is stamped, the catalogue may lag behind it
            self.changes = True
        self.store.delete(plan.delete)
        self.catalogue.remove(plan.delete)
        updates = [
            StoredPaper(paper, rows, old.content_hash, meta_hash(paper), old.n_chunks)
            for paper, rows, old in plan.update
        ]
        self.store.update(updates)
        self.catalogue.update([(item.paper, item.records) for item in updates])
        self.report.seconds["store"] += time.perf_counter() - tick
        if plan.write:
            self.planned += len(plan.write)
            if self.embedding is None:  # the model is loaded only when there is something to embed
                self.embedding = _embedding(self.settings, len(plan.write))
            self._write(plan.write, self.embedding)

    def _write(self, items: list[tuple[Paper, list[PaperRecord]]], embedding: _InProcess | EmbeddingPool) -> None:
        """Chunk, embed and store papers in batches, each committed before the next; a batch is chunked and
        written while the next is embedded. `embed` in the report is the time spent waiting for vectors. The
        chunks' sentences are embedded with them, so that a question ranks them without running the model."""
        report, settings = self.report, self.settings
        if self.progress:
            self.progress("embed", self.done, self.planned)
        if not settings.sentence_vectors:
            self.catalogue.set_flag(SENTENCES_FLAG, "")  # these papers' sentences are not stored
        batches = [items[i : i + settings.ingest_batch] for i in range(0, len(items), settings.ingest_batch)]
        previous: list[tuple[Paper, list[PaperRecord], list[Chunk]]] = []
        previous_sentences: list[tuple[str, str]] = []
        for batch in [*batches, []]:
            tick = time.perf_counter()
            chunked = [(paper, rows, self.chunker.chunk(paper)) for paper, rows in batch]
            # the chunks' sentences, and the record lines a citation check reads beside them ("Title: ...")
            sentences = (
                chunk_sentences(
                    (paper.paper_id, text)
                    for paper, _, chunks in chunked
                    for text in [paper_header(paper), *(chunk.text for chunk in chunks)]
                )
                if settings.sentence_vectors
                else []
            )
            report.seconds["chunk"] += time.perf_counter() - tick
            vectors: list[list[float]] = []
            if previous:
                tick = time.perf_counter()
                vectors = embedding.result()
                report.seconds["embed"] += time.perf_counter() - tick
            if chunked:
                texts = [embedding_text(paper, chunk) for paper, _, chunks in chunked for chunk in chunks]
                texts += [paper_text(paper) for paper, _, _ in chunked]
                embedding.submit(texts + list(dict.fromkeys(text for _, text in sentences)))
            if previous:
                tick = time.perf_counter()
                if self.lease is not None:
                    self.lease.renew()
                n_vectors = sum(len(chunks) for _, _, chunks in previous) + len(previous)  # chunks, then papers
                rows = self._sentence_rows(previous_sentences, vectors[n_vectors:])
                _store(self.store, self.catalogue, previous, vectors[:n_vectors], self.chunker, rows)
                report.seconds["store"] += time.perf_counter() - tick
                report.chunks_embedded += n_vectors - len(previous)
                self.done += len(previous)
                if self.progress:
                    self.progress("embed", self.done, self.planned)
            previous, previous_sentences = chunked, sentences

    def _sentence_rows(self, sentences: list[tuple[str, str]], vectors: list[list[float]]) -> list[SentenceRow]:
        """(paper id, key, vector) of each sentence, from the vectors of the distinct texts in their order."""
        name = embedder_name(self.settings)
        by_text = dict(zip(dict.fromkeys(text for _, text in sentences), vectors, strict=True))
        return [(pid, sentence_key(name, text), packed(by_text[text])) for pid, text in sentences]

    def fill_sentences(self) -> None:
        """Embed the sentences of stored papers that have none stored (a store ingested before they were kept,
        or papers another client wrote), a batch at a time; once all have them, the catalogue says so and later
        runs skip the search."""
        if not self.settings.sentence_vectors or self.catalogue.flag(SENTENCES_FLAG) == "all":
            return
        missing = self.catalogue.count_without_sentences()
        after, done = "", 0
        while missing:
            chunks = self.catalogue.chunks_without_sentences(after, self.settings.ingest_batch)
            if not chunks:
                break
            tick = time.perf_counter()
            sentences = chunk_sentences((row.paper_id, row.text) for row in chunks)
            vectors = load_embedder(self.settings).embed_documents(list(dict.fromkeys(t for _, t in sentences)))
            self.report.seconds["embed"] += time.perf_counter() - tick
            self.catalogue.add_sentences(self._sentence_rows(sentences, vectors))
            after = chunks[-1].paper_id
            done += len({row.paper_id for row in chunks})
            if self.progress:
                self.progress("sentences", min(done, missing), missing)
        self.catalogue.set_flag(SENTENCES_FLAG, "all")


def chunk_sentences(chunks: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(paper id, sentence) of each distinct sentence of each paper's chunks, as a question's ranking reads
    them (rag/evidence.py)."""
    return list(dict.fromkeys((pid, text[s:e].strip()) for pid, text in chunks for s, e in sentence_spans(text)))


def _repair(store: Store, catalogue: Catalogue, settings: Settings) -> set[str]:
    """Drop what an interrupted run left half-done; returns the ids of committed papers missing chunks. A store
    whose last ingest finished (its stamp is the catalogue's, and only this process writes to its folder) has
    nothing half-done, and is not read."""
    generation = catalogue.generation
    if not settings.server_mode and generation is not None and generation == store.generation():
        return set()
    counts = store.chunk_counts()
    committed: set[str] = set()
    incomplete: set[str] = set()
    for page in store.stored_pages():
        for sp in page:
            committed.add(sp.paper.paper_id)
            # A committed paper with missing chunks cannot come from this program's writes, but a store edited by
            # hand can have one: it is treated as not stored, so it is written again.
            if counts.get(sp.paper.paper_id, 0) != sp.n_chunks:
                incomplete.add(sp.paper.paper_id)
    orphans = [pid for pid in counts if pid not in committed]
    if orphans:
        store.delete_orphans(orphans)
    return incomplete


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


def _store(
    store: Store,
    catalogue: Catalogue,
    chunked: list[tuple[Paper, list[PaperRecord], list[Chunk]]],
    vectors: list[list[float]],
    chunker: Chunker,
    sentences: list[SentenceRow],
) -> None:
    """Write one embedded batch to the store and the catalogue, with its sentences' vectors; `vectors` holds
    every chunk's, then every paper's."""
    n_chunks = sum(len(chunks) for _, _, chunks in chunked)
    remaining, wholes = iter(vectors[:n_chunks]), iter(vectors[n_chunks:])
    writes = [
        PaperWrite(
            paper=paper,
            records=rows,
            content_hash=content_hash(paper, chunker),
            meta_hash=meta_hash(paper),
            n_chunks=len(chunks),
            chunks=chunks,
            vectors=[next(remaining) for _ in chunks],
            whole=next(wholes),
        )
        for paper, rows, chunks in chunked
    ]
    store.write(writes)
    catalogue.add(
        [(item.paper, item.records) for item in writes],
        [
            ChunkRow(chunk.chunk_id, item.paper.paper_id, chunk.start, chunk.end, chunk.text)
            for item in writes
            for chunk in item.chunks
        ],
        sentences,
    )
