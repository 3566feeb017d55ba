"""LLM-path benchmark: the `local` backend (the bundled model in this process) answering development questions
on the shipped corpus: time to first token, decoding tokens/s, and seconds per answer (p50/p95), with where the
time goes (retrieval, prompt reading, decoding, citation check).

Baseline, measured in the same run on the same questions: the same model answering the bare question, with no
passages and no instructions, so that the cost of reading the passages shows as a ratio.

    .venv/bin/python benchmarks/llm.py --runs 3 --questions 12 [--readings whole 3] [--json]

`--readings` compares what the reranker reads of each paper, in the same run on the same questions: `whole` (the
title and whole abstract) or N (the title and the N sentences that best match the question); a reading ending
in `/nocache` runs without llama.cpp's prompt cache (what the shipped backend did before it kept one). The CPU's
name and the instruction sets llama.cpp was built for are printed with the figures. A prompt cache makes a
question asked twice almost free, so each pass should ask questions it has not asked: prefer one run of more
questions to several runs of few.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from page import printed

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
    parser.add_argument("--readings", nargs="+", default=["shipped"], help="whole, N, or shipped (the default)")
    parser.add_argument("--page", action="store_true", help="also write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    questions = pick(args.questions)
    results = {}
    with tempfile.TemporaryDirectory() as base:
        settings = Settings(home=Path(base) / "home", backend="local", local_model=os.environ.get("RAG_LOCAL_MODEL"))
        rag.ingest(settings=settings)
        pipe = Pipeline(settings)
        chat = pipe.answerer("local").model  # type: ignore[attr-defined]
        pipe.ask(questions[0])  # warm-up: model, index, sentence tokenizer
        shipped, cache = chat.rerank_sentences, chat._llama.cache
        named = {"shipped": shipped, "whole": None}
        for reading in args.readings:
            sentences, _, no_cache = reading.partition("/")
            chat.rerank_sentences = named[sentences] if sentences in named else int(sentences)
            chat._llama.set_cache(None if no_cache else type(cache)(cache.capacity_bytes))  # empty, or none
            results[reading] = measure(pipe, chat, questions, args.runs)
        chat.rerank_sentences = shipped
    summary = {"cpu": cpu_name(), "llama_cpp": system_info(), "questions": len(questions), "runs": args.runs,
               "threads": chat.threads, "readings": results}  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    with printed("llm", args.page):
        print(f"{summary['cpu']}; llama.cpp built for: {summary['llama_cpp']}")
        print(f"{len(questions)} questions × {args.runs} runs, local model, {chat.threads} decoding thread(s)")
        for reading, result in results.items():
            print(f"\nreranker reads: {reading}; median prompt {result['prompt_tokens_median']:.0f} tokens")
            print(f"{'':24} {'p50':>8} {'p95':>8}")
            for name, table in (("rag", result["rag"]), ("bare question", result["bare_question"])):
                for key, value in table.items():
                    unit = "tok/s" if key == "tokens_s" else "s"
                    print(f"{name + ' ' + key:24} {value['p50']:8.2f} {value['p95']:8.2f} {unit}")
            print(f"ratio to the bare question (p50): total {result['ratio_total_p50']:.2f}, "
                  f"first token {result['ratio_ttft_p50']:.2f}")  # fmt: skip


def measure(pipe: Pipeline, chat: object, questions: list[str], runs: int) -> dict[str, Any]:
    """Each question answered `runs` times, and the same model answering it bare, as percentiles."""
    rows: dict[str, list[float]] = {k: [] for k in ("ttft", "tokens_s", "total", "retrieval", "answer", "check")}
    base_rows: dict[str, list[float]] = {k: [] for k in ("ttft", "tokens_s", "total")}
    prompt_tokens: list[int] = []
    for _ in range(runs):
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
            _, bare = chat.stream([{"role": "user", "content": question}], clock)  # type: ignore[attr-defined]
            base_rows["total"].append(time.perf_counter() - clock.start)
            if clock.first is not None and clock.last is not None:
                base_rows["ttft"].append(clock.first - clock.start)
                if bare is not None and bare.completion_tokens > 1 and clock.last > clock.first:
                    base_rows["tokens_s"].append((bare.completion_tokens - 1) / (clock.last - clock.first))
    result: dict[str, Any] = {
        "prompt_tokens_median": statistics.median(prompt_tokens),
        "rag": {k: {"p50": statistics.median(v), "p95": percentile(v, 0.95)} for k, v in rows.items() if v},
        "bare_question": {k: {"p50": statistics.median(v), "p95": percentile(v, 0.95)} for k, v in base_rows.items()},
    }
    result["ratio_total_p50"] = statistics.median(rows["total"]) / statistics.median(base_rows["total"])
    result["ratio_ttft_p50"] = statistics.median(rows["ttft"]) / statistics.median(base_rows["ttft"])
    return result


def cpu_name() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def system_info() -> str:
    """The instruction sets the loaded llama.cpp uses (its own report, trimmed to the flags that are on)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    return " ".join(part.split("=")[0].strip() for part in info.split("|") if part.strip().endswith("= 1"))


if __name__ == "__main__":
    main()
