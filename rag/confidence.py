"""Whether the retrieved passages answer the question: a logistic model over what retrieval found and whether the
best paper states the thing the question asks for, fitted on the development questions (eval/fit_decline.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rag.question import asked_for, asks_quantity
from rag.text import content_stems, numbers, sentence_spans
from rag.types import Passage

# The fitted model: P(answerable) = sigmoid(INTERCEPT + Σ WEIGHTS[f] · feature f). Fitted by
# `python -m rag.evaluation.fit_decline` on the tuning half of the development questions only; its output,
# the cross-validated and test-half figures, is in the README ("Declining").
INTERCEPT = -2.3977
WEIGHTS = {"score": 3.1043, "dense": -0.9177, "focus": 1.7058}
# Answer when P(answerable) reaches this: the highest cut-off that, in the same fit, declines at most
# FALSE_DECLINE_BUDGET of the answerable tuning questions (a false decline loses the user the paper).
ANSWER_AT = 0.5515
FALSE_DECLINE_BUDGET = 0.08
# Between ANSWER_AT and this, the answer is hedged (the passages may not state what was asked): the cut-off below
# which UNANSWERABLE_SHARE of the unanswerable tuning questions fall.
CONFIDENT_AT = 0.7097
UNANSWERABLE_SHARE = 0.6


@dataclass(frozen=True)
class Evidence:
    """What the passages offer the question, and the model's belief that they answer it."""

    score: float  # the best passage's retrieval score (dense + paper + lexical)
    dense: float  # the best cosine similarity of a passage to the question
    focus: float  # share of the asked-for words that one sentence of the best paper states (1.0: none asked for)
    probability: float

    @property
    def answerable(self) -> bool:
        """Whether to answer rather than decline."""
        return self.probability >= ANSWER_AT

    @property
    def hedged(self) -> bool:
        """Whether to answer with a caveat: the passages are close, but may not state what was asked."""
        return ANSWER_AT <= self.probability < CONFIDENT_AT

    def features(self) -> dict[str, float]:
        return {"score": self.score, "dense": self.dense, "focus": self.focus}


def focus_found(question: str, passages: Sequence[Passage]) -> float:
    """The largest share of the question's asked-for words ("What perplexity does ...": {"perplex"}) that one
    sentence or the title of the best paper contains; for a quantity, a sentence without a number the question
    does not give counts half. 1.0 when the question asks for nothing more specific than a paper."""
    wanted = asked_for(question)
    if not wanted or not passages:
        return 1.0
    quantity = asks_quantity(question)
    given = numbers(question)
    best_paper = passages[0].paper
    texts = [best_paper.title or ""]
    texts += [p.text[s:e] for p in passages if p.paper_id == best_paper.paper_id for s, e in sentence_spans(p.text)]
    best = 0.0
    for text in texts:
        share = len(wanted & content_stems(text)) / len(wanted)
        if quantity and not numbers(text) - given:
            share /= 2
        best = max(best, share)
    return best


def weigh(question: str, passages: Sequence[Passage]) -> Evidence:
    """The evidence the passages (best first) give for answering `question`."""
    if not passages:
        return Evidence(0.0, 0.0, 0.0, 0.0)
    features = {
        "score": max(p.score for p in passages),
        "dense": max(p.dense for p in passages),
        "focus": focus_found(question, passages),
    }
    return Evidence(**features, probability=probability(features))


def probability(features: dict[str, float]) -> float:
    """P(answerable) under the fitted model."""
    z = INTERCEPT + sum(weight * features[name] for name, weight in WEIGHTS.items())
    return 1 / (1 + math.exp(-z))
