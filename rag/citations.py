"""[n] markers: parse them, drop the ones that point at no passage, and score how well each sentence's cited
passages support it.

The support check is offline and deterministic. A sentence is supported when
  * every number it states (3.2%, 16x, 2023) appears in its cited passages,
  * every name it uses (acronyms and mixed-case words: SSAM, LoRA, CIFAR-10) appears there,
  * it is negated exactly when the cited sentence closest to it is (a dropped or added "not"),
  * and enough of its content words appear there: the share of its content-word stems found in the cited
    text, averaged with the best cosine similarity between it and a cited sentence when an embedder is given
    (a paraphrase keeps the meaning while changing words).
It cannot tell a fluent claim that recombines words of the passage into a different meaning from a faithful
one, and it reads metadata claims (authors, dates) against the cited paper's record, not against the web.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.embedding import Embedder
from rag.text import content_stems, names, negated, numbers, sentences
from rag.types import AnswerSentence, Paper, Passage

# The support a sentence needs to count as backed by its citations; chosen on the development questions
# (faithful sentences score at least 0.8; sentences cited to the wrong passage at most 0.45).
SUPPORT_THRESHOLD = 0.6

MARKER = re.compile(r"\s*\[(\d+)\]")
_MARKERS_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+\])+)")


def paper_header(paper: Paper) -> str:
    """A paper's record as text, so that metadata claims can be checked like any other."""
    parts = []
    if paper.title:
        parts.append(f"Title: {paper.title}.")
    if paper.authors:
        parts.append(f"Authors: {', '.join(paper.authors)}{' et al.' if paper.et_al else ''}.")
    if paper.n_authors is not None:
        parts.append(f"{paper.n_authors} authors.")
    if paper.date:
        parts.append(f"Published {paper.date}{f' ({paper.published.year})' if paper.published else ''}.")
    if paper.category:
        parts.append(f"Category {paper.category}.")
    if paper.has_code is not None:
        parts.append("Code listed." if paper.has_code else "No code listed.")
    if paper.upvotes is not None:
        parts.append(f"{paper.upvotes} upvotes.")
    if paper.organization:
        parts.append(f"Organisation {paper.organization}.")
    return " ".join(parts)


def split_answer(text: str) -> list[str]:
    """The sentences of an answer, markers kept with the sentence they follow ("... sparsity. [1]" included)."""
    normal = _MARKERS_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", text.strip())
    return [s.strip() for s in sentences(normal) if s.strip()]


def parse_markers(sentence: str) -> tuple[str, list[int]]:
    """A sentence without its markers, and the marker numbers in order of appearance (without repeats)."""
    found = [int(n) for n in MARKER.findall(sentence)]
    claim = MARKER.sub("", sentence)
    claim = re.sub(r"\s+([.,;:!?])", r"\1", claim).strip()
    return claim, list(dict.fromkeys(found))


def with_markers(claim: str, markers: Sequence[int]) -> str:
    """The claim with its markers before the final punctuation: "... sparsity [1][3]."."""
    tags = "".join(f"[{n}]" for n in markers)
    if not tags:
        return claim
    if claim.endswith((" et al.", " al.")):  # an abbreviation's full stop stays where it is
        return f"{claim} {tags}"
    if claim and claim[-1] in ".!?":
        return f"{claim[:-1].rstrip()} {tags}{claim[-1]}"
    return f"{claim} {tags}"


@dataclass(frozen=True)
class Support:
    """How well a claim is backed, and why not where it is not."""

    score: float
    problems: tuple[str, ...]

    @property
    def supported(self) -> bool:
        """Whether the claim passes every hard check and scores at the threshold or above."""
        return not self.problems and self.score >= SUPPORT_THRESHOLD


def support(claim: str, cited: Sequence[Passage], embedder: Embedder | None = None) -> Support:
    """How well the cited passages (with their papers' records) support `claim`."""
    evidence = [f"{paper_header(p.paper)} {p.text}" for p in cited]
    return judge_claim(claim, evidence, count=len({p.paper_id for p in cited}), embedder=embedder)


def judge_claim(
    claim: str, evidence: Sequence[str], count: int | None = None, embedder: Embedder | None = None
) -> Support:
    """How well the `evidence` texts, taken together, support `claim` (the checks in the module docstring).

    `count` is the number of distinct papers behind the evidence: a claim may state it ("4 papers ...")."""
    if not evidence:
        return Support(0.0, ("cites no passage",))
    joined = " ".join(evidence)
    problems: list[str] = []
    # A count of the cited papers ("4 papers ...") is backed by the citations themselves.
    allowed = {str(count if count is not None else len(evidence))}
    missing_numbers = numbers(claim) - numbers(joined) - allowed
    if missing_numbers:
        problems.append(f"number {', '.join(sorted(missing_numbers))} not in the cited passages")
    lowered = joined.lower()
    missing_names = {name for name in names(claim) if name not in lowered}
    if missing_names:
        problems.append(f"name {', '.join(sorted(missing_names))} not in the cited passages")

    claim_stems = content_stems(claim)
    evidence_stems = content_stems(joined)
    coverage = len(claim_stems & evidence_stems) / len(claim_stems) if claim_stems else 1.0
    candidates = [s for text in evidence for s in sentences(text)] or list(evidence)
    closest = max(candidates, key=lambda s: len(content_stems(s) & claim_stems))
    if negated(claim) != negated(closest):
        problems.append("negation differs from the cited passage")
    score = coverage
    if embedder is not None:
        vectors = embedder.embed_documents([claim, *candidates])
        similarity = max(sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:])
        score = (coverage + max(similarity, 0.0)) / 2
    return Support(round(score, 4), tuple(problems))


@dataclass(frozen=True)
class Checked:
    """An answer after its markers were checked: each sentence with its support, and markers removed."""

    sentences: list[AnswerSentence]
    removed_markers: list[int]


def check(text: str, passages: Sequence[Passage], embedder: Embedder | None = None) -> Checked:
    """Parse the markers of `text` ([n] is passages[n-1]), drop those that point at no passage, and score
    every sentence against the passages it cites."""
    checked: list[AnswerSentence] = []
    removed: list[int] = []
    for raw in split_answer(text):
        claim, markers = parse_markers(raw)
        if not claim:
            continue
        valid = [n for n in markers if 1 <= n <= len(passages)]
        removed.extend(n for n in markers if n not in valid)
        result = support(claim, [passages[n - 1] for n in valid], embedder)
        checked.append(
            AnswerSentence(
                text=with_markers(claim, valid),
                claim=claim,
                markers=valid,
                support=result.score,
                supported=result.supported,
                problems=list(result.problems),
            )
        )
    return Checked(sentences=checked, removed_markers=sorted(set(removed)))
