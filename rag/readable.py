"""A sentence quoted from an abstract, made to read as part of an answer: the paper named where the abstract says
"we" or "this paper", "our" and "us" said of its authors, and a connective that points at a sentence the reader
has not seen ("To address this issue, ...", "Moreover, ...") dropped. Nothing else changes: every word that is
not one of these is the abstract's own, so the rewritten sentence passes the same citation check."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.citations import with_markers
from rag.templates import CLOSE_PHRASE, LEAD_PHRASE, NAMED_PHRASE
from rag.text import INTRODUCING, sentences
from rag.types import Paper

# A lead that only links the sentence to the one before it in the abstract.
_DANGLING_LEAD = re.compile(
    r"^(?:to (?:address|tackle|solve|overcome|mitigate|alleviate|remedy|resolve|handle|fill|bridge|close|avoid|"
    r"fix|circumvent)\b[^,]{0,80}|to this end|to that end|in this (?:paper|work|study|article|letter|report)|here|"
    r"specifically|moreover|furthermore|additionally|in addition|therefore|thus|hence|consequently|"
    r"as a result|however|finally|besides|meanwhile|then|instead|in particular|in contrast|on the other hand|"
    r"(?:motivated|inspired|based|building) (?:by|on) (?:this|these|that|those|the above)\b[^,]{0,60}|"
    r"for this (?:purpose|reason)|in response|with this in mind|in doing so|by doing so|beyond that|"
    r"first|second|third|firstly|secondly|lastly|next|further|also)\s*,\s*",
    re.I,
)
# The abstract's own subject: "We ...", "This paper ...", "In this paper we ..." (after the lead is dropped).
_WE = re.compile(r"^we\b\s*", re.I)
_THIS_PAPER = re.compile(
    r"^(?:this|the present|our) (?:paper|work|study|article|letter|report|survey|review|tutorial|thesis)\b\s*", re.I
)
_OUR_START = re.compile(r"^our\b\s*", re.I)
# Adverbs that may stand between "we" and its verb ("we also propose", "we further show").
_ADVERBS = frozenset(
    "also further then first next additionally finally thus therefore empirically "
    "theoretically experimentally now here subsequently".split()
)
_MODALS = frozenset("can could will would may might should must shall".split())
_IRREGULAR = {"have": "has", "are": "is", "were": "was", "do": "does", "go": "goes", "am": "is"}
_PAST = frozenset(
    "found made built took gave ran saw showed shown began brought kept led left met put "
    "set sought thought wrote chose drew grew held knew lost meant paid read said sent "
    "spent stood taught told won was".split()
)
_OUR = re.compile(r"\bour\b", re.I)
_OURS = re.compile(r"\bours\b", re.I)
_OURSELVES = re.compile(r"\bourselves\b", re.I)
_US = re.compile(r"\bus\b")
_WE_INSIDE = re.compile(r"\bwe\b", re.I)
# A short method name opening a title ("SpikeGPT: ...", "TALE: ..."): an acronym, a mixed-case word or one with
# a digit, in at most three words.
_NAME_LEAD = re.compile(r"^([^:]{1,40}):\s")
# Where, in the rest of a sentence introducing a method (rag.text.INTRODUCING), its name stands.
_CALLED = re.compile(r"\b(?:called|named|termed|dubbed|coined|denoted as|referred to as|namely)\s+\(?([^\s()]+)")
# How many words after the introducing verb an acronym in brackets may stand to name what is introduced.
BRACKET_REACH = 15
_BRACKETED = re.compile(r"\(([^\s()]+)\)")
# What "This paper presents ..." presents when it is no method of its own.
_A_STUDY = re.compile(
    r"^\s*(?:(?:a|an|the|our)\s+)?(?:\w+\s+){0,2}?(?:study|analysis|survey|review|overview|investigation|"
    r"examination|comparison|evaluation)\b",
    re.I,
)
# A name as an answer may write it: letters, digits, "-", "+" and ".", no markup ("KD^{3}", "``Knowledge").
_WORD_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9+.\-]*[A-Za-z0-9+])?")
# A plural acronym names a kind of model ("LLMs", "GNNs"), not the paper's own.
_GENERIC = re.compile(r"^[A-Z]{2,}s$")
_FIRST_WORDS = re.compile(r"^\s*(?:(?:a|an|the)\s+)?([^\s()]+)")


# How an answer calls a paper that has no title, and the papers an answer about several cannot tell apart by name.
UNTITLED = "The untitled paper"
A_PAPER = "A paper"
ANOTHER_PAPER = "Another paper"


@dataclass(frozen=True)
class PaperName:
    """How an answer names a paper, and whether that is its method's name (else its title in quotes, or UNTITLED)."""

    text: str
    method: bool


def paper_name(paper: Paper, passage: str = "") -> PaperName:
    """The method name the paper's title opens with ("SpikeGPT"), else the name `passage` (a quoted passage of its
    abstract) gives the paper's method ("… denoted as DPENet"), else its title in quotes."""
    title = (paper.title or "").strip()
    lead = _NAME_LEAD.match(title)
    head = lead.group(1) if lead else ""
    if (
        "$" not in head
        and "\\" not in head
        and len(head.split()) <= 3
        and any(_is_method_name(w) for w in head.split())
    ):
        return PaperName(head, method=True)
    introduced = introduced_name(passage) if passage else None
    if introduced is not None:
        return PaperName(introduced, method=True)
    return PaperName(quoted_title(paper), method=False)


def short_name(paper: Paper, passage: str = "") -> str:
    """How an answer names a paper (paper_name), as text."""
    return paper_name(paper, passage).text


def quoted_title(paper: Paper) -> str:
    """The paper's title in quotes, without its closing punctuation; UNTITLED when it has none."""
    return f"“{paper.title.strip().rstrip('?!. ')}”" if paper.title and paper.title.strip() else UNTITLED


def introduced_name(passage: str) -> str | None:
    """The name `passage` gives the method it introduces, from the first sentence that introduces one: the word
    after "called", "named", "dubbed", "denoted as" …, else an acronym in brackets ("… perturbation (RAP)"),
    else a name right after the verb ("we propose SliceGPT"). A sentence presenting a study or survey introduces
    nothing. None when there is no such sentence, or when the name it gives cannot be written as a word
    ("dubbed ``Knowledge Distillation …'' (KD^{3})"): then another term of the passage would be a guess."""
    for sentence in sentences(passage):
        verb = INTRODUCING.search(sentence)
        if verb is None or _A_STUDY.match(sentence[verb.end() :]):
            continue
        rest = sentence[verb.end() :]
        for pattern in (_CALLED, _BRACKETED, _FIRST_WORDS):
            for match in pattern.finditer(rest):
                if pattern is _BRACKETED and len(rest[: match.start()].split()) > BRACKET_REACH:
                    break  # an acronym that far from the verb abbreviates something else ("… modeling (MLM)")
                word = match.group(1).strip(",.;:`'\"“”‘’")
                if (
                    _WORD_NAME.fullmatch(word)
                    and _is_method_name(word)
                    and len(word) <= 24
                    and not _GENERIC.match(word)
                ):
                    return word
        if _CALLED.search(rest) or _BRACKETED.search(rest):
            return None  # it names its method, in a form no answer can write
    return None


def lead_sentence(cited: Sequence[tuple[int, Paper]], names: Sequence[str] | None = None) -> str:
    """The sentence that opens an answer about several papers: each paper by its short name (or the name given
    in `names`), with its marker ("These papers bear on the question: AdaMerging, “Merging Models …” and …
    [1][2][3].")."""
    given = names or [short_name(paper) for _, paper in cited]
    listed = ["an untitled paper" if name == UNTITLED else name for name in given]
    listing = ", ".join(listed[:-1]) + f" and {listed[-1]}"
    return with_markers(f"{LEAD_PHRASE} {listing}.", [number for number, _ in cited])


def close_sentence(cited: Sequence[tuple[int, Paper]]) -> str:
    """The sentence that opens an answer whose first two papers the ranking cannot tell apart, naming both with
    their markers ("Two papers fit the question: SliceGPT [1] and “Trained Rank Pruning …” [2].")."""
    names = ["an untitled paper" if (name := short_name(paper)) == UNTITLED else name for _, paper in cited]
    return " and ".join(with_markers(name, [n]) for name, (n, _) in zip(names, cited, strict=True)).join(
        (f"{CLOSE_PHRASE} ", ".")
    )


def named_sentence(number: int, paper: Paper) -> str | None:
    """The sentence that names the one paper a "which paper ...?" answer is about, by its title, with its marker
    ("The paper is “SliceGPT: …” [1]."); None for an untitled paper, which a title cannot name."""
    title = quoted_title(paper)
    return None if title == UNTITLED else with_markers(f"{NAMED_PHRASE} {title}.", [number])


def _is_method_name(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    inner_capital = any(c.isupper() for c in word[1:].split("-")[0])
    return bool(letters) and (inner_capital or any(c.isdigit() for c in word) or (len(letters) > 1 and word.isupper()))


_SENTENCE_END = frozenset(".!?\"”’')]")


def readable(sentence: str, name: str) -> str:
    """`sentence`, quoted from an abstract, with its paper called `name` ("SpikeGPT", "“Title”", "It") where the
    abstract speaks of itself, and a dangling connective removed."""
    return rewrite(sentence, name)[0]


def rewrite(sentence: str, name: str) -> tuple[str, str | None]:
    """`readable(sentence, name)`, and the name the paper was given as the sentence's subject (`name`, or "The
    paper" where the sentence names the method itself); None when the sentence does not speak of its paper."""
    text = sentence.strip()
    while (lead := _DANGLING_LEAD.match(text)) and len(text) - lead.end() > 20:
        text = text[lead.end() :]
    if name.strip("“”") in text:  # "we propose SpikeGPT" names it already: "The paper proposes SpikeGPT"
        name = "The paper" if name != "It" else name
    # "Our experiments show": "Its experiments", or "In SpikeGPT, the experiments" (a possessive "SpikeGPT’s"
    # would be a name the abstract never writes).
    possessive = {
        "It": "Its",
        "The paper": "The paper’s",
        A_PAPER: f"{A_PAPER}’s",
        ANOTHER_PAPER: f"{ANOTHER_PAPER}’s",
        UNTITLED: f"{UNTITLED}’s",
    }.get(name, f"In {name}, the")
    head = ""
    if match := _WE.match(text):
        head, text = name, _third_person(text[match.end() :])
    elif match := _THIS_PAPER.match(text):
        head, text = name, text[match.end() :]
    elif match := _OUR_START.match(text):
        head, text = possessive, text[match.end() :]
    text = _OURSELVES.sub("themselves", text)
    text = _OURS.sub("theirs", text)
    text = _OUR.sub("its" if head else "the authors’", text)  # the paper named as subject, or its authors
    text = _US.sub("them", text)
    text = _WE_INSIDE.sub("the authors", text)
    text = f"{head} {text}" if head else text
    if text and text[-1] not in _SENTENCE_END:  # a chunk cut the sentence: end it, or the next one joins it
        text = text.rstrip(",;:-–— ") + "."
    return (text[0].upper() + text[1:] if text else text), (name if head else None)


def _third_person(rest: str) -> str:
    """'propose X' → 'proposes X', 'also show Y' → 'also shows Y'; past tenses and modals as they are."""
    words = rest.split(" ")
    index = 0
    while index < len(words) - 1 and words[index].lower() in _ADVERBS:
        index += 1
    verb = words[index]
    lowered = verb.lower()
    if lowered in _MODALS or lowered in _PAST or lowered.endswith("ed") or not lowered.isalpha():
        return rest
    if lowered in _IRREGULAR:
        words[index] = _IRREGULAR[lowered]
    elif re.search(r"(s|sh|ch|x|z|o)$", lowered):
        words[index] = verb + "es"
    elif re.search(r"[^aeiou]y$", lowered):
        words[index] = verb[:-1] + "ies"
    else:
        words[index] = verb + "s"
    return " ".join(words)
