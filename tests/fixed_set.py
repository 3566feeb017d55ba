"""A fixed set of short questions the real model answers in tests/test_local.py (in process) and
tests/test_llama_server.py (through llama_cpp.server), and the checks on its answers.

What a 0.5B model writes for one question changes with the CPU's kernels (AVX2, AVX-512, AMX round differently),
so no test requires the model's own draft for one question. On every question the invariants hold strictly: an
answer from the right paper, the fact asked for in a supported sentence citing it, nothing unsupported shown
without its reasons, no question said back as a claim. The model's own draft, stating the fact in the model's own
words with the tokens it streamed, is required on MIN_DRAFTS of the set: the offline answer never counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import rag
from rag.question import read
from rag.text import words


@dataclass(frozen=True)
class Case:
    question: str
    gold: str  # words of the gold paper's title, or of its abstract where it has no title
    fact: str  # what a right answer states


CASES = (
    Case("Which paper compresses large language models by deleting rows and columns of weight matrices?",
         "SliceGPT: Compress Large Language Models", "SliceGPT"),
    Case("What does SliceGPT replace each weight matrix with?", "SliceGPT: Compress Large Language Models",
         "smaller (dense) matrix"),
    Case("How many customer care conversations was the tone-aware chatbot trained on?", "tone-aware chatbot",
         "1.5 million"),
    Case("What does Fisher merging weight each model's parameters by?", "Merging Models with Fisher-Weighted",
         "Fisher"),
    Case("How many parameters does the multilingual adapter for text-to-image diffusion models have?",
         "parameter-efficient adapter", "6M"),
    Case("Which paper upcycles CLIP into a mixture of experts?", "CLIP-MoE", "Diversified Multiplet Upcycling"),
)  # fmt: skip
MIN_DRAFTS = 4  # of the six: drafts in the model's own words (recorded: 4 on AVX-512, see docs/local-model.md)


class Recording:
    """What an LLM answerer's chat model itself returned, reply by reply: the model's own words, before anything
    of the pipeline's (a fallback, a completion, an offline answer put in the draft's place)."""

    def __init__(self, answerer: object) -> None:
        model = answerer.model  # type: ignore[attr-defined]
        self.name: str = model.name
        self.replies: list[str] = []
        stream = model.stream

        def recorded(messages, on_text):  # type: ignore[no-untyped-def]
            text, usage = stream(messages, on_text)
            self.replies.append(text)
            return text, usage

        model.stream = recorded


def models_own(answer: rag.Answer, replies: Sequence[str]) -> list[str]:
    """The supported sentences of a draft answer that the model wrote: their words run in one of its replies."""
    if answer.origin != "draft":
        return []
    return [s.claim for s in answer.sentences if s.supported and written_in(s.claim, replies)]


def written_in(claim: str, replies: Sequence[str]) -> bool:
    """Whether the words of `claim` run, in order, in one of the model's `replies`."""
    return any(_words(claim.rstrip(".")) in _words(reply) for reply in replies)


@dataclass
class Observed:
    case: Case
    answer: rag.Answer
    replies: list[str]
    pieces: list[str] = field(default_factory=list)


def ask_all(pipe: rag.Pipeline, backend: str) -> list[Observed]:
    """Every case asked of `backend`, with what the model replied and what was streamed."""
    recording = Recording(pipe.answerer(backend))
    observed = []
    for case in CASES:
        recording.replies = []
        pieces: list[str] = []
        answer = pipe.ask(case.question, backend=backend, on_text=pieces.append)
        observed.append(Observed(case, answer, list(recording.replies), pieces))
    return observed


def is_gold(case: Case, passage_title: str | None, abstract: str) -> bool:
    return case.gold in (passage_title or "") or case.gold in abstract


def _words(text: str) -> str:
    return f" {' '.join(words(text))} "


def in_own_words(seen: Observed) -> list[str]:
    """The supported sentences of a draft answer that state the fact in words the model itself replied, in one
    reply streamed piece by piece with its tokens counted: what shows that the model, not the offline answerer,
    answered."""
    usage = seen.answer.usage
    if len(seen.replies) != 1 or usage is None or not usage.completion_tokens or len(seen.pieces) <= 3:
        return []
    return [claim for claim in models_own(seen.answer, seen.replies) if seen.case.fact in claim]


def problems(seen: Observed) -> list[str]:
    """What is wrong with one answer, whoever wrote it: the invariants every answer keeps on every CPU."""
    answer, case = seen.answer, seen.case
    found = []
    if answer.abstained or answer.origin not in ("draft", "named", "fallback"):
        found.append(f"not answered ({answer.origin})")
        return found
    papers = {p.paper_id: p.paper for p in answer.passages}
    first = papers[answer.citations[0].paper_id]
    if not is_gold(case, first.title, first.abstract):
        found.append(f"first citation is {first.title or first.abstract[:60]!r}")
    stating = [s for s in answer.sentences if s.supported and case.fact in s.claim]
    gold_numbers = {c.number for c in answer.citations if is_gold(case, c.title, papers[c.paper_id].abstract)}
    if not any(set(s.markers) & gold_numbers for s in stating):
        found.append(f"no supported sentence citing the gold paper states {case.fact!r}")
    if answer.origin == "draft" and not models_own(answer, seen.replies):
        found.append("a draft none of whose supported sentences the model wrote")
    if [s for s in answer.unsupported if not s.problems]:
        found.append("an unsupported sentence is shown without its reasons")
    if [s for s in answer.sentences if read(case.question).restated_by(s.claim)]:
        found.append("the question said back as a claim")
    return found


def described(observed: list[Observed]) -> str:
    """What the model wrote and what was answered, for a failing assertion."""
    return "\n\n".join(
        f"{seen.case.question}\n  origin={seen.answer.origin} problems={problems(seen)}\n"
        f"  replied={' | '.join(seen.replies)!r}\n  answer={seen.answer.text!r}"
        for seen in observed
    )


def assert_every_answer_right(observed: list[Observed], backend: str) -> None:
    """Every case answered by `backend`, each keeping the invariants (`problems`), whoever wrote it."""
    assert len(observed) == len(CASES) and all(seen.answer.backend == backend for seen in observed)
    assert not [seen.case.question for seen in observed if problems(seen)], described(observed)


def assert_mostly_own_words(observed: list[Observed]) -> list[Observed]:
    """At least MIN_DRAFTS answers are the model's own drafts stating the fact; those answers."""
    own = [seen for seen in observed if in_own_words(seen)]
    assert len(own) >= MIN_DRAFTS, described(observed)
    assert all(seen.answer.usage is not None and seen.answer.usage.prompt_tokens > 100 for seen in own)
    return own
