"""Prompting shared by every language model: the prompt from prompts/ with numbered passages, fitted to the
model's context by its own token count, a stream that hides reasoning blocks, and retries of replies that
are empty or cut off. A ChatModel (openai.py, local.py) only sends messages and streams the reply back."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Protocol

from rag.answerers.base import Draft, OnText, Turn
from rag.citations import strip_reasoning
from rag.errors import LLMBadResponse
from rag.rerank import Likelihood
from rag.templates import ABSTAIN_PHRASE, render
from rag.types import Passage, Usage

Message = dict[str, str]
# Where a small model that runs on past its answer starts to write the prompt's own parts again.
STOP = ["\nQuestion:", "\nPassages:", "\n\n\n"]


class ChatModel(Protocol):
    """A chat model that streams its reply: an OpenAI-compatible endpoint, or llama.cpp in this process."""

    name: str
    endpoint: str
    context: int
    max_tokens: int
    retries: int
    passage_tokens: int | None  # the most passage text to give the model, in its tokens; None: what fits

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the messages take in the model's context, its chat framing included."""
        ...

    def stream(self, messages: Sequence[Message], on_text: OnText | None) -> tuple[str, Usage | None]:
        """The reply, with each piece handed to `on_text` as it arrives; LLMBadResponse when it breaks off."""
        ...


def render_passages(passages: Sequence[Passage]) -> str:
    """The passages as the prompt numbers them: [n] “title” (date), then the text."""
    blocks = []
    for number, passage in enumerate(passages, 1):
        paper = passage.paper
        title = f"“{paper.title}”" if paper.title else "(untitled)"
        blocks.append(f"[{number}] {title}" + (f" ({paper.date})" if paper.date else "") + f"\n{passage.read}")
    return "\n\n".join(blocks)


def render_history(history: Sequence[Turn]) -> str:
    """Earlier exchanges, oldest first, for follow-up questions."""
    if not history:
        return ""
    lines = ["Earlier in this conversation:"]
    for turn in history:
        lines.append(f"Q: {turn.question}\nA: {turn.answer}")
    return "\n".join(lines) + "\n\n"


class LLMAnswerer:
    """Writes answers with a ChatModel from the prompts in prompts/."""

    verbatim = False

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.name = model.name

    @property
    def scorer(self) -> Likelihood | None:
        """The model, when it can score a reply's likelihood (llama.cpp in this process can; an endpoint cannot)."""
        return self.model if isinstance(self.model, Likelihood) else None

    def messages(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn]
    ) -> tuple[list[Message], int]:
        """The chat messages, with as many passages (best first) as fit the context beside the longest answer;
        and how many fitted."""
        system = render("answer_system", abstain_phrase=ABSTAIN_PHRASE)
        budget = self.model.context - self.model.max_tokens
        count = len(passages)
        cap = self.model.passage_tokens
        while cap is not None and count > 1 and self._tokens(render_passages(passages[:count])) > cap:
            count -= 1
        while True:
            user = render(
                "answer_user",
                history=render_history(history),
                passages=render_passages(passages[:count]),
                question=question,
            )
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            if count == 0 or self.model.count_tokens(messages) <= budget:
                return messages, count
            count -= 1

    def _tokens(self, text: str) -> int:
        return self.model.count_tokens([{"role": "user", "content": text}])

    def answer(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn], on_text: OnText | None = None
    ) -> Draft:
        """The model's answer, streamed into `on_text` without reasoning blocks; retried with backoff when the
        reply breaks off or is empty."""
        messages, _ = self.messages(question, passages, history)
        attempts = self.model.retries + 1
        for attempt in range(attempts):
            shown = ReasoningFilter(on_text)
            try:
                text, usage = self.model.stream(messages, shown)
                shown.flush()
                if not strip_reasoning(text).strip():
                    raise LLMBadResponse(self.model.endpoint, "the reply was empty")
            except LLMBadResponse:
                if attempt + 1 == attempts:
                    raise
                time.sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))
                continue
            return Draft(text=text, usage=usage)
        raise AssertionError("unreachable")


class ReasoningFilter:
    """Passes streamed text on, holding back what lies inside <think>…</think>: the reader sees the answer only."""

    def __init__(self, on_text: OnText | None) -> None:
        self.on_text = on_text
        self.pending = ""
        self.thinking = False

    def __call__(self, piece: str) -> None:
        if self.on_text is None:
            return
        self.pending += piece
        while self.pending:
            tag = "</think>" if self.thinking else "<think>"
            at = self.pending.lower().find(tag)
            if at >= 0:
                if not self.thinking and at:
                    self.on_text(self.pending[:at])
                self.pending = self.pending[at + len(tag) :]
                self.thinking = not self.thinking
                continue
            # Keep back a tail that may be the start of a tag split across pieces.
            longest = min(len(tag) - 1, len(self.pending))
            keep = next((n for n in range(longest, 0, -1) if tag.startswith(self.pending[-n:].lower())), 0)
            ready, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep :]
            if ready and not self.thinking:
                self.on_text(ready)
            return

    def flush(self) -> None:
        """Pass on what was held back when the stream ends (a partial tag that never completed)."""
        if self.on_text is not None and self.pending and not self.thinking:
            self.on_text(self.pending)
        self.pending = ""
