"""The offline answerer: the retrieved sentences closest to the question, quoted (with the paper named where the
abstract says "we": rag/readable.py), each ending with its passage's marker. Metadata questions are answered
from the records, and the decision to decline is made by rag/confidence.py, before any answerer is asked."""

from __future__ import annotations

from collections.abc import Sequence

from rag.answerers.base import Draft, OnText, Turn, emit
from rag.citations import with_markers
from rag.embedding import Embedder
from rag.evidence import Sentence, answering_parts, rank_sentences
from rag.question import read
from rag.readable import A_PAPER, ANOTHER_PAPER, PaperName, lead_sentence, paper_name, rewrite
from rag.rerank import Likelihood
from rag.templates import ABSTAIN_PHRASE
from rag.text import INTRODUCES, OWN_WORK, content_stems, mentions, names, numbers, quantities, written_names
from rag.types import Passage

# In an answer about several papers, a paper gets its sentence only when that sentence is this close in meaning
# to the question (on the development multi-paper questions: 43% of cited papers gold, 65% of gold cited).
MULTI_KEEP_ABOVE = 0.45
SECOND_SENTENCE_MARGIN = 0.15
MAX_SENTENCES = 5
# An answer about one paper quotes at most this many of its sentences (one asking several things: one per part,
# rag/evidence.py MAX_PARTS).
MAX_SINGLE = 3


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
        chosen.sort(key=lambda c: c.order)
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
            passage = passages[s.number - 1].text if listing or not paper.title else ""
            named.setdefault(s.paper_id, paper_name(paper, passage))
        numbers = list(dict.fromkeys(s.number for s in chosen))
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
        best, asked = ranked[0], read(question)
        if asked.several:
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
            return sorted(per_paper.values(), key=lambda c: order[c.paper_id])[:MAX_SENTENCES]
        # One paper: the best sentence, and a second one of the same paper when it adds a name or a number
        # the first lacks (the method's name, the result), or is nearly as relevant. A question asking for a
        # quantity or a name also gets the paper's sentence that states one, when none of these does.
        same = [c for c in ranked[1:] if c.paper_id == best.paper_id and c.text != best.text]
        if len(asked.parts) > 1:
            return answering_parts(question, asked.parts, [best, *same], self.embedder)
        known = names(best.text) | numbers(best.text) | names(question) | numbers(question)
        chosen = [best]
        for candidate in same:
            adds = (names(candidate.text) | numbers(candidate.text)) - known
            if (adds and candidate.relevance >= best.relevance - SECOND_SENTENCE_MARGIN) or (
                candidate.relevance >= best.relevance - SECOND_SENTENCE_MARGIN / 2
            ):
                chosen.append(candidate)
                break
        wanted = []
        if asked.quantity and (stating := _stating(question, chosen, same)) is not None:
            wanted.append(stating)
        if asked.name and (naming := _naming(question, chosen + wanted, same)) is not None:
            wanted.append(naming)
        if (count := asked.count) and (counting := _counting(count, chosen + wanted, same)) is not None:
            wanted.append(counting)
        if len(chosen) + len(wanted) > MAX_SINGLE:  # what was asked for outranks the merely relevant
            chosen = chosen[:1]
        return chosen + wanted


def _stating(question: str, chosen: list[Sentence], same: list[Sentence]) -> Sentence | None:
    """The paper's most relevant sentence stating a quantity the question does not give, when no chosen one does.
    Where the question names what it measures ("what accuracy"), a chosen sentence's number counts only beside
    that word ("a 12-layer network" does not state an accuracy), and a sentence holding both is preferred."""
    given, asked = numbers(question), read(question).wanted

    def states(sentence: Sentence) -> bool:
        return bool(quantities(sentence.text) - given)

    def measures(sentence: Sentence) -> bool:
        return states(sentence) and (not asked or bool(asked & content_stems(sentence.text)))

    if any(measures(c) for c in chosen):
        return None
    texts = {c.text for c in chosen}
    pool = [c for c in same if c.text not in texts and states(c)]
    best = next((c for c in pool if measures(c)), None)
    if best is not None or any(states(c) for c in chosen):
        return best
    return next(iter(pool), None)


def _counting(count: str, chosen: list[Sentence], same: list[Sentence]) -> Sentence | None:
    """The paper's most relevant sentence that says how many there are of the things the question asks for
    ("Which three classic problems ...": "three challenging geometric problems -- finding planar convex hulls,
    ..."), when no chosen sentence does: that is the sentence that lists them."""
    if any(count in numbers(c.text) for c in chosen):
        return None
    texts = {c.text for c in chosen}
    return next((c for c in same if c.text not in texts and count in numbers(c.text)), None)


def _naming(question: str, chosen: list[Sentence], same: list[Sentence]) -> Sentence | None:
    """The paper's sentence that names what the question asks for, when no chosen sentence names it: the names
    the paper introduces ("we propose SP-TCL", "called DaGAN"), or, when it introduces none, any name the question
    does not use or spell out. Among the sentences holding one, one that introduces it comes first, then the most
    relevant."""

    def new(sentences: list[Sentence]) -> set[str]:  # not one the question uses or spells out (KD: "knowledge ...")
        return {n.lower() for c in sentences for n in written_names(c.text) if not mentions(question, n)}

    introduced = new([c for c in same + chosen if INTRODUCES.search(c.text)])
    wanted = introduced or new(same + chosen)
    if not wanted or any(names(c.text) & wanted for c in chosen):
        return None
    texts = {c.text for c in chosen}
    offering = [c for c in same if c.text not in texts and names(c.text) & wanted]
    return min(offering, key=lambda c: not INTRODUCES.search(c.text), default=None)
