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
- `mixed`: for sizes whose embedding would take hours (a million texts, about ten here). Every sentence of the
  shipped abstracts is embedded once, and each vector is the normalised sum of two sentence vectors from two
  different abstracts (distinct pairs), a stand-in for the vector of the two-sentence text; queried by single
  sentences, as `text` is. The run reports how close such sums come to the model's vectors of the same texts
  (cosine, on 200 of them), and at 100,000 the recall of both kinds can be compared.

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
from page import printed

from rag.citations import split_answer
from rag.store import HNSW


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _sentences() -> tuple[int, list[tuple[int, str]]]:
    """The number of shipped papers, and every sentence of their abstracts of 4 words or more, with its paper."""
    from rag.config import Settings
    from rag.corpus import merge_records, parse_file

    files = sorted(Settings().corpus.glob("*.txt"))
    papers = merge_records(r for path in files for r in parse_file(path).records)  # one per paper, as ingest does
    sentences = [[s for s in split_answer(p.abstract) if len(s.split()) >= 4] for p in papers]
    return len(papers), [(i, s) for i, group in enumerate(sentences) for s in group]


def _pairs(pool: list[tuple[int, str]], size: int, rng: Any) -> list[tuple[int, int]]:
    """`size` distinct pairs of sentences from two different abstracts."""
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < size:
        a, b = rng.randrange(len(pool)), rng.randrange(len(pool))
        if pool[a][0] != pool[b][0]:
            pairs.add((a, b))
    return sorted(pairs)


def texts(size: int, queries: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Model vectors of `size` two-sentence texts and of `queries` single sentences, from the shipped corpus."""
    import random

    from rag.config import Settings
    from rag.embedding import load_embedder

    count, pool = _sentences()
    target = cache / f"text-{count}papers-{size}-{queries}.npz"
    if target.exists():
        saved = np.load(target)
        return saved["data"], saved["probes"]
    rng = random.Random(0)
    pairs = _pairs(pool, size, rng)
    embedder = load_embedder(Settings())
    data = np.asarray(embedder.embed_documents([f"{pool[a][1]} {pool[b][1]}" for a, b in pairs]))
    probes = np.asarray(embedder.embed_documents([pool[rng.randrange(len(pool))][1] for _ in range(queries)]))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(target, data=data.astype(np.float32), probes=probes.astype(np.float32))
    return data.astype(np.float32), probes.astype(np.float32)


def mixed(size: int, queries: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Normalised sums of two sentence vectors (see the module's notes) and `queries` single sentence vectors; prints
    how close 200 such sums come to the model's vectors of the two-sentence texts."""
    import random

    from rag.config import Settings
    from rag.embedding import load_embedder

    count, pool = _sentences()
    target = cache / f"sentences-{count}papers.npy"
    embedder = load_embedder(Settings())
    if target.exists():
        sentence_vectors = np.load(target)
    else:
        sentence_vectors = np.asarray(embedder.embed_documents([text for _, text in pool]), dtype=np.float32)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(target, sentence_vectors)
    rng = random.Random(0)
    pairs = np.asarray(_pairs(pool, size, rng))
    data = sentence_vectors[pairs[:, 0]] + sentence_vectors[pairs[:, 1]]
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    sample = pairs[:200]
    embedded = np.asarray(embedder.embed_documents([f"{pool[a][1]} {pool[b][1]}" for a, b in sample]))
    closeness = (embedded * data[:200]).sum(axis=1)
    print(f"sums against the model's vectors of the same texts: cosine median {np.median(closeness):.3f}, "
          f"min {closeness.min():.3f}", flush=True)  # fmt: skip
    probes = sentence_vectors[[rng.randrange(len(pool)) for _ in range(queries)]]
    return data.astype(np.float32), probes.astype(np.float32)


def measure(size: int, hnsw: dict[str, Any], vectors: str, cache: Path, queries: int = 200) -> dict[str, Any]:
    import chromadb

    make = {"random": lambda: (unit(size, 0), unit(queries, 1)), "text": lambda: texts(size, queries, cache),
            "mixed": lambda: mixed(size, queries, cache)}  # fmt: skip
    data, probes = make[vectors]()
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
    parser.add_argument("--vectors", choices=("random", "text", "mixed"), default="random")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "rag-hnsw-bench")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--page", action="store_true", help="also write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    with printed(f"hnsw-{args.vectors}", args.page and not args.json):
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
