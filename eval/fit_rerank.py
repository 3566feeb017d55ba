"""Fit the reranker's weight and margin (rag/rerank.py) on the tuning half of the development questions with
5-fold cross-validation, and report them on the test half, which nothing is fitted on.

    python -m rag.evaluation.fit_rerank [--questions FILE] [--also FILE] [--sentences N] [--cache FILE]

A passage's reranked score is its retrieval score plus WEIGHT times the question's mean log-probability per token
after it; only the passages whose retrieval score is within MARGIN of the best are reread. The figure is how often
the first passage is from a gold paper, over the answerable questions the reranker reads: not metadata questions
(answered from the records) nor questions about several papers.
`--sentences N` has the model read each paper's title and N best sentences instead of the whole abstract
(rag.rerank.readings); `--also FILE` reports a further question set (say, independent questions) beside the test
half, never fitted on. Only passages within REACH of the best are read: none further behind ever overtook the
first (docs/answering.md, "Reranking"). `--cache` keeps the model's likelihoods in a JSON file (a second per
passage), so a second run only refits."""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Sequence
from pathlib import Path

from rag.evaluation.questions import Question, load_questions, resolve_gold

import rag
from rag.api import DEFAULT_K
from rag.question import asks_several, metadata_intent
from rag.rerank import DEPTH, combined, contenders, likelihoods, readings

GRID = [round(0.1 * n, 1) for n in range(0, 31)]
REACH = 0.3
MARGINS = [round(0.05 * n, 2) for n in range(1, 7)]
FOLDS = 5
Row = tuple[list[float], list[float], list[bool]]  # per passage: retrieval score, likelihood, gold or not


def rows(
    pipe: rag.Pipeline,
    questions: Sequence[Question],
    gold: dict[str, set[str]],
    cache: dict,
    sentences: int | None,
    tokens: list[int],
) -> list[Row]:
    """Each question's first DEPTH passages as the reranker sees them (those beyond REACH with no likelihood: they
    are never reread). `tokens` gets the prompt length of each reading."""
    model = pipe.answerer("local").model  # type: ignore[attr-defined]
    out: list[Row] = []
    for question in questions:
        key = f"{question.id}/{sentences}"
        if key not in cache:
            passages = pipe.retriever.retrieve(question.question, DEFAULT_K)[:DEPTH]
            near = [p for p in passages if p.score >= passages[0].score - REACH]
            texts = readings(question.question, near, pipe.embedder, sentences)
            values = likelihoods(question.question, texts, model)
            lengths = [model.count_tokens([{"role": "user", "content": text}]) for text in texts]
            cache[key] = [
                [p.score, value, p.paper_id in gold[question.id], length]
                for p, value, length in zip(near, values, lengths, strict=True)
            ]
        scored = cache[key]
        tokens.extend(n for *_, n in scored)
        out.append(([s for s, *_ in scored], [v for _, v, *_ in scored], [g for _, _, g, _ in scored]))
    return out


def first_is_gold(rows: Sequence[Row], weight: float, margin: float = REACH) -> float:
    """Share of questions whose best passage, at `weight`, rereading the passages within `margin`, is from a gold
    paper."""
    hits = 0
    for scores, values, golds in rows:
        count = contenders(scores, DEPTH, margin)
        best = max(range(count), key=lambda i: combined(scores[i], values[i], weight)) if count else 0
        hits += golds[best]
    return hits / len(rows) if rows else 0.0


def reads(rows: Sequence[Row], margin: float) -> float:
    """Abstracts reread per question at `margin`."""
    return sum(contenders(scores, DEPTH, margin) for scores, _, _ in rows) / len(rows) if rows else 0.0


def best_weight(rows: Sequence[Row]) -> float:
    """The grid weight with the most first passages from gold papers (the smallest among ties)."""
    return max(GRID, key=lambda w: (round(first_is_gold(rows, w), 9), -w))


def best_margin(rows: Sequence[Row], weight: float) -> float:
    """The smallest margin at which reranking puts a gold paper first as often as rereading all DEPTH does."""
    full = round(first_is_gold(rows, weight), 9)
    return min(m for m in MARGINS if round(first_is_gold(rows, weight, m), 9) >= full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=Path(__file__).with_name("questions.jsonl"))
    parser.add_argument("--also", type=Path, action="append", default=[], help="a further set to report")
    parser.add_argument("--sentences", type=int, default=None, help="read N best sentences, not the abstract")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    pipe = rag.pipeline()
    cache = json.loads(args.cache.read_text()) if args.cache is not None and args.cache.is_file() else {}
    papers = {p.paper_id: p for p in rag.list_papers()}

    def reranked(path: Path) -> list[Question]:
        return [
            q
            for q in load_questions(path)
            if q.answerable
            and not asks_several(q.question)
            and metadata_intent(q.question, pipe.retriever.catalogue) is None
        ]

    questions = reranked(args.questions)
    sets = {
        "tune": [q for q in questions if q.extra.get("split") != "test"],
        "test": [q for q in questions if q.extra.get("split") == "test"],
        **{path.name: reranked(path) for path in args.also},
    }
    halves: dict[str, list[Row]] = {}
    tokens: list[int] = []
    try:
        for name, chosen in sets.items():
            halves[name] = rows(pipe, chosen, resolve_gold(chosen, papers), cache, args.sentences, tokens)
    finally:
        if args.cache is not None:
            args.cache.write_text(json.dumps(cache))
    tune = halves["tune"]
    order = list(range(len(tune)))
    random.Random(0).shuffle(order)
    held_out, held_out_read = 0.0, 0.0
    for fold in range(FOLDS):
        inside = [tune[i] for n, i in enumerate(order) if n % FOLDS != fold]
        out = [tune[i] for n, i in enumerate(order) if n % FOLDS == fold]
        weight = best_weight(inside)
        margin = best_margin(inside, weight)
        held_out += first_is_gold(out, weight, margin) * len(out)
        held_out_read += reads(out, margin) * len(out)
        print(
            f"fold {fold + 1}: weight {weight}, margin {margin}, first passage gold "
            f"{first_is_gold(out, weight, margin):.3f} held out, {reads(out, margin):.2f} abstracts reread"
        )
    print(f"reading: {'the whole abstract' if args.sentences is None else f'{args.sentences} best sentences'}")
    print(f"  prompt tokens per reading: median {statistics.median(tokens):.0f}, mean {statistics.mean(tokens):.0f}")
    print(
        f"cross-validated first passage gold (tuning half, {len(tune)} questions): {held_out / len(tune):.3f} with "
        f"{held_out_read / len(tune):.2f} abstracts reread; without reranking {first_is_gold(tune, 0.0):.3f}"
    )
    weight = best_weight(tune)
    margin = best_margin(tune, weight)
    for name, held in halves.items():
        if name == "tune":
            continue
        print(
            f"{name} ({len(held)} questions, never fitted on): first passage gold "
            f"{first_is_gold(held, weight, margin):.3f} at weight {weight}, margin {margin} "
            f"({reads(held, margin):.2f} abstracts reread); all within {REACH} reread "
            f"{first_is_gold(held, weight):.3f}; "
            f"without reranking {first_is_gold(held, 0.0):.3f}"
        )
    print(f"constants for rag/rerank.py: WEIGHT = {weight}, MARGIN = {margin}")


if __name__ == "__main__":
    main()
