"""How good is a judge? Faithful claims and corrupted ones, built from the corpus, and how many of each the
judge flags. A faithful claim is a sentence of an abstract cited to that abstract; the corruptions:

* number: one of its numbers changed;
* entity: one of its names (acronym or mixed-case word) swapped for a name from another abstract;
* negation: a "not" added after its first auxiliary verb, or removed where it had one;
* other_abstract: a sentence of another, random, paper cited to this abstract;
* wrong_citation: the sentence cited to the passage of the most similar other paper, as a retriever would
  confuse them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from rag.evaluation.judges import Judge

import rag
from rag import Paper, paper_header, split_answer

KINDS = ("number", "entity", "negation", "other_abstract", "wrong_citation")
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


def run_judge_check(
    judge: Judge,
    pipe: rag.Pipeline,
    per_kind: int = 40,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Flag rates of the judge on faithful claims and on each corruption kind."""
    rng = random.Random(seed)
    papers = list(pipe.retriever.papers.values())
    sentences = {
        p.paper_id: [s for s in split_answer(p.abstract) if len(s.split()) >= 8 and "http" not in s] for p in papers
    }
    pool = sorted({m.group(0) for p in papers for m in _NAME.finditer(p.abstract)})
    cases: list[tuple[str, str, list[str]]] = []  # (kind, claim, evidence)
    order = papers[:]
    rng.shuffle(order)
    counts = dict.fromkeys(("faithful", *KINDS), 0)
    for paper in order:
        options = sentences[paper.paper_id]
        if not options:
            continue
        sentence = rng.choice(options)
        evidence = _evidence(paper, paper.abstract)
        if counts["faithful"] < per_kind:
            cases.append(("faithful", sentence, [evidence]))
            counts["faithful"] += 1
        made: dict[str, str | None] = {
            "number": _change_number(sentence, rng, evidence),
            "entity": _swap_entity(sentence, rng, evidence, pool),
            "negation": _negate(sentence),
        }
        for kind, claim in made.items():
            if claim and counts[kind] < per_kind:
                cases.append((kind, claim, [evidence]))
                counts[kind] += 1
        if counts["other_abstract"] < per_kind:
            other = rng.choice([p for p in papers if p.paper_id != paper.paper_id and sentences[p.paper_id]])
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
        if (kind == "faithful") == is_flagged and len(examples[kind]) < 3:
            examples[kind].append(claim)
        if progress:
            progress(index, len(cases))
    corrupted = sum(counts[k] for k in KINDS)
    caught = sum(flagged[k] for k in KINDS)
    return {
        "judge": judge.name,
        "per_kind": {kind: {"cases": counts[kind], "flagged": flagged[kind]} for kind in counts},
        "corrupted_flagged": round(caught / corrupted, 4) if corrupted else None,
        "faithful_flagged": round(flagged["faithful"] / counts["faithful"], 4) if counts["faithful"] else None,
        "targets": {"corrupted_flagged_at_least": TARGET_CAUGHT, "faithful_flagged_at_most": TARGET_FALSE_ALARMS},
        "misses": examples,  # corrupted claims it let through, faithful ones it flagged
    }
