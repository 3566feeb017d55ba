"""Fit the decline model of rag/confidence.py and choose its cut-offs.

    python -m rag.evaluation.fit_decline [--questions FILE ...] [--also FILE ...]

The weights are fitted on the tuning half of the development questions only (5-fold cross-validated figures are
printed). The cut-offs are chosen by what they cost on every set at once: the tuning half (each question scored
by a model fitted without it), the test half, and each `--also` file (such as independently written questions):
`ANSWER_AT` is the highest cut-off that declines at most FALSE_DECLINE_BUDGET of the answerable questions of
the pooled sets *and* of each set on its own, so that a cut-off the easy set allows is not kept where a harder
set says it loses papers. A table shows how the figures of each set move across the cut-off range.
Questions below DENSE_FLOOR are declined by it, not by the model: they are left out of the fit, and a second table
shows what the floor declines across its range.
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
from rag.confidence import DENSE_FLOOR, FALSE_DECLINE_BUDGET, UNANSWERABLE_SHARE, weigh
from rag.question import asks_several, metadata_intent

# The features the model weighs. The ranking score is left out: beside `dense`, with which it moves, it took a
# negative weight, declining a question the more clearly its paper matched. The floor reads `dense` (last column).
FEATURES = ("dense", "focus", "named")
L2 = 0.0001
FOLDS = 5


def features(pipe: rag.Pipeline, questions: Sequence[Question]) -> tuple[np.ndarray, np.ndarray]:
    """Each question's evidence features, and whether it is answerable."""
    rows, labels = [], []
    for question in questions:
        k = DEFAULT_K_MULTI if asks_several(question.question) else DEFAULT_K
        passages = pipe.retriever.retrieve(question.question, k, expand=EXPAND_PAPERS)
        evidence = weigh(question.question, passages).features()
        rows.append([*(evidence[name] for name in FEATURES), evidence["dense"]])  # dense last: the floor reads it
        labels.append(1.0 if question.answerable else 0.0)
    return np.array(rows), np.array(labels)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Logistic regression by Newton's method, with a small L2 penalty on the weights."""
    x = x[:, : len(FEATURES)]
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
    """P(answerable), 0 where the floor declines (as rag.confidence.weigh does)."""
    p = 1 / (1 + np.exp(-(intercept + x[:, : len(FEATURES)] @ weights)))
    return np.where(above_floor(x), p, 0.0)


def dense(x: np.ndarray) -> np.ndarray:
    return x[:, len(FEATURES)]


def above_floor(x: np.ndarray) -> np.ndarray:
    return dense(x) >= DENSE_FLOOR


def threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The highest cut-off that declines at most FALSE_DECLINE_BUDGET of the answerable questions: declining an
    answerable question loses the user the paper, so that rate is the budget and the unanswerable ones declined
    are what it buys."""
    answerable = np.sort(p[y == 1])
    allowed = int(np.floor(FALSE_DECLINE_BUDGET * len(answerable)))
    return float(answerable[allowed]) if allowed < len(answerable) else 1.0


def sweep(sets: dict[str, tuple[np.ndarray, np.ndarray]], cuts: Sequence[float]) -> str:
    """A table of false declines / unanswerable declined per set at each cut-off."""
    header = "cut-off  " + "  ".join(f"{name:>22}" for name in sets)
    lines = [header, "         " + "  ".join(f"{'false / unans. declined':>22}" for _ in sets)]
    for cut in cuts:
        cells = []
        for p, y in sets.values():
            cells.append(f"{(p[y == 1] < cut).mean():>10.3f} / {(p[y == 0] < cut).mean():<9.3f}")
        lines.append(f"{cut:7.3f}  " + "  ".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def floor_sweep(sets: dict[str, tuple[np.ndarray, np.ndarray]], floors: Sequence[float]) -> str:
    """A table of answerable / unanswerable questions the dense floor alone declines, per set."""
    lines = ["floor    " + "  ".join(f"{name:>22}" for name in sets)]
    for floor in floors:
        cells = [
            f"{(dense(x)[y == 1] < floor).mean():>10.3f} / {(dense(x)[y == 0] < floor).mean():<9.3f}"
            for x, y in sets.values()
        ]
        lines.append(f"{floor:7.3f}  " + "  ".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


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
    parser.add_argument("--questions", type=Path, action="append", help="development questions (split tune/test)")
    parser.add_argument("--also", type=Path, action="append", default=[], help="another question set to weigh")
    args = parser.parse_args()
    pipe = rag.pipeline()

    def usable(path: Path) -> list[Question]:
        return [q for q in load_questions(path) if metadata_intent(q.question, pipe.retriever.catalogue) is None]

    here = Path(__file__).parent
    questions = [q for path in args.questions or [here / "questions.jsonl", here / "users.jsonl"] for q in usable(path)]
    tune = [q for q in questions if q.extra.get("split") != "test"]
    test = [q for q in questions if q.extra.get("split") == "test"]
    x, y = features(pipe, tune)
    order = list(range(len(tune)))
    random.Random(0).shuffle(order)
    held_out = np.zeros(len(tune))
    for fold in range(FOLDS):
        out = np.array([i for n, i in enumerate(order) if n % FOLDS == fold])
        inside = np.array([i for n, i in enumerate(order) if n % FOLDS != fold])
        inside = inside[above_floor(x[inside])]
        b0, w = fit(x[inside], y[inside])
        held_out[out] = predict(b0, w, x[out])
    b0, w = fit(x[above_floor(x)], y[above_floor(x)])
    test_x, test_y = features(pipe, test)
    raw = {"tuning": (x, y), "test": (test_x, test_y)}
    sets = {"tuning (cross-val.)": (held_out, y), "test": (predict(b0, w, test_x), test_y)}
    for path in args.also:
        fx, fy = features(pipe, usable(path))
        raw[path.stem] = (fx, fy)
        sets[path.stem] = (predict(b0, w, fx), fy)
    print("declined by the dense floor alone (answerable / unanswerable):")
    print(floor_sweep(raw, [round(f, 2) for f in np.arange(0.15, 0.36, 0.025)]))
    pooled_p = np.concatenate([p for p, _ in sets.values()])
    pooled_y = np.concatenate([y for _, y in sets.values()])
    cut = min([threshold(pooled_p, pooled_y)] + [threshold(p, y) for p, y in sets.values()])
    hedge = max(cut, hedge_threshold(pooled_p, pooled_y))
    print(sweep(sets, [round(c, 3) for c in np.arange(0.20, 0.66, 0.05)] + [cut]))
    for name, (p, labels) in sets.items():
        print(f"{name}: {rates(p, labels, cut, hedge)}")
    print("constants for rag/confidence.py:")
    print(f"INTERCEPT = {b0:.4f}")
    print("WEIGHTS = " + json.dumps({name: round(float(v), 4) for name, v in zip(FEATURES, w, strict=True)}))
    print(f"ANSWER_AT = {cut:.4f}")
    print(f"CONFIDENT_AT = {hedge:.4f}")


if __name__ == "__main__":
    main()
