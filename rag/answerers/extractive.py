"""The offline answerer: the retrieved sentences closest to the question, verbatim, each ending with its
passage's marker (metadata questions are answered from the records before any answerer is asked)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.answerers.base import Draft, OnText, Turn, emit
from rag.citations import with_markers
from rag.embedding import Embedder
from rag.question import asks_name, asks_quantity, asks_several
from rag.templates import ABSTAIN_PHRASE
from rag.text import content_stems, names, numbers, sentence_spans
from rag.types import Passage

# Sentences that point elsewhere rather than state a finding: links, code and data availability.
_NOT_A_FINDING = re.compile(
    r"https?://|github\.com"
    r"|\b(release|released|make|made|open-source|provide) (our|the|all) (code|models|implementation)"
    r"|\b(code|implementation|models?)( and [a-z ]+)? (is|are|will be|has been|have been) (publicly |made )?"
    r"(available|released)",
    re.I,
)
# Sentences that set the scene rather than report the paper's own contribution.
_BACKGROUND = re.compile(
    r"^(recent(ly)?|existing|however|although|despite|while|in recent years|with the|as the|traditional|prior|"
    r"previous|current|conventional|many|most)\b|\bha(s|ve) (achieved|shown|emerged|attracted|gained|become)\b"
    r"|^as [\w -]+ (becomes?|grows?|continues?|increases?)\b|\bit is (crucial|important|essential)\b",
    re.I,
)
_PROPOSAL = re.compile(
    r"\b(we (propose|present|introduce|develop|design|build)|called|termed|named|dubbed|coined|referred to as)\b", re.I
)
# Weights of a sentence's meaning match and word overlap with the question, and the relevance below which
# the extractive answerer abstains: chosen on the development questions (README, "Answering").
SEMANTIC_WEIGHT = 0.65
LEXICAL_WEIGHT = 0.35
# How much a sentence loses for each unit its passage's retrieval score trails the best passage's: the whole
# abstract's evidence outweighs one sentence's wording.
RETRIEVAL_WEIGHT = 0.5
# Abstain when no sentence comes this close in meaning (cosine) to the question: on the development set this
# answers 99% of plainly worded answerable questions and abstains on 82% of out-of-collection ones, but
# answers only 27% of the heavily paraphrased ones (README, "Answering").
ABSTAIN_BELOW = 0.48
# In an answer about several papers, a paper gets its sentence only when that sentence is this close in meaning
# to the question (on the development multi-paper questions: 43% of cited papers gold, 65% of gold cited).
MULTI_KEEP_ABOVE = 0.45
SECOND_SENTENCE_MARGIN = 0.15
MAX_SENTENCES = 5


@dataclass
class _Candidate:
    number: int
    paper_id: str
    text: str
    relevance: float = 0.0
    semantic: float = 0.0
    prior: float = 0.0
    order: tuple[int, int] = field(default=(0, 0))


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
        if asks_quantity(question):
            asked = numbers(question)
            candidates = [c for c in candidates if numbers(c.text) - asked]
        if not candidates or max(c.semantic for c in candidates) < ABSTAIN_BELOW:
            return emit(ABSTAIN_PHRASE, on_text)
        chosen = self._choose(question, candidates)
        chosen.sort(key=lambda c: c.order)
        text = " ".join(with_markers(c.text, [c.number]) for c in chosen)
        return emit(text, on_text)

    def rank(self, question: str, passages: Sequence[Passage]) -> list[_Candidate]:
        """Every sentence of every passage, scored against the question, best first."""
        top_score = max(p.score for p in passages)
        # Sentences are shown in the order of their paper's rank, then of their place in its abstract.
        paper_rank: dict[str, int] = {}
        for passage in passages:
            paper_rank.setdefault(passage.paper_id, len(paper_rank))
        candidates = [
            _Candidate(
                number,
                passage.paper_id,
                passage.text[start:end].strip(),
                order=(paper_rank[passage.paper_id], passage.start + start),
                prior=RETRIEVAL_WEIGHT * (passage.score - top_score),
            )
            for number, passage in enumerate(passages, 1)
            for start, end in sentence_spans(passage.text)
            if len(passage.text[start:end].split()) >= 4 and not _NOT_A_FINDING.search(passage.text[start:end])
        ]
        if not candidates:
            return []
        vectors = self.embedder.embed_documents([question, *(c.text for c in candidates)])
        asks_method = asks_name(question) or asks_several(question)
        question_stems = content_stems(question)
        question_names = names(question)
        for candidate, vector in zip(candidates, vectors[1:], strict=True):
            semantic = sum(a * b for a, b in zip(vectors[0], vector, strict=True))
            overlap = len(question_stems & content_stems(candidate.text)) / len(question_stems) if question_stems else 0
            candidate.semantic = semantic
            candidate.relevance = SEMANTIC_WEIGHT * semantic + LEXICAL_WEIGHT * overlap + candidate.prior
            # A question about a method is best answered by the sentence that names it ("we propose SSAM").
            if asks_method and _PROPOSAL.search(candidate.text):
                candidate.relevance += 0.1 if names(candidate.text) - question_names else 0.03
            if _BACKGROUND.search(candidate.text):
                candidate.relevance -= 0.05
        return sorted(candidates, key=lambda c: (-c.relevance, c.order))

    def _choose(self, question: str, ranked: list[_Candidate]) -> list[_Candidate]:
        best = ranked[0]
        if asks_several(question):
            per_paper: dict[str, _Candidate] = {}
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
