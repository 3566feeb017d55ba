"""Whether the retrieved passages answer the question: a logistic model over what retrieval found and whether the
best paper states the thing the question asks for, fitted on the development questions (eval/fit_decline.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rag.question import read
from rag.text import content_stems, mentions, numbers, sentence_spans
from rag.types import Passage

# The fitted model: P(answerable) = sigmoid(INTERCEPT + Σ WEIGHTS[f] · feature f). The weights are fitted by
# `python -m rag.evaluation.fit_decline` on the tuning half of the development questions only.
INTERCEPT = -5.9951
WEIGHTS = {"dense": 2.9422, "focus": 3.1052, "named": 3.1952}
# Answer when P(answerable) reaches this: the highest cut-off that declines at most FALSE_DECLINE_BUDGET of the
# answerable questions of every question set weighed (the tuning half cross-validated and the test half of the
# development questions; the independently written ones are held out), each on its own: a false decline loses
# the user the paper, and a cut-off an easy set allows declines far more of a harder set's answerable questions.
ANSWER_AT = 0.4754
FALSE_DECLINE_BUDGET = 0.06
# Between ANSWER_AT and this, the answer is hedged (the passages may not state what was asked): the cut-off below
# which UNANSWERABLE_SHARE of the unanswerable questions of those sets fall.
CONFIDENT_AT = 0.8084
UNANSWERABLE_SHARE = 0.75
# Below this cosine similarity no passage is about the question's topic at all ("What causes the northern
# lights?"): declined whatever the other features say. The fitted model cannot tell: no question it is fitted on
# is that far from the collection, and without any asked-for word its focus is 1.0 and it answers. Placed below
# the least similar answerable question of every question set (0.30) and above most of the off-topic questions
# of the tuning half (0.10-0.26; see the floor table of fit_decline).
DENSE_FLOOR = 0.25


@dataclass(frozen=True)
class Evidence:
    """What the passages offer the question, and the model's belief that they answer it."""

    score: float  # the best paper's ranking score (rag.ranking.fusion)
    dense: float  # the best cosine similarity of a passage to the question
    focus: float  # share of the asked-for words that one sentence of the best paper states, averaged over the
    # question's parts (1.0: none asked for)
    named: float  # share of the question's technical names the best paper mentions (1.0: it uses none)
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
        return {"score": self.score, "dense": self.dense, "focus": self.focus, "named": self.named}


def focus_found(question: str, passages: Sequence[Passage]) -> float:
    """How much of what the question asks for the best paper states: for each part of a compound question
    (Asked.parts), the share of its asked-for words one sentence or the title holds (`part_focus`), averaged
    over the parts; one part missing halves a two-part question's focus."""
    parts = read(question).parts
    return sum(part_focus(part, passages) for part in parts) / len(parts)


def part_focus(question: str, passages: Sequence[Passage]) -> float:
    """The largest share of the question's asked-for words ("What perplexity does ...": {"perplex"}) that one
    sentence or the title of the best paper contains; for a quantity, a sentence without a number the question
    does not give counts half. 1.0 when the question asks for nothing more specific than a paper."""
    asked = read(question)
    wanted = asked.wanted
    if not wanted or not passages:
        return 1.0
    quantity = asked.quantity
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


def names_found(question: str, passages: Sequence[Passage]) -> float:
    """The share of the technical names the question uses ("LoRA", "SimpleNet") that the best paper's title and
    passages mention, or for a question about several papers any passage; 1.0 when it uses none. A question
    about a method the collection does not hold names it, and the closest paper does not."""
    asked = read(question)
    names = asked.terms
    if not names or not passages:
        return 1.0
    several, best = asked.several, passages[0].paper_id
    held = [p for p in passages if several or p.paper_id == best]
    text = " ".join([*dict.fromkeys(p.paper.title or "" for p in held), *(p.text for p in held)])
    return sum(mentions(text, name) for name in names) / len(names)


def weigh(question: str, passages: Sequence[Passage]) -> Evidence:
    """The evidence the passages (best first) give for answering `question`."""
    if not passages:
        return Evidence(0.0, 0.0, 0.0, 1.0, 0.0)
    features = {
        "score": max(p.score for p in passages),
        "dense": max(p.dense for p in passages),
        "focus": focus_found(question, passages),
        "named": names_found(question, passages),
    }
    belief = 0.0 if features["dense"] < DENSE_FLOOR else probability(features)
    return Evidence(**features, probability=belief)


def probability(features: dict[str, float]) -> float:
    """P(answerable) under the fitted model."""
    z = INTERCEPT + sum(weight * features[name] for name, weight in WEIGHTS.items())
    return 1 / (1 + math.exp(-z))
