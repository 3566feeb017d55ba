"""The `openai` backend against a real OpenAI-compatible server: llama-cpp-python's own `llama_cpp.server`,
started on 127.0.0.1 with the bundled model; and `rag eval --backend openai --judge openai` end to end through
it on a development question."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rag
from tests.conftest import REPO, run_rag, serve_on_a_free_port, wait_http
from tests.fixed_set import Observed, ask_all, assert_every_answer_right, assert_mostly_own_words
from tests.test_hostile import assert_a_model_never_backs_the_planted_instruction

MODEL_ALIAS = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture(scope="module")
def llama_server(bundled: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` serving the bundled model on a free loopback port; its base URL."""
    log = tmp_path_factory.mktemp("llama-server") / "server.log"

    def start(port: int) -> subprocess.Popen:  # type: ignore[type-arg]
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled), "--model_alias", MODEL_ALIAS,
                   "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"]  # fmt: skip
        with open(log, "a") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    process, port = serve_on_a_free_port(
        start, lambda port, process: wait_http(f"http://127.0.0.1:{port}/v1/models", process, log, seconds=180)
    )
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def endpoint(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    return llama_server


@pytest.fixture(scope="module")
def served_answers(full_store, llama_server: str) -> Iterator[list[Observed]]:  # type: ignore[no-untyped-def]
    """The fixed set asked through the server, with what the model wrote."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_BASE_URL", llama_server)
        patch.setenv("OPENAI_API_KEY", "sk-local-test")
        settings = full_store[0].model_copy(update={"llm_model": MODEL_ALIAS, "llm_retries": 0})
        yield ask_all(rag.Pipeline(settings), "openai")


@pytest.mark.slow
def test_every_answer_through_a_real_llama_server_is_right_whoever_wrote_it(served_answers: list[Observed]) -> None:
    assert_every_answer_right(served_answers, "openai")


@pytest.mark.slow
def test_the_served_model_answers_most_of_the_fixed_set_in_its_own_words(served_answers: list[Observed]) -> None:
    assert_mostly_own_words(served_answers)


@pytest.mark.slow
def test_rag_eval_runs_end_to_end_with_a_real_model_as_answerer_and_judge(
    full_store, endpoint: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    rows = [json.loads(line) for line in (REPO / "eval" / "questions.jsonl").read_text().splitlines()]
    # One question: a 0.5B judge splits each sentence into claims and checks each with a call of its own.
    chosen = [row for row in rows if row["id"] == "q-c-010"]
    assert len(chosen) == 1
    questions = tmp_path / "one.jsonl"
    questions.write_text("".join(json.dumps(row) + "\n" for row in chosen))
    out = tmp_path / "report"
    env = {"OPENAI_BASE_URL": endpoint, "OPENAI_API_KEY": os.environ["OPENAI_API_KEY"], "RAG_LLM_MODEL": MODEL_ALIAS}
    result = run_rag("eval", "--questions", str(questions), "--backend", "openai", "--judge", "openai",
                     "--out", str(out), home=settings.home, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["backend"] == "openai" and report["config"]["judge"] == "openai"
    assert report["config"]["llm_model"] == MODEL_ALIAS
    (row,) = report["questions"]
    assert row["answerable"] and row["hit"] == 1.0 and row["cites_gold"] == 1.0
    assert row["completion_tokens"] and row["prompt_tokens"] > 100  # the model was asked, and wrote
    # scored by the model as judge: a share of the answer's claims (the 0.5B judge's verdicts vary by CPU)
    assert 0.0 <= row["faithfulness"] <= 1.0 and report["overall"]["faithfulness"] == row["faithfulness"]


@pytest.mark.slow
def test_a_planted_instruction_never_comes_back_through_the_server_as_a_supported_claim(
    planted_store: rag.Settings, endpoint: str
) -> None:
    settings = planted_store.model_copy(update={"llm_model": MODEL_ALIAS, "llm_retries": 0})
    assert_a_model_never_backs_the_planted_instruction(rag.Pipeline(settings), "openai")
