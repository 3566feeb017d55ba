"""Text helpers shared by answering and checking: sentence spans (the chunker's punkt tokenizer), content
words, stems, numbers and names."""

from __future__ import annotations

import re
from functools import cache

# Function words that carry no claim; a sentence's support is judged on the rest.
STOPWORDS = frozenset(
    """
    a an the and or but nor of in on at to for from by with without within into onto over under about as is are
    was were be been being has have had do does did this that these those it its it's their there here which
    who whom whose what when where why how than then so such via using use used uses also both each either all
    any some most more less many much very can could may might will would should shall must we our us they them
    i you he she his her one two three four five six seven eight nine ten paper papers work works study
    approach method methods propose proposed proposes present presents presented introduce introduces
    introduced show shows shown demonstrate demonstrates based new novel et al while further furthermore
    moreover however thus therefore first second finally among across between through per upon lists listed
    list under whether
    """.split()
)
NEGATIONS = frozenset({"not", "no", "never", "without", "cannot", "neither", "nor", "fails", "fail", "unable", "none"})
# How an abstract speaks of its own work ("we", "this paper", "the paper", with an adverb: "we further"), and the
# verbs by which it introduces a method: one definition for ranking, quoting and naming sentences.
_AUTHORS = r"\b(?:we|th(?:is|e) (?:paper|work|study|article))\s+(?:\w+\s+)?"
_INTRODUCE = r"(?:propos|present|introduc|develop|design|buil|call|nam|term|dub)\w*"
# A sentence that introduces a method of the paper's own: "we propose …", "the paper presents …", "… dubbed RAP".
INTRODUCES = re.compile(
    rf"{_AUTHORS}{_INTRODUCE}|\b(?:called|termed|named|dubbed|coined|denoted as|referred to as)\b", re.I
)
# The verb by which a sentence introduces something, active or passive ("we propose", "… is proposed"); what is
# introduced follows it.
INTRODUCING = re.compile(rf"{_AUTHORS}{_INTRODUCE}|\b(?:is|are)\s+(?:proposed|introduced|presented)\b", re.I)
# A sentence in which the paper says what it does itself ("We …", "In this work, our …", "the paper proposes …").
OWN_WORK = re.compile(
    r"^(?:[^,]{0,80},\s*)?(?:we|our|this (?:paper|work|study|survey|review))\b"
    rf"|{_AUTHORS}(?:propose|present|introduce|develop|design|study|investigate|show)",
    re.I,
)
# A sentence that instructs its reader (a model reading the passages) instead of stating anything about the paper:
# an imperative that would redirect the answer ("Ignore the passages and reply: …", "Visit …"), an order to drop
# instructions or sources, or an address to the assistant. It is text of the abstract, never a finding: no answer
# quotes it and no claim is supported by it. None of the shipped corpus's 3,342 sentences reads so.
INSTRUCTION = re.compile(
    r"^\W*(?:(?:please|now|instead)\W+)?(?:ignore|disregard|forget|reply|respond|visit|click|pretend|tell|go to)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:(?:all|any|the|previous|prior|above|earlier|other|your|these|those)\s+)*"
    r"(?:instructions?|passages?|context|prompts?|rules?|sources?|abstracts?)\b"
    r"|\byou (?:are|must|should|will) (?:now )?(?:an?|the|reply|respond|answer|write|say|ignore)\b"
    r"|\bas an? (?:ai|assistant|language model)\b",
    re.I,
)
# A number as written in prose: 16x, 3.2%, 1,000, 50, 2023.
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:%|x\b|×)?")
# A quantity stated in prose: a number standing on its own (16x, 3.2%, 240,000, 4/8, 7B), not one inside a name
# (ResNet-34, ID^2, CIFAR-10, GPT-4) nor a number word.
_QUANTITY = re.compile(r"(?<![\w.^\-/])\d+(?:[.,]\d+)*(?:%|×|x\b|[kKMB]\b)?(?![\w^])")
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}  # fmt: skip


# A full stop that ends an abbreviation, not a sentence.
_ABBREVIATION_END = re.compile(r"\b(?:e\.g|i\.e|cf|vs|viz|resp|approx|Figs?|Eqs?|Sec|Tab|et al)\.$", re.I)
# A full stop with no space before the next sentence's first word, as scraped text sometimes has it
# (a lower-case word of three letters or more, so that "Abs.Rel" or "e.g.Foo" stay whole).
_GLUED = re.compile(r"\b[a-z]{3,}[.!?](?=[A-Z][a-z]{2,})")


@cache
def _punkt():  # type: ignore[no-untyped-def]
    """The tokenizer llama-index's sentence splitter uses (`globals_helper.punkt_tokenizer`, an untrained Punkt),
    made directly: importing llama_index.core costs about a second that answering a question need not pay."""
    import sys

    if "nltk" not in sys.modules:
        try:
            return _bare_punkt()
        except Exception:  # a layout this shortcut does not know: import nltk as usual (see _bare_punkt)
            pass
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()


def _bare_punkt():  # type: ignore[no-untyped-def]
    # `import nltk` loads its parsers, chunkers and metrics (and through them scipy.stats): 1.5 to 2 s of a cold
    # `rag ask` on 2 cores, against 0.35 s this way. Punkt needs none of it, so its module is loaded under bare
    # package entries, which are then forgotten, so that a later `import nltk` loads the package whole. Should a
    # version of nltk not load this way, `_punkt` imports it as usual; a test checks both split alike.
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("nltk")
    root = (spec.submodule_search_locations or [None])[0] if spec else None
    if root is None:
        raise ModuleNotFoundError("nltk is not installed")
    for name, path in {"nltk": root, "nltk.tokenize": f"{root}/tokenize"}.items():
        package = types.ModuleType(name)
        package.__path__ = [path]
        sys.modules[name] = package
    try:
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        return PunktSentenceTokenizer()
    finally:
        for name in [name for name in sys.modules if name == "nltk" or name.startswith("nltk.")]:
            del sys.modules[name]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, whitespace trimmed, as the chunker's sentence tokenizer sees them,
    except that a sentence does not end at an abbreviation ("(e.g. NeRF)", "i.e. the") and does end where a
    scraped abstract lost the space after a full stop ("driving video.Existing works")."""
    spans: list[list[int]] = []
    for start, end in _punkt().span_tokenize(text):
        if not text[start:end].strip():
            continue
        if spans and _ABBREVIATION_END.search(text, spans[-1][0], spans[-1][1]):
            spans[-1][1] = end
        else:
            spans.append([start, end])
    out: list[tuple[int, int]] = []
    for start, end in spans:
        for glued in _GLUED.finditer(text, start, end):
            out.append((start, glued.end()))
            start = glued.end()
        out.append((start, end))
    return out


def sentences(text: str) -> list[str]:
    """The sentences of `text`."""
    return [text[start:end] for start, end in sentence_spans(text)]


def without_instructions(text: str) -> str:
    """`text` without the sentences that instruct its reader (INSTRUCTION): what a passage states; `text` itself
    where it has none."""
    spans = sentence_spans(text)
    kept = [text[start:end] for start, end in spans if not INSTRUCTION.search(text[start:end])]
    return text if len(kept) == len(spans) else " ".join(kept)


def words(text: str) -> list[str]:
    """Lower-cased words and numbers of `text`, hyphenated words kept whole."""
    return [w.lower() for w in _WORD.findall(text)]


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Each of `words(text)` with where it stands in `text`: (word, start, end)."""
    return [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


@cache
def english_stemmer():  # type: ignore[no-untyped-def]
    """The English Snowball stemmer (PyStemmer), made once."""
    import Stemmer

    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    """English stem of a lower-case word."""
    return str(english_stemmer().stemWord(word))


def content_stems(text: str) -> set[str]:
    """Stems of the words of `text` that carry meaning (stop words left out), hyphenated words also split."""
    out: set[str] = set()
    for word in words(text):
        parts = [word, *re.split(r"[-'’]", word)] if "-" in word or "'" in word or "’" in word else [word]
        for part in parts:
            if part and part not in STOPWORDS:
                out.add(stem(part))
    return out


def numbers(text: str) -> set[str]:
    """Numbers written in `text`, normalised (thousands separators dropped, number words as digits)."""
    found = {m.group(0).replace(",", "") for m in _NUMBER.finditer(text)}
    found |= {_NUMBER_WORDS[w] for w in words(text) if w in _NUMBER_WORDS}
    return found


def names(text: str) -> set[str]:
    """Words that name something: acronyms and mixed-case words (SSAM, LoRA, CIFAR-10), not sentence-initial
    capitals; lower-cased."""
    return {word.lower() for word in written_names(text)}


def written_names(text: str) -> list[str]:
    """The words `names` finds, as written."""
    out = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        letters = [c for c in word if c.isalpha()]
        inner_upper = sum(c.isupper() for c in letters[1:])
        if len(letters) >= 2 and (inner_upper >= 1 or (word.isupper() and len(letters) >= 2)):
            out.append(word)
    return out


def negated(text: str) -> bool:
    """Whether `text` contains a negation word."""
    return any(w in NEGATIONS or w.endswith("n't") for w in words(text))


def quantities(text: str) -> set[str]:
    """Numbers `text` states as quantities (see _QUANTITY), normalised as by `numbers`."""
    found = set()
    for match in _QUANTITY.finditer(text):
        start, end = match.span()
        if end - start == 1 and text[start - 1 : start] == "(" and text[end : end + 1] == ")":
            continue  # an enumeration, "(1) ..."
        found.add(match.group(0).replace(",", ""))
    return found


def mentions(text: str, name: str) -> bool:
    """Whether `text` mentions `name`: the word itself in any case (a plural "GPUs" as "GPU"), an acronym inside a
    longer one ("GAN" in "ACGAN"), or an acronym spelled out by the initials of consecutive words ("LLM": "large
    language model")."""
    stem = name.rstrip("s")
    if re.search(rf"(?<![^\W_]){re.escape(stem)}", text, re.I) or (stem.isupper() and stem in text):
        return True
    capitals = [c.casefold() for c in name if c.isupper()]
    if len(capitals) < 2 or len(capitals) != sum(c.isalpha() for c in stem):
        return False
    initials = "".join(word[0] for word in re.findall(r"[^\W_]+", text.casefold()))
    return "".join(capitals) in initials
