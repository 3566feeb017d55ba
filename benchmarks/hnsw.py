"""Recall of Chroma's HNSW index against exact search, for the settings the store uses and for Chroma's defaults.

Random unit vectors in 384 dimensions (the embedding's size) are inserted into a fresh embedded Chroma collection,
and 200 random unit queries ask for their 10 nearest neighbours; recall@10 is the share of the exact top 10
(numpy, brute force) that the index returns. Random vectors have no cluster structure, so they are the hard case
for a graph index: real embeddings are found more easily. Build time (insertion, the index built as it goes) and
query time are reported too; they depend on the machine's load, recall does not.

    .venv/bin/python benchmarks/hnsw.py --sizes 20000 100000 [--defaults] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np

from rag.store import HNSW


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def measure(size: int, hnsw: dict[str, Any], queries: int = 200) -> dict[str, Any]:
    import chromadb

    data, probes = unit(size, 0), unit(queries, 1)
    with tempfile.TemporaryDirectory() as folder:
        client = chromadb.PersistentClient(path=folder)
        collection = client.create_collection(
            "bench", configuration={"hnsw": {"space": "cosine", **hnsw}}, embedding_function=None
        )
        batch = client.get_max_batch_size()
        ids = [str(i) for i in range(size)]
        tick = time.perf_counter()
        for start in range(0, size, batch):
            collection.add(ids=ids[start : start + batch], embeddings=data[start : start + batch])
        build = time.perf_counter() - tick
        tick = time.perf_counter()
        found = collection.query(query_embeddings=probes, n_results=10, include=[])
        query = (time.perf_counter() - tick) / queries
    exact = np.argsort(-(probes @ data.T), axis=1)[:, :10]
    hits = [len({int(i) for i in got} & set(want)) for got, want in zip(found["ids"], exact, strict=True)]
    recall = float(np.mean(hits)) / 10
    return {"size": size, "settings": hnsw or "chroma defaults", "recall_at_10": round(recall, 4),
            "build_seconds": round(build, 1), "query_ms": round(query * 1000, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--defaults", action="store_true", help="Also measure Chroma's default settings.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        for settings in ([{}] if args.defaults else []) + [HNSW]:
            row = measure(size, settings)
            rows.append(row)
            if not args.json:
                print(
                    f"{size:>9,} vectors  {json.dumps(row['settings']):<70} recall@10 {row['recall_at_10']:.3f}  "
                    f"build {row['build_seconds']:.1f} s  query {row['query_ms']:.2f} ms",
                    flush=True,
                )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
