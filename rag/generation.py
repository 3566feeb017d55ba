"""The answerers: `extractive` (offline; composes the answer from retrieved sentences, verbatim, each cited) and
`openai` (any OpenAI-compatible chat endpoint, prompted from prompts/, streamed, kept inside its context)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from rag.citations import paper_header, with_markers
from rag.config import Settings
from rag.embedding import Embedder
from rag.errors import (
    LLMBadResponse,
    LLMError,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
    LLMUnavailable,
)
from rag.templates import ABSTAIN_PHRASE, render
from rag.text import asks_several, content_stems, names, numbers, sentence_spans
from rag.types import Paper, Passage, Usage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

OnText = Callable[[str], None]


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation: the question, the answer's text, and the papers it cited."""

    question: str
    answer: str
    paper_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Draft:
    """An answer as written, before its citations are checked; markers number the passages from 1."""

    text: str
    usage: Usage | None = None


class Answerer(Protocol):
    """Writes an answer to a question from numbered passages."""

    name: str

    def answer(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn], on_text: OnText | None = None
    ) -> Draft:
        """The answer, with [n] markers pointing at passages[n-1]; `on_text` receives it as it is written."""
        ...


# --- metadata questions ----------------------------------------------------------------------------------------

_AUTHORS_OF = re.compile(r"\b(who (wrote|authored|are the authors|is the author|were the authors)|authors? of)\b", re.I)
_HOW_MANY_AUTHORS = re.compile(r"\bhow many (authors|people|researchers)\b|\bnumber of authors\b", re.I)
_WHEN = re.compile(r"\b(when was|when were|what (date|day|year)|which year|publication date|published when)\b", re.I)
_BY_CUE = re.compile(r"\b(by|wrote|written|authored|co-?authored|author|authors|has published|did)\b", re.I)
_YEAR_LIST = re.compile(
    r"\b(which|what|list)\b.*\b(papers|works)\b.*\b(?P<when>in|from|during|before|after|since)\s+(?P<year>(19|20)\d\d)\b",
    re.I,
)
_UPVOTES = re.compile(r"\b(upvotes?|votes?)\b", re.I)
_ORGANIZATION = re.compile(r"\b(organi[sz]ation|org|affiliation|tag|company|lab)\b", re.I)


@dataclass(frozen=True)
class MetadataIntent:
    """A question about the listing data rather than the abstracts' text."""

    kind: str  # "authors" | "n_authors" | "date" | "upvotes" | "organization" | "papers_by" | "papers_in_years"
    author: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    organization: str | None = None


def metadata_intent(question: str, papers: dict[str, Paper]) -> MetadataIntent | None:
    """The metadata question `question` asks, if it asks one."""
    lowered = question.casefold()
    if _BY_CUE.search(question):
        for name in sorted({n for p in papers.values() for n in p.authors or []}, key=len, reverse=True):
            if re.search(rf"(?<!\w){re.escape(name.casefold())}(?!\w)", lowered):
                return MetadataIntent("papers_by", author=name)
    year = _YEAR_LIST.search(question)
    if year:
        value, when = int(year["year"]), year["when"].lower()
        span = {"before": (None, value - 1), "after": (value + 1, None), "since": (value, None)}.get(
            when, (value, value)
        )
        return MetadataIntent("papers_in_years", year_from=span[0], year_to=span[1])
    if _ORGANIZATION.search(question):
        for org in sorted({p.organization for p in papers.values() if p.organization}):
            if org.casefold() in lowered:
                return MetadataIntent("organization", organization=org)
    if _UPVOTES.search(question):
        return MetadataIntent("upvotes")
    if _HOW_MANY_AUTHORS.search(question):
        return MetadataIntent("n_authors")
    if _AUTHORS_OF.search(question):
        return MetadataIntent("authors")
    if _WHEN.search(question):
        return MetadataIntent("date")
    return None


def _name(paper: Paper) -> str:
    """How a generated sentence names a paper: its title in quotes, without the final ? or ! that would end
    the sentence."""
    return f"“{paper.title.rstrip('?!. ')}”" if paper.title else "The untitled paper"


def metadata_sentences(intent: MetadataIntent, passages: Sequence[Passage]) -> list[str]:
    """Sentences that answer a metadata question from the records of the passages' papers, each with its
    marker; empty when the records do not hold the answer."""
    first: dict[str, int] = {}
    for number, passage in enumerate(passages, 1):
        first.setdefault(passage.paper_id, number)
    papers = {p.paper_id: p.paper for p in passages}
    out: list[str] = []
    if intent.kind in ("papers_by", "papers_in_years", "organization"):
        for pid, number in first.items():
            paper = papers[pid]
            if intent.kind == "papers_by" and intent.author in (paper.authors or []):
                out.append(with_markers(f"{_name(paper)} lists {intent.author} among its authors.", [number]))
            elif intent.kind == "papers_in_years" and paper.year is not None and _in_span(paper.year, intent):
                out.append(with_markers(f"{_name(paper)} was published {paper.date}.", [number]))
            elif intent.kind == "organization" and paper.organization == intent.organization:
                out.append(with_markers(f"{_name(paper)} carries the organisation tag {paper.organization}.", [number]))
        return out
    number, paper = 1, passages[0].paper
    if intent.kind == "authors" and paper.authors:
        names = ", ".join(paper.authors) + (" et al." if paper.et_al else "")
        out.append(
            with_markers(f"The listed authors of {_name(paper)} are {names}" + ("" if paper.et_al else "."), [number])
        )
    elif intent.kind in ("authors", "n_authors") and paper.n_authors is not None:
        out.append(with_markers(f"{_name(paper)} has {paper.n_authors} authors.", [number]))
    elif intent.kind == "n_authors" and paper.authors and not paper.et_al:
        out.append(with_markers(f"{_name(paper)} has {len(paper.authors)} authors.", [number]))
    elif intent.kind == "date" and paper.date:
        out.append(with_markers(f"{_name(paper)} was published {paper.date}.", [number]))
    elif intent.kind == "upvotes" and paper.upvotes is not None:
        out.append(with_markers(f"{_name(paper)} has {paper.upvotes} upvotes in the listing.", [number]))
    return out


def _in_span(year: int, intent: MetadataIntent) -> bool:
    return (intent.year_from is None or year >= intent.year_from) and (intent.year_to is None or year <= intent.year_to)


# --- extractive ----------------------------------------------------------------------------------------------

_METHOD_QUESTION = re.compile(
    r"\b(what|which) (is the )?(paper|work|study|name|method|approach|technique|framework|model|algorithm|system|"
    r"architecture|"
    r"benchmark|dataset|loss|strategy|module)\b|\bcalled\b|\bnamed\b",
    re.I,
)
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
_PROPOSAL = re.compile(
    r"\b(we (propose|present|introduce|develop|design|build)|called|termed|named|dubbed|coined|referred to as)\b", re.I
)
# A question asking for a quantity is answered only by a sentence that states a number the question does not.
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|fast|large|big|small|often)\b|\bby how\b|\bwhat (is the |was the )?(percentage|number|"
    r"accuracy|perplexity|error|ap|score|rate|size|speed|speedup|count|amount|fraction|gain|improvement)\b",
    re.I,
)
# Weights of a sentence's meaning match and word overlap with the question, and the relevance below which
# the extractive answerer abstains: chosen on the development questions (README, "Answering").
SEMANTIC_WEIGHT = 0.65
LEXICAL_WEIGHT = 0.35
# How much a sentence loses for each unit its passage's retrieval score trails the best passage's: the whole
# abstract's evidence outweighs one sentence's wording.
RETRIEVAL_WEIGHT = 0.5
# Abstain when no sentence comes this close in meaning (cosine) to the question: on the development set this
# answers 99% of plainly worded answerable questions and abstains on 82% of out-of-collection ones, but
# answers only 27% of the heavily paraphrased ones (README, "Answering").
ABSTAIN_BELOW = 0.48
# In an answer about several papers, a paper gets its sentence only when that sentence is this close in meaning
# to the question (on the development multi-paper questions: 43% of cited papers gold, 65% of gold cited).
MULTI_KEEP_ABOVE = 0.45
SECOND_SENTENCE_MARGIN = 0.15
MAX_SENTENCES = 5


@dataclass
class _Candidate:
    number: int
    paper_id: str
    text: str
    relevance: float = 0.0
    semantic: float = 0.0
    prior: float = 0.0
    order: tuple[int, int] = field(default=(0, 0))


class ExtractiveAnswerer:
    """Answers with sentences taken verbatim from the passages, each ending with its passage's marker."""

    name = "extractive"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def answer(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn], on_text: OnText | None = None
    ) -> Draft:
        """The best-matching retrieved sentences, one per paper when the question spans several papers."""
        if not passages:
            return _emit(ABSTAIN_PHRASE, on_text)
        papers = {p.paper_id: p.paper for p in passages}
        intent = metadata_intent(question, papers)
        if intent is not None:
            found = metadata_sentences(intent, passages)
            if found:
                return _emit(" ".join(found), on_text)
        candidates = self.rank(question, passages)
        if _ASKS_NUMBER.search(question):
            asked = numbers(question)
            candidates = [c for c in candidates if numbers(c.text) - asked]
        if not candidates or max(c.semantic for c in candidates) < ABSTAIN_BELOW:
            return _emit(ABSTAIN_PHRASE, on_text)
        chosen = self._choose(question, candidates)
        chosen.sort(key=lambda c: c.order)
        text = " ".join(with_markers(c.text, [c.number]) for c in chosen)
        return _emit(text, on_text)

    def rank(self, question: str, passages: Sequence[Passage]) -> list[_Candidate]:
        """Every sentence of every passage, scored against the question, best first."""
        top_score = max(p.score for p in passages)
        # Sentences are shown in the order of their paper's rank, then of their place in its abstract.
        paper_rank: dict[str, int] = {}
        for passage in passages:
            paper_rank.setdefault(passage.paper_id, len(paper_rank))
        candidates = [
            _Candidate(
                number,
                passage.paper_id,
                passage.text[start:end].strip(),
                order=(paper_rank[passage.paper_id], passage.start + start),
                prior=RETRIEVAL_WEIGHT * (passage.score - top_score),
            )
            for number, passage in enumerate(passages, 1)
            for start, end in sentence_spans(passage.text)
            if len(passage.text[start:end].split()) >= 4 and not _NOT_A_FINDING.search(passage.text[start:end])
        ]
        if not candidates:
            return []
        vectors = self.embedder.embed_documents([question, *(c.text for c in candidates)])
        asks_method = bool(_METHOD_QUESTION.search(question)) or asks_several(question)
        question_stems = content_stems(question)
        question_names = names(question)
        for candidate, vector in zip(candidates, vectors[1:], strict=True):
            semantic = sum(a * b for a, b in zip(vectors[0], vector, strict=True))
            overlap = len(question_stems & content_stems(candidate.text)) / len(question_stems) if question_stems else 0
            candidate.semantic = semantic
            candidate.relevance = SEMANTIC_WEIGHT * semantic + LEXICAL_WEIGHT * overlap + candidate.prior
            # A question about a method is best answered by the sentence that names it ("we propose SSAM").
            if asks_method and _PROPOSAL.search(candidate.text):
                candidate.relevance += 0.1 if names(candidate.text) - question_names else 0.03
            if _BACKGROUND.search(candidate.text):
                candidate.relevance -= 0.05
        return sorted(candidates, key=lambda c: (-c.relevance, c.order))

    def _choose(self, question: str, ranked: list[_Candidate]) -> list[_Candidate]:
        best = ranked[0]
        if asks_several(question):
            per_paper: dict[str, _Candidate] = {}
            for candidate in ranked:
                if candidate.semantic >= MULTI_KEEP_ABOVE and candidate.paper_id not in per_paper:
                    per_paper[candidate.paper_id] = candidate
            return list(per_paper.values())[:MAX_SENTENCES]
        # One paper: the best sentence, and a second one of the same paper when it adds a name or a number
        # the first lacks (the method's name, the result), or is nearly as relevant.
        same = [c for c in ranked[1:] if c.paper_id == best.paper_id and c.text != best.text]
        known = names(best.text) | numbers(best.text) | names(question) | numbers(question)
        for candidate in same:
            adds = (names(candidate.text) | numbers(candidate.text)) - known
            if (adds and candidate.relevance >= best.relevance - SECOND_SENTENCE_MARGIN) or (
                candidate.relevance >= best.relevance - SECOND_SENTENCE_MARGIN / 2
            ):
                return [best, candidate]
        return [best]


def _emit(text: str, on_text: OnText | None) -> Draft:
    if on_text is not None:
        on_text(text)
    return Draft(text=text)


# --- OpenAI-compatible -----------------------------------------------------------------------------------------


def render_passages(passages: Sequence[Passage]) -> str:
    """The passages as the prompt numbers them: [n] title (date), the paper's record, then the text."""
    blocks = []
    for number, passage in enumerate(passages, 1):
        paper = passage.paper
        heading = f"[{number}] {paper.title or '(untitled)'}" + (f" ({paper.date})" if paper.date else "")
        blocks.append(f"{heading}\n{paper_header(paper)}\n{passage.text}")
    return "\n\n".join(blocks)


def render_history(history: Sequence[Turn]) -> str:
    """Earlier exchanges, oldest first, for follow-up questions."""
    if not history:
        return ""
    lines = ["Earlier in this conversation:"]
    for turn in history:
        lines.append(f"Q: {turn.question}\nA: {turn.answer}")
    return "\n".join(lines) + "\n"


class OpenAIAnswerer:
    """Writes answers through any OpenAI-compatible chat endpoint (OPENAI_BASE_URL, OPENAI_API_KEY)."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        import os

        import openai

        self.settings = settings
        self.model = settings.llm_model
        # The client's own retries cover connection errors, 408/409/429 (honouring Retry-After) and 5xx before
        # a reply starts; a stream cut mid-way, or an empty or malformed reply, is retried below.
        self._client = openai.OpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or "unused",
            max_retries=settings.llm_retries,
            timeout=settings.llm_timeout,
        )
        self.endpoint = str(self._client.base_url).rstrip("/")

    def _encoding(self):  # type: ignore[no-untyped-def]
        import tiktoken

        try:
            return tiktoken.encoding_for_model(self.model)
        except KeyError:
            return tiktoken.get_encoding("cl100k_base")

    def messages(self, question: str, passages: Sequence[Passage], history: Sequence[Turn]) -> tuple[list[dict], int]:
        """The chat messages, with as many passages (best first) as fit the context; and how many fitted."""
        encoding = self._encoding()
        system = render("answer_system", abstain_phrase=ABSTAIN_PHRASE)
        budget = self.settings.llm_context - self.settings.llm_max_tokens
        count = len(passages)
        while True:
            user = render(
                "answer_user",
                history=render_history(history),
                passages=render_passages(passages[:count]),
                question=question,
            )
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            # Each message costs a few tokens of framing besides its text.
            size = sum(len(encoding.encode(m["content"])) + 4 for m in messages) + 3
            if size <= budget or count == 0:
                break
            count -= 1
        return messages, count

    def answer(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn], on_text: OnText | None = None
    ) -> Draft:
        """The model's answer, streamed into `on_text`; retried with backoff when the stream breaks off or the
        reply is empty or malformed."""
        messages, _ = self.messages(question, passages, history)
        attempts = self.settings.llm_retries + 1
        for attempt in range(attempts):
            try:
                text, usage = self._stream(messages, on_text)
            except LLMBadResponse:
                if attempt + 1 == attempts:
                    raise
                time.sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))
                continue
            if usage is None:
                encoding = self._encoding()
                usage = Usage(
                    prompt_tokens=sum(len(encoding.encode(m["content"])) for m in messages),
                    completion_tokens=len(encoding.encode(text)),
                    counted=True,
                )
            return Draft(text=text, usage=usage)
        raise AssertionError("unreachable")

    def _stream(self, messages: list[dict], on_text: OnText | None) -> tuple[str, Usage | None]:
        import httpx
        import openai

        pieces: list[str] = []
        usage: Usage | None = None
        try:
            stream = self._client.chat.completions.create(
                model=self.model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                temperature=0,
                max_tokens=self.settings.llm_max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens
                    )
                for choice in chunk.choices:
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        pieces.append(delta)
                        if on_text is not None:
                            on_text(delta)
        except openai.APITimeoutError as exc:
            raise LLMTimeout(
                self.endpoint,
                f"no answer within {self.settings.llm_timeout:g} s; raise RAG_LLM_TIMEOUT or check the server",
            ) from exc
        except openai.APIConnectionError as exc:
            if pieces:  # the stream broke off after it had started
                raise LLMBadResponse(self.endpoint, "the reply stream was cut off") from exc
            raise LLMUnavailable(
                self.endpoint, "cannot connect; check OPENAI_BASE_URL and that the server runs"
            ) from exc
        except openai.RateLimitError as exc:
            raise LLMRateLimited(
                self.endpoint, f"rate limited (HTTP 429) after {self.settings.llm_retries} retries; wait and retry"
            ) from exc
        except openai.AuthenticationError as exc:
            raise LLMError(self.endpoint, "the API key was refused (HTTP 401); check OPENAI_API_KEY") from exc
        except openai.NotFoundError as exc:
            raise LLMError(
                self.endpoint, f"model {self.model!r} or route not found (HTTP 404); check RAG_LLM_MODEL"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMServerError(
                self.endpoint, f"HTTP {exc.status_code} after {self.settings.llm_retries} retries"
            ) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise LLMBadResponse(self.endpoint, "the reply was not valid chat-completion JSON") from exc
        except openai.APIError as exc:  # an error event inside the stream, or a broken-off stream
            raise LLMBadResponse(self.endpoint, f"the reply stream failed ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:  # the connection dropped while the stream was being read
            raise LLMBadResponse(self.endpoint, "the reply stream was cut off") from exc
        text = "".join(pieces).strip()
        if not text:
            raise LLMBadResponse(self.endpoint, "the reply was empty")
        return text, usage


def make_answerer(backend: str, settings: Settings, embedder: Embedder) -> Answerer:
    """The answerer named `backend` ('extractive' or 'openai')."""
    if backend == "openai":
        return OpenAIAnswerer(settings)
    return ExtractiveAnswerer(embedder)
