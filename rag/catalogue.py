"""The local catalogue: an SQLite file under RAG_HOME that mirrors the store's committed papers (their records,
filter fields and author names) and holds the keyword index, so that a question reads only the papers and
chunks it needs, at any collection size.

The store is the source of truth and the catalogue a cache of it. Each ingest stamps the store with a new
generation when it finishes and writes the same stamp here. A catalogue whose stamp differs from the store's (a
shared server another client ingested into, an ingest killed half-way, a deleted file) is rebuilt from the store
when it is opened, and only then does opening cost time that grows with the collection.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import StoreError
from rag.filters import Filters
from rag.identity import catalogue_keys
from rag.lexical import ChunkRow, LexicalIndex
from rag.types import Paper, PaperRecord

# A paper and the per-file records it was merged from.
Entry = tuple[Paper, Sequence[PaperRecord]]
_TABLES = ("papers", "authors", "categories", "files", "record_keys")

# A paper's author count: as the listing states it, else the length of a complete author list (no "et al.").
N_AUTHORS = (
    "coalesce(json_extract(paper, '$.n_authors'), "
    "CASE WHEN json_extract(paper, '$.et_al') THEN NULL ELSE json_array_length(paper, '$.authors') END)"
)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS papers (
    paper_id TEXT PRIMARY KEY, year INTEGER, category TEXT, category_folded TEXT, has_code INTEGER,
    organization TEXT, paper TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS papers_year ON papers (year);
CREATE INDEX IF NOT EXISTS papers_category ON papers (category_folded);
CREATE INDEX IF NOT EXISTS papers_organization ON papers (organization);
CREATE INDEX IF NOT EXISTS papers_published ON papers (json_extract(paper, '$.published'));
CREATE INDEX IF NOT EXISTS papers_n_authors ON papers ({N_AUTHORS});
CREATE TABLE IF NOT EXISTS authors (paper_id TEXT NOT NULL, name TEXT NOT NULL, folded TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS authors_paper ON authors (paper_id);
CREATE INDEX IF NOT EXISTS authors_folded ON authors (folded);
CREATE TABLE IF NOT EXISTS categories (paper_id TEXT NOT NULL, folded TEXT NOT NULL, written TEXT);
CREATE INDEX IF NOT EXISTS categories_paper ON categories (paper_id);
CREATE INDEX IF NOT EXISTS categories_folded ON categories (folded);
CREATE TABLE IF NOT EXISTS files (paper_id TEXT NOT NULL, file TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS files_paper ON files (paper_id);
CREATE INDEX IF NOT EXISTS files_file ON files (file);
CREATE TABLE IF NOT EXISTS record_keys (key TEXT NOT NULL, file TEXT NOT NULL, paper_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS record_keys_key ON record_keys (key);
CREATE INDEX IF NOT EXISTS record_keys_paper ON record_keys (paper_id);
CREATE TABLE IF NOT EXISTS sentences (paper_id TEXT NOT NULL, key BLOB NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS sentences_key ON sentences (key);
CREATE INDEX IF NOT EXISTS sentences_paper ON sentences (paper_id);
"""
# How long a reader waits for an ingest's write to commit before SQLite reports the database busy.
BUSY_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)
# Raised when the tables change: a catalogue written with other tables is rebuilt from the store when opened.
CATALOGUE_SCHEMA = "3"
# A stored sentence's vector: (paper id, key from `embedding.sentence_key`, float16 bytes).
SentenceRow = tuple[str, bytes, bytes]
# Values bound in one `IN (...)` (below the 999 variables older SQLite builds allow).
_IN_BATCH = 500
# The meta key saying whether every stored paper has its sentence vectors ("all"), and the papers that have not.
SENTENCES_FLAG = "sentences"
_NO_SENTENCES = "NOT EXISTS (SELECT 1 FROM sentences WHERE sentences.paper_id = papers.paper_id)"
# Longest author name looked up from a question, in words.
MAX_NAME_WORDS = 6
_EDGE_PUNCTUATION = re.compile(r"^[^\w]+|[^\w.]+$|'s$|’s$")


def open_catalogue(settings: Settings) -> Catalogue:
    """The catalogue of the store the settings name, under RAG_HOME (one per server, collection and embedder)."""
    from rag.embedding import embedder_name

    where = "-".join(str(part) for part in settings.chroma_address) if settings.server_mode else "local"
    name = f"{where}-{settings.collection}-{embedder_name(settings)}"
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()
    return Catalogue(settings.home / "catalogue" / f"{slug}.sqlite")


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file is not a database or a damaged one (not that it could not read or write)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return not isinstance(exc, sqlite3.OperationalError)
    return code & 0xFF in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)


class Catalogue:
    """Paper records and the keyword index of one store, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._open()
            except sqlite3.DatabaseError as exc:
                if not _damaged(exc):  # a full disk or a locked folder: the file may be whole, keep it
                    raise
                # Not a database, or a damaged one: it is only a cache of the store.
                if hasattr(self, "_db"):
                    self._db.close()
                for damaged in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                    damaged.unlink(missing_ok=True)
                log.warning("the catalogue %s could not be read (%s); it is rebuilt from the store", path, exc)
                self._open()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the catalogue {path} ({exc}); if its disk is full, free space, then run the command "
                "again (deleting the file is safe: it is rebuilt from the store)"
            ) from exc

    def _open(self) -> None:
        # A reader waits for a writer's transaction (an ingest commits a batch at a time) instead of failing.
        self._db = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)
        self.lexical = LexicalIndex(self._db)
        if self._meta("schema") != CATALOGUE_SCHEMA:
            self.mark(None)  # `sync` rebuilds it
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (CATALOGUE_SCHEMA,))

    # --- keeping it in step with the store ----------------------------------------------------------------------

    @property
    def generation(self) -> str | None:
        """The store generation this catalogue reflects; None while an ingest is writing it."""
        return self._meta("generation")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def mark(self, generation: str | None) -> None:
        """Record the store generation the catalogue now reflects (None: being written)."""
        self.set_flag("generation", generation)

    def sync(self, store: Any) -> bool:
        """Rebuild from `store` when its generation differs from ours; whether it was rebuilt."""
        current = store.generation()
        if current is not None and current == self.generation:
            return False
        if current is None:  # a store no ingest of this version has stamped yet
            current = store.stamp()
        with self._lock, self.transaction():
            self.mark(None)
            for table in (*_TABLES, "chunks", "lexical"):
                self._db.execute(f"DELETE FROM {table}")
            titles: dict[str, str] = {}
            for page in store.stored_pages():
                self._add_papers([(item.paper, item.records) for item in page])
                titles.update({item.paper.paper_id: item.paper.title or "" for item in page})
            for rows in store.chunk_pages():
                self.lexical.add((row, titles[row.paper_id]) for row in rows if row.paper_id in titles)
            # sentence vectors are not in the store: those of papers still stored are kept
            self._db.execute("DELETE FROM sentences WHERE paper_id NOT IN (SELECT paper_id FROM papers)")
            self._db.execute("DELETE FROM meta WHERE key = ?", (SENTENCES_FLAG,))
            self.mark(current)
        return True

    def transaction(self) -> _Transaction:
        """A context in which every write commits together, or none does."""
        return _Transaction(self._db, self.path)

    def add(self, entries: Sequence[Entry], chunks: Iterable[ChunkRow], sentences: Iterable[SentenceRow] = ()) -> None:
        """Add or replace papers with their chunks, and the vectors of their chunks' sentences."""
        with self._lock, self.transaction():
            self.remove(paper.paper_id for paper, _ in entries)
            self._add_papers(entries)
            titles = {paper.paper_id: paper.title or "" for paper, _ in entries}
            self.lexical.add((row, titles[row.paper_id]) for row in chunks)
            self.add_sentences(sentences)

    def add_sentences(self, sentences: Iterable[SentenceRow]) -> None:
        """Store sentence vectors (paper id, key, float16 bytes) beside their papers."""
        with self._lock, self.transaction():
            self._db.executemany("INSERT INTO sentences VALUES (?, ?, ?)", sentences)

    def update(self, entries: Sequence[Entry]) -> None:
        """Replace the records of papers whose text is unchanged (their chunks are kept; a title change re-embeds
        and so comes through `add`)."""
        with self._lock, self.transaction():
            self._delete_rows([paper.paper_id for paper, _ in entries])
            self._add_papers(entries)

    def remove(self, paper_ids: Iterable[str]) -> None:
        """Drop papers and their chunks."""
        ids = list(paper_ids)
        with self._lock, self.transaction():
            self._delete_rows(ids)
            self._db.executemany("DELETE FROM sentences WHERE paper_id = ?", [(i,) for i in ids])
            self.lexical.remove_papers(ids)

    def _delete_rows(self, ids: Sequence[str]) -> None:
        for table in _TABLES:
            self._db.executemany(f"DELETE FROM {table} WHERE paper_id = ?", [(i,) for i in ids])

    def _add_papers(self, entries: Sequence[Entry]) -> None:
        papers = [paper for paper, _ in entries]
        self._db.executemany(
            "INSERT INTO record_keys VALUES (?, ?, ?)",
            [
                (key, record.source.file, paper.paper_id)
                for paper, records in entries
                for record in records
                for key in catalogue_keys(record)
            ],
        )
        self._db.executemany(
            "INSERT INTO papers VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p.paper_id,
                    p.year,
                    p.category,
                    p.category.casefold() if p.category else None,
                    None if p.has_code is None else int(p.has_code),
                    p.organization,
                    p.model_dump_json(),
                )
                for p in papers
            ],
        )
        self._db.executemany(
            "INSERT INTO authors VALUES (?, ?, ?)",
            [(p.paper_id, name, name.casefold()) for p in papers for name in p.authors or []],
        )
        # Each category a filter matches (`Paper.listed_categories`), with its spelling where a record wrote it.
        spelled = [(p, {c.casefold(): c for c in reversed(p.categories or [p.category or ""])}) for p in papers]
        self._db.executemany(
            "INSERT INTO categories VALUES (?, ?, ?)",
            [(p.paper_id, code, written.get(code)) for p, written in spelled for code in p.listed_categories],
        )
        self._db.executemany("INSERT INTO files VALUES (?, ?)", [(p.paper_id, f) for p in papers for f in p.files])

    # --- reading -----------------------------------------------------------------------------------------------

    def sentence_vectors(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored vectors (float16 bytes) of the sentences with these keys, where known."""
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), _IN_BATCH):
                part = keys[start : start + _IN_BATCH]
                marks = ",".join("?" * len(part))
                found.update(self._db.execute(f"SELECT key, vector FROM sentences WHERE key IN ({marks})", part))
        return found

    def paper_sentence_vectors(self, paper_ids: Sequence[str]) -> dict[str, list[bytes]]:
        """The stored sentence vectors (float16 bytes) of each of the given papers; a paper without any is left
        out."""
        found: dict[str, list[bytes]] = {}
        with self._lock:
            for start in range(0, len(paper_ids), _IN_BATCH):
                part = list(paper_ids[start : start + _IN_BATCH])
                marks = ",".join("?" * len(part))
                rows = self._db.execute(f"SELECT paper_id, vector FROM sentences WHERE paper_id IN ({marks})", part)
                for paper_id, vector in rows:
                    found.setdefault(paper_id, []).append(vector)
        return found

    def count_without_sentences(self) -> int:
        """How many papers have no sentence vectors stored."""
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM papers WHERE {_NO_SENTENCES}").fetchone()[0])

    def chunks_without_sentences(self, after: str, limit: int) -> list[ChunkRow]:
        """The chunks of the next `limit` papers (by id, after `after`) that have no sentence vectors stored."""
        with self._lock:
            rows = self._db.execute(
                'SELECT chunk_id, paper_id, start, "end", text FROM chunks WHERE paper_id IN (SELECT paper_id '
                f"FROM papers WHERE paper_id > ? AND {_NO_SENTENCES} ORDER BY paper_id LIMIT ?) "
                "ORDER BY paper_id, start",
                (after, limit),
            )
            return [ChunkRow(*row) for row in rows]

    def flag(self, key: str) -> str | None:
        """A value the catalogue keeps about itself."""
        return self._meta(key)

    def set_flag(self, key: str, value: str | None) -> None:
        """Keep a value about the catalogue."""
        with self._lock, self.transaction():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def holders(self, keys: Iterable[str]) -> set[str]:
        """The ids of the stored papers with a record holding any of `keys`."""
        return {paper_id for _, _, paper_id in self.holding(keys)}

    def holding(self, keys: Iterable[str]) -> list[tuple[str, str, str]]:
        """(key, file, paper id) of each stored record holding one of `keys`."""
        wanted = list(dict.fromkeys(keys))
        out: list[tuple[str, str, str]] = []
        for start in range(0, len(wanted), _IN_BATCH):
            batch = wanted[start : start + _IN_BATCH]
            marks = ", ".join("?" * len(batch))
            with self._lock:
                query = f"SELECT key, file, paper_id FROM record_keys WHERE key IN ({marks})"
                out.extend(self._db.execute(query, batch).fetchall())
        return out

    def papers(self, paper_ids: Sequence[str]) -> dict[str, Paper]:
        """The given papers, by id; ids not in the catalogue are left out."""
        ids = list(dict.fromkeys(paper_ids))
        out: dict[str, Paper] = {}
        for start in range(0, len(ids), _IN_BATCH):
            batch = ids[start : start + _IN_BATCH]
            marks = ", ".join("?" * len(batch))
            for pid, data in self._db.execute(f"SELECT paper_id, paper FROM papers WHERE paper_id IN ({marks})", batch):
                out[pid] = Paper.model_validate_json(data)
        return out

    def count(self, filters: Filters | None = None, at_most: int | None = None) -> int:
        """Number of papers the filters let through; with `at_most`, counting stops there, so that a question
        that only needs to know "none", "one" or "up to 20" does not read the whole table."""
        condition, params = self.condition(filters)
        rows = f"SELECT 1 FROM papers WHERE {condition}" + (" LIMIT ?" if at_most is not None else "")
        bound = [at_most] if at_most is not None else []
        return int(self._db.execute(f"SELECT count(*) FROM ({rows})", [*params, *bound]).fetchone()[0])

    def paper_ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of the papers the filters let through."""
        condition, params = self.condition(filters)
        return [
            row[0]
            for row in self._db.execute(f"SELECT paper_id FROM papers WHERE {condition} ORDER BY paper_id", params)
        ]

    def condition(self, filters: Filters | None) -> tuple[str, list[object]]:
        """An SQL condition on the `papers` table that holds exactly where `filters.allows(paper)` does."""
        return filters.sql() if filters is not None else ("1", [])

    def chunk_condition(self, filters: Filters | None) -> tuple[str, list[object]] | None:
        """The filters as an SQL condition on `chunks.paper_id`, for the keyword index; None when none is set."""
        if filters is None or not filters.active:
            return None
        condition, params = self.condition(filters)
        return f"chunks.paper_id IN (SELECT paper_id FROM papers WHERE {condition})", params

    def categories(self, filters: Filters | None = None) -> list[str]:
        """Every category the papers the filters let through are listed under (primary or cross-listed), as the
        records write them."""
        condition, params = self.condition(filters)
        sql = (
            "SELECT DISTINCT written FROM categories WHERE written IS NOT NULL AND paper_id IN "
            f"(SELECT paper_id FROM papers WHERE {condition}) ORDER BY written"
        )
        return [row[0] for row in self._db.execute(sql, params)]

    def author_named(self, question: str) -> str | None:
        """The longest author name of any stored paper that the question contains as whole words, any case."""
        tokens = [_EDGE_PUNCTUATION.sub("", word) for word in question.split()]
        grams = {
            " ".join(tokens[i : i + n]).casefold()
            for n in range(1, MAX_NAME_WORDS + 1)
            for i in range(len(tokens) - n + 1)
        }
        grams |= {gram.rstrip(".") for gram in grams}  # "by John Smith." ends a sentence
        grams.discard("")
        if not grams:
            return None
        marks = ", ".join("?" * len(grams))
        names = [
            row[0]
            for row in self._db.execute(f"SELECT DISTINCT name FROM authors WHERE folded IN ({marks})", sorted(grams))
        ]
        return max(sorted(names), key=len) if names else None

    def organization_named(self, question: str) -> str | None:
        """The first (alphabetically) organisation tag of any stored paper that the question contains, any case."""
        row = self._db.execute(
            "SELECT organization FROM papers WHERE organization IS NOT NULL AND instr(?, lower(organization)) "
            "ORDER BY organization LIMIT 1",
            (question.casefold(),),
        ).fetchone()
        return row[0] if row else None

    def organization_papers(self, organization: str | None, limit: int) -> list[str]:
        """Ids of (at most `limit`) papers carrying the organisation tag, or any tag when it is None."""
        if organization is None:
            rows = self._db.execute("SELECT paper_id FROM papers WHERE organization > '' LIMIT ?", (limit,))
        else:
            rows = self._db.execute("SELECT paper_id FROM papers WHERE organization = ? LIMIT ?", (organization, limit))
        return [row[0] for row in rows]

    def papers_by_date(self, newest: bool, limit: int) -> list[str]:
        """Ids of the `limit` oldest (or newest) papers whose date has a year, read through an index."""
        order = "DESC" if newest else "ASC"
        sql = (
            "SELECT paper_id FROM papers WHERE json_extract(paper, '$.published') > '' "
            f"ORDER BY json_extract(paper, '$.published') {order} LIMIT ?"
        )
        return [row[0] for row in self._db.execute(sql, (limit,))]

    def single_author_papers(self, limit: int) -> list[str]:
        """Ids of (at most `limit`) papers with exactly one author, read through an index."""
        sql = f"SELECT paper_id FROM papers WHERE {N_AUTHORS} = 1 LIMIT ?"
        return [row[0] for row in self._db.execute(sql, (limit,))]

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class _Transaction:
    """BEGIN … COMMIT, or ROLLBACK on an exception; nested uses join the outer one. A write that SQLite refuses
    (a full disk, a file size limit) is a StoreError naming the file."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        self._outer = False

    def __enter__(self) -> None:
        self._outer = not self._db.in_transaction
        if self._outer:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise write_error(self._path, exc) from exc

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if not self._outer:
            return
        try:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        except sqlite3.Error as exc:
            raise write_error(self._path, exc) from exc
        if isinstance(value, sqlite3.Error):
            raise write_error(self._path, value) from value


def write_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """The one-line error for a catalogue write that failed: nothing of it was kept, and the catalogue is rebuilt
    from the store the next time it is opened."""
    return StoreError(
        f"cannot write the catalogue {path} ({exc}); free disk space (or raise the file size limit) and run the "
        "command again: the store keeps what it had, and the catalogue is rebuilt from it"
    )
