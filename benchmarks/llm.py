"""LLM-path benchmark: the `local` backend (the bundled model in this process) answering development questions
on the shipped corpus: time to first token, decoding tokens/s, and seconds per answer (p50/p95), with where the
time goes (retrieval, prompt reading, decoding, citation check).

Baseline, measured in the same run on the same questions: the same model answering the bare question, with no
passages and no instructions, so that the cost of reading the passages shows as a ratio.

    .venv/bin/python benchmarks/llm.py --runs 3 --questions 12 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import rag
from rag.api import Pipeline
from rag.config import Settings

QUESTIONS = Path(__file__).resolve().parents[1] / "eval" / "questions.jsonl"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Clock:
    """Times the pieces of a stream: when the first came, when the last came."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.last: float | None = None

    def __call__(self, piece: str) -> None:
        now = time.perf_counter()
        self.first = self.first if self.first is not None else now
        self.last = now


def pick(count: int) -> list[str]:
    """`count` development questions spread over the file, leaving out metadata ones (answered from records)."""
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines()]
    rows = [row for row in rows if row["type"] != "metadata"]
    step = max(1, len(rows) // count)
    return [row["question"] for row in rows[::step][:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="passes over the questions")
    parser.add_argument("--questions", type=int, default=12, help="development questions per pass")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    questions = pick(args.questions)
    with tempfile.TemporaryDirectory() as base:
        settings = Settings(home=Path(base) / "home", backend="local", local_model=os.environ.get("RAG_LOCAL_MODEL"))
        rag.ingest(settings=settings)
        pipe = Pipeline(settings)
        chat = pipe.answerer("local").model  # type: ignore[attr-defined]
        pipe.ask(questions[0])  # warm-up: model, index, sentence tokenizer
        rows: dict[str, list[float]] = {k: [] for k in ("ttft", "tokens_s", "total", "retrieval", "answer", "check")}
        base_rows: dict[str, list[float]] = {k: [] for k in ("ttft", "tokens_s", "total")}
        prompt_tokens: list[int] = []
        for _ in range(args.runs):
            for question in questions:
                clock = Clock()
                answer = pipe.ask(question, on_text=clock)
                total = time.perf_counter() - clock.start
                usage = answer.usage
                if usage is None or clock.first is None or clock.last is None:
                    continue  # no model call (nothing retrieved close enough)
                rows["ttft"].append(clock.first - clock.start)
                if usage.completion_tokens > 1 and clock.last > clock.first:
                    rows["tokens_s"].append((usage.completion_tokens - 1) / (clock.last - clock.first))
                rows["total"].append(total)
                for stage in ("retrieval", "answer", "check"):
                    rows[stage].append(answer.seconds[stage])
                prompt_tokens.append(usage.prompt_tokens)

                clock = Clock()
                _, bare = chat.stream([{"role": "user", "content": question}], clock)
                base_rows["total"].append(time.perf_counter() - clock.start)
                if clock.first is not None and clock.last is not None:
                    base_rows["ttft"].append(clock.first - clock.start)
                    if bare is not None and bare.completion_tokens > 1 and clock.last > clock.first:
                        base_rows["tokens_s"].append((bare.completion_tokens - 1) / (clock.last - clock.first))
    summary = {
        "questions": len(questions),
        "runs": args.runs,
        "threads": chat.threads,
        "prompt_tokens_median": statistics.median(prompt_tokens),
        "rag": {k: {"p50": statistics.median(v), "p95": percentile(v, 0.95)} for k, v in rows.items() if v},
        "bare_question": {k: {"p50": statistics.median(v), "p95": percentile(v, 0.95)} for k, v in base_rows.items()},
    }
    summary["ratio_total_p50"] = summary["rag"]["total"]["p50"] / summary["bare_question"]["total"]["p50"]
    summary["ratio_ttft_p50"] = summary["rag"]["ttft"]["p50"] / summary["bare_question"]["ttft"]["p50"]
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{len(questions)} questions × {args.runs} runs, local model, {chat.threads} decoding thread(s); "
          f"median prompt {summary['prompt_tokens_median']:.0f} tokens")  # fmt: skip
    print(f"{'':24} {'p50':>8} {'p95':>8}")
    for name, table in (("rag", summary["rag"]), ("bare question", summary["bare_question"])):
        for key, value in table.items():
            unit = "tok/s" if key == "tokens_s" else "s"
            print(f"{name + ' ' + key:24} {value['p50']:8.2f} {value['p95']:8.2f} {unit}")
    print(f"ratio to the bare question (p50): total {summary['ratio_total_p50']:.2f}, "
          f"first token {summary['ratio_ttft_p50']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
