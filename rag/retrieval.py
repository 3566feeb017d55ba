"""Question → ranked passages: dense similarity (Chroma) of the chunk and of its paper, plus a saturating
BM25 bonus (the catalogue's keyword index), filtered by paper metadata, and grouped per paper so that one
paper's chunks do not crowd out the others.

Scoring, chosen on the development questions (eval/questions.jsonl; docs/answering.md):

    score = cos(question, chunk) + PAPER_WEIGHT * cos(question, paper)
            + LEXICAL_WEIGHT * min(1, bm25 / LEXICAL_SATURATION)

BM25 only adds a bounded bonus: on questions that reuse the abstract's words it lifts the right chunk, and on
paraphrased questions, where its best matches are noise, it cannot outvote the embedding (reciprocal-rank
fusion, which weighs both rankings alike, fell from 0.73 to 0.30 hit@5 there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from rag.catalogue import Catalogue
from rag.embedding import Embedder
from rag.filters import Filters
from rag.question import read
from rag.store import Store
from rag.types import Passage

PAPER_WEIGHT = 0.3
LEXICAL_WEIGHT = 0.1
# A question about several papers names a topic rather than one paper's idea; its words matter more
# (development multi-paper questions: gold recall among 8 passages 0.76 at 0.1, 0.83 at 0.3).
LEXICAL_WEIGHT_SEVERAL = 0.3
# The bonus saturates at a BM25 of 15 as bm25s's Lucene variant scores it (k1 1.5, term frequency part
# tf / (tf + k1·L)), where it was chosen; SQLite's FTS5 scores the classic way (k1 1.2, (k1 + 1)·tf / (tf + k1·L)),
# 2.5 times higher for a term found once in a chunk of average length: the same point is 37.5 there.
LEXICAL_SATURATION = 15.0 * 2.5
CANDIDATES = 50
# The ranked passages come from distinct papers, so that a question spanning several papers sees several
# papers; `expand` then adds the rest of the best papers' abstracts for depth.
MAX_PER_PAPER = 1
SECOND_PASSAGE_FACTOR = 0.85


# The framing of a question ("Which papers here ...", "..., and how do they differ?") says what kind of answer
# is wanted, not what it is about; BM25 leaves it out, since its words ("papers", "methods", "differ") match
# every abstract. (The embedding sees the whole question: on the development set it ranks better so.)
_FRAMING = [
    re.compile(pattern, re.I)
    for pattern in (
        r"^\s*(which|what) (papers?|works?|studies|study|articles?|methods?|approach(es)?|techniques?)"
        r"( (here|in (the|this|these) (collection|corpus|listings?)))?( that| which)?\b",
        r"^\s*(is|are) there (a|an|any)? ?(papers?|works?|studies|study|research)( here)?"
        r"( that| which| on| about)?\b",
        r"^\s*(can you )?(find|list|show)( me)? (the )?(papers?|works?|studies)( that| which| on| about)?\b",
        r",? and how (do|does|did) (they|their \w+|these|the \w+) (differ|compare|relate)[^?.]*",
        r",? and (what|how) (are|is) (the|their) (differences?|similarit(y|ies))[^?.]*",
    )
]


def search_text(question: str) -> str:
    """The part of `question` that names its topic; the question itself when nothing is left."""
    text = question
    for pattern in _FRAMING:
        text = pattern.sub(" ", text)
    text = " ".join(text.replace("?", " ").split())
    return text if len(text.split()) >= 2 else question


class Retriever:
    """Hybrid retrieval over one store and its catalogue; build it once and reuse it for every question.

    Nothing is loaded up front: each question reads the chunks, paper records and vectors of its candidates
    only, so opening a retriever and answering a question cost the same at any collection size."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        catalogue: Catalogue,
        paper_weight: float = PAPER_WEIGHT,
        lexical_weight: float = LEXICAL_WEIGHT,
        candidates: int = CANDIDATES,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.catalogue = catalogue
        self.paper_weight = paper_weight
        self.lexical_weight = lexical_weight
        self.candidates = candidates
        catalogue.sync(store)
        self._generation = store.generation()  # the store as this retriever reads it

    def refresh(self) -> bool:
        """Catch up with an ingest made since this retriever was built (by this or any other process); whether
        there was one."""
        current = self.store.generation()
        if current is not None and current == self._generation == self.catalogue.generation:
            return False
        if current != self._generation:
            # The catalogue file may already be in step (an ingest in another process writes it too); this
            # process's reading of the store is not.
            self.store.reload()
        self.catalogue.sync(self.store)  # rebuilds it when it is not in step with the store
        self._generation = self.store.generation()
        return True

    def retrieve(
        self,
        question: str,
        k: int = 5,
        filters: Filters | None = None,
        expand: int = 0,
        reorder: Callable[[list[Passage]], list[Passage]] | None = None,
    ) -> list[Passage]:
        """The `k` best passages for `question`, at most MAX_PER_PAPER from any one paper, put in a new order by
        `reorder` if given (a reranker); then, with `expand`, the remaining chunks of the first `expand` papers."""
        where = self._where(filters)
        if where is False:
            return []
        vector = self.embedder.embed_query(question)
        lexical_weight = LEXICAL_WEIGHT_SEVERAL if read(question).several else self.lexical_weight
        passages = self._ranked(search_text(question), vector, k, filters, where, lexical_weight)
        if reorder is not None:
            passages = reorder(passages)
        return self.expand(vector, passages, expand) if expand else passages

    def _where(self, filters: Filters | None) -> dict[str, Any] | bool | None:
        """The Chroma condition for `filters`: None when nothing is filtered, False when no paper passes."""
        if filters is None or not filters.active:
            return None
        if self.catalogue.count(filters, at_most=1) == 0:
            return False
        primaries = None
        if filters.category is not None and self.store.schema < 2:  # until an ingest upgrades it: primaries only
            primaries = [c for c in self.catalogue.categories(filters) if c.casefold() == filters.category.casefold()]
        paper_ids = self.catalogue.paper_ids(filters) if filters.by_paper_ids else None
        return filters.chroma_where(paper_ids, primaries)

    def _ranked(
        self,
        question: str,
        vector: list[float],
        k: int,
        filters: Filters | None,
        where: dict[str, Any] | bool | None,
        lexical_weight: float,
    ) -> list[Passage]:
        dense = dict(self.store.query(vector, self.candidates, where if isinstance(where, dict) else None))
        lexical = self.catalogue.lexical.search(question, self.candidates, self.catalogue.chunk_condition(filters))
        scores = dict(lexical)
        candidates = list(dict.fromkeys([*dense, *scores]))
        # Only chunks of committed papers that pass the filters: an interrupted ingest's leftovers have no record.
        papers = self.catalogue.papers([_paper_of(cid) for cid in candidates])
        candidates = [
            cid
            for cid in candidates
            if _paper_of(cid) in papers and (filters is None or filters.allows(papers[_paper_of(cid)]))
        ]
        scores.update(self.catalogue.lexical.scores(question, [cid for cid in candidates if cid not in scores]))
        dense.update(self._cosines(vector, [cid for cid in candidates if cid not in dense]))
        paper_cosines = {pid: _dot(vector, vec) for pid, vec in self.store.paper_vectors(list(papers)).items()}
        best_lexical = max((scores.get(cid, 0.0) for cid in candidates), default=0.0) or 1.0
        fused = {
            cid: dense[cid]
            + self.paper_weight * paper_cosines.get(_paper_of(cid), 0.0)
            + lexical_weight * min(1.0, scores.get(cid, 0.0) / LEXICAL_SATURATION)
            for cid in candidates
            if cid in dense
        }
        chosen = _group_per_paper(fused, _paper_of, k)
        rows = self.catalogue.lexical.chunks(chosen)
        return [
            Passage(
                chunk_id=cid,
                paper=papers[_paper_of(cid)],
                text=rows[cid].text,
                start=rows[cid].start,
                end=rows[cid].end,
                score=round(fused[cid], 6),
                dense=round(dense[cid], 6),
                lexical=round(scores.get(cid, 0.0) / best_lexical, 6),
            )
            for cid in chosen
            if cid in rows
        ]

    def expand(self, question_vector: Sequence[float], passages: list[Passage], papers: int = 2) -> list[Passage]:
        """`passages` followed by the other chunks of its first `papers` papers, so that the answer can draw on
        their whole abstracts; the added passages rank after the retrieved ones and keep their paper's score."""
        seen = {p.chunk_id for p in passages}
        top: list[Passage] = []
        for passage in passages:
            if passage.paper_id not in {t.paper_id for t in top}:
                top.append(passage)
            if len(top) == papers:
                break
        extra = [
            (lead, chunk)
            for lead in top
            for chunk in self.catalogue.lexical.paper_chunks(lead.paper_id)
            if chunk.chunk_id not in seen
        ]
        if not extra:
            return passages
        cosines = self._cosines(question_vector, [chunk.chunk_id for _, chunk in extra])
        return passages + [
            Passage(
                chunk_id=chunk.chunk_id,
                paper=lead.paper,
                text=chunk.text,
                start=chunk.start,
                end=chunk.end,
                score=lead.score,
                dense=round(cosines.get(chunk.chunk_id, 0.0), 6),
                lexical=0.0,
                expanded=True,
            )
            for lead, chunk in sorted(extra, key=lambda item: (passages.index(item[0]), item[1].start))
        ]

    def _cosines(self, vector: Sequence[float], chunk_ids: list[str]) -> dict[str, float]:
        if not chunk_ids:
            return {}
        return {cid: _dot(vector, vec) for cid, vec in self.store.vectors(chunk_ids).items()}


def _paper_of(chunk_id: str) -> str:
    """The paper a chunk id belongs to (chunk ids are `<paper id>:<index>`)."""
    return chunk_id.rsplit(":", 1)[0]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two unit vectors."""
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _group_per_paper(fused: dict[str, float], paper_of, k: int) -> list[str]:  # type: ignore[no-untyped-def]
    """The k best chunk ids, each paper's j-th chunk discounted by SECOND_PASSAGE_FACTOR**j and capped at
    MAX_PER_PAPER; returned in order of discounted score."""
    per_paper: dict[str, list[str]] = {}
    for chunk_id in sorted(fused, key=lambda cid: (-fused[cid], cid)):
        per_paper.setdefault(paper_of(chunk_id), []).append(chunk_id)
    ranked = [
        (fused[chunk_id] * SECOND_PASSAGE_FACTOR**j, chunk_id)
        for chunks in per_paper.values()
        for j, chunk_id in enumerate(chunks[:MAX_PER_PAPER])
    ]
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return [chunk_id for _, chunk_id in ranked[:k]]
