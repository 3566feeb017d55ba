"""The retrieved passages' sentences, ranked against the question: what the extractive answerer quotes, and the
short excerpts a language model reads instead of whole abstracts."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rag.embedding import Embedder
from rag.question import Asked, read
from rag.text import (
    INSTRUCTION,
    INTRODUCES,
    OWN_WORK,
    content_stems,
    names,
    numbers,
    quantities,
    sentence_spans,
)
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
# Weights of a sentence's meaning match and word overlap with the question: chosen on the development
# questions (docs/answering.md).
SEMANTIC_WEIGHT = 0.65
LEXICAL_WEIGHT = 0.35
# How much a sentence loses for each unit its paper's ranking score trails the best paper's: the whole abstract's
# evidence outweighs one sentence's wording (chosen on the tuning half; docs/answering.md, "Ranking").
RETRIEVAL_WEIGHT = 2.0
# An abstract's opening sentence, unless it says what the paper does, sets the scene ("Knowledge distillation is
# an effective strategy ..."): it loses this much against the paper's other sentences, never the paper its rank.
# Chosen on the tuning half, where 0.12 to 0.3 score alike.
OPENING_PENALTY = 0.12
# A model reads at most this many sentences of each paper, in the abstract's own order.
EXCERPT_SENTENCES = 3
# For a question about one paper, a model reads the papers whose best sentence comes this close to the best
# sentence's relevance, at most READ_PAPERS of them: on the tuning half of the development questions, 0.08 keeps
# the gold paper for 80% of single-paper questions with 1.46 papers on average (0: 76% with one paper).
PAPER_MARGIN = 0.08
READ_PAPERS = 3
# A question that asks several things of one paper is answered by the paper's best sentence for each part, at most
# MAX_PARTS sentences. A sentence is scored as a part's answer by its meaning match with the part and its share of
# the part's own words (those no other part holds), beside its relevance to the whole question; a part asking for
# a quantity takes a sentence stating one, and for a name, one introducing a name gains NAME_BONUS.
MAX_PARTS = 4
PART_SEMANTIC = 0.5
PART_LEXICAL = 0.3
PART_WHOLE = 0.2
NAME_BONUS = 0.1


# A sentence that sets the scene (_BACKGROUND) loses this much against one reporting the paper's own work.
BACKGROUND_PENALTY = 0.05
# A question about a method is best answered by the sentence that names it ("we propose SSAM"): such a sentence
# gains NAME_LIFT when the name is new to the question, NAME_LIFT_KNOWN when the question uses it already.
NAME_LIFT = 0.1
NAME_LIFT_KNOWN = 0.03


@dataclass(frozen=True)
class Sentence:
    """One sentence of a retrieved passage, scored against the question."""

    number: int  # the passage's number, 1-based, in the list it came from
    paper_id: str
    text: str
    order: tuple[int, int]  # (paper's rank, offset in its abstract)
    prior: float  # what its passage's retrieval score adds (RETRIEVAL_WEIGHT)
    semantic: float = 0.0  # meaning match with the question
    relevance: float = 0.0  # the score sentences are ranked by


def rank_sentences(
    question: str,
    passages: Sequence[Passage],
    embedder: Embedder,
    keep: Callable[[Passage, str], bool] | None = None,
) -> list[Sentence]:
    """Every sentence of what the answerer reads of every passage (`Passage.read`: its excerpt where a model read
    one, as the fallback answer quotes it, else the chunk) that states a finding (and that `keep` keeps), scored
    against the question, best first."""
    if not passages:
        return []
    top_score = max(p.score for p in passages)
    paper_rank: dict[str, int] = {}
    for passage in passages:
        paper_rank.setdefault(passage.paper_id, len(paper_rank))
    candidates = [
        Sentence(
            number,
            passage.paper_id,
            text,
            order=(paper_rank[passage.paper_id], _offset(passage, start, text)),
            prior=RETRIEVAL_WEIGHT * (passage.score - top_score),
        )
        for number, passage in enumerate(passages, 1)
        for start, end in sentence_spans(passage.read)
        if len((text := passage.read[start:end].strip()).split()) >= 4
        and not _NOT_A_FINDING.search(text)
        and not INSTRUCTION.search(text)
        and (keep is None or keep(passage, text))
    ]
    if not candidates:
        return []
    vectors = embedder.embed_texts([question, *(c.text for c in candidates)])
    asked = read(question)
    asks_method = asked.name or asked.several
    question_stems = content_stems(question)
    question_names = names(question)
    scored: list[Sentence] = []
    lifts: list[float] = []
    for candidate, vector in zip(candidates, vectors[1:], strict=True):
        semantic = sum(a * b for a, b in zip(vectors[0], vector, strict=True))
        overlap = len(question_stems & content_stems(candidate.text)) / len(question_stems) if question_stems else 0
        relevance = SEMANTIC_WEIGHT * semantic + LEXICAL_WEIGHT * overlap + candidate.prior
        relevance -= BACKGROUND_PENALTY if _BACKGROUND.search(candidate.text) else 0.0
        scored.append(replace(candidate, semantic=semantic, relevance=relevance))
        lift = 0.0
        if asks_method and INTRODUCES.search(candidate.text):
            lift = NAME_LIFT if names(candidate.text) - question_names else NAME_LIFT_KNOWN
        lifts.append(lift)
    best_of: dict[str, float] = {}
    for sentence in scored:
        best_of[sentence.paper_id] = max(best_of.get(sentence.paper_id, -math.inf), sentence.relevance)
    # An opening sentence that does not say what the paper does is set back, and then each paper's best sentence
    # gets the paper's best score back: the penalty reorders a paper's sentences, never the papers.
    opened = [
        s.relevance - OPENING_PENALTY if s.order[1] == 0 and not OWN_WORK.search(s.text) else s.relevance
        for s in scored
    ]
    top: dict[str, int] = {}
    for n, sentence in enumerate(scored):
        if sentence.paper_id not in top or opened[n] > opened[top[sentence.paper_id]]:
            top[sentence.paper_id] = n
    for pid, n in top.items():
        opened[n] = max(opened[n], best_of[pid])
    ranked = []
    for sentence, relevance, lift in zip(scored, opened, lifts, strict=True):
        # About several papers, one that names its method is a better answer than one that does not; about one,
        # the lift picks the paper's sentence, never the paper (the best paper's naming sentence is added anyway).
        ceiling = math.inf if asked.several else best_of[sentence.paper_id] + 1e-6
        ranked.append(replace(sentence, relevance=min(relevance + lift, ceiling) if lift else relevance))
    return sorted(ranked, key=lambda c: (-c.relevance, c.order))


def _offset(passage: Passage, start: int, text: str) -> int:
    """Where a sentence that starts at `start` of what the answerer reads of `passage` stands in the abstract."""
    if passage.excerpt is None:
        return passage.start + start
    found = passage.paper.abstract.find(text)
    return found if found >= 0 else passage.start


def excerpts(
    question: str, passages: Sequence[Passage], embedder: Embedder, per_paper: int = EXCERPT_SENTENCES
) -> tuple[list[Passage], int]:
    """One passage per paper, its best chunk, with the paper's sentences that best match the question as its
    `excerpt` (at most `per_paper`, in the abstract's order; none for a paper with no such sentence): what a small
    model reads instead of whole chunks. The papers a model should read come first, and their count is returned
    with the list: for a question about one paper, those whose best sentence comes within PAPER_MARGIN of the best
    one (at most READ_PAPERS), best first; for a question about several, every paper, in rank order."""
    ranked = rank_sentences(question, passages, embedder)
    chosen: dict[str, list[Sentence]] = {}
    asked = read(question)
    parts = asked.parts
    if ranked and not asked.several:
        # the best paper's sentences that answer the question, as the extractive answer quotes them
        chosen[ranked[0].paper_id] = answering_sentences(question, ranked, embedder)
    for sentence in ranked:
        kept = chosen.setdefault(sentence.paper_id, [])
        if len(kept) < max(per_paper, len(parts)) and all(s.text != sentence.text for s in kept):
            kept.append(sentence)
    by_paper: dict[str, Passage] = {}
    for passage in passages:
        if passage.paper_id in by_paper:
            continue
        mine = [p for p in passages if p.paper_id == passage.paper_id]
        best = max(mine, key=lambda p: p.score)
        kept = sorted(chosen.get(passage.paper_id, []), key=lambda s: s.order)
        by_paper[passage.paper_id] = (
            best.model_copy(update={"excerpt": " ".join(s.text for s in kept)}) if kept else best
        )
    order = list(by_paper)
    if asked.several or not ranked:
        return [by_paper[pid] for pid in order], len(order)
    best_of = {pid: sentences[0].relevance for pid, sentences in chosen.items()}
    top = ranked[0].relevance
    close = sorted((pid for pid in best_of if best_of[pid] >= top - PAPER_MARGIN), key=lambda pid: -best_of[pid])
    first = close[:READ_PAPERS]
    return [by_paper[pid] for pid in first] + [by_paper[pid] for pid in order if pid not in first], len(first)


def answering_parts(
    question: str, parts: Sequence[str], pool: Sequence[Sentence], embedder: Embedder
) -> list[Sentence]:
    """For a question that asks several things (`parts`, rag.question.Asked.parts) of one paper, the paper's sentence
    that answers each part best (`pool`: its sentences, best first), each sentence once: a part already answered
    by a chosen sentence adds none. The best sentence for the whole question stays first."""
    if not pool:
        return []
    vectors = embedder.embed_texts([*parts, *(c.text for c in pool)])
    part_vectors, sentence_vectors = vectors[: len(parts)], vectors[len(parts) :]
    given = numbers(question)
    chosen = [pool[0]]
    stems = [content_stems(part) for part in parts]
    for n, (part, part_vector) in enumerate(zip(parts, part_vectors, strict=True)):
        own = stems[n] - set().union(*(other for m, other in enumerate(stems) if m != n))
        part_asks = read(part)
        quantity, name, count = part_asks.quantity, part_asks.name, part_asks.count
        scored = [
            (_part_score(sentence, vector, part_vector, own, name, count), sentence)
            for sentence, vector in zip(pool, sentence_vectors, strict=True)
            if not quantity or quantities(sentence.text) - given
        ] or [(0.0, pool[0])]
        best = max(scored, key=lambda item: item[0])[1]
        if best not in chosen and len(chosen) < MAX_PARTS:
            chosen.append(best)
    return chosen


def _part_score(
    sentence: Sentence, vector: list[float], part: list[float], own: set[str], name: bool, count: str | None
) -> float:
    """How well `sentence` answers one part of a question (`part`: its vector; `own`: its own words' stems). A part
    asking for a name favours the sentence introducing one; a part asking for a count of things ("what two
    networks") the sentence saying how many there are, which lists them."""
    semantic = sum(a * b for a, b in zip(part, vector, strict=True))
    overlap = len(own & content_stems(sentence.text)) / len(own) if own else 0.0
    introduces = name and bool(INTRODUCES.search(sentence.text))
    counts = count is not None and count in numbers(sentence.text)
    return (
        PART_SEMANTIC * semantic
        + PART_LEXICAL * overlap
        + PART_WHOLE * sentence.relevance
        + NAME_BONUS * (introduces or counts)
    )


# An answer about one paper quotes at most this many of its sentences (one asking several things: one per part,
# MAX_PARTS).
MAX_SINGLE = 3
# A second sentence of the best paper joins the first when it adds a name or a number the first lacks and comes
# within this much of its relevance, or comes within half of it whatever it adds.
SECOND_SENTENCE_MARGIN = 0.15


def answering_sentences(question: str, ranked: Sequence[Sentence], embedder: Embedder) -> list[Sentence]:
    """The sentences of the best paper (that of `ranked[0]`) that answer a question about one paper, best first:
    what the extractive answer quotes and what a model's excerpt of that paper holds. A compound question gets
    its best sentence for each part. Otherwise the best sentence, and a second one when it adds a name or a number
    the first lacks (the method's name, the result) or is nearly as relevant; a question asking for a quantity,
    a name or a count of things also gets the paper's sentence that states one, when none of these does."""
    if not ranked:
        return []
    best, asked = ranked[0], read(question)
    same = [c for c in ranked[1:] if c.paper_id == best.paper_id and c.text != best.text]
    if len(asked.parts) > 1:
        return answering_parts(question, asked.parts, [best, *same], embedder)
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
    if asked.quantity and (stating := _stating(asked, chosen, same)) is not None:
        wanted.append(stating)
    if asked.name and (naming := _naming(asked, chosen + wanted, same)) is not None:
        wanted.append(naming)
    if asked.count and (counting := _counting(asked, chosen + wanted, same)) is not None:
        wanted.append(counting)
    if len(chosen) + len(wanted) > MAX_SINGLE:  # what was asked for outranks the merely relevant
        chosen = chosen[:1]
    return chosen + wanted


def _stating(asked: Asked, chosen: list[Sentence], same: list[Sentence]) -> Sentence | None:
    """The paper's most relevant sentence stating a quantity the question does not give, when no chosen one does.
    Where the question names what it measures, a chosen sentence's number counts only beside that word
    (`Asked.measures`), and a sentence holding both is preferred."""
    if any(asked.measures(c.text) for c in chosen):
        return None
    texts = {c.text for c in chosen}
    pool = [c for c in same if c.text not in texts and asked.gives_quantity(c.text)]
    best = next((c for c in pool if asked.measures(c.text)), None)
    if best is not None or any(asked.gives_quantity(c.text) for c in chosen):
        return best
    return next(iter(pool), None)


def _counting(asked: Asked, chosen: list[Sentence], same: list[Sentence]) -> Sentence | None:
    """The paper's most relevant sentence that says how many there are of the things the question asks for
    ("Which three classic problems ...": "three challenging geometric problems -- finding planar convex hulls,
    ..."), when no chosen sentence does: that is the sentence that lists them."""
    if any(asked.counts(c.text) for c in chosen):
        return None
    texts = {c.text for c in chosen}
    return next((c for c in same if c.text not in texts and asked.counts(c.text)), None)


def _naming(asked: Asked, chosen: list[Sentence], same: list[Sentence]) -> Sentence | None:
    """The paper's sentence that names what the question asks for, when no chosen sentence names it: the names
    the paper introduces ("we propose SP-TCL", "called DaGAN"), or, when it introduces none, any name the question
    does not use or spell out. Among the sentences holding one, one that introduces it comes first, then the most
    relevant."""

    def new(sentences: list[Sentence]) -> set[str]:
        return {name for c in sentences for name in asked.new_names(c.text)}

    introduced = new([c for c in same + chosen if INTRODUCES.search(c.text)])
    wanted = introduced or new(same + chosen)
    if not wanted or any(names(c.text) & wanted for c in chosen):
        return None
    texts = {c.text for c in chosen}
    offering = [c for c in same if c.text not in texts and names(c.text) & wanted]
    return min(offering, key=lambda c: not INTRODUCES.search(c.text), default=None)
