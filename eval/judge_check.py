"""How good is a judge? Faithful claims and corrupted ones, built from the corpus, and how many of each the
judge flags. Faithful claims:

* faithful: a sentence of an abstract, verbatim, cited to that abstract;
* faithful_paraphrase: the same sentence reworded without changing what it states: the paper named where it
  says "we", common words replaced by synonyms ("propose" → "present", "show" → "demonstrate"), and only its
  main clause kept, so that the false-alarm rate is not measured on verbatim text alone.

The corruptions, the first three made by the same rules the offline judge applies, the others by other means:

* number: one of its numbers changed;
* entity: one of its names (acronym or mixed-case word) swapped for a name from another abstract;
* negation: a "not" added after its first auxiliary verb, or removed where it had one;
* other_abstract: a sentence of another, random, paper cited to this abstract;
* wrong_citation: the sentence cited to the passage of the most similar other paper, as a retriever would
  confuse them;
* swapped_relation: the direction of a comparison or change reversed ("outperforms" → "underperforms",
  "reduces" → "increases", "higher" → "lower"), or two of its names traded places ("A beats B" → "B beats A");
* mixed_papers: the first half of the sentence joined to the second half of a sentence of another paper, cited
  to the first paper: a claim that blends two papers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from rag.evaluation.judges import Judge

import rag
from rag import Paper
from rag.citations import paper_header, split_answer
from rag.readable import readable, short_name

FAITHFUL = ("faithful", "faithful_paraphrase")
KINDS = ("number", "entity", "negation", "other_abstract", "wrong_citation", "swapped_relation", "mixed_papers")
TARGET_CAUGHT = 0.90
TARGET_FALSE_ALARMS = 0.05
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_NAME = re.compile(r"\b(?=[A-Za-z0-9-]*[A-Z][A-Za-z0-9-]*[A-Z])[A-Za-z][A-Za-z0-9-]{1,}\b")
_AUXILIARY = re.compile(r"\b(is|are|was|were|can|could|does|do|did|will|would|should|has|have|may)\b")
_NOT = re.compile(r"\b(not|cannot|never)\b ?")


def _evidence(paper: Paper, text: str) -> str:
    return f"{paper_header(paper)} {text}"


def _change_number(sentence: str, rng: random.Random, evidence: str) -> str | None:
    found = list(_NUMBER.finditer(sentence))
    rng.shuffle(found)
    for match in found:
        value = match.group(0)
        for replacement in (str(int(float(value)) * 2 + 3) if "." not in value else f"{float(value) + 1.7:.1f}",):
            if replacement not in evidence:
                return sentence[: match.start()] + replacement + sentence[match.end() :]
    return None


def _swap_entity(sentence: str, rng: random.Random, evidence: str, pool: list[str]) -> str | None:
    found = list(_NAME.finditer(sentence))
    if not found:
        return None
    match = rng.choice(found)
    candidates = [name for name in pool if name.lower() not in evidence.lower()]
    if not candidates:
        return None
    return sentence[: match.start()] + rng.choice(candidates) + sentence[match.end() :]


def _negate(sentence: str) -> str | None:
    if _NOT.search(sentence):
        return _NOT.sub("", sentence, count=1)
    match = _AUXILIARY.search(sentence)
    if not match:
        return None
    return sentence[: match.end()] + " not" + sentence[match.end() :]


# Words whose replacement keeps the statement (faithful), and words whose replacement reverses it (corrupted).
_SYNONYMS = {
    "propose": "present", "proposes": "presents", "show": "demonstrate", "shows": "demonstrates",
    "demonstrate": "show", "demonstrates": "shows", "novel": "new", "significantly": "substantially",
    "approach": "method", "method": "approach", "achieves": "attains", "achieve": "attain",
    "utilize": "use", "utilizes": "uses", "leverage": "use", "leverages": "uses", "improve": "enhance",
    "improves": "enhances", "various": "diverse", "numerous": "many", "extensive": "thorough",
}  # fmt: skip
_REVERSED = {
    "outperforms": "underperforms", "outperform": "underperform", "higher": "lower", "lower": "higher",
    "better": "worse", "improves": "degrades", "improve": "degrade", "increases": "decreases",
    "increase": "decrease", "reduces": "increases", "reduce": "increase", "faster": "slower",
    "fewer": "more", "more": "fewer", "larger": "smaller", "smaller": "larger", "superior": "inferior",
    "surpasses": "trails", "boosts": "hurts", "gains": "losses", "less": "more",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z]+")
_CLAUSE_END = re.compile(r",\s+(?:which|while|where|whereas|thus|thereby|and thus)\b|;\s")


def _paraphrase(sentence: str, paper: Paper) -> str | None:
    """The sentence's main clause, its paper named for "we", with synonyms; None when nothing changed."""
    text = readable(sentence, short_name(paper))
    end = _CLAUSE_END.search(text)
    if end and len(text[: end.start()].split()) >= 6:
        text = text[: end.start()].rstrip(",;") + "."
    text = _WORD.sub(lambda m: _SYNONYMS.get(m.group(0), m.group(0)), text)
    return text if text != sentence else None


def _swap_relation(sentence: str, rng: random.Random) -> str | None:
    words = [m for m in _WORD.finditer(sentence) if m.group(0).lower() in _REVERSED]
    if words:
        match = rng.choice(words)
        return sentence[: match.start()] + _REVERSED[match.group(0).lower()] + sentence[match.end() :]
    names = list(dict.fromkeys(m.group(0) for m in _NAME.finditer(sentence)))
    if len(names) < 2:
        return None
    first, second = rng.sample(names, 2)
    swapped = re.sub(
        rf"\b({re.escape(first)}|{re.escape(second)})\b", lambda m: second if m.group(0) == first else first, sentence
    )
    return swapped if swapped != sentence else None


def _mix(sentence: str, other: str) -> str | None:
    """The first half of `sentence` (up to a comma or "and" near its middle) joined to the second half of
    `other`."""

    def halves(text: str) -> tuple[str, str] | None:
        cuts = [m.start() for m in re.finditer(r",\s|\sand\s", text)]
        middle = [c for c in cuts if len(text) * 0.25 < c < len(text) * 0.75]
        if not middle:
            return None
        cut = min(middle, key=lambda c: abs(c - len(text) / 2))
        return text[:cut], text[cut:]

    mine, theirs = halves(sentence), halves(other)
    if mine is None or theirs is None:
        return None
    return mine[0] + theirs[1]


def run_judge_check(
    judge: Judge,
    pipe: rag.Pipeline,
    per_kind: int = 40,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Flag rates of the judge on faithful claims and on each corruption kind."""
    rng = random.Random(seed)
    papers = rag.list_papers(settings=pipe.settings)
    sentences = {
        p.paper_id: [s for s in split_answer(p.abstract) if len(s.split()) >= 8 and "http" not in s] for p in papers
    }
    pool = sorted({m.group(0) for p in papers for m in _NAME.finditer(p.abstract)})
    cases: list[tuple[str, str, list[str]]] = []  # (kind, claim, evidence)
    order = papers[:]
    rng.shuffle(order)
    counts = dict.fromkeys((*FAITHFUL, *KINDS), 0)
    for paper in order:
        options = sentences[paper.paper_id]
        if not options:
            continue
        sentence = rng.choice(options)
        evidence = _evidence(paper, paper.abstract)
        if counts["faithful"] < per_kind:
            cases.append(("faithful", sentence, [evidence]))
            counts["faithful"] += 1
        other = rng.choice([p for p in papers if p.paper_id != paper.paper_id and sentences[p.paper_id]])
        made: dict[str, str | None] = {
            "faithful_paraphrase": _paraphrase(sentence, paper),
            "number": _change_number(sentence, rng, evidence),
            "entity": _swap_entity(sentence, rng, evidence, pool),
            "negation": _negate(sentence),
            "swapped_relation": _swap_relation(sentence, rng),
            "mixed_papers": _mix(sentence, rng.choice(sentences[other.paper_id])),
        }
        for kind, claim in made.items():
            if claim and counts[kind] < per_kind:
                cases.append((kind, claim, [evidence]))
                counts[kind] += 1
        if counts["other_abstract"] < per_kind:
            cases.append(("other_abstract", rng.choice(sentences[other.paper_id]), [evidence]))
            counts["other_abstract"] += 1
        if counts["wrong_citation"] < per_kind:
            neighbour = next((p for p in pipe.retriever.retrieve(sentence, 3) if p.paper_id != paper.paper_id), None)
            if neighbour is not None:
                cases.append(("wrong_citation", sentence, [_evidence(neighbour.paper, neighbour.text)]))
                counts["wrong_citation"] += 1
        if all(count >= per_kind for count in counts.values()):
            break
    flagged = dict.fromkeys(counts, 0)
    examples: dict[str, list[str]] = {kind: [] for kind in counts}
    for index, (kind, claim, texts) in enumerate(cases, 1):
        is_flagged = not judge.supports(claim, texts)
        flagged[kind] += is_flagged
        if (kind in FAITHFUL) == is_flagged and len(examples[kind]) < 3:
            examples[kind].append(claim)
        if progress:
            progress(index, len(cases))
    return {
        "judge": judge.name,
        "per_kind": {kind: {"cases": counts[kind], "flagged": flagged[kind]} for kind in counts},
        "corrupted_flagged": _rate(flagged, counts, KINDS),
        "faithful_flagged": _rate(flagged, counts, ("faithful",)),
        "paraphrase_flagged": _rate(flagged, counts, ("faithful_paraphrase",)),
        "other_means_flagged": _rate(flagged, counts, ("swapped_relation", "mixed_papers")),
        "targets": {"corrupted_flagged_at_least": TARGET_CAUGHT, "faithful_flagged_at_most": TARGET_FALSE_ALARMS},
        "misses": examples,  # corrupted claims it let through, faithful ones it flagged
    }


def _rate(flagged: dict[str, int], counts: dict[str, int], kinds: tuple[str, ...]) -> float | None:
    """The share of the cases of `kinds` that the judge flagged; None when there were none."""
    cases = sum(counts[k] for k in kinds)
    return round(sum(flagged[k] for k in kinds) / cases, 4) if cases else None
