"""The local embedding model, loaded from the installed package with no network."""

from __future__ import annotations

import math

from rag.embedding import LOCAL_MODEL_NAME, Embedder, LocalEmbedder


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False))


def test_local_model_gives_unit_vectors_that_rank_a_paraphrase_above_an_unrelated_text() -> None:
    embedder = LocalEmbedder(precision="float32")
    assert isinstance(embedder, Embedder) and embedder.name == LOCAL_MODEL_NAME
    query = embedder.embed_query("combining the weights of several fine-tuned networks into one")
    merge, weather = embedder.embed_documents(
        ["We merge models by averaging their parameters.", "Rain removal restores detail in photographs."]
    )
    assert len(query) == 384 and math.isclose(sum(x * x for x in query), 1.0, rel_tol=1e-4)
    assert cosine(query, merge) > cosine(query, weather) + 0.2


def test_bfloat16_vectors_match_float32_ones() -> None:
    texts = ["Sharpness-aware minimization smooths the loss landscape.", "A benchmark for tactile sensors."]
    exact = LocalEmbedder(precision="float32").embed_documents(texts)
    fast = LocalEmbedder(precision="bfloat16").embed_documents(texts)
    assert all(cosine(a, b) > 0.999 for a, b in zip(exact, fast, strict=False))
