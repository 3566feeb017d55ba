"""The retrieved passages' sentences, ranked against the question: what the extractive answerer quotes, and the
short excerpts a language model reads instead of whole abstracts."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rag.embedding import Embedder
from rag.question import asks_name, asks_several
from rag.text import INTRODUCES, content_stems, names, sentence_spans
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
# questions (README, "Answering").
SEMANTIC_WEIGHT = 0.65
LEXICAL_WEIGHT = 0.35
# How much a sentence loses for each unit its passage's retrieval score trails the best passage's: the whole
# abstract's evidence outweighs one sentence's wording.
RETRIEVAL_WEIGHT = 0.5
# A model reads at most this many sentences of each paper, in the abstract's own order.
EXCERPT_SENTENCES = 3
# For a question about one paper, a model reads the papers whose best sentence comes this close to the best
# sentence's relevance, at most READ_PAPERS of them: on the tuning half of the development questions, 0.08 keeps
# the gold paper for 80% of single-paper questions with 1.46 papers on average (0: 76% with one paper).
PAPER_MARGIN = 0.08
READ_PAPERS = 3


@dataclass
class Sentence:
    """One sentence of a retrieved passage, scored against the question."""

    number: int  # the passage's number, 1-based, in the list it came from
    paper_id: str
    text: str
    relevance: float = 0.0
    semantic: float = 0.0
    prior: float = 0.0
    order: tuple[int, int] = field(default=(0, 0))  # (paper's rank, offset in its abstract)


def rank_sentences(
    question: str,
    passages: Sequence[Passage],
    embedder: Embedder,
    keep: Callable[[Passage, str], bool] | None = None,
) -> list[Sentence]:
    """Every sentence of every passage that states a finding (and that `keep` keeps), scored against the question,
    best first."""
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
            passage.text[start:end].strip(),
            order=(paper_rank[passage.paper_id], passage.start + start),
            prior=RETRIEVAL_WEIGHT * (passage.score - top_score),
        )
        for number, passage in enumerate(passages, 1)
        for start, end in sentence_spans(passage.text)
        if len(passage.text[start:end].split()) >= 4
        and not _NOT_A_FINDING.search(passage.text[start:end])
        and (keep is None or keep(passage, passage.text[start:end]))
    ]
    if not candidates:
        return []
    vectors = embedder.embed_texts([question, *(c.text for c in candidates)])
    asks_method = asks_name(question) or asks_several(question)
    question_stems = content_stems(question)
    question_names = names(question)
    lifts = []
    for candidate, vector in zip(candidates, vectors[1:], strict=True):
        semantic = sum(a * b for a, b in zip(vectors[0], vector, strict=True))
        overlap = len(question_stems & content_stems(candidate.text)) / len(question_stems) if question_stems else 0
        candidate.semantic = semantic
        candidate.relevance = SEMANTIC_WEIGHT * semantic + LEXICAL_WEIGHT * overlap + candidate.prior
        if _BACKGROUND.search(candidate.text):
            candidate.relevance -= 0.05
        # A question about a method is best answered by the sentence that names it ("we propose SSAM").
        if asks_method and INTRODUCES.search(candidate.text):
            lifts.append((candidate, 0.1 if names(candidate.text) - question_names else 0.03))
    several = asks_several(question)
    best_of: dict[str, float] = {}
    for candidate in candidates:
        best_of[candidate.paper_id] = max(best_of.get(candidate.paper_id, -math.inf), candidate.relevance)
    for candidate, lift in lifts:
        # About several papers, one that names its method is a better answer than one that does not; about one,
        # the lift picks the paper's sentence, never the paper (the best paper's naming sentence is added anyway).
        ceiling = math.inf if several else best_of[candidate.paper_id] + 1e-6
        candidate.relevance = min(candidate.relevance + lift, ceiling)
    return sorted(candidates, key=lambda c: (-c.relevance, c.order))


def excerpts(
    question: str, passages: Sequence[Passage], embedder: Embedder, per_paper: int = EXCERPT_SENTENCES
) -> tuple[list[Passage], int]:
    """One passage per paper holding the paper's sentences that best match the question (at most `per_paper`, in
    the abstract's order; a paper with no such sentence keeps its best chunk): what a small model reads instead
    of whole chunks. The papers a model should read come first, and their count is returned with the list: for
    a question about one paper, those whose best sentence comes within PAPER_MARGIN of the best one (at most
    READ_PAPERS), best first; for a question about several, every paper, in rank order."""
    ranked = rank_sentences(question, passages, embedder)
    chosen: dict[str, list[Sentence]] = {}
    for sentence in ranked:
        kept = chosen.setdefault(sentence.paper_id, [])
        if len(kept) < per_paper and all(s.text != sentence.text for s in kept):
            kept.append(sentence)
    by_paper: dict[str, Passage] = {}
    for passage in passages:
        if passage.paper_id in by_paper:
            continue
        mine = [p for p in passages if p.paper_id == passage.paper_id]
        best = max(mine, key=lambda p: p.score)
        kept = sorted(chosen.get(passage.paper_id, []), key=lambda s: s.order)
        by_paper[passage.paper_id] = best.model_copy(
            update={
                "text": " ".join(s.text for s in kept),
                "start": kept[0].order[1],
                "end": kept[-1].order[1] + len(kept[-1].text),
            }
        ) if kept else best  # fmt: skip
    order = list(by_paper)
    if asks_several(question) or not ranked:
        return [by_paper[pid] for pid in order], len(order)
    best_of = {pid: sentences[0].relevance for pid, sentences in chosen.items()}
    top = ranked[0].relevance
    read = sorted((pid for pid in best_of if best_of[pid] >= top - PAPER_MARGIN), key=lambda pid: -best_of[pid])
    read = read[:READ_PAPERS]
    return [by_paper[pid] for pid in read] + [by_paper[pid] for pid in order if pid not in read], len(read)
