"""An ingest's memory and time as its file and the store grow: `rag ingest FILE` of an arXiv snapshot whose
papers are all stored already (so nothing is embedded, and what is measured is reading, settling and planning),
against another checkout's code in the same run.

    .venv/bin/python benchmarks/reingest.py --sizes 5000 20000 --runs 3 [--baseline PATH]

For each size, a snapshot file of that many distinct papers is made as benchmarks/snapshot.py makes it, every
record under cs.LG. Its papers are written straight to an empty store and its catalogue, with random unit vectors
in place of embeddings (embedding 20,000 papers would take a quarter of an hour here). Then `rag ingest FILE`
runs as a fresh process, once to warm the files up and then `--runs` times, each timed with its peak RSS: every
paper is found and unchanged. `--baseline PATH` runs the same with the `rag` package of the checkout at PATH (for
example a `git worktree` of an older commit), in a copy of the home whose catalogue that code builds in its
warm-up run. The baseline `json.loads` of every line (keeping nothing) is what any reader of the file must do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.page import printed  # noqa: E402
from benchmarks.snapshot import cpu_name, make_snapshot  # noqa: E402

# Run in a child process (with PYTHONPATH choosing the code): one ingest, then its report and peak RSS as JSON.
CHILD = """
import json, resource, sys, time
from pathlib import Path
import rag
from rag.config import load_settings
start = time.perf_counter()
report = rag.ingest([Path(sys.argv[1])], settings=load_settings())
print(json.dumps({"seconds": time.perf_counter() - start, "found": report.found, "unchanged": report.unchanged,
                  "embedded": report.chunks_embedded,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def store_directly(path: Path, home: Path) -> None:
    """The papers of snapshot `path`, as an ingest would store them, with random unit vectors."""
    import numpy as np

    from rag.catalogue import open_catalogue
    from rag.chunking import Chunker
    from rag.config import Settings
    from rag.corpus import merge_records
    from rag.embedding import embedder_name
    from rag.formats import read_records
    from rag.identity import assign
    from rag.ingest import content_hash, meta_hash
    from rag.lexical import ChunkRow
    from rag.store import PaperWrite, open_store
    from rag.types import PaperRecord

    settings = Settings(home=home, chroma_host=None, chroma_port=None)
    store = open_store(settings, embedder_name(settings))
    catalogue = open_catalogue(settings)
    catalogue.sync(store)
    catalogue.mark(None)
    chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap)
    rng = np.random.default_rng(0)
    records = [r for r in read_records(path) if isinstance(r, PaperRecord)]
    for first in range(0, len(records), 2000):
        writes = []
        for record in assign(records[first : first + 2000]):
            (paper,) = merge_records([record])
            chunks = chunker.chunk(paper)
            vectors = rng.normal(size=(len(chunks), 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            writes.append(
                PaperWrite(paper, [record], content_hash(paper, chunker), meta_hash(paper), len(chunks), chunks,
                           vectors.tolist(), (vectors.sum(0) / np.linalg.norm(vectors.sum(0))).tolist())
            )  # fmt: skip
        store.write(writes)
        rows = [ChunkRow(c.chunk_id, w.paper.paper_id, c.start, c.end, c.text) for w in writes for c in w.chunks]
        catalogue.add([(w.paper, w.records) for w in writes], rows)
    catalogue.mark(store.stamp())


def reingest(path: Path, home: Path, code: Path) -> dict[str, float]:
    env = {**os.environ, "RAG_HOME": str(home), "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_baseline(path: Path) -> float:
    tick = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            json.loads(line)
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout whose rag package to compare")
    parser.add_argument("--page", action="store_true", help="also write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    with printed("reingest", args.page):
        print(f"{cpu_name()}; medians of {args.runs} runs of `rag ingest FILE` with every paper stored already")
        codes = {"this": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
        print(
            f"{'papers':>7} {'json.loads s':>12} " + " ".join(f"{name + ' s':>10} {name + ' MB':>10}" for name in codes)
        )
        with tempfile.TemporaryDirectory() as base:
            for size in args.sizes:
                path = Path(base) / f"snapshot-{size}.json"
                make_snapshot(path, size, size)
                home = Path(base) / f"home-{size}"
                store_directly(path, home)
                line = f"{size:>7,} {statistics.median(parse_baseline(path) for _ in range(args.runs)):>12.2f} "
                for name, code in codes.items():
                    where = home if name == "this" else Path(base) / f"home-{size}-{name}"
                    if where != home:
                        shutil.copytree(home, where)
                        shutil.rmtree(where / "catalogue")  # built by that code, in its warm-up run
                    reingest(path, where, code)
                    runs = [reingest(path, where, code) for _ in range(args.runs)]
                    assert all(r["found"] == r["unchanged"] == size and r["embedded"] == 0 for r in runs), runs
                    line += f"{statistics.median(r['seconds'] for r in runs):>10.2f} "
                    line += f"{statistics.median(r['peak_mb'] for r in runs):>10.0f} "
                print(line, flush=True)


if __name__ == "__main__":
    main()
