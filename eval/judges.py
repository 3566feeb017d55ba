"""Judges decide whether evidence supports a claim: `offline` (the citation checker's rules, no network) and
`openai` (an LLM decomposes the claim and verifies each part, prompts in prompts/judge_*.txt).

What the offline judge catches: a number or a name (acronym, mixed-case word) that is not in the evidence, a
negation the evidence does not share, and a claim whose content words and meaning are mostly absent from the
evidence (another paper's sentence, a citation to the wrong passage). What it cannot catch: a fluent claim that
reuses the evidence's words and names in a different relation ("A outperforms B" when the passage says the
opposite without a negation word), or a claim that is true but unstated. It is the same checker `ask()` applies
to its own answers, so scoring our own answers with it measures consistency, not truth: `--judge openai` gives
an independent reading.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import rag
from rag import LLMError
from rag.citations import judge_claim
from rag.embedding import Embedder

# A sentence is checked as at most this many atomic claims: a small model asked to split one may list a dozen
# restatements, each a call of its own that reads all the evidence.
MAX_PARTS = 4


class Judge(Protocol):
    """Decides whether evidence, taken together, supports a claim."""

    name: str

    def supports(self, claim: str, evidence: Sequence[str]) -> bool:
        """True when `evidence` backs every part of `claim`."""
        ...


class OfflineJudge:
    """The citation checker's rules: numbers, names, negation, and word and meaning overlap."""

    name = "offline"

    def __init__(self, embedder: Embedder | None) -> None:
        self.embedder = embedder

    def supports(self, claim: str, evidence: Sequence[str]) -> bool:
        """True when every hard check passes and the support score reaches rag.citations.SUPPORT_THRESHOLD."""
        return judge_claim(claim, list(evidence), embedder=self.embedder).supported


class OpenAIJudge:
    """An LLM splits the claim into atomic claims, then checks each against the evidence."""

    name = "openai"

    def __init__(self, settings: rag.Settings) -> None:
        import openai

        self.settings = settings
        self._client = openai.OpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or "unused",
            max_retries=settings.llm_retries,
            timeout=settings.llm_timeout,
        )
        self.endpoint = str(self._client.base_url).rstrip("/")

    def _ask(self, prompt: str) -> str:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.settings.llm_model,
                messages=[{"role": "user", "content": prompt}],
                temperature=0,
                max_tokens=300,
            )
        except openai.OpenAIError as exc:
            raise LLMError(self.endpoint, f"the judge's call failed ({type(exc).__name__})") from exc
        content = response.choices[0].message.content if response.choices else None
        if not content or not content.strip():
            raise LLMError(self.endpoint, "the judge's reply was empty")
        return content.strip()

    def supports(self, claim: str, evidence: Sequence[str]) -> bool:
        """True when the model finds every atomic claim of `claim` stated by the evidence."""
        from rag.templates import render
        from rag.text import without_instructions

        parts = [
            line.strip(" -*•\t")
            for line in self._ask(render("judge_claims", sentence=claim)).splitlines()
            if line.strip(" -*•\t")
        ][:MAX_PARTS] or [claim]
        # An instruction planted in an abstract is not evidence, and must not reach the judge as one.
        joined = "\n\n".join(without_instructions(text) for text in evidence)
        for part in parts:
            verdict = self._ask(render("judge_verify", evidence=joined, claim=part)).lower()
            if not verdict.startswith("yes"):
                return False
        return True


def make_judge(name: str, settings: rag.Settings, embedder: Embedder | None) -> Judge:
    """The judge called `name`: 'offline' or 'openai'."""
    if name == "openai":
        return OpenAIJudge(settings)
    if name == "offline":
        return OfflineJudge(embedder)
    raise rag.ConfigError(f"--judge {name!r}: use 'offline' or 'openai'")
