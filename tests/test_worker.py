"""Ingest's embedding in child processes (rag/worker.py): the same store as embedding in turn, a parent that
never loads torch, and a child that dies mid-ingest."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rag
from rag.config import Settings
from rag.embedding import embedder_name
from rag.errors import EmbeddingError
from rag.store import open_store
from rag.types import Paper
from rag.worker import close_pool, embedding_pool


def stored(
    settings: Settings,
) -> tuple[dict[str, Paper], dict[str, tuple[str, dict[str, Any]]], dict[str, list[float]]]:
    store = open_store(settings, embedder_name(settings))
    papers = {pid: sp.paper for pid, sp in store.papers().items()}
    rows = {cid: (text, meta) for cid, text, meta in store.chunk_rows()}
    return papers, rows, store.vectors(list(rows))


def test_ingest_embedding_in_child_processes_stores_what_embedding_in_turn_stores(corpus: Path, tmp_path: Path) -> None:
    kinds = {}
    for embed_process in (True, False):
        settings = Settings(
            home=tmp_path / str(embed_process), chroma_host=None, chroma_port=None, ingest_batch=16,
            embed_process=embed_process,
        )  # fmt: skip
        report = rag.ingest([corpus], settings=settings)
        assert report.new == report.found == 61 and report.chunks_embedded == report.chunks_total
        kinds[embed_process] = stored(settings)
    (papers, rows, vectors), (papers_turn, rows_turn, vectors_turn) = kinds[True], kinds[False]
    assert papers == papers_turn and rows == rows_turn and len(rows) > 61
    for chunk_id, vector in vectors.items():
        other = vectors_turn[chunk_id]
        assert sum(a * b for a, b in zip(vector, other, strict=True)) > 0.9999, chunk_id
        assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-5)


def test_a_script_without_a_main_guard_ingests_through_the_children_without_loading_torch(
    corpus: Path, tmp_path: Path
) -> None:
    script = (
        "import sys, rag\n"
        "from rag.config import Settings\n"
        f"settings = Settings(home={str(tmp_path / 'home')!r}, ingest_batch=16)\n"
        f"report = rag.ingest([{str(corpus)!r}], settings=settings)\n"
        "print(report.new, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["61", "False"]


def test_a_child_that_dies_mid_ingest_fails_it_in_one_line_and_the_next_run_completes_it(
    corpus: Path, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home", chroma_host=None, chroma_port=None, ingest_batch=8)
    killed: list[int] = []

    def kill_after_the_first_batch(stage: str, done: int, total: int) -> None:
        if done >= 8 and not killed:
            pool = embedding_pool(settings.embed_batch, settings.embed_precision, _models(settings))
            process = pool.processes[1]._process
            process.kill()
            killed.append(process.wait())

    try:
        with pytest.raises(EmbeddingError) as caught:
            rag.ingest([corpus], settings=settings, progress=kill_after_the_first_batch)
        message = str(caught.value)
        assert "\n" not in message and "embedding process ended" in message and "run `rag ingest` again" in message
        committed = len(stored(settings)[0])
        assert committed % 8 == 0 and 8 <= committed < 61

        again = rag.ingest([corpus], settings=settings)  # a new pool replaces the one with a dead child
        assert (again.new, again.unchanged) == (61 - committed, committed)
        papers, rows, _ = stored(settings)
        assert len(papers) == 61 and {meta["paper_id"] for _, meta in rows.values()} == set(papers)
    finally:
        close_pool()


def _models(settings: Settings) -> Path:
    from rag.models import models_dir

    return models_dir(settings.home)
