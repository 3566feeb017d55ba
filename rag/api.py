"""The library's entry points: ingest files, list the stored papers, describe the store."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.chunking import Chunker
from rag.config import Settings, load_settings
from rag.embedding import embedder_name
from rag.ingest import IngestReport, Progress
from rag.ingest import ingest as _ingest
from rag.store import open_store
from rag.types import Paper


def ingest(
    paths: Sequence[str | Path] | None = None,
    *,
    prune: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Parse, chunk, embed and store the given files or folders (the default corpus when None)."""
    settings = settings or load_settings()
    return _ingest([Path(p) for p in paths] if paths else None, settings=settings, prune=prune, progress=progress)


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
    )
