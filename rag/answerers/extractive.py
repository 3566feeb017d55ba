"""The offline answerer: the retrieved sentences closest to the question, verbatim, each ending with its
passage's marker (metadata questions are answered from the records, and the decision to decline is made by
rag/confidence.py, before any answerer is asked)."""

from __future__ import annotations

from collections.abc import Sequence

from rag.answerers.base import Draft, OnText, Turn, emit
from rag.citations import with_markers
from rag.embedding import Embedder
from rag.evidence import Sentence, rank_sentences
from rag.question import asks_quantity, asks_several
from rag.templates import ABSTAIN_PHRASE
from rag.text import names, numbers
from rag.types import Passage

# In an answer about several papers, a paper gets its sentence only when that sentence is this close in meaning
# to the question (on the development multi-paper questions: 43% of cited papers gold, 65% of gold cited).
MULTI_KEEP_ABOVE = 0.45
SECOND_SENTENCE_MARGIN = 0.15
MAX_SENTENCES = 5


class ExtractiveAnswerer:
    """Answers with sentences taken verbatim from the passages, each ending with its passage's marker."""

    name = "extractive"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def answer(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn], on_text: OnText | None = None
    ) -> Draft:
        """The best-matching retrieved sentences, one per paper when the question spans several papers."""
        if not passages:
            return emit(ABSTAIN_PHRASE, on_text)
        candidates = self.rank(question, passages)
        if asks_quantity(question):  # a sentence that states a number the question does not give, where one does
            asked = numbers(question)
            candidates = [c for c in candidates if numbers(c.text) - asked] or candidates
        if not candidates:
            return emit(ABSTAIN_PHRASE, on_text)
        chosen = self._choose(question, candidates)
        chosen.sort(key=lambda c: c.order)
        text = " ".join(with_markers(c.text, [c.number]) for c in chosen)
        return emit(text, on_text)

    def rank(self, question: str, passages: Sequence[Passage]) -> list[Sentence]:
        """Every sentence of every passage, scored against the question, best first."""
        return rank_sentences(question, passages, self.embedder)

    def _choose(self, question: str, ranked: list[Sentence]) -> list[Sentence]:
        best = ranked[0]
        if asks_several(question):
            per_paper: dict[str, Sentence] = {}
            for candidate in ranked:
                if candidate.semantic >= MULTI_KEEP_ABOVE and candidate.paper_id not in per_paper:
                    per_paper[candidate.paper_id] = candidate
            return list(per_paper.values())[:MAX_SENTENCES]
        # One paper: the best sentence, and a second one of the same paper when it adds a name or a number
        # the first lacks (the method's name, the result), or is nearly as relevant.
        same = [c for c in ranked[1:] if c.paper_id == best.paper_id and c.text != best.text]
        known = names(best.text) | numbers(best.text) | names(question) | numbers(question)
        for candidate in same:
            adds = (names(candidate.text) | numbers(candidate.text)) - known
            if (adds and candidate.relevance >= best.relevance - SECOND_SENTENCE_MARGIN) or (
                candidate.relevance >= best.relevance - SECOND_SENTENCE_MARGIN / 2
            ):
                return [best, candidate]
        return [best]
