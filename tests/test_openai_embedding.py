"""Embeddings from an OpenAI-compatible endpoint, through a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag
from rag.config import Settings
from rag.errors import EmbeddingError
from tests.conftest import SEED, run_rag
from tests.openai_server import EMBEDDING_DIMENSION, refusing_port, serve

KEY = "sk-test-secret-0123456789"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with serve() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield server


def test_ingest_with_an_openai_embedding_model_stores_its_vectors_in_their_own_collection(
    endpoint, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path / "home", embedding="openai:test-embed", embed_batch=50)
    report = rag.ingest([SEED["000"]], settings=settings)
    assert (report.new, report.failed_files) == (11, [])
    calls = [r for r in endpoint.requests if r.path == "/v1/embeddings"]
    assert calls and all(r.body["model"] == "test-embed" for r in calls)
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in calls)
    # every chunk's text, and every paper's title and abstract whole
    assert sum(len(r.body["input"]) for r in calls) == report.chunks_embedded + report.new
    stats = rag.store_stats(settings)
    assert (stats.embedder, stats.papers) == ("openai:test-embed", 11)
    local = rag.store_stats(Settings(home=tmp_path / "home"))
    assert local.papers == 0  # the local model's collections are separate and still empty

    from rag.embedding import load_embedder

    assert len(load_embedder(settings).embed_query("model merging")) == EMBEDDING_DIMENSION


def test_a_failing_embeddings_endpoint_is_one_line_naming_it_without_the_key(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    endpoint.faults.extend([(500, {})] * 3)  # the first try and both retries
    result = run_rag(
        "ingest",
        str(SEED["000"]),
        home=tmp_path / "home",
        env={"RAG_EMBEDDING": "openai:test-embed", "OPENAI_BASE_URL": endpoint.base_url, "OPENAI_API_KEY": KEY},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: embeddings endpoint {endpoint.base_url}/ answered HTTP 500 for model 'test-embed' after retries; "
        "check the model name and the server"
    )
    assert KEY not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert len(endpoint.requests) == 3


def test_an_openai_embedding_model_without_a_key_or_server_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(rag.ConfigError, match="needs OPENAI_API_KEY"):
        rag.ingest([SEED["000"]], settings=Settings(home=tmp_path, embedding="openai:text-embedding-3-small"))


def test_an_unreachable_endpoint_is_an_embedding_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with refusing_port() as port:
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        with pytest.raises(EmbeddingError, match="failed \\(APIConnectionError\\); check OPENAI_BASE_URL"):
            rag.ingest([SEED["000"]], settings=Settings(home=tmp_path, embedding="openai:x"))
