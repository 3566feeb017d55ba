"""The shapes a small model's draft falls into, replayed: drafts the bundled model wrote (recorded on this project's
CPUs, and in an issue's description from an AVX-512/AMX Xeon), handed to the pipeline through `add_answerer` so
that each shape is tested on every CPU, whatever the model would write on it. A heading list answers "which paper
…?" and is kept as the model's choice of paper; a question said back answers nothing and is not shown as a claim.
The real model writes its own answers in tests/test_local.py and tests/test_llama_server.py."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import rag
from rag.answerers import Draft, OnText, Turn
from rag.answerers.base import emit
from rag.rerank import Likelihood
from rag.templates import LEAD_PHRASE, NAMED_PHRASE
from rag.types import Passage

SLICE = "SliceGPT: Compress Large Language Models by Deleting Rows and Columns"
WHICH = "Which paper compresses large language models by deleting rows and columns of weight matrices?"


class Recorded:
    """An answerer that writes what a model once wrote for the question."""

    name = "recorded"
    verbatim = False
    scorer: Likelihood | None = None

    def __init__(self, text: str) -> None:
        self.text = text
        self.read: list[Passage] = []

    def answer(self, question: str, passages: Sequence[Passage], history: Sequence[Turn],
               on_text: OnText | None = None) -> Draft:  # fmt: skip
        self.read = list(passages)
        return emit(self.text, on_text)


@pytest.fixture(scope="module")
def replay(full_store):  # type: ignore[no-untyped-def]
    pipe = rag.Pipeline(full_store[0])

    def ask(question: str, text: str) -> tuple[rag.Answer, Recorded]:
        recorded = Recorded(text)
        pipe.add_answerer("recorded", recorded)
        return pipe.ask(question, backend="recorded"), recorded

    return ask


def _every_sentence_supported(answer: rag.Answer) -> bool:
    return bool(answer.sentences) and all(s.supported and s.markers for s in answer.sentences)


@pytest.mark.parametrize(
    "draft",
    [
        f'[1] "{SLICE}"',  # recorded here (AMD EPYC, AVX-512)
        f'[1] "{SLICE}"\n[2] (untitled)\n',  # from the description (Intel Xeon, AVX-512 and AMX)
        f"[1] “{SLICE}”",  # the heading in the prompt's own quotes (SliceGPT's record has no date)
    ],
)
def test_a_heading_that_answers_which_paper_is_kept_as_the_models_answer(replay, draft: str) -> None:  # type: ignore[no-untyped-def]
    answer, _ = replay(WHICH, draft)
    assert answer.origin == "named" and not answer.abstained
    assert answer.citations[0].title == SLICE and len({c.paper_id for c in answer.citations}) == 1
    assert answer.text.startswith(f"{NAMED_PHRASE} “{SLICE}” [1]. ")  # the paper named and cited
    assert "smaller (dense) matrix" in answer.text  # then what it does, from its excerpt
    assert _every_sentence_supported(answer)


def test_a_heading_list_for_several_papers_keeps_the_papers_it_named(replay) -> None:  # type: ignore[no-untyped-def]
    question = "Which papers merge fine-tuned models without data?"
    _, probe = replay(question, "[1]")
    titled = [(n, p) for n, p in enumerate(probe.read, 1) if p.paper.title][:3]
    assert len(titled) == 3
    # recorded here: every heading in order with its date, the last one cut by the token limit
    listing = "\n".join(f'[{n}] "{p.paper.title}" ({p.paper.date})' for n, p in titled[:2])
    listing += f'\n[{titled[2][0]}] "{titled[2][1].paper.title[:12]}'
    answer, _ = replay(question, listing)
    assert answer.origin == "named" and answer.text.startswith(LEAD_PHRASE)
    assert {c.paper_id for c in answer.citations} == {p.paper_id for _, p in titled}  # the cut one named too
    assert _every_sentence_supported(answer)


@pytest.mark.parametrize(
    ("question", "echo", "fact"),
    [  # both recorded here
        (
            "What does Fisher merging weight each model's parameters by?",
            "[1] Fisher merging weight each model's parameters by.",
            "Fisher",
        ),
        (
            "What does AdaMerging learn without the original training data?",
            "AdaMerging learns without the original training data in the first passage.",
            "coefficients",
        ),
    ],
)
def test_a_question_said_back_is_no_claim(replay, question: str, echo: str, fact: str) -> None:  # type: ignore[no-untyped-def]
    answer, _ = replay(question, echo)
    assert answer.origin == "fallback" and not answer.abstained  # the offline answer, and said to be
    said_back = echo.removeprefix("[1] ").rstrip(".")
    assert not [s for s in answer.sentences if said_back.casefold() in s.claim.casefold()]
    assert fact in answer.text and _every_sentence_supported(answer)


def test_a_heading_followed_by_a_copied_sentence_is_the_models_draft(replay) -> None:  # type: ignore[no-untyped-def]
    copied = ("In this paper we present SliceGPT, a new post-training sparsification scheme which replaces each weight "
              "matrix with a smaller (dense) matrix, reducing the embedding dimension of the network [1].")  # fmt: skip
    answer, _ = replay("What does SliceGPT replace each weight matrix with?", f'[1] "{SLICE}"\n{copied}')
    assert answer.origin == "draft" and answer.citations[0].title == SLICE
    assert [s.claim for s in answer.sentences if s.supported] == [copied.removesuffix(" [1].") + "."]
