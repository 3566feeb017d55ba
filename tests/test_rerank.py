"""Reranking by query likelihood: how scores combine (with a small word-overlap model through the protocol), and
the bundled model for real: a question is likelier after the abstract it is about, scoring leaves the model's
chat answers as they were, and reranking lifts the right paper above one that retrieval put first."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

import rag
from rag.answerers.local import LocalChat
from rag.rerank import contenders, rerank
from rag.types import Paper, Passage


class Overlap:
    """A stand-in language model: a question is likelier after a text that shares more of its words."""

    def likelihood(self, messages: Sequence[dict[str, str]], reply: str) -> float:
        words = set(re.findall(r"\w+", reply.lower()))
        shared = words & set(re.findall(r"\w+", messages[-1]["content"].lower()))
        return -10.0 + 10.0 * len(shared) / len(words)


def _passage(n: int, text: str, score: float) -> Passage:
    unknown = ("authors", "n_authors", "date", "published", "upvotes", "category", "has_code", "organization")
    paper = Paper(
        paper_id=f"p{n}", title=f"Paper {n}", abstract=text, et_al=False, sources=[], **dict.fromkeys(unknown)
    )
    return Passage(
        chunk_id=f"p{n}:0", paper=paper, text=text, start=0, end=len(text), score=score, dense=score, lexical=0
    )


def test_reranking_orders_the_first_passages_by_retrieval_score_plus_weighted_likelihood() -> None:
    question = "which spiking network writes text"
    passages = [
        _passage(1, "A survey of controllable text generation.", 0.60),  # shares 1 of the 5 words: -8
        _passage(2, "A spiking network that writes text.", 0.55),  # 4 of 5: -2
        _passage(3, "Pruning large language models.", 0.50),  # none: -10
        _passage(4, "A spiking network writes text too.", 0.52),  # 4 of 5, within the margin, 4th: beyond depth 3
    ]
    reranked = rerank(
        question, passages, Overlap(), depth=3, margin=0.15, weight=1.3
    )  # the figures below are worked out by hand
    # 0.60 - 1.3*8 = -9.80, 0.55 - 1.3*2 = -2.05, 0.50 - 1.3*10 = -12.50; shifted by +2.65 so the best keeps 0.60.
    assert [(p.paper_id, p.score, p.rerank) for p in reranked] == [
        ("p2", pytest.approx(0.60), pytest.approx(-2.0)),
        ("p1", pytest.approx(-7.15), pytest.approx(-8.0)),
        ("p3", pytest.approx(-9.85), pytest.approx(-10.0)),
        ("p4", 0.52, None),  # not reread, though it would have come second
    ]
    deeper = rerank(question, passages, Overlap(), depth=4, margin=0.15, weight=1.3)  # 0.52 - 2.6 = -2.08: second
    assert [p.paper_id for p in deeper] == ["p2", "p4", "p1", "p3"]
    assert [p.paper_id for p in rerank(question, passages, Overlap(), depth=1, margin=0.15, weight=1.3)] == [
        "p1",
        "p2",
        "p3",
        "p4",
    ]
    assert rerank(question, passages[:1], Overlap()) == passages[:1]  # nothing to reorder


ABSTRACT = (
    "SliceGPT: Compress Large Language Models by Deleting Rows and Columns. We present SliceGPT, a post-training "
    "sparsification scheme that replaces each weight matrix with a smaller dense matrix, reducing the embedding "
    "dimension of the network."
)
OTHER = (
    "ColorMNet: A Memory-based Deep Spatial-Temporal Feature Propagation Network for Video Colorization. "
    "How to effectively explore spatial-temporal features is important for video colorization."
)


@pytest.mark.slow
def test_the_bundled_model_finds_a_question_likelier_after_its_abstract_and_still_chats_the_same(
    full_store, bundled: Path
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    chat = LocalChat(settings)
    hello = [{"role": "user", "content": "Name one colour of the rainbow."}]
    before, _ = chat.stream(hello, None)
    question = "Which paper deletes rows and columns of weight matrices to compress language models?"
    about = chat.likelihood([{"role": "user", "content": ABSTRACT}], question)
    other = chat.likelihood([{"role": "user", "content": OTHER}], question)
    assert -20 < other < about < 0
    assert chat.likelihood([{"role": "user", "content": ABSTRACT}], question) == pytest.approx(about, abs=1e-4)
    after, _ = chat.stream(hello, None)
    assert after == before  # scoring reset the context: the chat's cached prompt is not reused wrongly


# A development question (tuning half) about one paper, worded far from its abstract: retrieval puts another
# try-on paper first, by 0.03; the question is much likelier after the right abstract.
TRY_ON = (
    "For the method that dresses a photographed model in a chosen piece of apparel while faithfully keeping that "
    "apparel's look, by bolting three small add-on components onto a mostly fixed example-conditioned image "
    "generator, roughly what share of trainable weights does it need compared with recent methods that retrain "
    "everything?"
)
TRY_ON_GOLD = "TryOn-Adapter: Efficient Fine-Grained Clothing Identity Adaptation for High-Fidelity Virtual Try-On"


@pytest.mark.slow
def test_reranking_with_the_bundled_model_answers_from_the_paper_retrieval_put_second(
    full_store, bundled: Path
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    plain = rag.Pipeline(settings).ask(TRY_ON, backend="extractive")  # RAG_RERANK=auto: only the local backend
    assert plain.passages[0].paper.title != TRY_ON_GOLD and plain.passages[0].rerank is None
    assert plain.passages[1].paper.title == TRY_ON_GOLD
    statuses: list[str] = []
    reranked = rag.Pipeline(settings.model_copy(update={"rerank": "local"})).ask(
        TRY_ON, backend="extractive", on_status=statuses.append
    )
    # Only the papers within rag.rerank.MARGIN of the best are reread, and a UI is told so meanwhile.
    reread = contenders([p.score for p in plain.passages if not p.expanded])
    assert reread >= 2 and statuses == [f"Rereading the {reread} best abstracts to rank them…"]
    assert reranked.passages[0].paper.title == TRY_ON_GOLD
    assert len({p.paper_id for p in reranked.passages if p.rerank is not None}) == reread
    assert not reranked.abstained and reranked.citations[0].title == TRY_ON_GOLD
