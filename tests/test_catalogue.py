"""The catalogue: the paper records and keyword index that a question reads instead of the whole store."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import rag
from rag.catalogue import open_catalogue
from rag.config import Settings
from rag.filters import Filters
from rag.lexical import ChunkRow, LexicalIndex, terms
from rag.store import Store
from tests.conftest import run_rag


@pytest.fixture(scope="module")
def papers(full_store) -> dict[str, rag.Paper]:  # type: ignore[no-untyped-def]
    return {p.paper_id: p for p in rag.list_papers(settings=full_store[0])}


def filter_cases(papers: dict[str, rag.Paper]) -> list[Filters]:
    some = sorted(papers)[:7]
    author = next(name for p in papers.values() for name in p.authors or [])
    category = next(p.category for p in papers.values() if p.category)
    file = next(iter(next(iter(papers.values())).files))
    singles = [
        {"year_from": 2023},
        {"year_to": 2022},
        {"author": author.split()[-1].upper()},
        {"category": category.lower()},
        {"has_code": True},
        {"has_code": False},
        {"source_file": file},
        {"paper_ids": frozenset(some)},
        {"paper_ids": frozenset()},
        {"author": "nobody at all"},
    ]
    pairs = [{**a, **b} for a, b in itertools.combinations(singles[:8], 2)]
    return [Filters(**case) for case in singles + pairs]


def test_the_catalogue_lets_through_exactly_the_papers_the_filters_allow(full_store, papers) -> None:  # type: ignore[no-untyped-def]
    catalogue = open_catalogue(full_store[0])
    assert catalogue.count() == len(papers) == 336
    for filters in filter_cases(papers):
        expected = sorted(pid for pid, paper in papers.items() if filters.allows(paper))
        assert catalogue.paper_ids(filters) == expected, filters
        assert catalogue.count(filters) == len(expected)
        assert catalogue.count(filters, at_most=3) == min(3, len(expected))


# Counted in the seed files themselves, not through Filters. In the shipped corpus only 002, an arXiv listing, gives
# a paper's category and whether it has code, on the line above its title ("LGOct 11, 2022Code"): grep -cE
# '^[A-Z]{2}[A-Z][a-z]{2} [0-9]{1,2}, [0-9]{4}(Code)?$' finds 50 such lines, then counted by their prefix, year and
# suffix. 000 holds one abstract per line, 11 lines.
SEED_000, SEED_002 = "000_7342bdb2443f70ef.txt", "002_23ffeefb68832b4c.txt"
COUNTED_BY_HAND = [
    (Filters(has_code=True), 34),  # the lines ending in "Code"
    (Filters(has_code=False), 16),  # the other 50 - 34
    (Filters(category="lg"), 31),  # the lines starting "LG"
    (Filters(category="CV", has_code=True), 6),  # starting "CV" and ending in "Code"
    (Filters(year_to=2022, has_code=False), 11),  # dated 2022 or earlier, without "Code"
    (Filters(source_file=SEED_002), 50),
    (Filters(source_file=SEED_000), 11),
    (Filters(source_file=SEED_000, has_code=True), 0),  # 000 says nothing about code
    (Filters(author="No Such Person"), 0),
]
# The titles after the four lines of 002 dated 2024 or later that end in "Code".
RECENT_WITH_CODE = {
    "Model Merging in LLMs, MLLMs, and Beyond: Methods, Theories, Applications and Opportunities",
    "QPO: Query-dependent Prompt Optimization via Multi-Loop Offline Reinforcement Learning",
    "SMILE: Zero-Shot Sparse Mixture of Low-Rank Experts Construction From Pre-Trained Foundation Models",
    "Sparse Model Inversion: Efficient Inversion of Vision Transformers for Data-Free Applications",
}


def chroma_papers(pipe: rag.Pipeline, filters: Filters) -> set[str]:
    """The papers whose chunks the retriever's Chroma condition for `filters` keeps."""
    where = pipe.retriever._where(filters)
    if where is False:
        return set()
    chunks = pipe.retriever.store._chunks
    found = chunks.get(where=where, include=["metadatas"]) if where is not None else chunks.get(include=["metadatas"])
    return {m["paper_id"] for m in found["metadatas"]}


def test_every_stage_lets_through_the_papers_counted_by_hand_in_the_seed_files(full_store, papers) -> None:  # type: ignore[no-untyped-def]
    catalogue = open_catalogue(full_store[0])
    pipe = rag.pipeline(full_store[0])
    for filters, count in COUNTED_BY_HAND:
        assert catalogue.count(filters) == len(catalogue.paper_ids(filters)) == count, filters
        assert len(chroma_papers(pipe, filters)) == count, filters
        assert sum(filters.allows(paper) for paper in papers.values()) == count, filters
    recent = Filters(year_from=2024, has_code=True)
    assert {papers[pid].title for pid in catalogue.paper_ids(recent)} == RECENT_WITH_CODE
    assert {papers[pid].title for pid in chroma_papers(pipe, recent)} == RECENT_WITH_CODE
    passages = pipe.retriever.retrieve("Which papers merge models or experts?", 10, recent)
    assert passages and {p.paper.title for p in passages} <= RECENT_WITH_CODE


def test_each_filter_means_the_same_to_chroma_as_to_the_catalogue_and_to_a_paper(full_store, papers) -> None:  # type: ignore[no-untyped-def]
    """Filters are defined once (rag.filters.RULES); the Chroma condition on chunk metadata, with the catalogue's
    ids for what Chroma cannot test, keeps the chunks of exactly the papers `allows` lets through."""
    pipe = rag.pipeline(full_store[0])
    for filters in filter_cases(papers):
        allowed = {pid for pid, paper in papers.items() if filters.allows(paper)}
        assert chroma_papers(pipe, filters) == allowed, filters


def test_retrieval_with_any_filter_returns_only_papers_the_filter_allows(full_store, papers) -> None:  # type: ignore[no-untyped-def]
    pipe = rag.pipeline(full_store[0])
    for filters in filter_cases(papers):
        allowed = {pid for pid, paper in papers.items() if filters.allows(paper)}
        passages = pipe.retriever.retrieve("Which methods improve generalization of deep networks?", 5, filters)
        assert {p.paper_id for p in passages} <= allowed, filters
        if allowed:  # the filter leaves papers, so the question finds some of them
            assert passages, filters


def test_records_come_back_exactly_as_stored(full_store, papers) -> None:  # type: ignore[no-untyped-def]
    catalogue = open_catalogue(full_store[0])
    assert catalogue.papers(list(papers)) == papers
    assert catalogue.papers(["no-such-paper"]) == {}


def test_author_and_organisation_lookups_find_whole_names_in_any_case(full_store, papers) -> None:  # type: ignore[no-untyped-def]
    catalogue = open_catalogue(full_store[0])
    name = max((n for p in papers.values() for n in p.authors or [] if " " in n), key=len)
    assert catalogue.author_named(f"which papers are by {name.upper()}?") == name
    assert catalogue.author_named(f"Papers by {name}.") == name
    assert catalogue.author_named(f"papers by {name}x?") != name
    # The shipped corpus's one organisation tag, on AdaTask's author line in 002 ("... et al. · tencent-ai").
    assert {p.organization for p in papers.values() if p.organization} == {"tencent-ai"}
    assert catalogue.organization_named("papers from TENCENT-AI?") == "tencent-ai"
    assert catalogue.organization_named("papers from Tencent") is None  # part of a tag names no organisation


def test_a_question_reads_no_whole_collection_once_the_catalogue_is_built(
    full_store, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = full_store[0]
    rag.pipeline(settings).retriever  # noqa: B018 - the catalogue is in step with the store from here on

    def whole_collection(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("read the whole collection")

    for method in ("papers", "stored_pages", "chunk_pages", "chunk_rows", "all_vectors", "chunk_counts"):
        monkeypatch.setattr(Store, method, whole_collection)
    pipe = rag.pipeline(settings)
    answer = pipe.ask("How does Fisher merging weight the parameters of the models?")
    assert answer.citations and "Fisher" in (answer.citations[0].title or "")
    filtered = pipe.ask("What is model merging?", filters=Filters(year_from=2024, has_code=True))
    assert filtered.passages and all(
        p.paper.year and p.paper.year >= 2024 and p.paper.has_code for p in filtered.passages
    )


def test_a_deleted_half_written_or_garbage_catalogue_is_rebuilt_from_the_store(full_store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    home = tmp_path / "home"
    shutil.copytree(full_store[0].home, home)
    settings = full_store[0].model_copy(update={"home": home})
    question = "How does Fisher merging weight the parameters of the models?"
    before = rag.ask(question, settings=settings)
    catalogue = open_catalogue(settings)
    catalogue.remove(list(catalogue.paper_ids())[:100])
    catalogue.mark(None)  # as an ingest killed while writing it leaves it
    catalogue.close()
    assert rag.ask(question, settings=settings).text == before.text
    assert open_catalogue(settings).count() == 336
    for path in (home / "catalogue").iterdir():
        path.unlink()
    assert rag.ask(question, settings=settings).text == before.text
    opened = open_catalogue(settings)
    catalogue_file = opened.path
    opened.close()
    catalogue_file.write_bytes(b"not a database, " * 4096)  # overwritten with garbage
    asked = run_rag("ask", question, home=home)
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr
    assert f"the catalogue {catalogue_file} could not be read" in asked.stderr
    assert open_catalogue(settings).count() == 336


def test_bm25_ranks_the_chunk_with_the_rare_words_first_and_forgets_removed_papers() -> None:
    import sqlite3

    index = LexicalIndex(sqlite3.connect(":memory:"))
    rows = [
        ChunkRow("a:0", "a", 0, 40, "Fisher merging weights parameters by their Fisher information."),
        ChunkRow("b:0", "b", 0, 40, "We merge models by averaging parameters."),
        ChunkRow("c:0", "c", 0, 40, "Rain removal restores photographs."),
    ]
    index.add((row, "") for row in rows)
    found = index.search("Which method uses Fisher information?", 10)
    assert [cid for cid, _ in found][:1] == ["a:0"] and "c:0" not in dict(found)
    assert terms("The Merging of Models") == ["merg", "model"]
    assert set(index.scores("merging models", ["a:0", "b:0", "c:0"])) == {"a:0", "b:0"}
    assert [cid for cid, _ in index.search("merging", 10, ("chunks.paper_id = ?", ["b"]))] == ["b:0"]
    index.remove_papers(["a"])
    assert "a:0" not in dict(index.search("Fisher merging", 10)) and index.count() == 2


@pytest.mark.slow
def test_a_long_lived_pipeline_answers_from_papers_another_process_ingested(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A question from another process while an ingest holds the home's writer lock is answered from what is
    stored (the test holds the lock, as a running ingest does, so the ingest waits however fast it would run);
    once that ingest has written, a pipeline opened before it answers from the papers it added."""
    import fcntl
    import os
    import subprocess

    from tests.conftest import RAG_BIN, SEED

    settings = Settings(home=tmp_path / "home", chroma_host=None, chroma_port=None)
    rag.ingest([SEED["002"]], settings=settings)
    pipe = rag.pipeline(settings)
    question = "How does Fisher merging weight the parameters of the models?"
    assert "Fisher" not in " ".join(c.title or "" for c in pipe.ask(question).citations)  # not stored yet
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(settings.home), RAG_MODELS_DIR=os.environ["RAG_MODELS_DIR"])
    with open(settings.home / "ingest.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        writer = subprocess.Popen(
            [str(RAG_BIN), "ingest", str(SEED["003"]), str(SEED["004"])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stderr is not None
        assert writer.stderr.readline().startswith(f"waiting: another `rag ingest` is writing to {settings.home}")
        # A question meanwhile, from another process, is answered from what is stored.
        during = run_rag(
            "ask", "Which paper studies sharpness-aware minimization with a sparse perturbation?", home=settings.home
        )
        assert during.returncode == 0 and "[1]" in during.stdout and "Traceback" not in during.stderr, during.stderr
        assert "Sparse SAM" in during.stdout or "Sparsified Perturbation" in during.stdout, during.stdout
        assert writer.poll() is None  # the ingest still waits for the lock
    _, rest = writer.communicate(timeout=600)
    assert writer.returncode == 0, rest
    answer = pipe.ask(question)  # the same pipeline, its store opened before that ingest
    assert answer.citations[0].title == "Merging Models with Fisher-Weighted Averaging"


@pytest.mark.slow
def test_vectors_another_process_committed_after_this_one_loaded_its_index_are_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The catalogue lists papers another process committed while a question is being asked; Chroma reads vectors
    # from the index as this process loaded it, and fails on ids it has not seen unless the store is read afresh.
    from rag.embedding import embedder_name
    from rag.store import open_store
    from tests.conftest import SEED

    formats = Path(__file__).parent / "data" / "formats"

    settings = Settings(home=tmp_path / "home", chroma_host=None, chroma_port=None)
    rag.ingest([SEED["000"]], settings=settings)
    store = open_store(settings, embedder_name(settings))
    before = set(store.papers())
    assert store.query([1.0] + [0.0] * 383, 5)  # the index is loaded now
    assert run_rag("ingest", str(formats / "papers.csv"), home=settings.home).returncode == 0
    later = [pid for pid in open_store(settings, embedder_name(settings)).papers() if pid not in before]
    assert later
    vectors = store.paper_vectors(later)
    assert set(vectors) == set(later) and all(len(vec) == 384 for vec in vectors.values())
