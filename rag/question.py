"""What a question asks for, read once and shared by retrieval and every answerer: a metadata intent (authors,
dates, votes, "papers by X"), the kind of answer (a quantity, a name), whether it spans several papers, and
whether it follows up on the conversation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

from rag.text import content_stems, mentions, names, negated, numbers, quantities, written_names

# A question about several papers names them as its subject ("Which papers ...", "Are there methods ...",
# "papers here ...") or asks for a comparison ("how do they differ", "compare"); a plural inside a question about
# one paper ("collapses several experts", "over prior methods") does not.
_PAPERS = r"(?:papers|works|studies|articles|methods|approaches|techniques|frameworks)"
_SEVERAL = re.compile(
    rf"^\s*(?:which|what)\s+(?:[\w-]+\s+){{0,3}}?{_PAPERS}\b"
    r"|\b(?:which|what)\s+(?:of\s+the\s+)?(?:papers|works|studies)\b"
    rf"|\b(?:are there|list|find|show|name)(?:\s+me)?(?:\s+(?:any|the|all|some))?\s+(?:[\w-]+\s+){{0,2}}?{_PAPERS}\b"
    r"|\b(?:several|various|multiple|different|two|three|both)\s+(?:papers|works|studies)\b"
    r"|\bpapers\s+(?:here|in\s+(?:this|the|these)\s+(?:collection|corpus|listings?))\b"
    r"|^\s*(?:compare|contrast)\b",
    re.I,
)
# A comparison ("how do they differ", "each of them") spans several papers, unless the question is about one work
# ("In the phone-friendly ... work, what two networks ..., and how do their targets differ?").
_COMPARES = re.compile(
    r"\bdiffer(?:ence|ences)?\s+between\b|\bhow\s+does\s+each\b"
    r"|\bhow\s+(?:do|did)\s+(?:[\w-]+\s+){1,3}?(?:differ|compare)\b|\bhow\s+do\s+they\b"
    r"|\b(?:each|every)\s+(?:paper|work|one|of\s+them)\b(?!')",
    re.I,
)
_ONE_WORK = re.compile(
    r"\b(?:in|for|from|by)\s+the\s+(?:[\w'-]+\s+){0,8}?(?:work|paper|study|article|method|approach|framework|model)\b",
    re.I,
)
_WORK = r"(?:paper|work|study|article|publication)s?"
_WHICH_PAPER = re.compile(
    rf"^\s*(?:which|what)\s+(?:[\w-]+\s+){{0,3}}?{_WORK}\b|\b(?:which|what)\s+(?:of\s+the\s+)?{_WORK}\b"
    rf"|\b(?:is there|are there|find|name|show)(?:\s+me)?\s+(?:a|an|any|the)\s+(?:[\w-]+\s+){{0,2}}?{_WORK}\b",
    re.I,
)
# Words a reply uses of the passages it was given ("in the first passage"), not of what they state.
_ABOUT_PASSAGES = frozenset(content_stems("passage passages first second third abstract abstracts source sources"))
# A question asking for a quantity is answered only by a sentence that states a number the question does not.
_QUANTITY = re.compile(
    r"\bhow (many|much|long|fast|large|big|small|often)\b|\bby how\b|\b(what|which) (is the |was the )?(percentage|"
    r"number|accuracy|perplexity|error|ap|score|rate|size|speed|speedup|count|amount|fraction|gain|improvement|"
    r"margin|factor|ratio|reduction|increase|decrease|drop|boost|latency|throughput|f1|bleu|auc)\b",
    re.I,
)
# A question asking what something is called, or which thing does something ("Which two-step model first
# scrubs ...", "Is there a technique that ..."), is best answered by the sentence that names it. The words between
# the question word and the thing are its modifiers, never a verb ("What accuracy does the model reach" asks for
# a quantity, not a model).
_THING = (
    r"(?:paper|work|study|name|method|approach|technique|framework|model|algorithm|system|architecture|benchmark|"
    r"dataset|loss|strategy|module|scheme|generator|network|codec|predictor|optimi[sz]er|version|variant|tool|"
    r"toolkit|library|pipeline|agent|attack|defen[cs]e|metric|measure|detector|classifier|recogni[sz]er|estimator|"
    r"encoder|decoder|objective|regulari[sz]er|mechanism|layer|procedure|protocol|corpus|way|recipe|solver|"
    r"backbone|baseline|policy|prompt|adapter|transformer|simulator|environment|platform|language)(?:e?s)?"
)
_NOT_A_MODIFIER = r"(?!(?:do|does|did|is|are|was|were|has|have|had|can|could|would|will|should|may|might)\b)"
_NAME = re.compile(
    rf"\b(?:what|which)\s+(?:is\s+the\s+)?(?:{_NOT_A_MODIFIER}[\w'-]+\s+){{0,4}}?{_THING}\b"
    r"|^\s*(?:is|are)\s+there\s+(?:a|an|any)\b|\bcalled\b|\bnamed\b",
    re.I,
)
# The thing a "what X does ..." or "how many X were ..." question asks for: the words between the question word
# and the verb, before any prepositional phrase ("What box AP on MS COCO does ..." asks for "box AP").
_ASKED_FOR = re.compile(
    r"\b(?:how (?:many|much)|what|which)\s+((?:[\w\-:]+\s+){0,4}?[\w\-:]+)\s+"
    r"(?:do|does|did|is|are|was|were|has|have|had|can|could)\b",
    re.I,
)
# "Which three X", "what two X": a count of things asked for (not "which one", a choice).
_COUNT = re.compile(r"\b(?:which|what)\s+(two|three|four|five|six|seven|eight|nine|ten|[2-9])\s+[a-z]", re.I)
_PREPOSITIONAL = re.compile(r"\s(?:on|in|of|for|with|by|to|from|at|per)\s.*$", re.I)
# Words that say what kind of thing is asked for without naming it, or compare without naming a measure.
_UNSPECIFIC = frozenset(
    "paper papers work works study studies article approach approaches method methods technique techniques one ones "
    "kind kinds type types specific named exact model models the this that these those smaller faster cheaper "
    "larger bigger better higher lower fewer more less concept metric share term way mechanism".split()
)
# Where a question asks its next part: a conjunction or comma before a question word ("how many X, and which Y",
# "what two networks ..., and how do they differ"), or a new sentence. The words before the first part (a
# description of the paper) belong to every part.
_WH = r"(?:how|what|which|why|when|where|who|whom|whose|(?:in|to|on|for|against|from|by|at)\s+(?:what|which|how))\b"
_PART_BREAK = re.compile(rf"(?:[,;]\s*(?:and|or|but|while)?|\s+(?:and|or|but|while))\s+(?={_WH})", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-/][A-Za-z0-9]+)*")
_SENTENCE_BREAK = re.compile(r"(?<=[?.!])\s+(?=[A-Z])")
# A piece that asks, as opposed to one that sets the scene ("When aligning chatbots ..., how does ...": the clause
# before the comma is the scene).
_ASKS = re.compile(
    r"(?:how|what|which|why|who|whom|whose)\b|(?:when|where)\s+(?:is|was|were|are|do|does|did|can)\b"
    r"|(?:in|to|on|for|against|from|by|at)\s+(?:what|which|how)\b|(?:is|are|was|were|do|does|did|can|could)\s",
    re.I,
)
_FOLLOW_UP = re.compile(r"\b(them|they|these|those|it|its|this one|that one|the (first|second|third|last) one)\b", re.I)

_AUTHORS_OF = re.compile(r"\b(who (wrote|authored|are the authors|is the author|were the authors)|authors? of)\b", re.I)
_HOW_MANY_AUTHORS = re.compile(r"\bhow many (authors|people|researchers)\b|\bnumber of authors\b", re.I)
_WHEN = re.compile(r"\b(when was|when were|what (date|day|year)|which year|publication date|published when)\b", re.I)
_BY_CUE = re.compile(r"\b(by|wrote|written|authored|co-?authored|author|authors|has published|did)\b", re.I)
_YEAR_LIST = re.compile(
    r"\b(which|what|list)\b.*\b(papers|works)\b.*\b(?P<when>in|from|during|before|after|since)\s+(?P<year>(19|20)\d\d)\b",
    re.I,
)
_UPVOTES = re.compile(r"\b(upvotes?|votes?)\b", re.I)
_CATEGORY = re.compile(
    r"\b(?:arxiv|subject)\s+(?:categor(?:y|ies)|class|area)\b|\b(?:which|what)\s+categor(?:y|ies)\b"
    r"|\b(?:filed|listed|classified)\s+(?:under|in)\s+(?:which|what)\b",
    re.I,
)
_CODE = re.compile(
    r"\b(?:has|have|had|with|lists?|listed|releases?|released|provides?|provided|shares?|shared)\s+"
    r"(?:its\s+|their\s+|any\s+|public\s+|open[- ]source\s+)?(?:code|implementation)\b"
    r"|\b(?:code|implementation)\s+(?:is\s+|was\s+)?(?:listed|available|released|public)\b",
    re.I,
)
_WHICH_OF = re.compile(r"\bwhich\s+(?:of\s+(?:them|the\s+\w+|these|those)|one)\b", re.I)
_ORGANIZATION = re.compile(r"\b(organi[sz]ation|org|affiliation|tag|company|lab)\b", re.I)
# Questions about the whole collection, answered from every paper's record rather than the best passages.
# "The oldest papers in the collection" lists this many.
RANKED_PAPERS = 3
_COLLECTION = r"(?:collection|listings?|corpus|library|store|here|stored|these\s+(?:papers|files|pages))"
_BY_DATE = re.compile(
    rf"\b(?P<end>oldest|earliest|newest|latest|most\s+recent)\s+(?:paper|work|article|entry|publication)(?P<s>s)?"
    rf"\b.*\b{_COLLECTION}\b",
    re.I,
)
_SINGLE_AUTHOR = re.compile(
    r"\b(?:single|sole|lone|only\s+one)[- ]author(?:ed|s)?\b|\bsolo[- ]authored\b"
    r"|\b(?:with|has|have|by)\s+(?:just\s+|only\s+)?one\s+author\b",
    re.I,
)
_ANY_ORGANIZATION = re.compile(
    r"\b(?:organi[sz]ation|affiliation)\s+tags?\b|\btagged\s+with\s+an?\s+organi[sz]ation\b", re.I
)


def asks_several(question: str) -> bool:
    """Whether the question is about several papers ("Which papers ...", "compare ..."). A comparison after a count
    of things that are not papers ("what two teacher networks ..., and how do their targets differ?") compares
    those things, within one paper."""
    if _SEVERAL.search(question):
        return True
    return bool(_COMPARES.search(question) and not _ONE_WORK.search(question) and asked_count(question) is None)


def asks_paper(question: str) -> bool:
    """Whether the question asks which paper (or papers) it is ("Which paper ...?", "Is there a study ...?"): a
    paper's title answers it."""
    return bool(_WHICH_PAPER.search(question))


def asks_quantity(question: str) -> bool:
    """Whether the question asks for a number ("how many", "what accuracy", "by how much")."""
    return bool(_QUANTITY.search(question))


def asks_name(question: str) -> bool:
    """Whether the question asks what a method, model or dataset is, or is called."""
    return bool(_NAME.search(question))


def asked_count(question: str) -> str | None:
    """How many things the question asks for, as digits, when it says ("Which three classic problems ...", "what
    two instructor networks ..."): the sentence that answers it lists them, and often says how many."""
    match = _COUNT.search(question)
    if match is None:
        return None
    return next(iter(numbers(match.group(1))), None)


def asked_for(question: str) -> set[str]:
    """The stemmed words naming what the question asks for ("What perplexity does ...?" → {"perplex"}), or an
    empty set when it asks for nothing more specific than a paper or a method."""
    match = _ASKED_FOR.search(re.sub(r"\s*\([^)]*\)", "", question))
    if match is None:
        return set()
    words = [w for w in _PREPOSITIONAL.sub("", match.group(1)).split() if w.casefold() not in _UNSPECIFIC]
    return content_stems(" ".join(words))


def named_terms(question: str) -> list[str]:
    """The technical names the question uses: words, or parts of hyphenated words, with a capital after their
    first letter or a capital and a digit ("LoRA", "SpikeGPT", "RLAIF", "ResNet" and "CIFAR" of "ResNet-56 on
    CIFAR-10"). Ordinary capitalised words are left out: a question may call a paper's "Iranian" monuments
    "Persian", but it does not rename a model. Words with fewer than three letters ("Q-value", "6B", "AI") are
    left out: short acronyms name fields, not methods, and are often written out."""
    names = []
    for word in _WORD.findall(question):
        for piece in re.split(r"[-/]", word):
            if sum(c.isalpha() for c in piece) < 3:
                continue
            if any(c.isupper() for c in piece[1:]) or (piece[0].isupper() and any(c.isdigit() for c in piece)):
                names.append(piece)
    return list(dict.fromkeys(names))


def question_parts(question: str) -> list[str]:
    """The parts a compound question asks ("How many hours ..., and which site ...?" → two), each as its own
    question, without the words that only set the scene ("In the phone-friendly ... work,"): those pick the paper,
    the part picks the sentence. The question itself, alone, for a simple question."""
    parts = [
        piece
        for sentence in _SENTENCE_BREAK.split(question.strip())
        for piece in (p.strip(" ,;?") for p in _PART_BREAK.split(sentence))
        if _ASKS.match(piece) and len(piece.split()) >= 2
    ]
    if len(parts) <= 1:
        return [question]
    return [f"{part}?" for part in parts]


# Where a long question joins the things it says about one paper ("a model with zeroed weights, retrained while
# imitating its original, using what share of tokens"): each clause is matched to the abstract on its own.
_FACET_BREAK = re.compile(
    r"[,;:?()]| - | \u2014 |\b(?:and|while|using|with|but|by|whose|which|that|when|where)\b", re.I
)


def question_facets(question: str) -> list[str]:
    """The clauses of a question that say something on their own (three words or more), for ranking papers by
    how many of them one of the paper's sentences matches; none when there are fewer than two."""
    facets = [piece.strip() for piece in _FACET_BREAK.split(question) if len(piece.split()) >= 3]
    return facets if len(facets) >= 2 else []


def is_follow_up(question: str) -> bool:
    """Whether the question points back at the conversation ("and which of them ...?")."""
    return bool(_FOLLOW_UP.search(question))


@dataclass(frozen=True)
class Asked:
    """What a question asks for, as every stage reads it: retrieval, the decline model, the excerpts a model reads
    and the extractive answer all take it from `read`, so the question is read once."""

    text: str
    several: bool  # about several papers (asks_several)
    paper: bool  # asks which paper or papers (asks_paper)
    quantity: bool  # asks for a number (asks_quantity)
    name: bool  # asks what something is called (asks_name)
    count: str | None  # how many things it asks for, as digits (asked_count)
    wanted: frozenset[str]  # stems of what it asks for (asked_for)
    terms: tuple[str, ...]  # technical names it uses (named_terms)
    parts: tuple[str, ...]  # the parts of a compound question, or the question alone (question_parts)
    facets: tuple[str, ...]  # its clauses, each matched to the papers' sentences in ranking (question_facets)
    follow_up: bool  # points back at the conversation (is_follow_up)

    @property
    def asks_fact(self) -> bool:
        """Whether it asks for a quantity, a name or a count of things: something an answer states or does not."""
        return self.quantity or self.name or self.count is not None

    def gives_quantity(self, sentence: str) -> bool:
        """Whether `sentence` states a quantity the question does not give."""
        return bool(quantities(sentence) - numbers(self.text))

    def measures(self, sentence: str) -> bool:
        """Whether `sentence` states such a quantity beside what it measures, where the question names that ("what
        accuracy": "a 12-layer network" does not state one)."""
        return self.gives_quantity(sentence) and (not self.wanted or bool(self.wanted & content_stems(sentence)))

    def counts(self, sentence: str) -> bool:
        """Whether `sentence` says how many there are of the things the question asks a count of."""
        return self.count is not None and self.count in numbers(sentence)

    def new_names(self, sentence: str) -> set[str]:
        """The names `sentence` writes that the question neither uses nor spells out (KD: "knowledge ..."),
        lower-cased."""
        return {name.lower() for name in written_names(sentence) if not mentions(self.text, name)}

    def restated_by(self, sentence: str) -> bool:
        """Whether `sentence` only says the question back ("Fisher merging weights each model's parameters by."): no
        content word, number or name the question lacks, beyond words about the passages, and negated as it is. A
        small model echoes the question so; what it says is in the passage, yet it answers nothing."""
        added = content_stems(sentence) - content_stems(self.text) - _ABOUT_PASSAGES
        return (
            not added
            and not numbers(sentence) - numbers(self.text)
            and not names(sentence) - names(self.text)
            and negated(sentence) == negated(self.text)
        )

    def stated_in(self, sentence: str) -> bool:
        """Whether `sentence` states what the question asks for: a quantity it measures, the count of things, or a
        new name."""
        return (
            (self.quantity and self.measures(sentence))
            or self.counts(sentence)
            or bool(self.name and self.new_names(sentence))
        )


@lru_cache(maxsize=1024)
def read(question: str) -> Asked:
    """The question, read: computed once per distinct question (and part of one), then looked up."""
    return Asked(
        text=question,
        several=asks_several(question),
        paper=asks_paper(question),
        quantity=asks_quantity(question),
        name=asks_name(question),
        count=asked_count(question),
        wanted=frozenset(asked_for(question)),
        terms=tuple(named_terms(question)),
        parts=tuple(question_parts(question)),
        facets=tuple(question_facets(question)),
        follow_up=is_follow_up(question),
    )


class IntentKind(StrEnum):
    """What a metadata question asks of the paper records."""

    AUTHORS = "authors"
    N_AUTHORS = "n_authors"
    DATE = "date"
    UPVOTES = "upvotes"
    CATEGORY = "category"
    CODE = "code"
    ORGANIZATION = "organization"
    PAPERS_BY = "papers_by"
    PAPERS_IN_YEARS = "papers_in_years"
    PAPERS_BY_DATE = "papers_by_date"
    SINGLE_AUTHOR = "single_author"


# The kinds whose answer is a list of papers selected by their records, not facts about the retrieved papers.
LISTING_KINDS = frozenset(
    {
        IntentKind.PAPERS_BY,
        IntentKind.PAPERS_IN_YEARS,
        IntentKind.ORGANIZATION,
        IntentKind.PAPERS_BY_DATE,
        IntentKind.SINGLE_AUTHOR,
    }
)


@dataclass(frozen=True)
class MetadataIntent:
    """A question about the listing data rather than the abstracts' text."""

    kind: IntentKind
    author: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    organization: str | None = None  # for "organization": the tag asked about; None: any tag
    each: bool = False  # whether to answer for each of the retrieved papers ("which of them has code?")
    newest: bool = False  # for "papers_by_date": the newest papers rather than the oldest
    count: int = 1  # for "papers_by_date": how many ("the oldest paper": 1, "the oldest papers": a few)

    @property
    def lists_papers(self) -> bool:
        """Whether the answer is a list of papers selected by their records, not facts about one paper."""
        return self.kind in LISTING_KINDS


class KnownNames(Protocol):
    """Looks up the author names and organisation tags of the stored papers that a question contains."""

    def author_named(self, question: str) -> str | None:
        """The longest author name the question contains as whole words, any case."""
        ...

    def organization_named(self, question: str) -> str | None:
        """An organisation tag the question contains, any case."""
        ...


def metadata_intent(question: str, names: KnownNames) -> MetadataIntent | None:
    """The metadata question `question` asks, if it asks one; author names and organisation tags are those of the
    stored papers, looked up through `names`."""
    if _BY_CUE.search(question):
        author = names.author_named(question)
        if author is not None:
            return MetadataIntent(IntentKind.PAPERS_BY, author=author)
    year = _YEAR_LIST.search(question)
    if year:
        value, when = int(year["year"]), year["when"].lower()
        span = {"before": (None, value - 1), "after": (value + 1, None), "since": (value, None)}.get(
            when, (value, value)
        )
        return MetadataIntent(IntentKind.PAPERS_IN_YEARS, year_from=span[0], year_to=span[1])
    if _ORGANIZATION.search(question):
        organization = names.organization_named(question)
        if organization is not None:
            return MetadataIntent(IntentKind.ORGANIZATION, organization=organization)
        if _ANY_ORGANIZATION.search(question):
            return MetadataIntent(IntentKind.ORGANIZATION)
    by_date = _BY_DATE.search(question)
    if by_date:
        newest = by_date["end"].casefold() not in ("oldest", "earliest")
        return MetadataIntent(IntentKind.PAPERS_BY_DATE, newest=newest, count=RANKED_PAPERS if by_date["s"] else 1)
    if _SINGLE_AUTHOR.search(question):
        return MetadataIntent(IntentKind.SINGLE_AUTHOR)
    if _CATEGORY.search(question):
        return MetadataIntent(IntentKind.CATEGORY)
    if _CODE.search(question):
        return MetadataIntent(IntentKind.CODE, each=bool(_WHICH_OF.search(question)))
    if _UPVOTES.search(question):
        return MetadataIntent(IntentKind.UPVOTES)
    if _HOW_MANY_AUTHORS.search(question):
        return MetadataIntent(IntentKind.N_AUTHORS)
    if _AUTHORS_OF.search(question):
        return MetadataIntent(IntentKind.AUTHORS)
    if _WHEN.search(question):
        return MetadataIntent(IntentKind.DATE)
    return None
