"""Fit the ranking's fusion weights (rag/ranking/fusion.py) and show what they do beside the baselines.

    python -m rag.evaluation.fit_ranking [--questions FILE ...] [--also FILE ...]

For every answerable question the ranking's candidates and their signals are read (`Retriever.ranking`). A
pairwise logistic model (the gold paper against each other candidate) is fitted on the tuning half of the
`--questions` files only, cross-validated by question in 5 folds. Printed side by side for the tuning half
(cross-validated), the test half and each `--also` file (held out: shown, never fitted on): hit@1, hit@5 and MRR of
the fused ranking, of each signal alone, and of the baselines (rag.ranking.baselines); then how often the gold
paper is first, second or lower among the questions the `close` test flags, across its cut-off's range."""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rag.evaluation.questions import Question, load_questions, resolve_gold
from rag.evaluation.rankings import figures, first_rank

import rag
from rag.ranking import SIGNALS, baselines, preference

FOLDS = 5
L2 = 0.01
ANSWERABLE = ("factoid", "method-name", "multi")


@dataclass(frozen=True)
class Row:
    """One question's candidates: their signals, and which are gold."""

    question: Question
    ids: list[str]
    signals: np.ndarray
    gold: np.ndarray


def rows(pipe: rag.Pipeline, questions: Sequence[Question], gold: dict[str, set[str]]) -> list[Row]:
    out = []
    for question in questions:
        ranking = pipe.retriever.ranking(question.question)
        ids = [r.paper_id for r in ranking.papers]
        matrix = np.array([[r.signals[name] for name in SIGNALS] for r in ranking.papers]).reshape(-1, len(SIGNALS))
        out.append(Row(question, ids, matrix, np.array([pid in gold[question.id] for pid in ids], dtype=bool)))
    return out


def fit(data: Sequence[Row], l2: float = L2) -> np.ndarray:
    """Weights of the pairwise logistic model (Newton's method, L2 penalty)."""
    pairs = [
        (row.signals[row.gold][:, None, :] - row.signals[~row.gold][None, :, :]).reshape(-1, len(SIGNALS))
        for row in data
        if row.gold.any() and (~row.gold).any()
    ]
    z = np.concatenate(pairs)
    w = np.zeros(len(SIGNALS))
    for _ in range(100):
        p = 1 / (1 + np.exp(-(z @ w)))
        gradient = z.T @ (p - 1) / len(z) + l2 * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z / len(z) + l2 * np.eye(len(SIGNALS))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def cell(ranks: Sequence[int | None]) -> str:
    return " / ".join(f"{value:.3f}" for value in figures(ranks).values())


def fused_order(row: Row, w: np.ndarray) -> list[str]:
    scores = row.signals @ w
    return [row.ids[i] for i in np.argsort(-scores, kind="stable")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, action="append", help="development questions (split tune/test)")
    parser.add_argument("--also", type=Path, action="append", default=[], help="a held-out set, shown only")
    args = parser.parse_args()
    pipe = rag.pipeline()
    papers = {pid: stored.paper for pid, stored in pipe.retriever.store.papers().items()}
    here = Path(__file__).parent
    sets: dict[str, list[Question]] = {"tuning": [], "test": []}
    for path in args.questions or [here / "questions.jsonl", here / "users.jsonl"]:
        for q in load_questions(path):
            sets["test" if q.extra.get("split") == "test" else "tuning"].append(q)
    for path in args.also:
        sets[path.stem] = load_questions(path)
    sets = {name: [q for q in qs if q.type in ANSWERABLE and q.gold] for name, qs in sets.items()}
    gold = {q.id: g for qs in sets.values() for q, g in zip(qs, resolve_gold(qs, papers).values(), strict=True)}
    data = {name: rows(pipe, qs, gold) for name, qs in sets.items()}
    tuning = data["tuning"]
    order = list(range(len(tuning)))
    random.Random(0).shuffle(order)
    held: list[list[str]] = [[] for _ in tuning]
    for fold in range(FOLDS):
        w = fit([tuning[i] for n, i in enumerate(order) if n % FOLDS != fold])
        for n, i in enumerate(order):
            if n % FOLDS == fold:
                held[i] = fused_order(tuning[i], w)
    weights = fit(tuning)
    print("hit@1 / hit@5 / hit@10 / MRR of the first gold paper")
    print("(tuning half: each fold ranked by the weights fitted without it)")
    print(f"{'ranking':<22}" + "".join(f"{name + f' ({len(rows_)})':>34}" for name, rows_ in data.items()))

    def line(label: str, orders: dict[str, list[list[str]]]) -> None:
        cells = [
            cell([first_rank(o, gold[r.question.id]) for o, r in zip(orders[n], data[n], strict=True)]) for n in data
        ]
        print(f"{label:<22}" + "".join(f"{c:>34}" for c in cells))

    line("fused", {n: (held if n == "tuning" else [fused_order(r, weights) for r in rs]) for n, rs in data.items()})
    for k, name in enumerate(SIGNALS):
        only = np.eye(len(SIGNALS))[k]
        line(f"  {name} alone", {n: [fused_order(r, only) for r in rs] for n, rs in data.items()})
    for name, rank in baselines.RANKINGS.items():
        line(
            f"baseline: {name}",
            {n: [rank(pipe.retriever, r.question.question, 10) for r in rs] for n, rs in data.items()},
        )
    total = float(weights.sum())
    print("\namong questions whose first two papers the model prefers by less than the cut-off: share flagged, and of")
    print("those, gold first / gold second / lower")
    for cut in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        cells = []
        for rs in data.values():
            flagged = [0, 0, 0]
            count = 0
            for r in rs:
                scores = np.sort(r.signals @ weights / total)[::-1]
                if len(scores) >= 2 and preference(scores[0], scores[1]) < cut:
                    count += 1
                    position = first_rank(fused_order(r, weights), gold[r.question.id]) or 99
                    flagged[min(position, 3) - 1] += 1
            cells.append(f"{count / (len(rs) or 1):.2f}: {flagged[0]}/{flagged[1]}/{flagged[2]}")
        print(f"{cut:<22}" + "".join(f"{c:>34}" for c in cells))
    print("\nWEIGHTS = " + json.dumps({name: round(float(v), 3) for name, v in zip(SIGNALS, weights, strict=True)}))


if __name__ == "__main__":
    main()
