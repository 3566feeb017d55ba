"""Chunks: whole sentences of one abstract, exact substrings at their offsets, sized in tiktoken tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag.chunking import Chunker
from rag.config import DEFAULT_CHUNK_TOKENS
from rag.corpus import merge_records, parse_file
from tests.conftest import SEED_FILES


@pytest.fixture(scope="module")
def papers():  # type: ignore[no-untyped-def]
    return merge_records(record for path in SEED_FILES for record in parse_file(path).records)


def test_every_chunk_is_the_exact_text_at_its_offsets_and_chunks_cover_the_abstract_in_order(papers) -> None:  # type: ignore[no-untyped-def]
    chunker = Chunker(DEFAULT_CHUNK_TOKENS)
    for paper in papers:
        chunks = chunker.chunk(paper)
        assert chunks, paper.paper_id
        covered = "".join(paper.abstract[c.start : c.end] for c in chunks)
        assert all(paper.abstract[c.start : c.end] == c.text for c in chunks)
        assert [c.index for c in chunks] == list(range(len(chunks)))
        assert "".join(covered.split()) == "".join(paper.abstract.split())  # nothing but whitespace is left out
        assert all(c.paper_id == paper.paper_id and c.chunk_id == f"{paper.paper_id}:{c.index}" for c in chunks)


def test_chunks_stay_within_the_token_budget_and_end_on_sentence_boundaries(papers) -> None:  # type: ignore[no-untyped-def]
    chunker = Chunker(64)
    ends = 0
    total = 0
    for paper in papers:
        for chunk in chunker.chunk(paper):
            total += 1
            assert chunk.tokens == chunker.count_tokens(chunk.text)
            assert chunk.tokens <= 64 or "." not in chunk.text[:-1]  # only one over-long sentence may exceed it
            ends += chunk.text.rstrip().endswith((".", "?", "!", ")")) or chunk.end == len(paper.abstract.rstrip())
    assert ends / total > 0.9


def test_token_counts_come_from_the_bundled_cl100k_file_without_network() -> None:
    # The session guard fails this test if tiktoken tries to download its BPE file.
    chunker = Chunker(128)
    assert chunker._encoding.encode("hello world") == [15339, 1917]  # cl100k_base ids, as OpenAI publishes them
    assert chunker.count_tokens("hello world") == 2


def test_signature_changes_with_size_and_overlap() -> None:
    assert len({Chunker(128).signature, Chunker(64).signature, Chunker(128, 16).signature}) == 3


def test_splitting_sentences_before_an_ingest_leaves_nltk_whole_for_the_chunker(papers) -> None:  # type: ignore[no-untyped-def]
    # Answering loads only nltk's Punkt module; an ingest later in the same process (the UI's) imports the whole
    # package through llama-index. A fresh process, since this one has loaded nltk already.
    script = (
        "import sys\n"
        "from rag.text import sentences\n"
        "assert sentences('One sentence here. Another one here.') == ['One sentence here.', 'Another one here.']\n"
        "assert 'nltk' not in sys.modules, 'answering left a partial nltk behind'\n"
        "import nltk\n"
        "assert nltk.tokenize.punkt.PunktSentenceTokenizer and nltk.word_tokenize\n"
        "from rag.chunking import Chunker\n"
        "from rag.types import Paper\n"
        f"paper = Paper.model_validate_json({papers[0].model_dump_json()!r})\n"
        "print(len(Chunker(64).chunk(paper)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) == len(Chunker(64).chunk(papers[0]))


def test_the_punkt_shortcut_splits_as_nltk_imported_whole_does(papers) -> None:  # type: ignore[no-untyped-def]
    # rag.text loads Punkt without nltk's package import; should that ever differ from nltk's own, stored sentence
    # vectors would stop matching the sentences a question splits. A fresh process imports nltk whole.
    from rag.text import _bare_punkt

    abstracts = [paper.abstract for paper in papers[:40]]
    bare = [list(_bare_punkt().span_tokenize(text)) for text in abstracts]
    script = (
        "import json, sys\n"
        "from nltk.tokenize.punkt import PunktSentenceTokenizer\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps([list(PunktSentenceTokenizer().span_tokenize(t)) for t in texts]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(abstracts), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [[tuple(span) for span in spans] for spans in json.loads(done.stdout)] == bare
    assert sum(len(spans) for spans in bare) > 200


def test_sentences_are_split_by_nltk_imported_as_usual_where_the_shortcut_fails(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import rag.text

    def broken() -> None:
        raise ImportError("a layout the shortcut does not know")

    monkeypatch.setattr(rag.text, "_bare_punkt", broken)
    monkeypatch.delitem(sys.modules, "nltk", raising=False)
    rag.text._punkt.cache_clear()
    try:
        assert rag.text.sentences("One sentence here. Another one here.") == ["One sentence here.", "Another one here."]
    finally:
        rag.text._punkt.cache_clear()
