"""The persisted keyword index: BM25 over every chunk (its paper's title and its text), an SQLite FTS5 table
written at ingest, one paper at a time, and read at query time without loading it.

Terms are made here, not by SQLite: lower-cased words of two or more characters, English stop words left out,
Snowball-stemmed (the tokenisation bm25s uses by default). FTS5 ranks by Okapi BM25 (k1 1.2, b 0.75).
FTS5's own `porter unicode61` finds gold papers as often on the development questions and less often on the
independent ones (hit@5 0.813 / 0.794 against 0.810 / 0.810: eval/lexical_terms.py), and would re-index every store.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.text import english_stemmer

# Lucene's English stop words, as bm25s uses them.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")

SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    rid INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, paper_id TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_paper ON chunks (paper_id);
CREATE VIRTUAL TABLE IF NOT EXISTS lexical
    USING fts5 (terms, tokenize = "unicode61 remove_diacritics 0 tokenchars '_'");
CREATE VIRTUAL TABLE IF NOT EXISTS lexical_terms USING fts5vocab (lexical, row);
"""


@dataclass(frozen=True)
class ChunkRow:
    """A chunk as the index keeps it."""

    chunk_id: str
    paper_id: str
    start: int
    end: int
    text: str


def terms(text: str) -> list[str]:
    """The index terms of `text`, in order, repeats kept."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return list(english_stemmer().stemWords(words)) if words else []


def _match(question: str) -> str | None:
    """An FTS5 query matching any term of `question`; None when it has none."""
    found = terms(question)
    return " OR ".join(f'"{term}"' for term in found) if found else None


class LexicalIndex:
    """BM25 over the chunks, in the catalogue's SQLite database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.executescript(SCHEMA)

    def add(self, rows: Iterable[tuple[ChunkRow, str]]) -> None:
        """Index chunks, each with its paper's title (a chunk already indexed is replaced)."""
        for row, title in rows:
            self.remove_chunks([row.chunk_id])
            cursor = self._db.execute(
                'INSERT INTO chunks (chunk_id, paper_id, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                (row.chunk_id, row.paper_id, row.start, row.end, row.text),
            )
            self._db.execute(
                "INSERT INTO lexical (rowid, terms) VALUES (?, ?)",
                (cursor.lastrowid, " ".join(terms(f"{title}\n{row.text}"))),
            )

    def remove_chunks(self, chunk_ids: Sequence[str]) -> None:
        """Drop chunks from the index."""
        for chunk_id in chunk_ids:
            found = self._db.execute("SELECT rid FROM chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()
            if found is not None:
                self._db.execute("DELETE FROM lexical WHERE rowid = ?", found)
                self._db.execute("DELETE FROM chunks WHERE rid = ?", found)

    def remove_papers(self, paper_ids: Sequence[str]) -> None:
        """Drop every chunk of the given papers."""
        for paper_id in paper_ids:
            ids = [r[0] for r in self._db.execute("SELECT chunk_id FROM chunks WHERE paper_id = ?", (paper_id,))]
            self.remove_chunks(ids)

    def search(self, question: str, n: int, where: tuple[str, list[object]] | None = None) -> list[tuple[str, float]]:
        """The `n` chunks with the highest BM25 for `question` as (chunk id, score), best first; `where` is an SQL
        condition on `chunks.paper_id` with its parameters (the catalogue's filters)."""
        query = _match(question)
        if query is None or n <= 0:
            return []
        condition, params = where if where is not None else ("1", [])
        sql = (
            "SELECT chunks.chunk_id, -bm25(lexical) FROM lexical JOIN chunks ON chunks.rid = lexical.rowid "
            f"WHERE lexical MATCH ? AND ({condition}) ORDER BY bm25(lexical) LIMIT ?"
        )
        return [(cid, float(score)) for cid, score in self._db.execute(sql, [query, *params, n])]

    def scores(self, question: str, chunk_ids: Sequence[str]) -> dict[str, float]:
        """BM25 of the given chunks for `question`; chunks without a query term are left out."""
        query = _match(question)
        if query is None or not chunk_ids:
            return {}
        marks = ", ".join("?" * len(chunk_ids))
        sql = (
            "SELECT chunks.chunk_id, -bm25(lexical) FROM lexical JOIN chunks ON chunks.rid = lexical.rowid "
            f"WHERE lexical MATCH ? AND chunks.chunk_id IN ({marks})"
        )
        return {cid: float(score) for cid, score in self._db.execute(sql, [query, *chunk_ids])}

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """The given chunks, by id (unknown ids left out)."""
        if not chunk_ids:
            return {}
        marks = ", ".join("?" * len(chunk_ids))
        rows = self._db.execute(
            f'SELECT chunk_id, paper_id, start, "end", text FROM chunks WHERE chunk_id IN ({marks})', list(chunk_ids)
        )
        return {row[0]: ChunkRow(*row) for row in rows}

    def papers_chunks(self, paper_ids: Sequence[str]) -> dict[str, list[ChunkRow]]:
        """Every chunk of the given papers, by paper id, each paper's in text order."""
        found: dict[str, list[ChunkRow]] = {pid: [] for pid in paper_ids}
        for start in range(0, len(paper_ids), 500):
            part = list(paper_ids[start : start + 500])
            marks = ", ".join("?" * len(part))
            rows = self._db.execute(
                f'SELECT chunk_id, paper_id, start, "end", text FROM chunks WHERE paper_id IN ({marks}) ORDER BY start',
                part,
            )
            for row in rows:
                found[row[1]].append(ChunkRow(*row))
        return found

    def frequencies(self, wanted: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each of the given index terms (terms no chunk holds are left out)."""
        if not wanted:
            return {}
        marks = ", ".join("?" * len(wanted))
        rows = self._db.execute(f"SELECT term, doc FROM lexical_terms WHERE term IN ({marks})", list(wanted))
        return {term: int(count) for term, count in rows}

    def paper_chunks(self, paper_id: str) -> list[ChunkRow]:
        """Every chunk of a paper, in text order."""
        rows = self._db.execute(
            'SELECT chunk_id, paper_id, start, "end", text FROM chunks WHERE paper_id = ? ORDER BY start', (paper_id,)
        )
        return [ChunkRow(*row) for row in rows]

    def count(self) -> int:
        """Number of indexed chunks."""
        return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])
