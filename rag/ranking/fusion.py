"""The signals of a candidate paper (`rag.ranking.signals`) → one score: a weighted mean, with the weights of a
pairwise logistic model fitted on the tuning half of the development questions (`python -m rag.evaluation.fit_ranking`:
the gold paper against every other candidate of its question, cross-validated by question).

Because the model is pairwise, the difference of two papers' scores times the sum of the weights is the log-odds
that the first is the one asked about: `preference` reads it, and `close` says when the first two papers cannot
be told apart."""

from __future__ import annotations

import math

import numpy as np

from rag.ranking.signals import SIGNALS

WEIGHTS = {"whole": 1.267, "chunk": 1.383, "mean": 1.351, "facets": 1.162, "feedback": 1.645, "keywords": 2.406}
TOTAL = sum(WEIGHTS.values())
# The first paper is not told apart from the second when the model gives it less than this chance of being the one
# asked about (eval/fit_ranking.py prints how often the gold paper is first, second or lower across the range).
CLOSE_BELOW = 0.55
# A paper the model gives at least these odds of being less relevant than the first is left out of an answer about
# several papers: a list holds the papers that fit, not a fixed number of them (eval/fit_ranking.py sweeps it).
LISTED_BELOW = 0.95


def fused(matrix: np.ndarray) -> np.ndarray:
    """Each candidate's score: its signals' weighted mean."""
    weights = np.array([WEIGHTS[name] for name in SIGNALS])
    return matrix @ weights / TOTAL if len(matrix) else np.zeros(0)


def preference(first: float, second: float) -> float:
    """The chance, under the fitted model, that the paper scored `first` is the one asked about rather than the
    one scored `second`."""
    return 1 / (1 + math.exp(-TOTAL * (first - second)))


def listed(first: float, score: float, below: float = LISTED_BELOW) -> bool:
    """Whether a paper scored `score` belongs in a list of papers led by one scored `first`."""
    return preference(first, score) < below


def close(first: float, second: float, below: float = CLOSE_BELOW) -> bool:
    """Whether two papers' scores are too near for the ranking to choose between them."""
    return preference(first, second) < below
