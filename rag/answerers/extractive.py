"""The offline answerer: the retrieved sentences closest to the question, quoted (with the paper named where the
abstract says "we": rag/readable.py), each ending with its passage's marker. Metadata questions are answered
from the records, and the decision to decline is made by rag/confidence.py, before any answerer is asked."""

from __future__ import annotations

from collections.abc import Sequence

from rag.answerers.base import Draft, OnText, Turn, emit
from rag.citations import with_markers
from rag.embedding import Embedder
from rag.evidence import Sentence, answering_sentences, rank_sentences
from rag.question import read
from rag.readable import A_PAPER, ANOTHER_PAPER, PaperName, lead_sentence, paper_name, rewrite
from rag.rerank import Likelihood
from rag.templates import ABSTAIN_PHRASE
from rag.text import OWN_WORK, names, numbers
from rag.types import Passage

# In an answer about several papers, a paper gets its sentence only when that sentence is this close in meaning
# to the question (on the development multi-paper questions: 43% of cited papers gold, 65% of gold cited).
MULTI_KEEP_ABOVE = 0.45
MAX_SENTENCES = 5
# A several-paper question that also asks what each paper does ("..., and how do they do it?") gives its first
# this many papers a second sentence: the next most relevant that adds a name or a number to the first.
SECOND_PAPERS = 2


class ExtractiveAnswerer:
    """Answers with sentences taken verbatim from the passages, each ending with its passage's marker."""

    name = "extractive"
    verbatim = True
    scorer: Likelihood | None = None

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def answer(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn], on_text: OnText | None = None
    ) -> Draft:
        """The best-matching retrieved sentences, one per paper when the question spans several papers."""
        if not passages:
            return emit(ABSTAIN_PHRASE, on_text)
        candidates = self.rank(question, passages)
        if not candidates:
            return emit(ABSTAIN_PHRASE, on_text)
        chosen = self._choose(question, candidates)
        return emit(" ".join(self._sentences(chosen, passages, read(question).several)), on_text)

    def _sentences(self, chosen: list[Sentence], passages: Sequence[Passage], several: bool) -> list[str]:
        """The chosen sentences as an answer's, each with its marker. Each names its paper where the abstract says
        "we": by its method's name or title, by "It" right after another sentence of the same paper. An answer
        about several papers opens with a sentence listing them, and then names each by its method's name, or
        as "A paper", "Another paper"."""
        papers = {s.paper_id: passages[s.number - 1].paper for s in chosen}
        # Each paper by the name its title opens with; in an answer listing several papers, or for an untitled
        # paper, else by the name its first quoted passage gives its method (the passage that sentence cites, so
        # that the name is in what it cites), since a list of whole titles is hard to read.
        listing = several and len(papers) >= 2
        named: dict[str, PaperName] = {}
        for s in chosen:
            paper = papers[s.paper_id]
            passage = passages[s.number - 1].read if listing or not paper.title else ""
            named.setdefault(s.paper_id, paper_name(paper, passage))
        firsts: dict[str, int] = {}  # each paper once, by the first of its passages that a sentence quotes
        for s in chosen:
            firsts.setdefault(s.paper_id, s.number)
        numbers = list(firsts.values())
        out = []
        if listing:
            cited = [(n, passages[n - 1].paper) for n in numbers]
            out.append(lead_sentence(cited, [named[passages[n - 1].paper_id].text for n in numbers]))
        previous: str | None = None
        unnamed = 0
        for sentence in chosen:
            name = named[sentence.paper_id].text
            if sentence.paper_id == previous:
                name = "It"
            elif out and (not named[sentence.paper_id].method or (listing and name in sentence.text)):
                # the lead gave the title already, or the sentence names the method itself: "The paper" would
                # not tell the papers apart
                name = A_PAPER if unnamed == 0 else ANOTHER_PAPER
            text, subject = rewrite(sentence.text, name)
            unnamed += subject in (A_PAPER, ANOTHER_PAPER)
            out.append(with_markers(text, [sentence.number]))
            previous = sentence.paper_id
        return out

    def rank(self, question: str, passages: Sequence[Passage]) -> list[Sentence]:
        """Every sentence of every passage, scored against the question, best first. About several papers, of the
        chunks added to give a paper's whole abstract only the sentences saying what the paper does: they are all
        `_choose` takes from them, and a question about eight papers would otherwise embed some two hundred."""
        keep = (lambda p, text: not p.expanded or bool(OWN_WORK.search(text))) if read(question).several else None
        return rank_sentences(question, passages, self.embedder, keep=keep)

    def _choose(self, question: str, ranked: list[Sentence]) -> list[Sentence]:
        if read(question).several:
            # The papers with a sentence close enough to the question, each described by its most relevant
            # sentence saying what the paper itself does ("we propose ..."), however close that one is: the topic
            # sentence that matched ("Domain adaptation attempts to ...") tells the papers apart by nothing.
            close = [c for c in ranked if c.semantic >= MULTI_KEEP_ABOVE]
            kept = {c.paper_id for c in close}
            per_paper: dict[str, Sentence] = {}
            for candidate in [c for c in ranked if OWN_WORK.search(c.text)] + close:  # each list best first
                if candidate.paper_id in kept:
                    per_paper.setdefault(candidate.paper_id, candidate)
            order = {c.paper_id: i for i, c in reversed(list(enumerate(ranked)))}
            chosen = sorted(per_paper.values(), key=lambda c: order[c.paper_id])[:MAX_SENTENCES]
            seconds = _seconds(chosen[:SECOND_PAPERS], ranked) if len(read(question).parts) > 1 else {}
            ordered = sorted(chosen, key=lambda c: c.order)
            return [s for c in ordered for s in (c, seconds.get(c.paper_id)) if s is not None]
        return sorted(answering_sentences(question, ranked, self.embedder), key=lambda c: c.order)


def _seconds(firsts: list[Sentence], ranked: list[Sentence]) -> dict[str, Sentence]:
    """For each of `firsts` (a paper's sentence), the paper's next most relevant sentence after it in the abstract
    that adds a name or a number the first lacks, by paper: what the paper does, beside the sentence that says which
    paper it is (what comes before that one sets the scene)."""
    out = {}
    for first in firsts:
        known = names(first.text) | numbers(first.text)
        for candidate in ranked:
            adds = (names(candidate.text) | numbers(candidate.text)) - known
            if candidate.paper_id == first.paper_id and candidate.order > first.order and adds:
                out[first.paper_id] = candidate
                break
    return out
