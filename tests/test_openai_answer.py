"""The OpenAI-compatible answerer against a real HTTP server on 127.0.0.1: the prompt it sends, streaming, token
budget and usage, citation checks on what the model wrote, and every fault the issue lists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.api import Pipeline
from rag.errors import LLMBadResponse, LLMError, LLMRateLimited, LLMServerError, LLMTimeout, LLMUnavailable
from rag.readable import short_name
from rag.templates import ABSTAIN_PHRASE
from tests.conftest import quoted_from, run_rag
from tests.openai_server import FakeOpenAI, Reply, refusing_port, serve

KEY = "sk-live-do-not-print-4242"
QUESTION = "How does Fisher merging approximate the posterior of each model?"
FISHER = "Merging Models with Fisher-Weighted Averaging"
FISHER_SENTENCE = (
    "We develop an alternative merging procedure based on the Laplace approximation where we approximate each "
    "model's posterior as a Gaussian distribution whose precision matrix corresponds to its Fisher information"
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with serve() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield fake


def pipe_for(full_store, **overrides: object) -> Pipeline:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    values = {"backend": "openai", "llm_model": "test-model", "llm_timeout": 5.0, "llm_retries": 2, **overrides}
    return Pipeline(settings.model_copy(update=values))


def chat_requests(server: FakeOpenAI) -> list:  # type: ignore[type-arg]
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


def test_the_prompt_numbers_the_passages_with_title_and_date_and_asks_for_citations(full_store, server) -> None:  # type: ignore[no-untyped-def]
    answer = pipe_for(full_store).ask(QUESTION)
    (request,) = chat_requests(server)
    body = request.body
    assert (body["model"], body["stream"], body["temperature"], body["max_tokens"]) == ("test-model", True, 0, 512)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    system, user = body["messages"]
    assert system["role"] == "system" and ABSTAIN_PHRASE in system["content"]
    assert "square brackets" in system["content"] and "no facts from your own knowledge" in system["content"]
    assert "prunes 50%" not in system["content"]  # no example answer a small model could copy
    assert user["content"].startswith(f"Question: {QUESTION}") and f"\nQuestion: {QUESTION}\n" in user["content"]
    headings = re.findall(r"^\[(\d+)\] (.+)$", user["content"], flags=re.M)
    # A question about one paper: the model reads the papers close to the best, one excerpt each.
    assert 1 <= len(headings) < len({p.paper_id for p in answer.passages}) and len(answer.passages) > 1
    assert [int(n) for n, _ in headings] == list(range(1, len(headings) + 1))
    assert headings[0][1] == f"“{FISHER}” (Nov 18, 2021)"
    shown = answer.passages[: len(headings)]
    assert all(p.read in user["content"] for p in shown) and FISHER_SENTENCE in shown[0].read
    excerpt = shown[0].excerpt  # the paper's best sentences, not the whole abstract; the chunk stays as stored
    assert excerpt is not None and len(excerpt) < len(shown[0].paper.abstract) and excerpt == shown[0].read
    assert shown[0].text == shown[0].paper.abstract[shown[0].start : shown[0].end]


def test_a_faithful_streamed_answer_is_checked_cited_and_reports_usage(full_store, server) -> None:  # type: ignore[no-untyped-def]
    pieces: list[str] = []
    server.replies.append(
        Reply(
            "text",
            f"{FISHER_SENTENCE} [1]. Fisher merging boosts performance where simple parameter averaging is used "
            "today [1].",
        )
    )
    answer = pipe_for(full_store).ask(QUESTION, on_text=pieces.append)
    assert len(pieces) > 5 and "".join(pieces).startswith("We develop")
    assert not answer.abstained and answer.backend == "openai"
    assert [c.title for c in answer.citations] == [FISHER]
    assert all(s.supported for s in answer.sentences) and len(answer.sentences) == 2
    assert answer.usage is not None and answer.usage.prompt_tokens == 321 and not answer.usage.counted


def test_markers_to_no_passage_are_removed_and_unsupported_sentences_flagged(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.replies.append(
        Reply("text", f"{FISHER_SENTENCE} [1][42]. Fisher merging improves accuracy by 37.5% on ImageNet [1].")
    )
    answer = pipe_for(full_store).ask(QUESTION)
    assert answer.removed_markers == [42]
    assert "[42]" not in answer.text and not answer.abstained
    good, bad = answer.sentences
    assert good.supported and good.markers == [1]
    assert not bad.supported and any("37.5%" in problem for problem in bad.problems)
    assert [s.text for s in answer.unsupported] == [bad.text]


def test_an_answer_with_no_supported_sentence_falls_back_to_the_offline_answerer(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.replies.append(
        Reply("text", "Quantum annealing on 512 qubits solves protein folding [1]. It uses no data [2].")
    )
    answer = pipe_for(full_store).ask(QUESTION)
    assert answer.origin == "fallback" and answer.backend == "openai" and not answer.abstained
    assert answer.citations[0].title == FISHER and "Quantum" not in answer.text
    fisher = short_name(next(p.paper for p in answer.passages if p.paper_id == answer.citations[0].paper_id))
    assert all(s.supported and quoted_from(s.claim, answer.citations[0].passage, fisher) for s in answer.sentences)
    read = next(p for p in answer.passages if p.chunk_id == answer.citations[0].chunk_id)
    assert read.excerpt is not None and answer.citations[0].passage == read.excerpt  # what the model read


def test_a_draft_that_only_names_a_paper_is_answered_from_that_papers_sentences(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.replies.append(Reply("text", f"[3] {FISHER} (Nov 18, 2021)"))  # a heading echoed, wrongly numbered
    answer = pipe_for(full_store).ask(QUESTION)
    assert answer.origin == "named" and not answer.abstained  # the model's choice of paper, kept
    assert {c.title for c in answer.citations} == {FISHER} and all(s.supported for s in answer.sentences)


def test_the_models_abstain_phrase_is_an_abstention(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.replies.append(Reply("text", ABSTAIN_PHRASE))
    answer = pipe_for(full_store).ask("What learning rate did the Fisher merging paper use?")
    assert answer.abstained and answer.text == ABSTAIN_PHRASE and answer.citations == []


def test_the_prompt_is_kept_inside_the_models_context_by_dropping_the_lowest_ranked_passages(  # type: ignore[no-untyped-def]
    full_store, server
) -> None:
    import tiktoken

    several = "Which papers merge fine-tuned models, and how do their methods differ?"  # every paper is read
    wide = pipe_for(full_store).ask(several, k=8)
    narrow = pipe_for(full_store, llm_context=700, llm_max_tokens=256).ask(several, k=8)
    first, second = chat_requests(server)
    headings = lambda body: re.findall(r"^\[\d+\] (.+)$", body["messages"][1]["content"], flags=re.M)  # noqa: E731
    assert len(headings(first.body)) == len(wide.passages) > len(headings(second.body)) >= 1
    # What is left is the best-ranked part: the first passages of the full prompt, in the same order.
    assert headings(second.body) == headings(first.body)[: len(headings(second.body))]
    encoding = tiktoken.get_encoding("cl100k_base")
    words = sum(len(encoding.encode(m["content"])) for m in second.body["messages"])
    assert words + 256 <= 700  # the prompt's text and the longest answer fit the window
    assert second.body["max_tokens"] == 256 and not narrow.abstained


def test_a_429_with_retry_after_is_waited_out_and_retried(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.faults.append((429, {"Retry-After": "1"}))
    answer = pipe_for(full_store).ask(QUESTION)
    first, second = chat_requests(server)
    assert second.at - first.at >= 0.9  # the server said to wait a second
    assert not answer.abstained


@pytest.mark.parametrize(
    ("faults", "error", "reason"),
    [
        ([(429, {"Retry-After": "0"})] * 3, LLMRateLimited, "rate limited (HTTP 429) after 2 retries; wait and retry"),
        ([(503, {})] * 3, LLMServerError, "HTTP 503 after 2 retries"),
        ([(500, {})] * 3, LLMServerError, "HTTP 500 after 2 retries"),
    ],
)
def test_an_endpoint_that_keeps_failing_gives_a_typed_error_after_bounded_retries(
    full_store, server, faults, error, reason
) -> None:  # type: ignore[no-untyped-def]
    server.faults.extend(faults)
    with pytest.raises(error) as caught:
        pipe_for(full_store).ask(QUESTION)
    assert str(caught.value) == f"LLM endpoint {server.base_url}: {reason}"
    assert caught.value.endpoint == server.base_url
    assert len(chat_requests(server)) == 3  # one try and two retries, no more


@pytest.mark.parametrize(
    ("replies", "error", "reason"),
    [
        ([Reply("malformed")] * 3, LLMBadResponse, "not valid chat-completion JSON"),
        ([Reply("empty")] * 3, LLMBadResponse, "the reply was empty"),
        ([Reply("cut", FISHER_SENTENCE)] * 3, LLMBadResponse, "cut off"),
    ],
)
def test_a_malformed_empty_or_cut_reply_is_retried_then_a_typed_error(
    full_store, server, replies, error, reason
) -> None:  # type: ignore[no-untyped-def]
    server.replies.extend(replies)
    with pytest.raises(error, match=reason):
        pipe_for(full_store).ask(QUESTION)
    assert len(chat_requests(server)) == 3


def test_a_stream_cut_midway_is_retried_and_the_retry_answers(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.replies.extend([Reply("cut", f"{FISHER_SENTENCE} [1]."), Reply("text", f"{FISHER_SENTENCE} [1].")])
    answer = pipe_for(full_store).ask(QUESTION)
    assert not answer.abstained and len(chat_requests(server)) == 2
    assert answer.sentences[0].claim == FISHER_SENTENCE + "."


def test_a_slow_endpoint_times_out_naming_the_endpoint_after_bounded_retries(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.replies.extend([Reply("slow", "late", delay=3.0)] * 2)
    with pytest.raises(LLMTimeout) as caught:
        pipe_for(full_store, llm_timeout=1.0, llm_retries=1).ask(QUESTION)
    assert str(caught.value) == (
        f"LLM endpoint {server.base_url}: no answer within 1 s; raise RAG_LLM_TIMEOUT or check the server"
    )
    assert len(chat_requests(server)) == 2  # one try and one retry, no more


def test_an_unreachable_endpoint_is_a_typed_error_naming_it(full_store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}/v1"
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        with pytest.raises(LLMUnavailable, match=re.escape(f"LLM endpoint {url}: cannot connect")):
            pipe_for(full_store, llm_retries=0).ask(QUESTION)


REFUSED = "the API key was refused (HTTP 401); check OPENAI_API_KEY"


def test_a_refused_key_is_a_typed_error_naming_the_variable_and_is_not_retried(full_store, server) -> None:  # type: ignore[no-untyped-def]
    server.faults.append((401, {}))
    with pytest.raises(LLMError) as caught:
        pipe_for(full_store).ask(QUESTION)
    assert str(caught.value) == f"LLM endpoint {server.base_url}: {REFUSED}"
    assert len(chat_requests(server)) == 1  # another try cannot make a wrong key right


def test_the_cli_says_which_variable_to_fix_for_a_refused_key_in_one_line(full_store, server) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    server.faults.append((401, {}))
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}
    result = run_rag("ask", QUESTION, "--backend", "openai", home=settings.home, env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: LLM endpoint {server.base_url}: {REFUSED}\n"  # no traceback
    assert KEY[-4:] not in result.stderr and "Incorrect API key" not in result.stderr  # the server's text quotes it


def test_the_cli_names_the_endpoint_and_the_reason_and_never_prints_the_key(full_store, server) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    server.faults.extend([(500, {})] * 3)
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY, "RAG_LLM_RETRIES": "2"}
    result = run_rag("ask", QUESTION, "--backend", "openai", home=settings.home, env=env)
    assert result.returncode == 1
    assert result.stderr == f"error: LLM endpoint {server.base_url}: HTTP 500 after 2 retries\n"
    assert KEY not in result.stdout + result.stderr


def test_the_cli_prints_an_openai_answer_with_its_sources(full_store, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    server.replies.append(Reply("text", f"{FISHER_SENTENCE} [1]."))
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}
    result = run_rag("ask", QUESTION, home=settings.home, env=env)  # auto: the endpoint is configured
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("We develop an alternative merging procedure")
    assert f"\nSources\n[1] {FISHER}\n" in result.stdout
    assert KEY not in result.stdout + result.stderr
