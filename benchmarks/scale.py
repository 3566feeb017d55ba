"""Scale benchmark: how ingest, a cold `rag ask`, its memory, a warm question and the dense index's recall grow
with the collection.

Synthetic papers are written as a daily-papers page (the layout of the shipped 001/003/004 files): a title, the
abstract, and an "N authors · date" block. Each abstract has as many sentences as a shipped abstract picked at
random, each drawn at random from all the shipped abstracts' sentences (so lengths, vocabulary and chunk counts
follow the corpus's), under a title made of words of real titles and a serial number, so that no two
synthetic papers are the same paper.

Steps, each on top of the last, in one RAG_HOME:
  1. the shipped corpus (336 papers), ingested by `rag ingest`;
  2. + `--papers` synthetic papers (default 5,000), ingested by `rag ingest FILE`: papers/s and where the time
     goes;
  3. optionally (`--direct N`) + N more synthetic papers whose vectors are made, not embedded (a real chunk's
     vector mixed with another's and renormalised) and written straight to the store and the catalogue: it
     measures the index and start-up at sizes whose embedding would take hours here.
After each step: a cold `rag ask` as a fresh process (median of `--runs`, with its peak RSS), warm p50/p95 of
`Pipeline.ask` over the questions below, and recall@10 of Chroma's HNSW search against exact search over the
stored chunk vectors (200 probe questions' vectors).

    .venv/bin/python benchmarks/scale.py --papers 5000 --runs 3 [--direct 100000] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from page import printed

import rag
from rag.citations import split_answer
from rag.config import Settings

RAG_BIN = Path(sys.executable).parent / "rag"
QUESTIONS = [
    "Which papers merge fine-tuned models, and how do their methods differ?",
    "How does Sparse SAM choose which weights to perturb?",
    "What sparsity does SSAM use in its experiments?",
    "Which methods detect out-of-distribution data?",
    "What is model merging?",
]
COLD_QUESTION = "How does Fisher merging weight the parameters?"


@functools.cache
def _shipped() -> tuple[list[str], list[int], list[str]]:
    """The shipped abstracts' sentences, their sentence counts, and the words of their titles."""
    from rag.corpus import merge_records, parse_file

    files = sorted(Settings().corpus.glob("*.txt"))
    papers = merge_records(r for path in files for r in parse_file(path).records)
    split = [split_answer(p.abstract) for p in papers]
    title_words = [w for p in papers for w in (p.title or "").split() if w.isalpha()]
    return [s for parts in split for s in parts], [len(parts) for parts in split], title_words


def synthetic_page(count: int, seed: int, start: int = 0) -> str:
    """`count` synthetic papers as a daily-papers page (see the module docstring)."""
    rng = random.Random(seed)
    sentences, lengths, title_words = _shipped()
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    blocks = []
    for number in range(start, start + count):
        title = " ".join(rng.choice(title_words) for _ in range(rng.randint(4, 9))) + f" (S{number})"
        abstract = " ".join(rng.choice(sentences) for _ in range(rng.choice(lengths)))
        date = f"{rng.choice(months)} {rng.randint(1, 28)}, {rng.randint(2019, 2025)}"
        blocks.append(f"{title}\n\n{abstract}\n\n  • {rng.randint(1, 12)} authors\n·\n{date}\n")
    return "\n".join(blocks)


def _python(script: str, args: list[str], home: Path) -> str:
    """What a Python snippet prints, run as a fresh process on the store in `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def _command(args: list[str], home: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a `rag` command as a fresh process."""
    script = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    seconds, rss = _python(script, args, home).split()
    return float(seconds), float(rss)


def measure(home: Path, runs: int) -> dict[str, float]:
    """Cold ask (median, and peak RSS), warm p50/p95, and HNSW recall@10 for the store in `home`."""
    cold = [_command([str(RAG_BIN), "ask", COLD_QUESTION], home) for _ in range(runs)]
    settings = Settings(home=home, chroma_host=None, chroma_port=None)
    pipe = rag.pipeline(settings)
    pipe.ask(QUESTIONS[0], backend="extractive")  # warm-up
    warm = []
    for _ in range(runs):
        for question in QUESTIONS:
            tick = time.perf_counter()
            pipe.ask(question, backend="extractive")
            warm.append(time.perf_counter() - tick)
    warm.sort()
    return {
        "papers": rag.store_stats(settings=settings).papers,
        "cold_ask_s": statistics.median(c[0] for c in cold),
        "cold_ask_rss_mb": max(c[1] for c in cold),
        "warm_p50_s": statistics.median(warm),
        "warm_p95_s": warm[min(len(warm) - 1, int(0.95 * len(warm)))],
        "recall_at_10": recall_at_10(settings, pipe),
    }


def recall_at_10(settings: Settings, pipe: rag.Pipeline, probes: int = 200) -> float:
    """Share of the exact 10 nearest chunks (by cosine over every stored chunk vector) that Chroma's search
    returns, over the vectors of `probes` questions made from the corpus's sentences."""
    import numpy as np

    store = pipe.retriever.store
    ids, vectors = store.all_vectors()
    matrix = np.asarray(vectors, dtype=np.float32)
    rng = random.Random(3)
    papers = rag.list_papers(settings=settings)
    texts = [rng.choice(split_answer(rng.choice(papers).abstract)) for _ in range(probes)]
    found = 0
    for text in texts:
        query = pipe.embedder.embed_query(text)
        exact = {ids[i] for i in np.argsort(-(matrix @ np.asarray(query, dtype=np.float32)))[:10]}
        found += len(exact & {cid for cid, _ in store.query(query, 10)})
    return found / (10 * probes)


def ingest_file(home: Path, text: str, name: str) -> dict[str, float]:
    """`rag ingest FILE` of one synthetic page, as a fresh process: papers/s, and the stages' seconds."""
    folder = home / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    script = (
        "import json, sys, rag\n"
        "report = rag.ingest([sys.argv[1]])\n"
        "print(json.dumps({'new': report.new, 'seconds': report.seconds}))\n"
    )
    tick = time.perf_counter()
    report = json.loads(_python(script, [str(path)], home))
    seconds = time.perf_counter() - tick
    return {
        "papers": report["new"],
        "seconds": seconds,
        "papers_per_s": report["new"] / seconds,
        **{f"stage_{k}_s": v for k, v in report["seconds"].items()},
    }


def insert_direct(home: Path, count: int, seed: int, start: int) -> float:
    """Write `count` synthetic papers with made vectors straight to the store and catalogue; seconds taken."""
    import numpy as np

    from rag.catalogue import open_catalogue
    from rag.chunking import Chunker
    from rag.corpus import merge_records, parse_text
    from rag.ingest import content_hash, meta_hash
    from rag.lexical import ChunkRow
    from rag.store import PaperWrite, open_store

    settings = Settings(home=home, chroma_host=None, chroma_port=None)
    store = open_store(settings, "all-MiniLM-L6-v2")
    catalogue = open_catalogue(settings)
    _, pool = store.all_vectors()
    pool_matrix = np.asarray(pool, dtype=np.float32)
    rng = np.random.default_rng(seed)
    chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap)
    tick = time.perf_counter()
    catalogue.mark(None)
    batch = 2000
    for first in range(start, start + count, batch):
        size = min(batch, start + count - first)
        records = parse_text(synthetic_page(size, seed + first, first), f"direct-{first}.txt").records
        writes = []
        for record in records:
            (paper,) = merge_records([record])
            chunks = chunker.chunk(paper)
            mixed = (
                pool_matrix[rng.integers(0, len(pool_matrix), len(chunks))] * 0.7
                + pool_matrix[rng.integers(0, len(pool_matrix), len(chunks))] * 0.3
                + rng.normal(0, 0.02, (len(chunks), pool_matrix.shape[1])).astype(np.float32)
            )
            mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
            writes.append(
                PaperWrite(
                    paper=paper,
                    records=[record],
                    content_hash=content_hash(paper, chunker),
                    meta_hash=meta_hash(paper),
                    n_chunks=len(chunks),
                    chunks=chunks,
                    vectors=mixed.tolist(),
                    whole=(mixed.sum(0) / np.linalg.norm(mixed.sum(0))).tolist(),
                )
            )
        store.write(writes)
        catalogue.add(
            [(w.paper, w.records) for w in writes],
            [ChunkRow(c.chunk_id, w.paper.paper_id, c.start, c.end, c.text) for w in writes for c in w.chunks],
        )
    catalogue.mark(store.stamp())
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=5000, help="synthetic papers ingested by `rag ingest`")
    parser.add_argument("--direct", type=int, default=0, help="synthetic papers then written with made vectors")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None, help="keep the store here (default: a temp folder)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--page", action="store_true", help="also write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    steps: list[dict[str, object]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_HOME"] = str(home)
    tick = time.perf_counter()
    subprocess.run([str(RAG_BIN), "ingest"], env=env, check=True, capture_output=True)
    steps.append({"step": "shipped corpus", "ingest_s": time.perf_counter() - tick, **measure(home, args.runs)})
    os.environ["RAG_HOME"] = str(home)
    if args.papers:
        ingest = ingest_file(home, synthetic_page(args.papers, seed=1), "synthetic-0.txt")
        steps.append({"step": f"+{args.papers} ingested", **ingest, **measure(home, args.runs)})
    if args.direct:
        seconds = insert_direct(home, args.direct, seed=2, start=args.papers)
        steps.append({"step": f"+{args.direct} written directly", "write_s": seconds, **measure(home, args.runs)})
    base = steps[0]
    for step in steps:
        step["cold_ask_ratio"] = float(step["cold_ask_s"]) / float(base["cold_ask_s"])  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"home": str(home), "steps": steps}, indent=2))
        return
    with printed("scale", args.page):
        for step in steps:
            print(
                f"{step['step']:>28}: {step['papers']:>7} papers · cold ask {step['cold_ask_s']:.2f} s "
                f"({step['cold_ask_ratio']:.2f}x), RSS {step['cold_ask_rss_mb']:.0f} MB · warm p50 "
                f"{step['warm_p50_s'] * 1000:.0f} ms, p95 {step['warm_p95_s'] * 1000:.0f} ms · recall@10 "
                f"{step['recall_at_10']:.3f}"
                + (f" · ingest {step['papers_per_s']:.1f} papers/s" if "papers_per_s" in step else "")
            )
    print(f"store kept in {home}")


if __name__ == "__main__":
    main()
