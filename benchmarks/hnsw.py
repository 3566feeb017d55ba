"""Recall of Chroma's HNSW index against exact search, for the settings the store uses and for Chroma's defaults.

Unit vectors in 384 dimensions (the embedding's size) are inserted into a fresh embedded Chroma collection, and
200 queries ask for their 10 nearest neighbours; recall@10 is the share of the exact top 10 (numpy, brute force)
that the index returns. Build time (insertion, the index built as it goes) and query time are reported too; they
depend on the machine's load, recall does not.

The vectors (--vectors):
- `random`: random unit vectors, queried by random unit vectors. They have no cluster structure: the hard case
  for a graph index.
- `text`: the embedding model's vectors of texts made from the shipped abstracts, each two sentences of two
  different abstracts (distinct pairs, so every sentence recurs in many texts, as topics recur in a collection),
  queried by the vectors of single corpus sentences. Embedding 100,000 of them takes about ten minutes here;
  they are kept in --cache and reused.

    .venv/bin/python benchmarks/hnsw.py --sizes 20000 100000 [--defaults] [--vectors random|text] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.store import HNSW


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def texts(size: int, queries: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Model vectors of `size` two-sentence texts and of `queries` single sentences, from the shipped corpus."""
    import random

    import rag
    from rag.config import Settings
    from rag.corpus import merge_records, parse_file
    from rag.embedding import load_embedder

    files = sorted(Settings().corpus.glob("*.txt"))
    papers = merge_records(r for path in files for r in parse_file(path).records)  # one per paper, as ingest does
    target = cache / f"text-{len(papers)}papers-{size}-{queries}.npz"
    if target.exists():
        saved = np.load(target)
        return saved["data"], saved["probes"]
    sentences = [[s for s in rag.split_answer(p.abstract) if len(s.split()) >= 4] for p in papers]
    pool = [(i, s) for i, group in enumerate(sentences) for s in group]
    rng = random.Random(0)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < size:
        a, b = rng.randrange(len(pool)), rng.randrange(len(pool))
        if pool[a][0] != pool[b][0]:
            pairs.add((a, b))
    embedder = load_embedder(Settings())
    data = np.asarray(embedder.embed_documents([f"{pool[a][1]} {pool[b][1]}" for a, b in sorted(pairs)]))
    probes = np.asarray(embedder.embed_documents([pool[rng.randrange(len(pool))][1] for _ in range(queries)]))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(target, data=data.astype(np.float32), probes=probes.astype(np.float32))
    return data.astype(np.float32), probes.astype(np.float32)


def measure(size: int, hnsw: dict[str, Any], vectors: str, cache: Path, queries: int = 200) -> dict[str, Any]:
    import chromadb

    data, probes = (unit(size, 0), unit(queries, 1)) if vectors == "random" else texts(size, queries, cache)
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
    return {"size": size, "vectors": vectors, "settings": hnsw or "chroma defaults", "recall_at_10": round(recall, 4),
            "build_seconds": round(build, 1), "query_ms": round(query * 1000, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--defaults", action="store_true", help="Also measure Chroma's default settings.")
    parser.add_argument("--vectors", choices=("random", "text"), default="random")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "rag-hnsw-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        for settings in ([{}] if args.defaults else []) + [HNSW]:
            row = measure(size, settings, args.vectors, args.cache)
            rows.append(row)
            if not args.json:
                print(
                    f"{size:>9,} {args.vectors} vectors  {json.dumps(row['settings']):<70} "
                    f"recall@10 {row['recall_at_10']:.3f}  "
                    f"build {row['build_seconds']:.1f} s  query {row['query_ms']:.2f} ms",
                    flush=True,
                )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
