"""The simple rankings every change to the ranking is measured against (`rag eval`, `eval/fit_ranking.py`), each
a function of (retriever, question, depth) → paper ids, best first:

- dense: cosine of the question to each paper's title and abstract embedded whole, nothing else;
- bm25: the keyword index alone, each paper at its best chunk;
- rrf: reciprocal-rank fusion (k 60) of the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.retrieval import Retriever

RRF_K = 60
# How deep each list reaches before fusion.
FUSED_DEPTH = 50


def dense(retriever: Retriever, question: str, depth: int) -> list[str]:
    vector = retriever.embedder.embed_query(question)
    return [pid for pid, _ in retriever.store.query_papers(vector, depth)]


def bm25(retriever: Retriever, question: str, depth: int) -> list[str]:
    found = retriever.catalogue.lexical.search(question, depth * 5)
    return list(dict.fromkeys(cid.rsplit(":", 1)[0] for cid, _ in found))[:depth]


def rrf(retriever: Retriever, question: str, depth: int) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in (dense(retriever, question, FUSED_DEPTH), bm25(retriever, question, FUSED_DEPTH)):
        for rank, pid in enumerate(ranking, 1):
            scores[pid] = scores.get(pid, 0.0) + 1 / (RRF_K + rank)
    return sorted(scores, key=lambda pid: -scores[pid])[:depth]


RANKINGS: dict[str, Callable[[Retriever, str, int], list[str]]] = {"dense": dense, "bm25": bm25, "rrf": rrf}
