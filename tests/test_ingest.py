"""Ingestion into a real embedded Chroma with the real model: idempotence, change detection, prune, bad input,
and a run killed with SIGKILL half-way."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import rag
from rag.config import Settings
from rag.embedding import embedder_name, load_embedder
from rag.store import HNSW, _slug, open_store
from tests.conftest import RAG_BIN, SEED, run_rag


def store_of(settings: Settings):  # type: ignore[no-untyped-def]
    return open_store(settings, embedder_name(settings))


def snapshot(settings: Settings) -> tuple[dict[str, object], list[tuple[str, str, dict]]]:
    """Every stored paper and chunk, for comparing two states of a store."""
    store = store_of(settings)
    papers = {pid: sp.paper for pid, sp in store.papers().items()}
    return papers, sorted(store.chunk_rows())


def test_full_corpus_is_stored_with_every_chunk_carrying_its_papers_id_and_filter_fields(full_store) -> None:  # type: ignore[no-untyped-def]
    settings, report = full_store
    assert (report.found, report.new, report.changed, report.unchanged, report.removed) == (336, 336, 0, 0, 0)
    assert report.papers_total == 336 and report.problems == [] and not report.failed_files
    store = store_of(settings)
    papers = store.papers()
    rows = store.chunk_rows()
    assert report.chunks_total == report.chunks_embedded == len(rows)
    assert Counter(meta["paper_id"] for _, _, meta in rows) == {pid: sp.n_chunks for pid, sp in papers.items()}
    for chunk_id, text, meta in rows:
        paper = papers[meta["paper_id"]].paper
        assert paper.abstract[meta["start"] : meta["end"]] == text
        assert (meta.get("year"), meta.get("category"), meta.get("has_code")) == (
            paper.year,
            paper.category,
            paper.has_code,
        )
        assert "title" not in meta and "authors" not in meta  # the paper record carries those, once
        assert chunk_id == f"{paper.paper_id}:{meta['chunk']}"
    merged = next(sp.paper for sp in papers.values() if sp.paper.title == "Efficiently Robustify Pre-trained Models")
    assert len(merged.sources) == 3


def test_reingesting_an_unchanged_corpus_embeds_nothing_and_changes_nothing(full_store) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    before = snapshot(settings)
    report = rag.ingest(settings=settings)
    assert (report.new, report.changed, report.unchanged, report.removed, report.chunks_embedded) == (0, 0, 336, 0, 0)
    assert snapshot(settings) == before


def test_an_edited_abstract_replaces_the_old_paper_and_its_chunks(corpus: Path, settings: Settings) -> None:
    rag.ingest([corpus], settings=settings)
    path = corpus / SEED["002"].name
    lines = path.read_text(encoding="utf-8").split("\n")
    old_abstract = lines[2]
    lines[2] = old_abstract.replace("Sparse SAM", "Sparse Sharpness-Aware Minimization", 1)
    path.write_text("\n".join(lines), encoding="utf-8")

    report = rag.ingest([corpus], settings=settings)
    assert (report.new, report.changed, report.removed, report.unchanged) == (0, 1, 0, 60)
    papers, rows = snapshot(settings)
    assert len(papers) == 61
    assert rag.types.paper_id_for(old_abstract) not in papers
    texts = " ".join(text for _, text, _ in rows)
    assert "Sparse Sharpness-Aware Minimization" in texts and "coined as Sparse SAM (SSAM)" not in texts
    edited = next(p for p in papers.values() if "Sparse Sharpness-Aware Minimization" in p.abstract)
    assert report.chunks_embedded == sum(1 for _, _, meta in rows if meta["paper_id"] == edited.paper_id) > 0


def test_a_metadata_change_rewrites_the_record_without_embedding(corpus: Path, settings: Settings) -> None:
    rag.ingest([corpus], settings=settings)
    path = corpus / SEED["002"].name
    path.write_text(
        path.read_text(encoding="utf-8").replace("LGOct 11, 2022Code", "LGOct 12, 2022", 1), encoding="utf-8"
    )
    report = rag.ingest([corpus], settings=settings)
    assert (report.changed, report.chunks_embedded) == (1, 0)
    papers, rows = snapshot(settings)
    paper = next(p for p in papers.values() if p.title and p.title.startswith("Make Sharpness-Aware"))
    assert (paper.date, paper.has_code) == ("Oct 12, 2022", False)
    metas = [meta for _, _, meta in rows if meta["paper_id"] == paper.paper_id]
    assert metas and all(m["has_code"] is False and "date" not in m for m in metas)  # filters read has_code


@pytest.mark.slow
def test_a_paper_found_again_in_another_file_gains_a_source_not_a_duplicate(tmp_path: Path, settings: Settings) -> None:
    rag.ingest([SEED["003"]], settings=settings)
    before = store_of(settings).count_chunks()
    report = rag.ingest([SEED["004"]], settings=settings)
    papers, rows = snapshot(settings)
    shared = [p for p in papers.values() if len(p.files) == 2]
    assert len(shared) == 9  # the papers 003 and 004 have in common
    assert len(papers) == 64 + 73 - 9 and report.changed == 9 and report.new == 73 - 9
    assert len(rows) == len({chunk_id for chunk_id, _, _ in rows}) > before


def test_prune_removes_papers_no_longer_in_the_given_files_and_keeps_them_otherwise(
    corpus: Path, settings: Settings
) -> None:
    rag.ingest([corpus], settings=settings)
    path = corpus / SEED["000"].name
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(lines[:-1]), encoding="utf-8")  # drop the last abstract

    kept = rag.ingest([corpus], settings=settings)
    assert (kept.removed, kept.papers_total) == (0, 61)
    pruned = rag.ingest([corpus], settings=settings, prune=True)
    assert (pruned.removed, pruned.papers_total) == (1, 60)
    papers, rows = snapshot(settings)
    assert rag.types.paper_id_for(lines[-1]) not in papers
    assert {meta["paper_id"] for _, _, meta in rows} == set(papers)

    only_002 = rag.ingest([corpus / SEED["002"].name], settings=settings, prune=True)
    assert (only_002.removed, only_002.papers_total) == (10, 50)


def test_prune_keeps_the_papers_of_a_file_whose_blocks_no_longer_parse(corpus: Path, settings: Settings) -> None:
    rag.ingest([corpus], settings=settings)
    path = corpus / SEED["002"].name
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = "x" * 30_000  # the first paper's abstract is now garbage
    path.write_text("\n".join(lines), encoding="utf-8")
    report = rag.ingest([corpus], settings=settings, prune=True)
    assert [p.line for p in report.problems] == [3]
    assert (report.removed, report.papers_total) == (0, 61)


def test_bad_files_are_reported_and_leave_the_stored_papers_untouched(
    corpus: Path, settings: Settings, tmp_path: Path
) -> None:
    rag.ingest([corpus], settings=settings)
    before = snapshot(settings)
    (corpus / "empty.txt").write_text("")
    (corpus / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    (corpus / "latin1.txt").write_bytes("Caf\xe9 abstract".encode("latin-1"))
    (corpus / SEED["000"].name).write_bytes(b"\xff\xfe broken now")  # a stored file gone bad keeps its papers

    report = rag.ingest([corpus, tmp_path / "missing.txt"], settings=settings, prune=True)
    errors = sorted(f.error for f in report.failed_files)
    assert len(errors) == 5 and all("\n" not in e for e in errors)
    assert any(e.startswith("blob.bin: binary file") for e in errors)
    assert any(e.startswith("empty.txt: empty file") for e in errors)
    assert any(e.startswith("latin1.txt line 1: not UTF-8") for e in errors)
    assert any(e.startswith(f"{SEED['000'].name} line 1: not UTF-8") for e in errors)
    assert any("missing.txt: no such file or folder" in e for e in errors)
    assert (report.removed, report.unchanged) == (0, 50)
    assert snapshot(settings) == before


@pytest.mark.slow
def test_an_ingest_killed_half_way_is_completed_by_the_next_run(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(settings.home), RAG_INGEST_BATCH="8")
    process = subprocess.Popen([str(RAG_BIN), "ingest"], env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("embed: ") and int(line.split()[1].split("/")[0]) >= 64:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    partial = store_of(settings)
    committed = partial.count_papers()
    assert 64 <= committed < 336  # the kill landed half-way

    # Asked before the next ingest, the store answers from committed papers only, even when a chunk whose paper
    # was never committed is the nearest one there is (an orphan placed where the question points). The question
    # is one a paper of 000 answers: the files are ingested in order, so 000's 11 papers are among those committed.
    question = "How does self-paced learning adapt a classifier from a source domain with noisy labels to a target?"
    vector = load_embedder(settings).embed_query(question)
    orphan = "Orphan chunk: self-paced transfer from noisy labels, written before its paper record was."
    partial._chunks.add(
        ids=["orphan:0"],
        embeddings=[vector],
        documents=[orphan],
        metadatas=[{"paper_id": "orphan", "start": 0, "end": len(orphan), "chunk": 0, "title": "Orphan"}],
    )
    answer = rag.ask(question, settings=settings)
    known = set(partial.papers())
    assert answer.passages and {p.paper_id for p in answer.passages} <= known
    assert answer.citations and {c.paper_id for c in answer.citations} <= known and "Orphan" not in answer.text
    assert answer.citations[0].sources[0].file == SEED["000"].name, answer.text

    report = rag.ingest(settings=settings)
    assert report.new == 336 - committed and report.unchanged == committed
    store = store_of(settings)
    papers = store.papers()
    rows = store.chunk_rows()
    assert len(papers) == 336
    assert len(rows) == len({chunk_id for chunk_id, _, _ in rows})
    assert Counter(meta["paper_id"] for _, _, meta in rows) == {pid: sp.n_chunks for pid, sp in papers.items()}
    again = rag.ingest(settings=settings)
    assert (again.new, again.changed, again.unchanged, again.chunks_embedded) == (0, 0, 336, 0)


abstract_text = (
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters="\u0085\ufeff"),
        min_size=250,
        max_size=900,
    )
    .map(str.strip)
    .filter(lambda t: len(t) >= 200)
)


@hsettings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(abstract_text)
def test_any_abstract_survives_parse_store_and_listing_unchanged(tmp_path_factory, abstract: str) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "one.txt"
    path.write_text(abstract + "\n", encoding="utf-8")
    settings = Settings(home=folder / "home", chroma_host=None, chroma_port=None)
    rag.ingest([path], settings=settings)
    (paper,) = rag.list_papers(settings=settings)
    assert paper.abstract == abstract
    shutil.rmtree(folder)


def test_a_new_store_is_built_with_the_chosen_hnsw_settings(full_store) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    store = store_of(settings)
    assert {key: store.index[key] for key in HNSW} == HNSW
    assert store.index_advice is None
    shown = run_rag("stats", home=settings.home)
    assert "index      HNSW, max_neighbors 32, ef_construction 200, ef_search 1000" in shown.stdout


def test_a_store_made_with_chromas_defaults_keeps_working_with_a_wider_search_and_is_told_how_to_rebuild(
    settings: Settings,
) -> None:
    import chromadb

    # A store as an earlier version made it: Chroma's default HNSW settings (16 neighbours, ef 100).
    client = chromadb.PersistentClient(path=str(settings.chroma_path))
    for kind in ("chunks", "papers"):
        client.create_collection(
            f"{settings.collection}-{kind}-{_slug(embedder_name(settings))}",
            embedding_function=None,
            metadata={"hnsw:space": "cosine", "embedder": embedder_name(settings), "schema": 1},
        )
    client.clear_system_cache()  # as if another process had made it: this one's client is forgotten
    del client
    report = rag.ingest(paths=[SEED["000"]], settings=settings)
    assert report.new == report.papers_total > 0
    store = store_of(settings)
    assert (store.index["max_neighbors"], store.index["ef_construction"]) == (16, 100)
    assert store.index["ef_search"] == HNSW["ef_search"]
    assert store.index["sync_threshold"] == HNSW["sync_threshold"]
    assert store.index_advice is not None and f"delete {settings.chroma_path}" in store.index_advice
    answer = rag.ask(
        "How many parameters does the lightweight adapter for multilingual prompts have?", settings=settings
    )
    assert answer.citations


def test_an_ingest_leaves_few_index_records_for_the_next_process_to_insert_again(full_store) -> None:  # type: ignore[no-untyped-def]
    # Chroma writes its HNSW index after every `sync_threshold` log records, and the next process to open the
    # collection inserts the records since into the graph again before its first query: at Chroma's 1,000 that
    # cost a cold question up to 0.8 s. Read from Chroma's own bookkeeping (its SQLite file).
    import sqlite3

    settings, report = full_store  # the shipped corpus, ingested
    assert report.chunks_embedded > 3 * HNSW["sync_threshold"]
    # The log's sequence numbers are shared by both collections, so what waits is counted, not subtracted
    # (Chroma purges what it has written from the log).
    with sqlite3.connect(f"file:{settings.chroma_path / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
        written = dict(db.execute("SELECT segment_id, seq_id FROM max_seq_id"))
        topics = [topic for (topic,) in db.execute("SELECT DISTINCT topic FROM embeddings_queue")]
        vector_segments = db.execute(
            "SELECT s.id, c.id FROM segments s JOIN collections c ON s.collection = c.id WHERE s.scope = 'VECTOR'"
        ).fetchall()
        assert len(vector_segments) == 2
        for segment, collection in vector_segments:
            (topic,) = [t for t in topics if t.endswith(collection)]
            (waiting,) = db.execute(
                "SELECT COUNT(*) FROM embeddings_queue WHERE topic = ? AND seq_id > ?", (topic, written[segment])
            ).fetchone()
            assert waiting < HNSW["sync_threshold"], (segment, waiting)


def stored_sentences(settings: Settings) -> dict[str, set[bytes]]:
    """The keys of the sentence vectors the catalogue stores, by paper."""
    from rag.catalogue import open_catalogue

    catalogue = open_catalogue(settings)
    by_paper: dict[str, set[bytes]] = {}
    for pid, key in catalogue._db.execute("SELECT paper_id, key FROM sentences"):
        by_paper.setdefault(pid, set()).add(key)
    catalogue.close()
    return by_paper


def sentence_keys(settings: Settings, texts: list[str]) -> set[bytes]:
    from rag.embedding import sentence_key
    from rag.text import sentence_spans

    name = embedder_name(settings)
    return {sentence_key(name, text[s:e].strip()) for text in texts for s, e in sentence_spans(text)}


@pytest.mark.slow
def test_sentence_vectors_are_stored_with_their_papers_filled_in_for_older_stores_and_dropped_with_them(
    corpus: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.catalogue import Catalogue, open_catalogue

    rag.ingest([corpus], settings=settings)  # a store ingested before sentence vectors were kept
    assert stored_sentences(settings) == {}
    settings = settings.model_copy(update={"store_sentences": True})

    report = rag.ingest([corpus], settings=settings)  # nothing new to embed: the sentences are filled in
    assert report.chunks_embedded == 0
    by_paper = stored_sentences(settings)
    store = store_of(settings)
    rows = store.chunk_rows()
    papers = {meta["paper_id"] for _, _, meta in rows}
    assert set(by_paper) == papers and len(papers) == 61
    for pid in papers:
        assert by_paper[pid] == sentence_keys(settings, [text for _, text, meta in rows if meta["paper_id"] == pid])
    assert open_catalogue(settings).flag("sentences") == "all"

    # once every paper has them, a run does not look for papers without them
    def fail(self: Catalogue) -> int:
        raise AssertionError("searched for papers without sentence vectors")

    monkeypatch.setattr(Catalogue, "count_without_sentences", fail)
    path = corpus / SEED["000"].name
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[0] = lines[0].replace(" the ", " this ", 1)
    path.write_text("\n".join(lines[:-1]), encoding="utf-8")  # one abstract edited, the last one dropped
    assert rag.ingest([corpus], settings=settings, prune=True).removed == 1
    papers_now, rows = snapshot(settings)
    by_paper = stored_sentences(settings)
    assert set(by_paper) == set(papers_now) and len(papers_now) == 60
    assert rag.types.paper_id_for(lines[-1]) not in by_paper
    edited = rag.types.paper_id_for(lines[0])
    assert edited in by_paper
    assert by_paper[edited] == sentence_keys(settings, [text for _, text, meta in rows if meta["paper_id"] == edited])


def test_a_questions_passage_sentences_are_read_from_the_stored_vectors_not_embedded(
    full_store, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from rag.text import sentence_spans

    pipe = rag.Pipeline(full_store[0])
    inner = pipe.embedder.embedder  # type: ignore[attr-defined]
    embedded: list[str] = []
    real = inner.embed_texts

    def recording(texts: list[str]) -> list[list[float]]:
        embedded.extend(texts)
        return real(texts)

    monkeypatch.setattr(inner, "embed_texts", recording)
    question = "Which papers here merge fine-tuned models, and how do their methods differ?"
    answer = pipe.ask(question, backend="extractive")
    assert answer.origin == "draft" and answer.citations
    sentences = {p.text[s:e].strip() for p in answer.passages for s, e in sentence_spans(p.text)}
    assert len(sentences) > 20
    assert question in embedded and not sentences & set(embedded)  # the claims and the question, no passage's
    # the stored vectors are the model's own, within float16's rounding
    sample = sorted(sentences)[:12]
    stored = np.array(pipe.embedder.embed_texts(sample))
    fresh = np.array(real(sample))
    assert float((stored * fresh).sum(axis=1).min()) > 0.999
