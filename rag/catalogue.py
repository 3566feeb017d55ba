"""The local catalogue: an SQLite file under RAG_HOME that mirrors the store's committed papers (their records,
filter fields and author names) and holds the keyword index, so that a question reads only the papers and
chunks it needs, at any collection size.

The store is the source of truth and the catalogue a cache of it. Each ingest stamps the store with a new
generation when it finishes and writes the same stamp here. A catalogue whose stamp differs from the store's (a
shared server another client ingested into, an ingest killed half-way, a deleted file) is rebuilt from the store
when it is opened, and only then does opening cost time that grows with the collection.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import StoreError
from rag.lexical import ChunkRow, LexicalIndex
from rag.types import Filters, Paper

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
"""
# Raised when the tables change: a catalogue written with other tables is rebuilt from the store when opened.
CATALOGUE_SCHEMA = "2"
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


class Catalogue:
    """Paper records and the keyword index of one store, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(SCHEMA)
            self.lexical = LexicalIndex(self._db)
            if self._meta("schema") != CATALOGUE_SCHEMA:
                self.mark(None)  # `sync` rebuilds it
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (CATALOGUE_SCHEMA,))
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the catalogue {path} ({exc}); delete it and it is rebuilt") from exc

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
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', ?)", (generation,))

    def sync(self, store: Any) -> bool:
        """Rebuild from `store` when its generation differs from ours; whether it was rebuilt."""
        current = store.generation()
        if current is not None and current == self.generation:
            return False
        if current is None:  # a store no ingest of this version has stamped yet
            current = store.stamp()
        with self._lock, self.transaction():
            self.mark(None)
            for table in ("papers", "authors", "categories", "files", "chunks", "lexical"):
                self._db.execute(f"DELETE FROM {table}")
            titles: dict[str, str] = {}
            for papers in store.paper_pages():
                self._add_papers(papers)
                titles.update({p.paper_id: p.title or "" for p in papers})
            for rows in store.chunk_pages():
                self.lexical.add((row, titles[row.paper_id]) for row in rows if row.paper_id in titles)
            self.mark(current)
        return True

    def transaction(self) -> _Transaction:
        """A context in which every write commits together, or none does."""
        return _Transaction(self._db)

    def add(self, papers: Sequence[Paper], chunks: Iterable[ChunkRow]) -> None:
        """Add or replace papers with their chunks."""
        with self._lock, self.transaction():
            self.remove(p.paper_id for p in papers)
            self._add_papers(papers)
            titles = {p.paper_id: p.title or "" for p in papers}
            self.lexical.add((row, titles[row.paper_id]) for row in chunks)

    def update(self, papers: Sequence[Paper]) -> None:
        """Replace the records of papers whose text is unchanged (their chunks are kept; a title change re-embeds
        and so comes through `add`)."""
        with self._lock, self.transaction():
            ids = [p.paper_id for p in papers]
            for table in ("papers", "authors", "categories", "files"):
                self._db.executemany(f"DELETE FROM {table} WHERE paper_id = ?", [(i,) for i in ids])
            self._add_papers(papers)

    def remove(self, paper_ids: Iterable[str]) -> None:
        """Drop papers and their chunks."""
        ids = list(paper_ids)
        with self._lock, self.transaction():
            for table in ("papers", "authors", "categories", "files"):
                self._db.executemany(f"DELETE FROM {table} WHERE paper_id = ?", [(i,) for i in ids])
            self.lexical.remove_papers(ids)

    def _add_papers(self, papers: Sequence[Paper]) -> None:
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

    def papers(self, paper_ids: Sequence[str]) -> dict[str, Paper]:
        """The given papers, by id; ids not in the catalogue are left out."""
        ids = list(dict.fromkeys(paper_ids))
        out: dict[str, Paper] = {}
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
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
        if filters is None or not filters.active:
            return "1", []
        parts: list[str] = []
        params: list[object] = []
        if filters.paper_ids is not None:
            ids = sorted(filters.paper_ids)
            parts.append(f"papers.paper_id IN ({', '.join('?' * len(ids))})" if ids else "0")
            params += ids
        if filters.year_from is not None:
            parts.append("papers.year >= ?")
            params.append(filters.year_from)
        if filters.year_to is not None:
            parts.append("papers.year <= ?")
            params.append(filters.year_to)
        if filters.author is not None:
            parts.append(
                "EXISTS (SELECT 1 FROM authors WHERE authors.paper_id = papers.paper_id AND instr(authors.folded, ?))"
            )
            params.append(filters.author.casefold())
        if filters.category is not None:
            parts.append(
                "EXISTS (SELECT 1 FROM categories WHERE categories.paper_id = papers.paper_id "
                "AND categories.folded = ?)"
            )
            params.append(filters.category.casefold())
        if filters.has_code is not None:
            parts.append("papers.has_code = ?")
            params.append(int(filters.has_code))
        if filters.source_file is not None:
            parts.append("EXISTS (SELECT 1 FROM files WHERE files.paper_id = papers.paper_id AND files.file = ?)")
            params.append(filters.source_file)
        return " AND ".join(parts), params

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
    """BEGIN … COMMIT, or ROLLBACK on an exception; nested uses join the outer one."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        self._outer = not self._db.in_transaction
        if self._outer:
            self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if self._outer:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
