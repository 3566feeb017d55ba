"""ask() benchmark on the shipped corpus with the extractive answerer: warm latency p50/p95 over the development
questions, split into retrieval, answering and citation checking, and the wall time of a cold `rag ask`
(process start to printed answer).

Each question is asked with the embedder's memory of recent texts emptied first (what a question about papers
no earlier question read costs; the sentence vectors ingest stored stay), and once more in a session: one pass
over the questions in order, remembering as a long-lived process does (what `rag eval` and a user asking about
related papers see).

Baselines, measured in the same run: the same questions on a store ingested without sentence vectors
(RAG_STORE_SENTENCES=0: each question embeds its passages' sentences), embedding one question (the floor under
retrieval), and a cold process that only imports what any answer needs, chromadb and onnxruntime (the floor
under a cold `rag ask`).

    .venv/bin/python benchmarks/ask.py --runs 5 [--json] [--questions FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rag
from rag.api import Pipeline
from rag.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page import printed

RAG_BIN = Path(sys.executable).parent / "rag"
QUESTIONS = Path(__file__).resolve().parents[1] / "eval" / "questions.jsonl"
COLD_QUESTION = "Which papers here merge fine-tuned models, and how do their methods differ?"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def cold_seconds(command: list[str], home: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(home), RAG_BACKEND="extractive")
    tick = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="passes over the questions, and cold runs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--questions", type=Path, default=QUESTIONS, help="a question file (default: the development set)"
    )
    parser.add_argument("--page", action="store_true", help="also write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines()]
    with tempfile.TemporaryDirectory() as base:
        settings = Settings(home=Path(base) / "home", backend="extractive")
        rag.ingest(settings=settings)
        plain_settings = settings.model_copy(update={"home": Path(base) / "plain", "store_sentences": False})
        rag.ingest(settings=plain_settings)
        pipe, plain = Pipeline(settings), Pipeline(plain_settings)
        for each in (pipe, plain):
            each.warm()  # a long-lived process, as the UI and evaluation runs are
            for question in questions[:3]:
                each.ask(question)  # warm-up: model, index, sentence tokenizer
        plain_total: list[float] = []
        stages: dict[str, list[float]] = {"retrieval": [], "answer": [], "check": [], "total": []}
        embed: list[float] = []

        def forget() -> None:
            for each in (pipe, plain):
                getattr(each.embedder, "forget", lambda: None)()

        session = []
        forget()
        for question in questions:
            session.append(pipe.ask(question).seconds["total"])
        for _ in range(args.runs):
            for question in questions:
                forget()
                answer = pipe.ask(question)
                for stage in stages:
                    stages[stage].append(answer.seconds[stage])
                forget()
                plain_total.append(plain.ask(question).seconds["total"])
                forget()
                tick = time.perf_counter()
                pipe.embedder.embed_query(question)
                embed.append(time.perf_counter() - tick)
        cold = [cold_seconds([str(RAG_BIN), "ask", COLD_QUESTION], settings.home) for _ in range(args.runs)]
        floor = [
            cold_seconds([sys.executable, "-c", "import chromadb, onnxruntime"], settings.home)
            for _ in range(args.runs)
        ]
    report = {
        **{f"{stage}_p50": statistics.median(values) for stage, values in stages.items()},
        **{f"{stage}_p95": percentile(values, 0.95) for stage, values in stages.items()},
        "session_total_p50": statistics.median(session),
        "session_total_p95": percentile(session, 0.95),
        "embed_query_p50": statistics.median(embed),
        "baseline_without_sentences_total_p50": statistics.median(plain_total),
        "cold_rag_ask_median": statistics.median(cold),
        "cold_import_floor_median": statistics.median(floor),
        "asks": len(stages["total"]),
    }
    report["total_over_without_sentences_p50"] = report["total_p50"] / report["baseline_without_sentences_total_p50"]
    report["retrieval_over_embed_p50"] = report["retrieval_p50"] / report["embed_query_p50"]
    report["cold_over_floor"] = report["cold_rag_ask_median"] / report["cold_import_floor_median"]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    with printed("ask", args.page):
        show(report, len(questions), args.runs)


def show(report: dict[str, float], questions: int, runs: int) -> None:
    print(f"warm ask(), extractive, {report['asks']} questions ({questions} × {runs}), memory emptied")
    for stage in ("retrieval", "answer", "check", "total"):
        print(f"  {stage:<9} p50 {report[f'{stage}_p50']:.3f}   p95 {report[f'{stage}_p95']:.3f}")
    print(
        f"  a session of {questions} questions, remembering: total p50 {report['session_total_p50']:.3f}   "
        f"p95 {report['session_total_p95']:.3f}"
    )
    print(
        f"  baseline: the same store without sentence vectors, total p50 "
        f"{report['baseline_without_sentences_total_p50']:.3f} (ratio {report['total_over_without_sentences_p50']:.2f})"
    )
    print(
        f"  baseline: embedding the question alone p50 {report['embed_query_p50']:.3f} "
        f"(retrieval / baseline = {report['retrieval_over_embed_p50']:.1f})"
    )
    print(
        f"cold `rag ask` (process start to printed answer), median of {runs}: "
        f"{report['cold_rag_ask_median']:.2f} s; baseline: a process importing chromadb and onnxruntime "
        f"{report['cold_import_floor_median']:.2f} s (ratio {report['cold_over_floor']:.2f})"
    )


if __name__ == "__main__":
    main()
