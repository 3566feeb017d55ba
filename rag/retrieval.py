"""Question → ranked passages: dense similarity (Chroma) of the chunk and of its paper, plus a saturating BM25
(bm25s) bonus, filtered by paper metadata, and grouped per paper so that one paper's chunks do not crowd out
the others.

Scoring, chosen on the development questions (eval/questions.jsonl; README, "Retrieval"):

    score = cos(question, chunk) + PAPER_WEIGHT * cos(question, paper)
            + LEXICAL_WEIGHT * min(1, bm25 / LEXICAL_SATURATION)

BM25 only adds a bounded bonus: on questions that reuse the abstract's words it lifts the right chunk, and on
paraphrased questions, where its best matches are noise, it cannot outvote the embedding (reciprocal-rank
fusion, which weighs both rankings alike, fell from 0.73 to 0.30 hit@5 there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.embedding import Embedder
from rag.question import asks_several
from rag.store import Store
from rag.text import english_stemmer
from rag.types import Filters, Paper, Passage

PAPER_WEIGHT = 0.3
LEXICAL_WEIGHT = 0.1
# A question about several papers names a topic rather than one paper's idea; its words matter more
# (development multi-paper questions: gold recall among 8 passages 0.76 at 0.1, 0.83 at 0.3).
LEXICAL_WEIGHT_SEVERAL = 0.3
LEXICAL_SATURATION = 15.0
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


@dataclass(frozen=True)
class _Chunk:
    chunk_id: str
    paper_id: str
    text: str
    start: int
    end: int


class Retriever:
    """Hybrid retrieval over one store; build it once and reuse it for every question."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        paper_weight: float = PAPER_WEIGHT,
        lexical_weight: float = LEXICAL_WEIGHT,
        candidates: int = CANDIDATES,
    ) -> None:
        import bm25s

        self.store = store
        self.embedder = embedder
        self.paper_weight = paper_weight
        self.lexical_weight = lexical_weight
        self.candidates = candidates
        self.papers: dict[str, Paper] = {pid: stored.paper for pid, stored in store.papers().items()}
        self._paper_vectors = store.paper_vectors()
        # Only chunks of committed papers: an interrupted ingest's leftovers are never returned.
        self._chunks = [
            _Chunk(chunk_id, meta["paper_id"], text, int(meta["start"]), int(meta["end"]))
            for chunk_id, text, meta in store.chunk_rows()
            if meta["paper_id"] in self.papers
        ]
        self._chunks.sort(key=lambda c: c.chunk_id)
        self._position = {chunk.chunk_id: i for i, chunk in enumerate(self._chunks)}
        self._stemmer = english_stemmer()
        self._bm25 = bm25s.BM25()
        if self._chunks:
            texts = [f"{self.papers[c.paper_id].title or ''}\n{c.text}" for c in self._chunks]
            tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
            self._bm25.index(tokens, show_progress=False)

    def allowed(self, filters: Filters | None) -> list[str] | None:
        """Ids of the papers the filters let through, or None when nothing is filtered."""
        if filters is None or not filters.active:
            return None
        return [pid for pid, paper in self.papers.items() if filters.allows(paper)]

    def lexical_scores(self, question: str) -> list[float]:
        """BM25 score of every chunk for `question` (stemmed, English stop words removed)."""
        import bm25s

        if not self._chunks:
            return []
        tokens = bm25s.tokenize(
            [question], stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False
        )
        known = [token for token in tokens[0] if token in self._bm25.vocab_dict]
        if not known:
            return [0.0] * len(self._chunks)
        return [float(score) for score in self._bm25.get_scores(known)]

    def retrieve(self, question: str, k: int = 5, filters: Filters | None = None, expand: int = 0) -> list[Passage]:
        """The `k` best passages for `question`, at most MAX_PER_PAPER from any one paper; then, with `expand`,
        the remaining chunks of the first `expand` papers."""
        allowed = self.allowed(filters)
        if not self._chunks or (allowed is not None and not allowed):
            return []
        vector = self.embedder.embed_query(question)
        lexical_weight = LEXICAL_WEIGHT_SEVERAL if asks_several(question) else self.lexical_weight
        passages = self._ranked(search_text(question), vector, k, allowed, lexical_weight)
        return self.expand(vector, passages, expand) if expand else passages

    def _ranked(
        self, question: str, vector: list[float], k: int, allowed: list[str] | None, lexical_weight: float
    ) -> list[Passage]:
        dense = dict(self.store.query(vector, self.candidates, allowed))
        allowed_set = set(allowed) if allowed is not None else None
        scores = self.lexical_scores(question)
        lexical = sorted(
            (i for i, score in enumerate(scores) if score > 0 and self._admits(i, allowed_set)),
            key=lambda i: -scores[i],
        )[: self.candidates]
        candidates = [cid for cid in dense if cid in self._position]
        candidates += [self._chunks[i].chunk_id for i in lexical if self._chunks[i].chunk_id not in dense]
        dense.update(self._cosines(vector, [cid for cid in candidates if cid not in dense]))
        paper_cosines = {
            pid: _dot(vector, self._paper_vectors[pid])
            for pid in {self._chunks[self._position[cid]].paper_id for cid in candidates}
            if pid in self._paper_vectors
        }
        best_lexical = max((scores[self._position[cid]] for cid in candidates), default=0.0) or 1.0
        fused: dict[str, float] = {}
        for cid in candidates:
            chunk = self._chunks[self._position[cid]]
            bonus = min(1.0, scores[self._position[cid]] / LEXICAL_SATURATION)
            fused[cid] = (
                dense[cid] + self.paper_weight * paper_cosines.get(chunk.paper_id, 0.0) + lexical_weight * bonus
            )
        passages = []
        for cid in _group_per_paper(fused, lambda c: self._chunks[self._position[c]].paper_id, k):
            chunk = self._chunks[self._position[cid]]
            passages.append(
                Passage(
                    chunk_id=cid,
                    paper=self.papers[chunk.paper_id],
                    text=chunk.text,
                    start=chunk.start,
                    end=chunk.end,
                    score=round(fused[cid], 6),
                    dense=round(dense[cid], 6),
                    lexical=round(scores[self._position[cid]] / best_lexical, 6),
                )
            )
        return passages

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
            for chunk in self._chunks
            if chunk.paper_id == lead.paper_id and chunk.chunk_id not in seen
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
            )
            for lead, chunk in sorted(extra, key=lambda item: (passages.index(item[0]), item[1].start))
        ]

    def _admits(self, index: int, allowed: set[str] | None) -> bool:
        return allowed is None or self._chunks[index].paper_id in allowed

    def _cosines(self, vector: Sequence[float], chunk_ids: list[str]) -> dict[str, float]:
        if not chunk_ids:
            return {}
        return {cid: _dot(vector, vec) for cid, vec in self.store.vectors(chunk_ids).items()}


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
