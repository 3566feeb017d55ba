"""The library's entry points: ingest files, list the stored papers, describe the store, and ask()."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rag.answerers import BACKENDS, Answerer, OnStatus, OnText, Turn, make_answerer
from rag.answerers.metadata import metadata_sentences
from rag.catalogue import Catalogue, open_catalogue
from rag.chunking import Chunker
from rag.citations import Checked, check, finish_cut, is_decline, renumber, split_answer, with_markers
from rag.confidence import weigh
from rag.config import Settings, load_settings
from rag.embedding import Embedder, StoredSentences, embedder_name, load_embedder
from rag.errors import ConfigError, QuestionError, StoreError
from rag.evidence import excerpts
from rag.filters import Filters
from rag.formats import Options
from rag.ingest import IngestReport, Progress
from rag.ingest import ingest as _ingest
from rag.question import Asked, IntentKind, MetadataIntent, metadata_intent, read
from rag.ranking import close, listed
from rag.readable import close_sentence, lead_sentence, named_sentence
from rag.rerank import rerank
from rag.retrieval import Retriever
from rag.store import open_store
from rag.templates import ABSTAIN_PHRASE, HEDGE_PHRASE
from rag.types import Answer, Citation, Origin, Paper, Passage, Usage


def ingest(
    paths: Sequence[str | Path] | None = None,
    *,
    prune: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
    options: Options | None = None,
) -> IngestReport:
    """Parse, chunk, embed and store the given files or folders (the default corpus when None), in any format
    rag.formats reads (`options`: the format, column names, categories and a limit)."""
    settings = settings or load_settings()
    files = [Path(p) for p in paths] if paths else None
    return _ingest(files, settings=settings, prune=prune, progress=progress, options=options)


def list_papers(
    *,
    search: str | None = None,
    author: str | None = None,
    year: int | None = None,
    settings: Settings | None = None,
) -> list[Paper]:
    """The stored papers, filtered: every word of `search` starts a word of the title or abstract ("merg" finds
    "merging", not "emerging"), `author` is part of an author's name (both case-insensitive), `year` of
    publication; ordered by file and position."""
    settings = settings or load_settings()
    if not _store_exists(settings):
        return []
    papers = [sp.paper for sp in open_store(settings, embedder_name(settings)).papers().values()]
    if search:
        words = [re.compile(r"(?<!\w)" + re.escape(word), re.IGNORECASE) for word in search.split()]
        papers = [p for p in papers if all(w.search(f"{p.title or ''}\n{p.abstract}") for w in words)]
    if author:
        needle = author.casefold()
        papers = [p for p in papers if any(needle in name.casefold() for name in p.authors or [])]
    if year is not None:
        papers = [p for p in papers if p.year == year]
    return sorted(papers, key=lambda p: (p.sources[0].file, p.sources[0].position))


def _store_exists(settings: Settings) -> bool:
    """Whether there is a store to read; reading never creates an embedded one."""
    return settings.server_mode or settings.chroma_path.exists()


@dataclass(frozen=True)
class StoreStats:
    """What the store holds and where."""

    location: str
    server: bool
    size_bytes: int | None
    embedder: str
    chunking: str
    papers: int
    chunks: int
    papers_per_file: dict[str, int]
    index: dict[str, object] = field(default_factory=dict)  # the chunk index's HNSW settings
    index_advice: str | None = None  # how to rebuild an index made with older settings


def store_stats(settings: Settings | None = None) -> StoreStats:
    """Counts per source file, chunks, store location and size, embedding model."""
    settings = settings or load_settings()
    if not _store_exists(settings):
        return StoreStats(
            location=str(settings.chroma_path),
            server=False,
            size_bytes=None,
            embedder=embedder_name(settings),
            chunking=Chunker(settings.chunk_tokens, settings.chunk_overlap).signature,
            papers=0,
            chunks=0,
            papers_per_file={},
        )
    store = open_store(settings, embedder_name(settings))
    papers = store.papers()
    per_file: dict[str, int] = {}
    for stored in papers.values():
        for file in stored.paper.files:
            per_file[file] = per_file.get(file, 0) + 1
    return StoreStats(
        location=store.location,
        server=settings.server_mode,
        size_bytes=store.size_bytes(),
        embedder=store.embedder,
        chunking=Chunker(settings.chunk_tokens, settings.chunk_overlap).signature,
        papers=len(papers),
        chunks=store.count_chunks(),
        papers_per_file=dict(sorted(per_file.items())),
        index=store.index,
        index_advice=store.index_advice,
    )


# --- asking -----------------------------------------------------------------------------------------------------

# A question longer than this is almost surely a pasted document, not a question.
MAX_QUESTION_CHARS = 2000
DEFAULT_K = 5
# A question that spans several papers ("Which papers ...?") gets more passages by default.
DEFAULT_K_MULTI = 8
EXPAND_PAPERS = 2
# A metadata question that lists papers ("papers by X") lists at most this many.
MAX_LISTED = 20


class Pipeline:
    """Everything `ask` needs, opened once and reused: the question model, the store and its catalogue."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._retriever: Retriever | None = None
        self._answerers: dict[str, Answerer] = {}
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None

    @property
    def embedder(self) -> Embedder:
        """The embedding model (loaded on first use), reading the sentence vectors the catalogue stores first."""
        if self._embedder is None:
            self._embedder = StoredSentences(
                load_embedder(self.settings), lambda keys: self.retriever.catalogue.sentence_vectors(keys)
            )
        return self._embedder

    @property
    def retriever(self) -> Retriever:
        """The hybrid retriever over the store; each question first catches up with any ingest made since."""
        with self._lock:
            if self._retriever is None:
                store = open_store(self.settings, embedder_name(self.settings))
                self._retriever = Retriever(store, self.embedder, open_catalogue(self.settings))
            return self._retriever

    def answerer(self, backend: str) -> Answerer:
        """The answerer named `backend`, made once (a local model is loaded once)."""
        with self._lock:
            if backend not in self._answerers:
                self._answerers[backend] = make_answerer(backend, self.settings, self.embedder)
            return self._answerers[backend]

    def add_answerer(self, name: str, answerer: Answerer) -> None:
        """Answer with `answerer` when `ask` is given backend `name`: a model the program does not make itself,
        such as a llama-index LLM (rag.llamaindex). Its drafts are checked and fall back as any model's."""
        with self._lock:
            self._answerers[name] = answerer

    def warm(self) -> None:
        """Get ready to answer many questions quickly (for the UI and evaluation runs): open the store and load
        the embedding model's fastest form, torch, which a single question does without (it costs seconds)."""
        _ = self.retriever
        warm = getattr(self.embedder, "warm", None)
        if warm is not None:
            warm()

    def categories(self) -> list[str]:
        """The arXiv categories of the stored papers, as their records write them."""
        return self.retriever.catalogue.categories()

    def paper(self, paper_id: str) -> Paper | None:
        """A stored paper's record; None when no paper has that id."""
        return self.retriever.catalogue.papers([paper_id]).get(paper_id)

    def reload(self) -> None:
        """Forget the loaded index, so the next question sees the store as it is now."""
        with self._lock:
            self._retriever = None

    def ask(
        self,
        question: str,
        k: int | None = None,
        *,
        filters: Filters | None = None,
        backend: str | None = None,
        history: Sequence[Turn | Answer] | None = None,
        on_text: OnText | None = None,
        on_status: OnStatus | None = None,
    ) -> Answer:
        """Answer `question` from the `k` best passages (5, or 8 for a question about several papers); every
        sentence of the answer cites them. `on_text` receives the answer as it is written, `on_status` what is
        being done before it is (rereading papers to rank them, a model reading its prompt)."""
        question = _checked_question(question)
        several = read(question).several
        if k is None:
            k = DEFAULT_K_MULTI if several else DEFAULT_K
        if k < 1:
            raise QuestionError(f"k={k}: ask for at least one passage")
        chosen = backend or self.settings.resolved_backend
        if chosen not in BACKENDS and chosen not in self._answerers:
            raise ConfigError(f"backend {chosen!r}: use one of {', '.join([*BACKENDS, *self._answerers])}")
        turns = [_turn(item) for item in history or []]
        tick = time.perf_counter()
        if not _store_exists(self.settings):
            raise StoreError(f"no papers are stored in {self.settings.chroma_path}: run `rag ingest` first")
        retriever = self.retriever
        retriever.refresh()
        catalogue = retriever.catalogue
        if catalogue.count(at_most=1) == 0:
            raise StoreError(f"no papers are stored in {retriever.store.location}: run `rag ingest` first")
        query, filters = _follow_up(question, turns, filters or Filters())
        intent = metadata_intent(question, catalogue)
        if intent is not None and intent.kind == IntentKind.PAPERS_BY:
            filters = filters.model_copy(update={"author": intent.author})
            k = max(k, catalogue.count(filters, at_most=MAX_LISTED))
        elif intent is not None and intent.kind == IntentKind.PAPERS_IN_YEARS:
            filters = filters.model_copy(update={"year_from": intent.year_from, "year_to": intent.year_to})
            k = max(k, catalogue.count(filters, at_most=MAX_LISTED))
        elif intent is not None and intent.lists_papers:
            chosen_ids = _selected_papers(intent, catalogue)
            filters = filters.model_copy(update={"paper_ids": frozenset(chosen_ids)})
            k = max(k, catalogue.count(filters, at_most=MAX_LISTED))
        # The whole abstracts of the two best papers: the sentence that answers is often in a chunk that ranked
        # below another paper's. About several papers, of every paper: each is described by the sentence saying
        # what it does, which is often not in the chunk that matched the question.
        expand = k if several else EXPAND_PAPERS
        reorder = self._reranker(question, chosen, on_status) if intent is None else None
        passages = retriever.retrieve(query, k, filters, expand=expand, reorder=reorder)
        if several and intent is None and passages:
            top = passages[0].score
            passages = [p for p in passages if listed(top, p.score)]  # the papers that fit, however many
        retrieval = time.perf_counter() - tick

        request = Request(question, chosen, passages, turns, intent, on_text, on_status)
        answer = self._answer(request)
        timings = {"retrieval": retrieval, "answer": answer.seconds.get("answer", 0.0)}
        timings["check"] = answer.seconds.get("check", 0.0)
        return answer.model_copy(update={"seconds": {**timings, "total": sum(timings.values())}})

    def _reranker(
        self, question: str, backend: str, on_status: OnStatus | None
    ) -> Callable[[list[Passage]], list[Passage]] | None:
        """What reorders the retrieved passages: the local model's query likelihood when RAG_RERANK asks for it
        (`auto`: when the local model answers anyway). Not for a question about several papers: its answer draws
        on every passage, so their order matters little (development set: the same first paper either way)."""
        if self.settings.rerank == "off" or (self.settings.rerank == "auto" and backend != "local"):
            return None
        if read(question).several:
            return None
        scorer = self.answerer("local").scorer
        if scorer is None:
            return None

        def reading(count: int) -> None:
            if on_status is not None:
                on_status(f"Rereading the {count} best abstracts to rank them…")

        return lambda passages: rerank(
            question, passages, scorer, reading=reading, embedder=self.embedder, sentences=scorer.rerank_sentences
        )

    def _answer(self, request: Request) -> Answer:
        """Decline when the decline model judges that the passages do not answer the question; otherwise write and
        check the answer. The Answer's `origin` says how it came about, `confidence` how sure the model was."""
        evidence = weigh(request.question, request.passages) if request.intent is None else None
        confidence = {"confidence": evidence.probability if evidence else None}
        if not request.passages or (evidence is not None and not evidence.answerable):
            request.show(ABSTAIN_PHRASE)
            return request.abstention(Origin.NO_EVIDENCE).model_copy(update=confidence)
        hedged = evidence is not None and evidence.hedged
        if hedged:
            request.show(HEDGE_PHRASE + " ")
        answer = self._write(request)
        if request.intent is None and not answer.abstained:
            answer = self._second_paper(request, answer)
        if hedged and not answer.abstained:
            return answer.model_copy(update={**confidence, "hedged": True, "text": f"{HEDGE_PHRASE} {answer.text}"})
        return answer.model_copy(update=confidence)

    def _write(self, request: Request) -> Answer:
        """The answer from the paper records, or the answerer's draft, checked; a model's draft that fails the
        check entirely gives way to the offline answerer's."""
        clock = _Clock()
        records = metadata_sentences(request.intent, request.passages) if request.intent is not None else []
        if records:  # the paper records answer it exactly, whoever was asked to write
            text = " ".join(records)
            request.show(text)
            clock.answered()
            return clock.timed(request.assemble(text, Origin.RECORDS, None, self.embedder))
        answerer = self.answerer(request.backend)  # made only when the records do not answer
        if answerer.verbatim:  # quoted sentences: checked once, when the answer is assembled
            draft = answerer.answer(request.question, request.passages, request.turns, request.on_text)
            clock.answered()
            return clock.timed(request.assemble(draft.text, Origin.DRAFT, draft.usage, self.embedder))
        # A model reads each paper's sentences that bear on the question, and its draft is checked here, once: a
        # fallback needs to know which papers it named.
        passages, read_count = excerpts(request.question, request.passages, self.embedder)
        request = replace(request, passages=passages)
        request.status(f"The model is reading {read_count} {'paper' if read_count == 1 else 'papers'}' passages…")
        shown = passages[:read_count]
        draft = answerer.answer(request.question, shown, request.turns, request.on_text)
        clock.answered()
        finished = finish_cut(draft.text, shown)
        if finished != draft.text:
            if finished.startswith(draft.text.rstrip()):
                request.show(finished[len(draft.text.rstrip()) :])
            draft = replace(draft, text=finished)
        asked = read(request.question)
        checked = check(draft.text, shown, self.embedder, asked)
        if asked.several:
            checked = _with_lead(checked, shown, self.embedder)
        answer = request.assemble(draft.text, Origin.DRAFT, draft.usage, self.embedder, checked)
        if answer.origin == Origin.DECLINED:
            return clock.timed(answer)
        if any(s.supported for s in answer.sentences):
            if added := self._asked_for(request, checked, draft.text, shown):
                request.show(f"\n{added}")
                # checked alone: the model's sentences are checked already, and a marker that opens the model's
                # last line ("[2] Motivated by …") stays the model's
                more = check(added, shown, self.embedder)
                removed = sorted({*checked.removed_markers, *more.removed_markers})
                both = replace(checked, sentences=checked.sentences + more.sentences, removed_markers=removed)
                answer = request.assemble(f"{draft.text}\n{added}", Origin.DRAFT, draft.usage, self.embedder, both)
            return clock.timed(answer)
        if checked.named_papers:
            return clock.timed(self._named(request, asked, checked.named_papers, draft.usage))
        # No sentence of the model's survived the check, and it named no paper: the offline answerer answers.
        fallback = self.answerer("extractive").answer(request.question, passages, request.turns)
        return clock.timed(request.assemble(fallback.text, Origin.FALLBACK, draft.usage, self.embedder))

    def _second_paper(self, request: Request, answer: Answer) -> Answer:
        """The answer about one paper, when the ranking cannot tell its first two papers apart (rag.ranking.close)
        and the answer cites the first only: opened by the sentence naming both, and followed by what the second
        says, quoted, so that the user sees both rather than a confident answer from what may be the wrong one."""
        passages = answer.passages
        ranked = [p for p in passages if not p.expanded]
        if read(request.question).several or len(ranked) < 2 or not close(ranked[0].score, ranked[1].score):
            return answer
        first, second = ranked[0], ranked[1]
        cited = {c.paper_id for c in answer.citations}
        if second.paper_id in cited or first.paper_id not in cited:
            return answer
        number = {p.chunk_id: n for n, p in enumerate(passages, 1)}
        back = {c.number: number[c.chunk_id] for c in answer.citations}
        mine = [n for n, p in enumerate(passages, 1) if p.paper_id == second.paper_id]
        quoted = self.answerer("extractive").answer(request.question, [passages[n - 1] for n in mine], request.turns)
        if quoted.text.strip() == ABSTAIN_PHRASE:
            return answer
        added = renumber(quoted.text, lambda n: mine[n - 1])
        lead = close_sentence([(number[first.chunk_id], first.paper), (mine[0], second.paper)])
        text = f"{lead} {renumber(answer.text, lambda n: back[n])}\n{added}"
        both = replace(request, passages=passages).assemble(text, answer.origin, answer.usage, self.embedder)
        if both.abstained or second.paper_id not in {c.paper_id for c in both.citations}:
            return answer
        request.show(f"\n{added}")
        return both.model_copy(update={"seconds": answer.seconds})

    def _named(self, request: Request, asked: Asked, named: list[str], usage: Usage | None) -> Answer:
        """The answer of a model whose draft only named papers by their headings ('[1] "SliceGPT: …"'): a small
        model often answers "which paper …?" so. Its choice is kept: for a question about one paper, the first
        paper it named, called by its title where the question asks which paper it is; for several, the papers it
        named. The offline answerer then says what each does from the excerpts the model read."""
        chosen = named if asked.several else named[:1]
        numbers = [n for n, p in enumerate(request.passages, 1) if p.paper_id in chosen]
        quoted = self.answerer("extractive").answer(
            request.question, [request.passages[n - 1] for n in numbers], request.turns
        )
        text = renumber(quoted.text, lambda n: numbers[n - 1])
        first = request.passages[numbers[0] - 1]
        if asked.paper and not asked.several and (naming := named_sentence(numbers[0], first.paper)):
            text = f"{naming} {text}"
        return request.assemble(text, Origin.NAMED, usage, self.embedder)

    def _asked_for(self, request: Request, checked: Checked, text: str, shown: list[Passage]) -> str:
        """What completes a model's checked answer about one paper where the question asks for a quantity, a name
        or a count (in any of its parts) that no supported sentence states: the offline answer's sentences over the
        same excerpts that state it, quoted and cited; "" when nothing is missing. A small model often copies the
        sentence that sets the scene and leaves out the one that answers."""
        asked = read(request.question)
        if asked.several:
            return ""
        said = [s.claim for s in checked.sentences if s.supported]
        missing = [part for part in map(read, asked.parts) if part.asks_fact and not any(map(part.stated_in, said))]
        if not missing:
            return ""
        quoted = self.answerer("extractive").answer(request.question, shown, request.turns)
        return " ".join(s for s in split_answer(quoted.text) if s not in text and any(p.stated_in(s) for p in missing))


@dataclass(frozen=True)
class Request:
    """One question on its way to an answer: what each step of answering reads, handed down as one."""

    question: str
    backend: str  # the answerer's name, as the Answer records it
    passages: list[Passage]  # [n] in an answer is passages[n-1]
    turns: list[Turn]
    intent: MetadataIntent | None
    on_text: OnText | None = None
    on_status: OnStatus | None = None

    def show(self, text: str) -> None:
        """Hand `text` to the reader as part of the answer."""
        if self.on_text is not None:
            self.on_text(text)

    def status(self, text: str) -> None:
        """Tell the reader what is being done while nothing is written yet."""
        if self.on_status is not None:
            self.on_status(text)

    def abstention(self, origin: Origin, usage: Usage | None = None) -> Answer:
        """The answer that declines."""
        return Answer(
            question=self.question, text=ABSTAIN_PHRASE, abstained=True, citations=[], sentences=[],
            removed_markers=[], passages=self.passages, backend=self.backend, origin=origin, usage=usage,
        )  # fmt: skip

    def assemble(
        self, text: str, origin: Origin, usage: Usage | None, embedder: Embedder, checked: Checked | None = None
    ) -> Answer:
        """Check every citation of `text` (unless `checked` is its check already), renumber the markers in order
        of first use, and abstain when no sentence is supported. A sentence in which the writer declines is no
        claim: it is left out when other sentences are supported, and makes the answer a declined one when none
        is."""
        if text.strip() == ABSTAIN_PHRASE or not self.passages:
            return self.abstention(Origin.DECLINED, usage)
        checked = checked or check(text, self.passages, embedder)
        claims = [s for s in checked.sentences if s.supported or not is_decline(s.claim)]
        abstained = not any(s.supported for s in claims)
        if abstained and len(claims) < len(checked.sentences):
            return self.abstention(Origin.DECLINED, usage)
        order: dict[int, int] = {}
        for sentence in claims:
            for marker in sentence.markers:
                order.setdefault(marker, len(order) + 1)
        sentences = [
            s.model_copy(
                update={
                    "markers": [order[m] for m in s.markers],
                    "text": with_markers(s.claim, [order[m] for m in s.markers]),
                }
            )
            for s in claims
        ]
        return Answer(
            question=self.question,
            text=ABSTAIN_PHRASE if abstained else " ".join(s.text for s in sentences),
            abstained=abstained,
            citations=[] if abstained else [_citation(new, self.passages[old - 1]) for old, new in order.items()],
            sentences=sentences,
            removed_markers=checked.removed_markers,
            passages=self.passages,
            backend=self.backend,
            origin=origin,
            usage=usage,
        )


class _Clock:
    """How long writing the answer took, and checking it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def answered(self) -> None:
        now = time.perf_counter()
        self.seconds["answer"], self.started = now - self.started, now

    def timed(self, answer: Answer) -> Answer:
        return answer.model_copy(update={"seconds": {**self.seconds, "check": time.perf_counter() - self.started}})


def _selected_papers(intent: MetadataIntent, catalogue: Catalogue) -> list[str]:
    """The papers a question about the whole collection selects by their records (organisation tag, date,
    author count)."""
    if intent.kind == IntentKind.ORGANIZATION:
        return catalogue.organization_papers(intent.organization, MAX_LISTED)
    if intent.kind == IntentKind.PAPERS_BY_DATE:
        return catalogue.papers_by_date(intent.newest, intent.count)
    return catalogue.single_author_papers(MAX_LISTED)


def _with_lead(checked: Checked, passages: list[Passage], embedder: Embedder) -> Checked:
    """A model's checked answer about several papers, opened, as the offline one is, by the sentence listing the
    papers its supported sentences cite (when they cite two or more); only the lead is checked anew."""
    numbers = [n for s in checked.sentences if s.supported for n in s.markers]
    firsts = {passages[n - 1].paper_id: n for n in reversed(numbers)}
    if len(firsts) < 2:
        return checked
    lead = check(lead_sentence([(n, passages[n - 1].paper) for n in sorted(firsts.values())]), passages, embedder)
    return replace(checked, sentences=lead.sentences + checked.sentences)


def _checked_question(question: str) -> str:
    text = " ".join(str(question).split())
    if not text:
        raise QuestionError("the question is empty; ask something about the papers")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(text):,} characters long; keep it under {MAX_QUESTION_CHARS:,} (one question, "
            "not a document)"
        )
    return text


def _turn(item: Turn | Answer | dict[str, object]) -> Turn:
    """A conversation turn from a Turn, an earlier Answer, or a dict with question/answer (and paper_ids)."""
    if isinstance(item, Turn):
        return item
    if isinstance(item, Answer):
        return Turn(item.question, item.text, tuple(c.paper_id for c in item.citations))
    if isinstance(item, dict) and "question" in item:
        ids = item.get("paper_ids") or ()
        paper_ids = tuple(str(pid) for pid in ids) if isinstance(ids, list | tuple) else ()
        return Turn(str(item["question"]), str(item.get("answer", "")), paper_ids)
    raise QuestionError(f"history entry {item!r}: give earlier Answers, or dicts with 'question' and 'answer'")


def _follow_up(question: str, turns: list[Turn], filters: Filters) -> tuple[str, Filters]:
    """For a follow-up ("and which of them ...?"), search with the earlier question too, among the papers the
    last answer cited."""
    if not turns or not read(question).follow_up:
        return question, filters
    last = turns[-1]
    query = f"{last.question} {question}"
    if last.paper_ids and filters.paper_ids is None:
        filters = filters.model_copy(update={"paper_ids": frozenset(last.paper_ids)})
    return query, filters


def _citation(number: int, passage: Passage) -> Citation:
    paper = passage.paper
    return Citation(
        number=number,
        paper_id=paper.paper_id,
        title=paper.title,
        authors=paper.authors,
        n_authors=paper.n_authors,
        date=paper.date,
        published=paper.published,
        category=paper.category,
        sources=paper.sources,
        chunk_id=passage.chunk_id,
        passage=passage.read,
        score=passage.score,
        arxiv_id=paper.arxiv_id,
        doi=paper.doi,
        url=paper.url,
    )


_pipelines: dict[str, Pipeline] = {}
_pipelines_lock = threading.Lock()


def pipeline(settings: Settings | None = None) -> Pipeline:
    """The shared Pipeline for these settings (the environment's when None), created once per process."""
    settings = settings or load_settings()
    key = settings.model_dump_json()
    with _pipelines_lock:
        if key not in _pipelines:
            _pipelines[key] = Pipeline(settings)
        return _pipelines[key]


def ask(
    question: str,
    k: int | None = None,
    *,
    filters: Filters | None = None,
    backend: str | None = None,
    history: Sequence[Turn | Answer] | None = None,
    settings: Settings | None = None,
    on_text: OnText | None = None,
    on_status: OnStatus | None = None,
    **filter_fields: object,
) -> Answer:
    """Answer `question` from the collection; filters may be given as Filters or as keywords
    (year_from, year_to, author, category, has_code, source_file)."""
    if filter_fields:
        try:
            extra = Filters.model_validate(filter_fields).model_dump(exclude_none=True)
            filters = (filters or Filters()).model_copy(update=extra)
        except Exception as exc:
            raise ConfigError(f"filters {filter_fields}: {exc}".splitlines()[0]) from exc
    return pipeline(settings).ask(
        question, k, filters=filters, backend=backend, history=history, on_text=on_text, on_status=on_status
    )
