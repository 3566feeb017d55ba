"""Question → ranked passages: the ranking stage (`rag.ranking`) orders the papers, filtered by their metadata;
each of the first `k` papers gives the chunk that best matches the question, and `expand` adds the rest of the
best papers' abstracts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rag.catalogue import Catalogue
from rag.embedding import Embedder
from rag.filters import Filters
from rag.question import read
from rag.ranking import CANDIDATES, Ranked, Ranker, Ranking
from rag.store import Store
from rag.types import Passage

# A passage is its paper's chunk with the best cosine to the question plus LEXICAL_WEIGHT times its BM25, saturating
# at LEXICAL_SATURATION: the words the question uses pick the chunk that states them. A question about several
# papers names a topic rather than one paper's idea, and its words weigh more.
LEXICAL_WEIGHT = 0.1
LEXICAL_WEIGHT_SEVERAL = 0.3
LEXICAL_SATURATION = 37.5


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
    """Retrieval over one store and its catalogue; build it once and reuse it for every question.

    Nothing is loaded up front: each question reads the chunks, paper records and vectors of its candidates
    only, so opening a retriever and answering a question cost the same at any collection size."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        catalogue: Catalogue,
        candidates: int = CANDIDATES,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.catalogue = catalogue
        self.ranker = Ranker(store, catalogue, embedder, candidates)
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
        """The `k` best passages for `question`, one per paper in the ranking's order, put in a new order by
        `reorder` if given (a reranker); then, with `expand`, the remaining chunks of the first `expand` papers."""
        top = self.ranking(question, filters).papers[:k]
        passages = self._passages(question, top)
        if reorder is not None:
            passages = reorder(passages)
        return _expand(passages, {ranked.paper_id: ranked for ranked in top}, expand) if expand else passages

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

    def ranking(self, question: str, filters: Filters | None = None) -> Ranking:
        """Every candidate paper for `question`, best first, with its signals (what `rag ask --explain` shows)."""
        where = self._where(filters)
        if where is False:
            return Ranking([])
        vector = self.embedder.embed_query(question)
        return self.ranker.rank(
            question, vector, search_text(question), filters, where if isinstance(where, dict) else None
        )

    def _passages(self, question: str, top: list[Ranked]) -> list[Passage]:
        """One passage per ranked paper: its chunk that best matches the question."""
        chunk_ids = [row.chunk_id for ranked in top for row in ranked.chunks]
        lexical = self.catalogue.lexical.scores(search_text(question), chunk_ids)
        best_lexical = max(lexical.values(), default=0.0) or 1.0
        weight = LEXICAL_WEIGHT_SEVERAL if read(question).several else LEXICAL_WEIGHT
        passages = []
        for ranked in top:
            row = max(
                ranked.chunks,
                key=lambda r: (
                    ranked.cosines[r.chunk_id] + weight * min(1.0, lexical.get(r.chunk_id, 0.0) / LEXICAL_SATURATION)
                ),
            )
            passages.append(
                Passage(
                    chunk_id=row.chunk_id,
                    paper=ranked.paper,
                    text=row.text,
                    start=row.start,
                    end=row.end,
                    score=ranked.score,
                    dense=ranked.cosines[row.chunk_id],
                    lexical=round(lexical.get(row.chunk_id, 0.0) / best_lexical, 6),
                    signals=ranked.signals,
                )
            )
        return passages


def _expand(passages: list[Passage], ranked: dict[str, Ranked], papers: int) -> list[Passage]:
    """`passages` followed by the other chunks of its first `papers` papers, so that the answer can draw on their
    whole abstracts; the added passages rank after the retrieved ones and keep their paper's score. Every passage's
    paper is one the ranking read, with its chunks and their cosines to the question."""
    seen = {p.chunk_id for p in passages}
    top: list[Passage] = []
    for passage in passages:
        if passage.paper_id not in {t.paper_id for t in top}:
            top.append(passage)
        if len(top) == papers:
            break
    extra = [(lead, chunk) for lead in top for chunk in ranked[lead.paper_id].chunks if chunk.chunk_id not in seen]
    return passages + [
        Passage(
            chunk_id=chunk.chunk_id,
            paper=lead.paper,
            text=chunk.text,
            start=chunk.start,
            end=chunk.end,
            score=lead.score,
            dense=ranked[lead.paper_id].cosines[chunk.chunk_id],
            lexical=0.0,
            expanded=True,
        )
        for lead, chunk in sorted(extra, key=lambda item: (passages.index(item[0]), item[1].start))
    ]
