"""Retrieved passages → reordered by how likely a language model finds the question after reading each one's
abstract (query likelihood, as in UPR, Sachan et al. 2022): the paper whose abstract would make a reader ask this
question comes first. Run by the model the `local` backend has already loaded; nothing is trained or downloaded.

On the development questions (docs/answering.md, "Reranking"), the bundled 0.5B model puts the right paper first
where the embedding ranks it second or third behind a paper on the same topic, because the question's particulars ("how
many parameters", the method's effect) are likely after the right abstract only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from rag.embedding import Embedder
from rag.evidence import LEXICAL_WEIGHT, SEMANTIC_WEIGHT
from rag.templates import render
from rag.text import content_stems, sentence_spans
from rag.types import Passage

# How many of the best passages are reread at most: each costs the model one pass over an abstract (about 2 s on
# 2 cores).
DEPTH = 5
# Of those, only the papers whose ranking score comes within MARGIN of the best one's are reread, and none when no
# other paper does. Fitted with WEIGHT by cross-validation on the tuning half (eval/fit_rerank.py).
MARGIN = 0.1
# A passage's new score: its retrieval score plus WEIGHT times the question's mean log-probability per token.
# Fitted by cross-validation on the tuning half of the development questions (eval/fit_rerank.py).
WEIGHT = 1.0
# What the model reads of each paper where reading a prompt is slow: its title and the abstract's READ_SENTENCES
# sentences that best match the question, in the abstract's order (2.5 times fewer tokens than the whole abstract).
# On the development and independent questions the whole abstract ranks the gold paper first more often (0.882 /
# 0.894 / 0.938 tuning half cross-validated / test half / independent, against 0.832 / 0.841 / 0.875), so the
# model reads it whole where llama.cpp reads prompts fast (rag.answerers.local: RERANK_SENTENCES).
READ_SENTENCES = 3


@runtime_checkable
class Likelihood(Protocol):
    """A language model that can say how likely a reply is."""

    # What it reads of each paper: the title and this many of the abstract's best sentences; None: all of it.
    rerank_sentences: int | None

    def likelihood(self, messages: Sequence[dict[str, str]], reply: str) -> float:
        """Mean log-probability per token of `reply` as the answer to `messages`."""
        ...


def likelihoods(question: str, texts: Sequence[str], model: Likelihood) -> list[float]:
    """For each paper's text (what `readings` gives the model), the mean log-probability per token of `question`
    as the model's question about it."""
    return [
        model.likelihood([{"role": "user", "content": render("rerank", abstract=text)}], question) for text in texts
    ]


def readings(
    question: str, passages: Sequence[Passage], embedder: Embedder | None, sentences: int | None = None
) -> list[str]:
    """What the model reads of each passage's paper: the title and the whole abstract, or, with `sentences` and an
    `embedder`, the title and the abstract's `sentences` sentences that best match the question (meaning and shared
    words, weighed as the answer's sentences are), in the abstract's order."""
    if sentences is None or embedder is None:
        return [_titled(p, p.paper.abstract) for p in passages]
    spans = [sentence_spans(p.paper.abstract) for p in passages]
    texts = [[p.paper.abstract[a:b] for a, b in mine] for p, mine in zip(passages, spans, strict=True)]
    vectors = embedder.embed_texts([question, *(t for mine in texts for t in mine)])
    asked, stems = vectors[0], content_stems(question)
    out, at = [], 1
    for passage, mine in zip(passages, texts, strict=True):
        scores = []
        for text, vector in zip(mine, vectors[at : at + len(mine)], strict=True):
            overlap = len(stems & content_stems(text)) / len(stems) if stems else 0.0
            semantic = sum(a * b for a, b in zip(asked, vector, strict=True))
            scores.append(SEMANTIC_WEIGHT * semantic + LEXICAL_WEIGHT * overlap)
        at += len(mine)
        best = sorted(sorted(range(len(mine)), key=lambda i: -scores[i])[:sentences])
        out.append(_titled(passage, " ".join(mine[i] for i in best)))
    return out


def combined(score: float, likelihood: float, weight: float = WEIGHT) -> float:
    """A reranked passage's relevance: its retrieval score plus `weight` times the question's likelihood."""
    return score + weight * likelihood


def contenders(scores: Sequence[float], depth: int = DEPTH, margin: float = MARGIN) -> int:
    """How many of the first passages (their retrieval `scores`, best first) to reread: those among the first
    `depth` whose score comes within `margin` of the best; 0 when fewer than two do, since one alone keeps its
    place."""
    count = sum(1 for score in scores[:depth] if score >= scores[0] - margin)
    return count if count >= 2 else 0


def rerank(
    question: str,
    passages: list[Passage],
    model: Likelihood,
    depth: int = DEPTH,
    reading: Callable[[int], None] | None = None,
    embedder: Embedder | None = None,
    sentences: int | None = None,
    margin: float = MARGIN,
    weight: float = WEIGHT,
) -> list[Passage]:
    """`passages` with their contenders (the first, up to `depth`, within `margin` of the best) reordered by
    retrieval score plus WEIGHT × query likelihood: each gets that sum as its `score` (shifted so that the best one
    keeps the best retrieval score) and its likelihood as `rerank`. The rest follow as they were. `reading` is
    told how many abstracts the model rereads, before it does; with `sentences` and an `embedder` the model reads
    each paper's title and best sentences (`readings`), else its title and whole abstract."""
    count = contenders([p.score for p in passages], depth, margin)
    head, tail = passages[:count], passages[count:]
    if not head:
        return passages
    if reading is not None:
        reading(count)
    values = likelihoods(question, readings(question, head, embedder, sentences), model)
    totals = [combined(p.score, value, weight) for p, value in zip(head, values, strict=True)]
    # The new scores keep the best retrieval score as their top, so that what weighs the evidence by the best
    # score (the decline model) reads the same scale, while the gaps below it are the reranker's.
    shift = max(p.score for p in head) - max(totals)
    scored = [
        p.model_copy(update={"score": round(total + shift, 6), "rerank": round(value, 6)})
        for p, value, total in zip(head, values, totals, strict=True)
    ]
    scored.sort(key=lambda p: -p.score)
    return scored + tail


def _titled(passage: Passage, text: str) -> str:
    """`text` of the passage's paper with its title in front, as the model reads it."""
    title = (passage.paper.title or "").strip()
    return f"{title}. {text}" if title else text
