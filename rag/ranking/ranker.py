"""Question → the order of papers: candidates from three searches (the chunks' vectors, the papers' whole-text
vectors, the keyword index), each candidate's signals (`rag.ranking.signals`), one fused score
(`rag.ranking.fusion`). The only place that decides which paper a question is about.

A question costs the same at any collection size: the searches return CANDIDATES each, and only those papers'
vectors, sentences and text are read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.catalogue import Catalogue
from rag.chunking import paper_text
from rag.embedding import Embedder
from rag.filters import Filters
from rag.lexical import ChunkRow, terms
from rag.question import read
from rag.ranking.fusion import fused
from rag.ranking.signals import SIGNALS, Candidate, Keywords, signals, unit
from rag.store import Store
from rag.types import Paper

# How many chunks, papers and keyword matches each search returns; their union is ranked.
CANDIDATES = 30


@dataclass(frozen=True)
class Ranked:
    """A paper in a question's order, with what placed it there."""

    paper: Paper
    score: float  # fused (`rag.ranking.fusion`)
    signals: dict[str, float]
    chunks: list[ChunkRow]  # its chunks, in text order
    cosines: dict[str, float] = field(default_factory=dict)  # each chunk's cosine to the question

    @property
    def paper_id(self) -> str:
        return self.paper.paper_id


@dataclass(frozen=True)
class Ranking:
    """The candidates of one question, best first."""

    papers: list[Ranked]


class Ranker:
    """Ranks the papers of one store and catalogue for a question."""

    def __init__(self, store: Store, catalogue: Catalogue, embedder: Embedder, candidates: int = CANDIDATES) -> None:
        self.store = store
        self.catalogue = catalogue
        self.embedder = embedder
        self.candidates = candidates
        self._counted: tuple[str | None, int] | None = None  # (catalogue generation, chunks in it)

    def rank(
        self,
        question: str,
        vector: Sequence[float],
        keyword_text: str,
        filters: Filters | None = None,
        where: dict[str, Any] | None = None,
    ) -> Ranking:
        """Every candidate paper for `question` (its unit `vector`; `keyword_text` is what the keyword index
        searches), best first. `where` is the Chroma condition for `filters`."""
        found = self._candidates(vector, keyword_text, filters, where)
        if not found:
            return Ranking([])
        papers = self.catalogue.papers(found)
        ids = [pid for pid in found if pid in papers and (filters is None or filters.allows(papers[pid]))]
        chunks = self.catalogue.lexical.papers_chunks(ids)
        ids = [pid for pid in ids if chunks.get(pid)]
        chunk_ids = [row.chunk_id for pid in ids for row in chunks[pid]]
        chunk_vectors = self.store.vectors(chunk_ids)
        ids = [pid for pid in ids if all(row.chunk_id in chunk_vectors for row in chunks[pid])]
        whole = self.store.paper_vectors(ids) if self.store.schema >= 3 else {}
        sentences = self.catalogue.paper_sentence_vectors(ids)
        asked = np.asarray(vector, dtype=np.float32)
        candidates = []
        for pid in ids:
            matrix = np.asarray([chunk_vectors[row.chunk_id] for row in chunks[pid]], dtype=np.float32)
            stored = sentences.get(pid)
            candidates.append(
                Candidate(
                    paper_id=pid,
                    text=paper_text(papers[pid]),
                    whole=np.asarray(whole[pid], dtype=np.float32) if pid in whole else unit(matrix.sum(axis=0)),
                    chunks=matrix,
                    sentences=np.stack([np.frombuffer(v, dtype=np.float16) for v in stored]).astype(np.float32)
                    if stored
                    else None,
                )
            )
        facets = read(question).facets
        facet_vectors = np.asarray(self.embedder.embed_texts(list(facets)), dtype=np.float32) if facets else None
        wanted = frozenset(terms(keyword_text))
        keywords = Keywords(wanted, self.catalogue.lexical.frequencies(sorted(wanted)), self._chunk_count())
        matrix = signals(asked, facet_vectors, keywords, candidates)
        scores = fused(matrix)
        ranked = [
            Ranked(
                paper=papers[c.paper_id],
                score=round(float(score), 6),
                signals={name: round(float(value), 6) for name, value in zip(SIGNALS, row, strict=True)},
                chunks=chunks[c.paper_id],
                cosines={
                    r.chunk_id: round(float(v), 6) for r, v in zip(chunks[c.paper_id], c.chunks @ asked, strict=True)
                },
            )
            for c, row, score in zip(candidates, matrix, scores, strict=True)
        ]
        ranked.sort(key=lambda r: (-r.score, r.paper_id))
        return Ranking(ranked)

    def _chunk_count(self) -> int:
        """The collection's number of chunks, counted once per ingest."""
        generation = self.catalogue.generation
        if self._counted is None or self._counted[0] != generation:
            self._counted = (generation, self.catalogue.lexical.count())
        return self._counted[1]

    def _candidates(
        self, vector: Sequence[float], keyword_text: str, filters: Filters | None, where: dict[str, Any] | None
    ) -> list[str]:
        """The paper ids the three searches find, in the order found."""
        found = [_paper_of(cid) for cid, _ in self.store.query(vector, self.candidates, where)]
        # The papers' own vectors are searched unfiltered (their records do not carry every field a filter reads);
        # a filter then keeps what passes, and a narrow one is served by the chunk and keyword searches.
        if self.store.schema >= 3:
            found += [pid for pid, _ in self.store.query_papers(vector, self.candidates)]
        condition = self.catalogue.chunk_condition(filters)
        found += [_paper_of(cid) for cid, _ in self.catalogue.lexical.search(keyword_text, self.candidates, condition)]
        return list(dict.fromkeys(found))


def _paper_of(chunk_id: str) -> str:
    """The paper a chunk id belongs to (chunk ids are `<paper id>:<index>`)."""
    return chunk_id.rsplit(":", 1)[0]
