"""The project as llama-index parts, run by llama-index's own machinery: the retriever under RetrieverEvaluator on
the independent questions, the query engine's Response, and the bundled model as a llama-index LLM (through
llama-index-llms-llama-cpp) writing answers and judging them with FaithfulnessEvaluator."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.response.schema import Response
from llama_index.core.evaluation import FaithfulnessEvaluator, RetrieverEvaluator
from rag.evaluation.questions import load_questions, resolve_gold

import rag
from rag.citations import parse_markers, split_answer
from rag.llamaindex import AbstractsQueryEngine, AbstractsRetriever
from tests.fixed_set import Recording, written_in

INDEPENDENT = Path(__file__).resolve().parents[1] / "eval" / "independent.jsonl"


def test_the_retriever_returns_the_projects_chunks_as_llama_index_nodes(full_store) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    retriever = AbstractsRetriever(settings=settings, k=5)
    assert isinstance(retriever, BaseRetriever)
    question = "How does Fisher merging weight the parameters of the models it merges?"
    nodes = retriever.retrieve(question)
    passages = rag.Pipeline(settings).retriever.retrieve(question, 5)
    assert [n.node.node_id for n in nodes] == [p.chunk_id for p in passages] and len(nodes) == 5
    assert [n.score for n in nodes] == [p.score for p in passages]
    for found, passage in zip(nodes, passages, strict=True):
        assert found.node.get_content() == passage.text
        assert passage.paper.abstract[found.node.start_char_idx : found.node.end_char_idx] == passage.text
        assert found.node.metadata["paper_id"] == passage.paper_id
        assert found.node.metadata.get("title") == passage.paper.title


def test_llama_indexs_retriever_evaluator_finds_the_gold_paper_in_the_top_five_for_the_independent_questions(
    full_store,
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    pipe = rag.Pipeline(settings)
    questions = [q for q in load_questions(INDEPENDENT) if q.gold]
    papers = {p.paper_id: p for p in rag.list_papers(settings=settings)}
    gold = resolve_gold(questions, papers)
    chunks: dict[str, list[str]] = {}
    for chunk_id, paper_id in pipe.retriever.catalogue._db.execute("SELECT chunk_id, paper_id FROM chunks"):
        chunks.setdefault(paper_id, []).append(chunk_id)
    evaluator = RetrieverEvaluator.from_metric_names(
        ["hit_rate", "mrr"], retriever=AbstractsRetriever(pipeline=pipe, k=5)
    )
    results = [
        evaluator.evaluate(q.question, expected_ids=[c for pid in gold[q.id] for c in chunks[pid]]) for q in questions
    ]
    hit_rate = sum(r.metric_vals_dict["hit_rate"] for r in results) / len(results)
    mrr = sum(r.metric_vals_dict["mrr"] for r in results) / len(results)
    assert len(results) >= 60
    assert hit_rate >= 0.85 and mrr >= 0.7, (hit_rate, mrr)


def test_the_query_engine_answers_with_the_cited_passages_as_source_nodes(full_store) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    engine = AbstractsQueryEngine(settings=settings.model_copy(update={"backend": "extractive"}))
    response = engine.query("Which papers here merge fine-tuned models, and how do their methods differ?")
    assert isinstance(response, Response)
    citations = response.metadata["citations"]
    assert len(citations) >= 2 and len(response.source_nodes) == len(citations)
    for citation, source in zip(citations, response.source_nodes, strict=True):
        assert source.node.get_content() == citation["passage"]
        assert source.node.metadata["paper_id"] == citation["paper_id"]
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", str(response))}
    assert markers and markers <= {c["number"] for c in citations}
    assert response.metadata["unsupported"] == [] and not response.metadata["abstained"]


def chatml(messages: Sequence[ChatMessage]) -> str:
    """Qwen's chat format, as a llama-index user of the bundled model writes it."""
    turns = "".join(f"<|im_start|>{m.role.value}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def llama_cpp_llm(bundled: Path):  # type: ignore[no-untyped-def]
    from llama_index.llms.llama_cpp import LlamaCPP

    return LlamaCPP(
        model_path=str(bundled),
        temperature=0.0,
        max_new_tokens=160,
        context_window=4096,
        model_kwargs={"n_threads": 2},
        messages_to_prompt=chatml,
        completion_to_prompt=lambda text: chatml([ChatMessage(role="user", content=text)]),
        verbose=False,
    )


@pytest.mark.slow
def test_a_llama_index_llm_writes_a_checked_answer_and_judges_faithfulness(full_store, llama_cpp_llm) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    engine = AbstractsQueryEngine(settings=settings, llm=llama_cpp_llm, k=3)
    recording = Recording(engine.pipeline.answerer("llama-index"))
    response = engine.query("How many customer care conversations was the tone-aware chatbot trained on?")
    assert response.metadata["origin"] == "draft", response
    assert response.source_nodes and response.metadata["citations"] and response.metadata["unsupported"] == []
    assert recording.name.startswith("llama-index:")
    # The fact is in the model's own words: a sentence of the draft it wrote, not one the pipeline added.
    (reply,) = recording.replies
    stating = [parse_markers(s)[0] for s in split_answer(str(response)) if "1.5 million" in s]
    assert [claim for claim in stating if written_in(claim, [reply])], (reply, str(response))

    judge = FaithfulnessEvaluator(llm=llama_cpp_llm)
    # llama-index's judge reads the Response's cited passages. The 0.5B model's verdicts do not tell a cited
    # answer from a false one (it called both unfaithful), so what is asserted is that each verdict is the
    # model's own reply on those passages, read as llama-index reads it.
    contexts = [n.node.get_content() for n in response.source_nodes]
    for claim in (str(response), "The chatbot was trained on 40 hand-written dialogues."):
        verdict = judge.evaluate_response(response=Response(response=claim, source_nodes=response.source_nodes))
        assert verdict.feedback and verdict.contexts == contexts
        assert verdict.passing == ("yes" in verdict.feedback.lower()) and verdict.score == float(verdict.passing)
