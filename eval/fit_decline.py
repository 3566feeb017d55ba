"""Fit the decline model of rag/confidence.py on the tuning half of the development questions, with 5-fold
cross-validation, and report it on the test half, which nothing is fitted on.

    python -m rag.evaluation.fit_decline [--questions FILE]

Prints the held-out figures of each fold, the test half's, and the constants to write into rag/confidence.py.
Metadata questions are left out: the paper records answer them, so they are never declined."""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rag.evaluation.questions import Question, load_questions

import rag
from rag.api import DEFAULT_K, DEFAULT_K_MULTI, EXPAND_PAPERS
from rag.confidence import FALSE_DECLINE_BUDGET, UNANSWERABLE_SHARE, weigh
from rag.question import asks_several, metadata_intent

FEATURES = ("score", "dense", "focus")
L2 = 0.0001
FOLDS = 5


def features(pipe: rag.Pipeline, questions: Sequence[Question]) -> tuple[np.ndarray, np.ndarray]:
    """Each question's evidence features, and whether it is answerable."""
    rows, labels = [], []
    for question in questions:
        k = DEFAULT_K_MULTI if asks_several(question.question) else DEFAULT_K
        passages = pipe.retriever.retrieve(question.question, k, expand=EXPAND_PAPERS)
        evidence = weigh(question.question, passages).features()
        rows.append([evidence[name] for name in FEATURES])
        labels.append(1.0 if question.answerable else 0.0)
    return np.array(rows), np.array(labels)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Logistic regression by Newton's method, with a small L2 penalty on the weights."""
    design = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(design.shape[1])
    penalty = np.diag([0.0] + [L2 * len(x)] * x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (p - y) + penalty @ beta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(beta[0]), beta[1:]


def predict(intercept: float, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(intercept + x @ weights)))


def threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The highest cut-off that declines at most FALSE_DECLINE_BUDGET of the answerable questions: declining an
    answerable question loses the user the paper, so that rate is the budget and the unanswerable ones declined
    are what it buys."""
    answerable = np.sort(p[y == 1])
    allowed = int(np.floor(FALSE_DECLINE_BUDGET * len(answerable)))
    return float(answerable[allowed]) if allowed < len(answerable) else 1.0


def hedge_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The cut-off below which UNANSWERABLE_SHARE of the unanswerable questions fall: an answer above it is
    confident, one between the two cut-offs is hedged."""
    return float(np.quantile(p[y == 0], UNANSWERABLE_SHARE))


def rates(p: np.ndarray, y: np.ndarray, cut: float, hedge: float = 0.0) -> dict[str, float]:
    declined = p < cut
    hedged = (p >= cut) & (p < hedge)
    return {
        "false_declines": round(float(declined[y == 1].mean()), 3),
        "unanswerable_declined": round(float(declined[y == 0].mean()), 3),
        "answerable_hedged": round(float(hedged[y == 1].mean()), 3),
        "unanswerable_hedged": round(float(hedged[y == 0].mean()), 3),
        "answerable": int((y == 1).sum()),
        "unanswerable": int((y == 0).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=Path(__file__).with_name("questions.jsonl"))
    args = parser.parse_args()
    pipe = rag.pipeline()
    questions = [
        q for q in load_questions(args.questions) if metadata_intent(q.question, pipe.retriever.catalogue) is None
    ]
    tune = [q for q in questions if q.extra.get("split") != "test"]
    test = [q for q in questions if q.extra.get("split") == "test"]
    x, y = features(pipe, tune)
    order = list(range(len(tune)))
    random.Random(0).shuffle(order)
    held_out = np.zeros(len(tune))
    cuts = np.zeros(len(tune))
    for fold in range(FOLDS):
        out = np.array([i for n, i in enumerate(order) if n % FOLDS == fold])
        inside = np.array([i for n, i in enumerate(order) if n % FOLDS != fold])
        b0, w = fit(x[inside], y[inside])
        cut = threshold(predict(b0, w, x[inside]), y[inside])
        held_out[out] = predict(b0, w, x[out])
        cuts[out] = cut
        print(f"fold {fold + 1}: held out {rates(held_out[out], y[out], cut)}")
    declined = held_out < cuts
    print(
        "cross-validated (tuning half, each question predicted by a model fitted without it): "
        f"false declines {declined[y == 1].mean():.3f}, unanswerable declined {declined[y == 0].mean():.3f}"
    )
    b0, w = fit(x, y)
    cut = threshold(predict(b0, w, x), y)
    hedge = max(cut, hedge_threshold(predict(b0, w, x), y))
    xt, yt = features(pipe, test)
    print(f"test half (never fitted on): {rates(predict(b0, w, xt), yt, cut, hedge)}")
    print("constants for rag/confidence.py:")
    print(f"INTERCEPT = {b0:.4f}")
    print("WEIGHTS = " + json.dumps({name: round(float(v), 4) for name, v in zip(FEATURES, w, strict=True)}))
    print(f"ANSWER_AT = {cut:.4f}")
    print(f"CONFIDENT_AT = {hedge:.4f}")


if __name__ == "__main__":
    main()
