"""The ranking of papers, measured beside the simple baselines on the same questions: hit@1, hit@5, hit@10 and MRR
of the first gold paper, for the project's ranking (rag.ranking) and each of rag.ranking.baselines."""

from __future__ import annotations

from collections.abc import Sequence

from rag.evaluation.questions import Question

from rag.ranking import baselines
from rag.retrieval import Retriever

DEPTH = 10
# The questions about papers' content; metadata questions are answered from the records, not by ranking.
RANKED_TYPES = ("factoid", "method-name", "multi")


def first_rank(order: Sequence[str], gold: set[str]) -> int | None:
    """1-based rank of the first gold paper in `order`; None when it is not there."""
    return next((n for n, pid in enumerate(order, 1) if pid in gold), None)


def figures(ranks: Sequence[int | None]) -> dict[str, float]:
    """hit@1, hit@5, hit@10 and MRR of the first gold paper's ranks."""
    n = len(ranks) or 1
    out = {f"hit@{depth}": sum(1 for r in ranks if r is not None and r <= depth) / n for depth in (1, 5, 10)}
    out["mrr"] = sum(1 / r for r in ranks if r is not None) / n
    return {key: round(value, 3) for key, value in out.items()}


def rankings(retriever: Retriever, questions: Sequence[Question], gold: dict[str, set[str]]) -> dict[str, object]:
    """Each ranking's figures over the answerable questions about papers' content; {} when there are none."""
    asked = [q for q in questions if q.type in RANKED_TYPES and gold.get(q.id)]
    if not asked:
        return {}
    orders = {"ranking": [[r.paper_id for r in retriever.ranking(q.question).papers[:DEPTH]] for q in asked]}
    for name, rank in baselines.RANKINGS.items():
        orders[f"baseline {name}"] = [rank(retriever, q.question, DEPTH) for q in asked]
    return {
        "questions": len(asked),
        **{
            name: figures([first_rank(o, gold[q.id]) for o, q in zip(found, asked, strict=True)])
            for name, found in orders.items()
        },
    }
