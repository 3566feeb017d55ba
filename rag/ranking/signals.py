"""What the ranking knows of each candidate paper for a question: one number per signal, each on a scale that
reads the same for every question, so that one set of weights (`rag.ranking.fusion`) fits them all.

- `whole`: cosine of the question to the paper's title and abstract embedded whole.
- `chunk`: the best cosine of the question to one of its chunks.
- `mean`: cosine to the mean of its chunks' vectors (the abstract past the model's 256 word pieces counts too).
- `facets`: for a question of several clauses, the mean over its clauses of each one's best cosine to a sentence
  of the paper: a paper that matches every clause beats one that matches the gist.
- `feedback`: cosine to the question moved towards the best papers by `whole` (pseudo-relevance feedback), which
  carries the collection's own words for what the question paraphrases.
- `keywords`: BM25 of the paper's title and abstract, divided by the question's own BM25 weight (the sum of its
  terms' idf), so that a question sharing no rare word with any paper scores near 0 for every one of them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag.lexical import terms

SIGNALS = ("whole", "chunk", "mean", "facets", "feedback", "keywords")
# Pseudo-relevance feedback: the question plus FEEDBACK_SHARE of the mean vector of its FEEDBACK_PAPERS best papers.
FEEDBACK_PAPERS = 3
FEEDBACK_SHARE = 0.5
# BM25's usual constants (SQLite FTS5's and Lucene's classic ones).
K1 = 1.2
B = 0.75


@dataclass(frozen=True)
class Candidate:
    """A paper as the ranking reads it."""

    paper_id: str
    text: str  # title and abstract, as its terms are counted
    whole: np.ndarray  # unit vector of the whole text (the mean of `chunks` for a store without one)
    chunks: np.ndarray  # (chunks, dimensions) unit vectors
    sentences: np.ndarray | None  # (sentences, dimensions) unit vectors; None where none are stored


@dataclass(frozen=True)
class Keywords:
    """The question's index terms and how many of the collection's chunks hold each."""

    terms: frozenset[str]
    frequencies: Mapping[str, int]
    chunks: int  # chunks in the collection

    def idf(self, term: str) -> float:
        held = self.frequencies.get(term, 0)
        return math.log(1 + (self.chunks - held + 0.5) / (held + 0.5))


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def signals(
    question: np.ndarray, facets: np.ndarray | None, keywords: Keywords, candidates: Sequence[Candidate]
) -> np.ndarray:
    """One row per candidate, one column per name in SIGNALS. `question` is the question's unit vector, `facets`
    the unit vectors of its clauses (None for a question of one clause)."""
    if not candidates:
        return np.zeros((0, len(SIGNALS)))
    whole = np.stack([c.whole for c in candidates])
    whole_cos = whole @ question
    chunk = np.array([float((c.chunks @ question).max()) for c in candidates])
    mean = np.array([float(unit(c.chunks.sum(axis=0)) @ question) for c in candidates])
    best = np.argsort(-whole_cos)[:FEEDBACK_PAPERS]
    moved = unit(question + FEEDBACK_SHARE * whole[best].mean(axis=0))
    feedback = whole @ moved
    return np.column_stack(
        [whole_cos, chunk, mean, _facets(question, facets, candidates), feedback, _keywords(keywords, candidates)]
    )


def _facets(question: np.ndarray, facets: np.ndarray | None, candidates: Sequence[Candidate]) -> np.ndarray:
    out = np.empty(len(candidates))
    for n, candidate in enumerate(candidates):
        rows = candidate.sentences if candidate.sentences is not None else candidate.chunks
        if facets is None:
            out[n] = float((rows @ question).max())
        else:
            out[n] = float((rows @ facets.T).max(axis=0).mean())
    return out


def _keywords(keywords: Keywords, candidates: Sequence[Candidate]) -> np.ndarray:
    weight = sum(keywords.idf(term) for term in keywords.terms)
    if not weight:
        return np.zeros(len(candidates))
    counts = [counted(c.text) for c in candidates]
    lengths = [sum(c.values()) for c in counts]
    average = (sum(lengths) / len(lengths)) or 1.0
    out = np.empty(len(candidates))
    for n, (count, length) in enumerate(zip(counts, lengths, strict=True)):
        score = 0.0
        for term in keywords.terms:
            found = count.get(term, 0)
            if found:
                score += keywords.idf(term) * found * (K1 + 1) / (found + K1 * (1 - B + B * length / average))
        out[n] = score / weight
    return out


@lru_cache(maxsize=4096)
def counted(text: str) -> Counter[str]:
    """The index terms of a paper's text, counted (kept for the papers the last questions ranked)."""
    return Counter(terms(text))
