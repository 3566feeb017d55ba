"""Per-question scores and their aggregates.

* Retrieval (answerable questions): hit@5, recall@5 of all gold papers, MRR, nDCG@10, over the distinct papers
  of the retrieved passages in rank order.
* Citations, as defined by ALCE (Gao et al., 2023): citation recall is the share of answer sentences that their
  cited passages, taken together, support; citation precision is the share of citations that support their
  sentence on their own, or are needed for it (the sentence's other citations do not support it without them).
  Plus the share of cited papers that are gold (over every answer, and over answers to questions about one
  paper), and the share of answerable questions whose answer cites a gold paper at all (a decline cites none).
* Faithfulness (as RAGAS): the share of the answer's sentences supported by the retrieved passages.
* Correctness: the share of `key_facts` found in the answer (case and spacing ignored).
* Abstention: precision and recall of abstaining on unanswerable questions; the share of answerable questions
  abstained on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from rag.evaluation.judges import Judge

RETRIEVAL_K = 5
NDCG_K = 10


@dataclass
class EvalAnswer:
    """An answer in the form every scorer reads, whoever produced it."""

    id: str
    text: str
    abstained: bool
    sentences: list[tuple[str, list[int]]]  # (claim without markers, marker numbers)
    citations: dict[int, tuple[str, str | None]]  # number → (evidence text, paper id where known)
    retrieved: list[str] | None  # paper ids in rank order; None when the answers file gives none
    retrieved_evidence: list[str]  # what the answer could draw on, for faithfulness
    seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class Scores:
    """Everything measured on one question."""

    id: str
    type: str
    answerable: bool
    abstained: bool
    gold_papers: int = 0
    hit: float | None = None
    recall: float | None = None
    mrr: float | None = None
    ndcg: float | None = None
    citation_recall: float | None = None
    citation_precision: float | None = None
    cited_gold: float | None = None
    cites_gold: float | None = None
    faithfulness: float | None = None
    key_fact_recall: float | None = None
    seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def retrieval_scores(ranked: list[str], gold: set[str]) -> dict[str, float]:
    """hit@5, recall@5, MRR and nDCG@10 of a ranking of distinct paper ids against the gold set."""
    distinct = list(dict.fromkeys(ranked))
    top = distinct[:RETRIEVAL_K]
    first = next((rank for rank, pid in enumerate(distinct, 1) if pid in gold), None)
    gains = [1.0 / math.log2(rank + 1) for rank, pid in enumerate(distinct[:NDCG_K], 1) if pid in gold]
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), NDCG_K) + 1))
    return {
        "hit": float(any(pid in gold for pid in top)),
        "recall": len(set(top) & gold) / len(gold),
        "mrr": 1.0 / first if first else 0.0,
        "ndcg": sum(gains) / ideal if ideal else 0.0,
    }


def key_fact_recall(text: str, facts: Sequence[str]) -> float | None:
    """The share of key facts that occur in the text, case and spacing ignored; None without key facts."""
    if not facts:
        return None
    folded = " ".join(text.split()).casefold()
    return sum(" ".join(f.split()).casefold() in folded for f in facts) / len(facts)


def citation_scores(answer: EvalAnswer, judge: Judge) -> tuple[float, float]:
    """ALCE citation recall and precision of one answer."""
    supported = 0
    precise = 0
    total = 0
    for claim, markers in answer.sentences:
        cited = [answer.citations[n][0] for n in markers if n in answer.citations]
        whole = bool(cited) and judge.supports(claim, cited)
        supported += whole
        for index, evidence in enumerate(cited):
            total += 1
            alone = judge.supports(claim, [evidence])
            if alone:
                precise += 1
            elif whole:
                others = cited[:index] + cited[index + 1 :]
                precise += not (others and judge.supports(claim, others))
    recall = supported / len(answer.sentences) if answer.sentences else 0.0
    precision = precise / total if total else 0.0
    return recall, precision


def score(
    question_id: str,
    question_type: str,
    answer: EvalAnswer,
    gold: set[str],
    key_facts: Sequence[str],
    judge: Judge,
) -> Scores:
    """Every metric of one answer."""
    result = Scores(
        id=question_id,
        type=question_type,
        answerable=bool(gold),
        abstained=answer.abstained,
        gold_papers=len(gold),
        seconds=answer.seconds,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
    )
    if gold and answer.retrieved is not None:
        for name, value in retrieval_scores(answer.retrieved, gold).items():
            setattr(result, name, value)
    if gold:
        result.cites_gold = 0.0
        result.key_fact_recall = 0.0 if answer.abstained and key_facts else key_fact_recall(answer.text, key_facts)
    if not answer.abstained and answer.sentences:
        result.citation_recall, result.citation_precision = citation_scores(answer, judge)
        cited_papers = {pid for _, pid in answer.citations.values() if pid is not None}
        if gold and cited_papers:
            result.cited_gold = len(cited_papers & gold) / len(cited_papers)
            result.cites_gold = float(bool(cited_papers & gold))
        evidence = answer.retrieved_evidence or [text for text, _ in answer.citations.values()]
        result.faithfulness = sum(judge.supports(claim, evidence) for claim, _ in answer.sentences) / len(
            answer.sentences
        )
    if gold and answer.abstained:
        result.failures.append("abstained on an answerable question")
    if not gold and not answer.abstained:
        result.failures.append("answered an unanswerable question")
    if result.key_fact_recall is not None and result.key_fact_recall < 1 and not answer.abstained:
        result.failures.append("key facts missing")
    if result.citation_recall is not None and result.citation_recall < 1:
        result.failures.append("a sentence not supported by its citations")
    if result.cited_gold == 0:
        result.failures.append("no cited paper is gold")
    return result


METRICS = (
    "hit",
    "recall",
    "mrr",
    "ndcg",
    "citation_recall",
    "citation_precision",
    "cited_gold",
    "cites_gold",
    "faithfulness",
    "key_fact_recall",
)


def aggregate(rows: Sequence[Scores]) -> dict[str, float | int | None]:
    """Means of each metric over the questions where it is defined, abstention figures, latency and tokens."""
    out: dict[str, float | int | None] = {"questions": len(rows)}
    for metric in METRICS:
        values = [getattr(r, metric) for r in rows if getattr(r, metric) is not None]
        out[metric] = round(statistics.fmean(values), 4) if values else None
    single = [r.cited_gold for r in rows if r.gold_papers == 1 and r.cited_gold is not None]
    out["single_cited_gold"] = round(statistics.fmean(single), 4) if single else None
    abstained = [r for r in rows if r.abstained]
    unanswerable = [r for r in rows if not r.answerable]
    answerable = [r for r in rows if r.answerable]
    true_abstentions = sum(1 for r in abstained if not r.answerable)
    out["abstention_precision"] = round(true_abstentions / len(abstained), 4) if abstained else None
    out["abstention_recall"] = round(true_abstentions / len(unanswerable), 4) if unanswerable else None
    out["false_abstention"] = round(sum(r.abstained for r in answerable) / len(answerable), 4) if answerable else None
    seconds = [r.seconds for r in rows if r.seconds is not None]
    out["latency_p50"] = round(statistics.median(seconds), 4) if seconds else None
    out["latency_p95"] = (
        round(sorted(seconds)[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))], 4) if seconds else None
    )
    out["prompt_tokens"] = sum(r.prompt_tokens or 0 for r in rows)
    out["completion_tokens"] = sum(r.completion_tokens or 0 for r in rows)
    return out
