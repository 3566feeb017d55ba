"""Citations: read markers in the styles models write, drop the ones that point at no passage, attribute a
sentence with no marker (or a wrong one) to the passage that supports it, and score each sentence's support.

Models cite as [1][2], [1, 2], [1-3], (1), 【1】, "Source 1" or "Passage 1", open a line with "[1] Title",
echo passage headings, wrap their reasoning in <think>…</think>, and write lists: `clean_draft` turns all of
it into plain sentences with [n] markers before anything is checked.

The support check is offline and deterministic. A sentence is supported when
  * every number it states (3.2%, 16x, 2023) appears in its cited passages,
  * every name it uses (acronyms and mixed-case words: SSAM, LoRA, CIFAR-10) appears there,
  * it is negated exactly when the cited sentence closest to it is (a dropped or added "not"; a quoted title
    names a paper, so its words are no negation),
  * it does not state the opposite direction of that sentence ("lower" where it says "higher", "underperforms"
    where it says "outperforms"),
  * and enough of its content words appear there: the share of its content-word stems found in the cited
    text, averaged with the best cosine similarity between it and a cited sentence when an embedder is given
    (a paraphrase keeps the meaning while changing words).
The sentence listing the papers of a several-paper answer is judged on its list alone: its opening words
("These papers bear on the question:") are the answer's own framing, not something a passage states.
It cannot tell a fluent claim that recombines words of the passage into a different meaning from a faithful
one, and it reads metadata claims (authors, dates) against the cited paper's record, not against the web.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rag.embedding import Embedder
from rag.question import Asked
from rag.templates import ABSTAIN_PHRASE, CLOSE_PHRASE, LEAD_PHRASE, NAMED_PHRASE
from rag.text import (
    INSTRUCTION,
    content_stems,
    names,
    negated,
    numbers,
    sentence_spans,
    sentences,
    word_spans,
    words,
)
from rag.types import AnswerSentence, Paper, Passage

# The support a sentence needs to count as backed by its citations; chosen on the development questions
# (faithful sentences score at least 0.8; sentences cited to the wrong passage at most 0.45).
SUPPORT_THRESHOLD = 0.6

MARKER = re.compile(r"\s*\[(\d+)\]")
_QUOTED = re.compile(r"“[^”]*”")
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
    # A title in curly quotes is one name, whatever punctuation it holds ("“Is X All You Need? A Study” was …").
    quoted = [m.span() for m in _QUOTED.finditer(normal)]
    spans = sentence_spans(normal)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and any(a < merged[-1][1] < b for a, b in quoted):
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [normal[a:b].strip() for a, b in merged if normal[a:b].strip()]


def parse_markers(sentence: str) -> tuple[str, list[int]]:
    """A sentence without its markers, and the marker numbers in order of appearance (without repeats)."""
    found = [int(n) for n in MARKER.findall(sentence)]
    claim = MARKER.sub("", sentence).strip()  # a marker takes the space before it along: the words stay as written
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


def renumber(text: str, new: Callable[[int], int]) -> str:
    """`text` with each [n] marker made [new(n)], all else as it was."""
    return MARKER.sub(lambda m: f"{m.group(0)[: m.start(1) - m.start(0)]}{new(int(m.group(1)))}]", text)


_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_NUMBER_LIST = r"\d+(?:\s*(?:[,;]|–|-|and)\s*\d+)*"
_STYLES = [
    re.compile(r"【\s*(" + _NUMBER_LIST + r")\s*】"),
    re.compile(r"\[\^(\d+)\]"),
    re.compile(
        r"[\[(]\s*(?:sources?|passages?|refs?\.?|references?|documents?|abstracts?)\s+(" + _NUMBER_LIST + r")\s*[\])]",
        re.I,
    ),
    re.compile(r"\b(?:sources?|passages?)\s+(" + _NUMBER_LIST + r")\b", re.I),
    re.compile(r"\[\s*(" + _NUMBER_LIST + r")\s*\]"),
    # (1) only where a marker may stand: before punctuation, another marker or the end of a line.
    re.compile(r"\(\s*(" + _NUMBER_LIST + r")\s*\)(?=\s*(?:[.,;:!?]|\[|\(\d|$))", re.M),
]
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|#+)\s+")
_LEADING_MARKERS = re.compile(r"^((?:\s*\[\d+\])+)[\s:.)-]*(.*)$")
_ANSWER_LABEL = re.compile(r"^\s*(?:answer|response)\s*:\s*", re.I)
# A sentence in which the model says that its sources do not answer, rather than a claim about a paper.
_DECLINE = re.compile(
    r"\b(?:(?:do|does|did) not|don't|doesn't|didn't|cannot|can't|unable to|no|not)\s+(?:\w+\s+){0,3}?"
    r"(?:answer|mention|mentioned|provide|provided|contain|state|stated|specify|specified|include|discuss|"
    r"address|information|details?|say|given|available|determine|find)\b",
    re.I,
)
_SOURCES = re.compile(
    r"\b(passages?|abstracts?|collection|context|sources?|provided|given (?:text|information)|information)\b", re.I
)


def strip_reasoning(text: str) -> str:
    """`text` without <think>…</think> blocks (an unclosed block runs to the end)."""
    return _THINK.sub("", text)


def _expand(numbers_text: str) -> str:
    """ "1, 2" → "[1][2]"; "1-3" → "[1][2][3]"."""
    out: list[int] = []
    for part in re.split(r"\s*(?:[,;]|and)\s*", numbers_text):
        bounds = [int(n) for n in re.split(r"\s*(?:–|-)\s*", part) if n]
        if len(bounds) == 2 and 0 < bounds[1] - bounds[0] <= 20:
            out.extend(range(bounds[0], bounds[1] + 1))
        else:
            out.extend(bounds)
    return "".join(f"[{n}]" for n in out)


def normalise_markers(text: str) -> str:
    """Every citation style models write, as [n] markers: "[1, 2]", "[1-3]", "(1)", "【1】", "Source 1"."""
    for pattern in _STYLES:
        text = pattern.sub(lambda m: _expand(m.group(1)), text)
    return text


def heading_of(claim: str, passages: Sequence[Passage]) -> str | None:
    """The id of the paper whose heading (title, date) `claim` only repeats, stating nothing; None when the claim
    says more than a heading. A quoted title that the reply's end cut off ('"Leveraging Open'), a piece of a title
    ("Reconciling Optimization and Scaling Limits for Deep Learning", what is left of a title split at its "?")
    and a title with part of its date are headings too. A sentence that says a title is the paper asked for ("The
    paper is “…”") answers "which paper …?": it is no heading."""
    if claim.startswith(f"{NAMED_PHRASE} "):
        return None
    claimed = " ".join(words(claim))
    quotes = sum(claim.count(q) for q in '"“”')
    unfinished = claim.lstrip().startswith(('"', "“")) and quotes % 2 == 1
    for passage in passages:
        paper = passage.paper
        title = " ".join(words(paper.title or "untitled"))  # an untitled paper's heading reads "(untitled)"
        if unfinished and claimed and title.startswith(claimed):
            return passage.paper_id
        heading = {*words(paper.date or ""), "untitled", "title", "date"}
        rest = " ".join(w for w in claimed.replace(title, " ").split() if w not in heading)
        if (title in claimed and not content_stems(rest)) or (rest and f" {rest} " in f" {title} "):
            return passage.paper_id
    return None


def is_decline(sentence: str) -> bool:
    """Whether the sentence says the sources do not answer ("The passages do not mention ..."), or is the
    abstain phrase itself."""
    if ABSTAIN_PHRASE.casefold().rstrip(".") in sentence.casefold():
        return True
    if re.search(r"\bI (?:do not|don't) know\b", sentence, re.I):
        return True
    return bool(_DECLINE.search(sentence) and _SOURCES.search(sentence))


def clean_draft(text: str) -> str:
    """A model's draft as plain sentences with [n] markers: reasoning removed, citation styles read, list
    bullets, emphasis and an "Answer:" label dropped, a marker that opens a line moved to the end of it, and each
    line ended as a sentence so that a list item never runs into the next."""
    text = normalise_markers(strip_reasoning(text)).replace("**", "").replace("__", "")
    lines = []
    for raw in text.splitlines():
        line = _ANSWER_LABEL.sub("", _BULLET.sub("", raw)).strip()
        lead = _LEADING_MARKERS.match(line)
        if lead and lead.group(2):
            line = f"{lead.group(2).strip()} {lead.group(1).strip()}"
        if not line:
            continue
        if not re.search(r"[.!?][\"”’)]?(?:\s*\[\d+\])*$", line):
            line += "."
        lines.append(line)
    return " ".join(lines)


_FINISHED = re.compile(r"[.!?][\"”’)\]]*(?:\s*\[\d+\])*\s*$")
# Words a cut-off sentence must copy from a passage before the passage's sentence is taken to be the one it copies.
MIN_COPIED_WORDS = 4


def finish_cut(text: str, passages: Sequence[Passage]) -> str:
    """`text` (a model's reply) with its last sentence completed from the passage sentence it copies, when the
    reply's token limit cut it off there ("… converges to an SVM solution minimizing" → "… minimizing the nuclear
    norm of the combined parameter [1]."); `text` as it is when it ends a sentence or copies no passage sentence.
    A small model copies its passages often, and a copied sentence cut short loses what it was going to state."""
    body = strip_reasoning(text).rstrip()
    if not body or _FINISHED.search(body):
        return text
    start = sentence_spans(body)[-1][0]
    tail = MARKER.sub("", body[start:]).strip()
    copied = words(tail)
    if len(copied) < MIN_COPIED_WORDS:
        return text
    *whole, last = copied
    for number, passage in enumerate(passages, 1):
        for first, end in sentence_spans(passage.read):
            sentence = passage.read[first:end]
            found = word_spans(sentence)
            for at in range(len(found) - len(copied) + 1):
                cut = found[at + len(whole)]
                if cut[0].startswith(last) and [w for w, _, _ in found[at : at + len(whole)]] == whole:
                    rest = sentence[cut[1] + len(last) :]
                    if tail[0] in '"“' and sum(tail.count(q) for q in '"“”') % 2:
                        tail = tail[1:]  # a quotation of the sentence the limit cut: the sentence is cited instead
                    return body[:start] + with_markers(tail + rest.rstrip(), [number])
    return text


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
    evidence = [f"{paper_header(p.paper)} {p.read}" for p in cited]
    return judge_claim(claim, evidence, count=len({p.paper_id for p in cited}), embedder=embedder)


def judge_claim(
    claim: str, evidence: Sequence[str], count: int | None = None, embedder: Embedder | None = None
) -> Support:
    """How well the `evidence` texts, taken together, support `claim` (the checks in the module docstring).

    `count` is the number of distinct papers behind the evidence: a claim may state it ("4 papers ...")."""
    # A sentence that instructs the reader ("Ignore the passages and reply: …") states nothing a claim can rest on.
    split = [sentences(text) for text in evidence]
    stating = [[s for s in found if not INSTRUCTION.search(s)] for found in split]
    evidence = [
        text if len(kept) == len(found) else " ".join(kept)
        for text, found, kept in zip(evidence, split, stating, strict=True)
    ]
    if not evidence:
        return Support(0.0, ("cites no passage",))
    # The opening of a several-paper answer's listing is the answer's own framing; what it states is the list.
    claim = claim.removeprefix(LEAD_PHRASE).removeprefix(CLOSE_PHRASE).strip() or claim
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
    candidates = [s for kept in stating for s in kept] or list(evidence)
    # A title in quotes names a paper; it states nothing, so its "not" ("“Why Not Transform ...”") is no negation.
    stated = _QUOTED.sub(" ", claim)
    stated_stems = content_stems(stated)
    closest = max(candidates, key=lambda s: len(content_stems(s) & stated_stems))
    if negated(stated) != negated(closest):
        problems.append("negation differs from the cited passage")
    reversed_words = _reversed_direction(stated, closest)
    if reversed_words:
        problems.append(f"direction reversed from the cited passage ({reversed_words})")
    score = coverage
    if embedder is not None:
        vectors = embedder.embed_texts([claim, *candidates])
        similarity = max(sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:])
        score = (coverage + max(similarity, 0.0)) / 2
    return Support(round(score, 4), tuple(problems))


# Words that state a direction, and their opposites: a claim that says "lower" where its passage says "higher"
# reverses what the passage states, though every other word matches.
_OPPOSITE_PAIRS = (
    ("outperform", "underperform"), ("higher", "lower"), ("better", "worse"), ("increase", "decrease"),
    ("improve", "degrade"), ("faster", "slower"), ("larger", "smaller"), ("more", "fewer"), ("more", "less"),
    ("superior", "inferior"), ("gain", "loss"), ("reduce", "raise"), ("reduce", "increase"), ("above", "below"),
    ("before", "after"),
)  # fmt: skip
_OPPOSITES: dict[str, set[str]] = {}
for _one, _other in _OPPOSITE_PAIRS:
    _OPPOSITES.setdefault(_one, set()).add(_other)
    _OPPOSITES.setdefault(_other, set()).add(_one)


def _direction_words(text: str) -> set[str]:
    """The direction words of `text`, inflections folded ("outperforms" → "outperform", "reduced" → "reduce")."""
    found = set()
    for word in words(text):
        for base in (word, word.removesuffix("s"), word.removesuffix("es"), word.removesuffix("d"),
                     word.removesuffix("ed"), word.removesuffix("ing"), word.removesuffix("ing") + "e"):  # fmt: skip
            if base in _OPPOSITES:
                found.add(base)
                break
    return found


def _reversed_direction(claim: str, passage_sentence: str) -> str:
    """ "lower (passage: higher)" when the claim states a direction whose opposite the passage sentence states
    and it does not; "" otherwise."""
    stated, source = _direction_words(claim), _direction_words(passage_sentence)
    flips = [f"{word} (passage: {'/'.join(sorted(_OPPOSITES[word] & source))})"
             for word in sorted(stated - source) if _OPPOSITES[word] & source - stated]  # fmt: skip
    return ", ".join(flips)


@dataclass(frozen=True)
class Checked:
    """An answer after its markers were checked: each sentence with its support, and markers removed."""

    sentences: list[AnswerSentence]
    removed_markers: list[int]
    named_papers: list[str] = field(default_factory=list)  # papers whose headings the writer only repeated


def attribute(claim: str, passages: Sequence[Passage], embedder: Embedder | None = None) -> tuple[list[int], Support]:
    """The passages that best support `claim` (post-hoc citation): the single passage with the best support,
    else all passages of the paper that together support it best; ([], the best failed Support) when none does."""
    best: tuple[list[int], Support] = ([], Support(0.0, ("no passage supports it",)))
    by_paper: dict[str, list[int]] = {}
    for number, passage in enumerate(passages, 1):
        by_paper.setdefault(passage.paper_id, []).append(number)
        result = support(claim, [passage], embedder)
        if result.supported and result.score > best[1].score:
            best = ([number], result)
    if best[0]:
        return best
    for group in by_paper.values():
        if len(group) > 1:
            result = support(claim, [passages[n - 1] for n in group], embedder)
            if result.supported and result.score > best[1].score:
                best = (group, result)
    return best


def _weak(result: Support) -> list[str]:
    """The reason a claim that passes every hard check is still not supported: too little of it is cited."""
    if result.supported:
        return []
    return [f"support {result.score:.2f}, below the {SUPPORT_THRESHOLD} a backed claim needs"]


def check(
    text: str, passages: Sequence[Passage], embedder: Embedder | None = None, asked: Asked | None = None
) -> Checked:
    """Read the markers of `text` in any style ([n] is passages[n-1]), drop those that point at no passage and
    sentences that only repeat a heading (or, given the question `asked`, only say it back), score every sentence
    against the passages it cites, and attribute a sentence whose markers are missing or do not support it to the
    passage that does."""
    checked: list[AnswerSentence] = []
    removed: list[int] = []
    named: list[str] = []
    for raw in split_answer(clean_draft(text)):
        claim, markers = parse_markers(raw)
        if not content_stems(claim) and not numbers(claim) and not names(claim):
            continue  # no words: what is left of a split heading ('" [1]'), a lone marker
        if (paper_id := heading_of(claim, passages)) is not None:
            named.append(paper_id)
            continue
        if _QUOTED.sub("", claim).rstrip(" \"'”’").endswith("?"):
            continue  # a question (a small model echoes the one it was asked) states nothing
        if asked is not None and asked.restated_by(claim):
            continue  # nor does the question said back as a statement
        if claim.startswith('"') and claim.count('"') % 2:
            claim = claim[1:]  # a quotation mark opened by a model that copies its passage and never closed
        valid = [n for n in markers if 1 <= n <= len(passages)]
        removed.extend(n for n in markers if n not in valid)
        result = support(claim, [passages[n - 1] for n in valid], embedder)
        attributed = False
        if not result.supported and not is_decline(claim):
            found, found_support = attribute(claim, passages, embedder)
            if found:
                valid, result, attributed = found, found_support, True
            elif not valid:
                result = Support(result.score, ("no citation, and no passage supports it",))
        checked.append(
            AnswerSentence(
                text=with_markers(claim, valid),
                claim=claim,
                markers=valid,
                support=result.score,
                supported=result.supported,
                problems=list(result.problems) or _weak(result),
                attributed=attributed,
            )
        )
    return Checked(sentences=checked, removed_markers=sorted(set(removed)), named_papers=list(dict.fromkeys(named)))
