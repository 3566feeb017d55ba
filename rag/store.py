"""Chroma, embedded (files under RAG_HOME) or a server (RAG_CHROMA_HOST/PORT): the only module that imports chromadb.

Two collections per embedding model: `<prefix>-chunks-<model>` holds every chunk's vector, where it lies in its
paper's abstract (`start`, `end`) and the fields that filters read; `<prefix>-papers-<model>` holds one record
per paper, its abstract as the document, written after its chunks. A chunk's text is its abstract[start:end], so
it is not stored twice: Chroma indexes every document for full-text search, which this project does not use
(its lexical index is the catalogue's), and chunk documents with all their paper's fields made 57% of the time
of an ingest's writes. Stores written before keep their chunk documents; they are not read.

The paper record is the commit mark: chunks whose paper has no record (an ingest killed between the two writes)
are not part of the store, are never returned, and are removed by the next ingest.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.chunking import paper_text
from rag.config import Settings
from rag.corpus import merge_paper
from rag.errors import StoreError
from rag.lexical import ChunkRow
from rag.types import Chunk, Paper, PaperRecord
from rag.writers import Lease

# 2: chunks carry every category their paper is listed under (`categories`), for filters on cross-lists.
# 3: a paper's vector is its title and abstract embedded whole, no longer the mean of its chunks' vectors.
SCHEMA_VERSION = 3
_PAGE = 2000
# The HNSW index of new collections (benchmarks/hnsw.py; docs/benchmarks.md). Chroma's defaults (16 neighbours,
# construction and search ef 100) find 0.22 of the true 10 nearest among 100k random vectors. The search ef is
# applied to an existing store as well; the graph's neighbours and construction ef are fixed when a collection
# is made, so a store made with fewer is told how to rebuild (`rag stats`).
HNSW = {"max_neighbors": 32, "ef_construction": 200, "ef_search": 1000, "sync_threshold": 100}
# Chroma writes its HNSW index to disk after every `sync_threshold` log records; the records since the last write
# are inserted into the graph again by the next process that opens the collection. With Chroma's 1,000, that
# replay cost a cold question up to 0.8 s at 5,336 papers (about 0.65 ms a record at this graph's settings); at
# 100, about 65 ms. An older store takes the lower threshold when opened, and writes its index at its next replay.


@dataclass(frozen=True)
class StoredPaper:
    """A paper's record as the store holds it (or is to hold it): the per-file records it was merged from,
    and what its chunks were built from."""

    paper: Paper
    records: list[PaperRecord]
    content_hash: str
    meta_hash: str
    n_chunks: int


@dataclass(frozen=True)
class PaperWrite(StoredPaper):
    """A paper to store with its chunks, one vector per chunk, and the vector of its whole text."""

    chunks: list[Chunk]
    vectors: list[list[float]]
    whole: list[float]


def paper_fields(paper: Paper) -> dict[str, Any]:
    """Every field of the paper as flat Chroma metadata, None where it has no value (in an update, None removes
    a key that no longer has a value)."""
    return {
        "paper_id": paper.paper_id,
        "title": paper.title,
        "year": paper.year,
        "date": paper.date,
        "published": paper.published.isoformat() if paper.published else None,
        "category": paper.category,
        "has_code": paper.has_code,
        "n_authors": paper.n_authors,
        "authors": paper.authors or None,
        "et_al": paper.et_al,
        "upvotes": paper.upvotes,
        "organization": paper.organization,
        "files": paper.files or None,
    }


def paper_metadata(paper: Paper) -> dict[str, Any]:
    """The paper's fields as flat Chroma metadata (None and empty values left out)."""
    return {key: value for key, value in paper_fields(paper).items() if value is not None}


# What `Filters.chroma_where` filters chunks by; the rest of a paper's fields live on its paper record only.
CHUNK_FIELDS = ("paper_id", "year", "category", "has_code")


def chunk_fields(paper: Paper) -> dict[str, Any]:
    """The fields a chunk carries for filters, None where the paper has no value (an update removes the key)."""
    fields = paper_fields(paper)
    return {**{key: fields[key] for key in CHUNK_FIELDS}, "categories": paper.listed_categories or None}


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()


class Store:
    """The chunks and papers of one corpus under one embedding model."""

    def __init__(self, client: Any, prefix: str, embedder: str, location: str, path: Path | None) -> None:
        self._client = client
        self.embedder = embedder
        self.location = location
        self.path = path
        meta = {"embedder": embedder, "schema": SCHEMA_VERSION}
        config = {"hnsw": {"space": "cosine", **HNSW}}
        try:
            self._chunks = client.get_or_create_collection(
                f"{prefix}-chunks-{_slug(embedder)}", embedding_function=None, metadata=meta, configuration=config
            )
            self._papers = client.get_or_create_collection(
                f"{prefix}-papers-{_slug(embedder)}", embedding_function=None, metadata=meta, configuration=config
            )
            self._batch = int(client.get_max_batch_size())
            self.schema = int((self._papers.metadata or {}).get("schema", 1))
            self.index = self._fit_index(self._chunks)
            self._fit_index(self._papers)
        except Exception as exc:
            raise StoreError(f"cannot open the Chroma collections at {location}: {exc}") from exc

    def lease(self) -> Lease | None:
        """The writer lease of a server's store (rag.writers); None for an embedded one, which a file lock guards."""
        if self.path is not None:
            return None
        return Lease(self._client, f"{self._papers.name}-writer", self._failure)

    def _fit_index(self, collection: Any) -> dict[str, Any]:
        """The collection's HNSW settings, after raising its search ef to HNSW's where it was lower and lowering
        its sync threshold to HNSW's where it was higher (both apply to an existing index)."""
        current = dict((collection.configuration_json or {}).get("hnsw") or {})  # `.configuration` warns
        change = {}
        if current.get("ef_search", 0) < HNSW["ef_search"]:
            change["ef_search"] = HNSW["ef_search"]
        if current.get("sync_threshold", 1000) > HNSW["sync_threshold"]:
            change["sync_threshold"] = HNSW["sync_threshold"]
        if change:
            collection.modify(configuration={"hnsw": change})
            current.update(change)
        return current

    @property
    def index_advice(self) -> str | None:
        """How to rebuild a store whose index graph was made with fewer neighbours than HNSW's; None when it
        was not."""
        built = {key: self.index.get(key, 0) for key in ("max_neighbors", "ef_construction")}
        if all(built[key] >= HNSW[key] for key in built):
            return None
        where = f"delete {self.path}" if self.path is not None else "delete its collections on the server"
        return (
            f"the index was built with max_neighbors={built['max_neighbors']}, ef_construction="
            f"{built['ef_construction']} (new stores: {HNSW['max_neighbors']}, {HNSW['ef_construction']}), which "
            f"finds fewer true neighbours in a large collection; to rebuild it, {where} and run `rag ingest`"
        )

    # --- the generation: which ingest the store's contents come from ---------------------------------------------

    def generation(self) -> str | None:
        """The stamp the last finished ingest left on the store, read afresh; None before any."""
        collection = self._call(self._client.get_collection, "read", name=self._papers.name, embedding_function=None)
        metadata = collection.metadata or {}
        value = metadata.get("generation")
        return str(value) if value is not None else None

    def reload(self) -> None:
        """Read an embedded store's files afresh, after another process wrote to them: Chroma keeps a store's
        index in memory, and would otherwise search the index as it was when this process opened it. A server
        needs nothing."""
        if self.path is None:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        # Chroma shares one system per folder among a process's clients; without it, a new client starts anew.
        SharedSystemClient._identifier_to_system.pop(self._client._identifier, None)
        try:
            client = _embedded_client(self.path)
            self._chunks = client.get_collection(self._chunks.name, embedding_function=None)
            self._papers = client.get_collection(self._papers.name, embedding_function=None)
            self.schema = int((self._papers.metadata or {}).get("schema", 1))
        except Exception as exc:
            raise StoreError(f"cannot reopen the Chroma store in {self.path}: {exc}") from exc
        self._client = client

    def upgrade(self, embed: Callable[[list[str]], list[list[float]]]) -> int:
        """Bring a store written by an earlier version to this one: its chunk fields (metadata only), and each
        paper's vector as its whole text embedded by `embed` (a paper's chunks are not embedded again); the
        number of papers rewritten. Called by an ingest, under its lock."""
        if self.schema >= SCHEMA_VERSION:
            return 0
        done = 0
        for page in self.stored_pages():
            if self.schema < 2:
                self.update(page, papers=False)
            if self.schema < 3:
                vectors = embed([paper_text(item.paper) for item in page])
                self._call(self._papers.update, ids=[item.paper.paper_id for item in page], embeddings=vectors)
            done += len(page)
        kept = {k: v for k, v in (self._papers.metadata or {}).items() if not k.startswith("hnsw:")}
        self._call(self._papers.modify, metadata={**kept, "schema": SCHEMA_VERSION})
        self.schema = SCHEMA_VERSION
        return done

    def stamp(self) -> str:
        """Give the store a new generation (at the end of an ingest that changed it); returns it."""
        generation = uuid.uuid4().hex
        # The legacy "hnsw:*" keys (a store made by an earlier version) may not be written again; the index
        # settings live in the collection's configuration and are kept.
        kept = {k: v for k, v in (self._papers.metadata or {}).items() if not k.startswith("hnsw:")}
        metadata = {**kept, "generation": generation}
        self._call(self._papers.modify, metadata=metadata)
        return generation

    # --- reading ---------------------------------------------------------------------------------------------

    def _pages(self, collection: Any, include: list[str], where: dict[str, Any] | None = None) -> Iterator[dict]:
        offset = 0
        while True:
            page = self._call(collection.get, "read", include=include, where=where, limit=_PAGE, offset=offset)
            if not page["ids"]:
                return
            yield page
            offset += len(page["ids"])

    def papers(self, paper_ids: Sequence[str] | None = None) -> dict[str, StoredPaper]:
        """The committed papers with the given ids (those stored), or every one, by id."""
        return {stored.paper.paper_id: stored for page in self.stored_pages(paper_ids) for stored in page}

    def stored_pages(self, paper_ids: Sequence[str] | None = None) -> Iterator[list[StoredPaper]]:
        """The committed papers with the given ids, or every one, a page at a time."""
        if paper_ids is None:
            pages = self._pages(self._papers, ["documents", "metadatas"])
        else:
            ids = list(dict.fromkeys(paper_ids))
            pages = (
                self._call(self._papers.get, "read", ids=ids[start : start + _PAGE], include=["documents", "metadatas"])
                for start in range(0, len(ids), _PAGE)
            )
        for page in pages:
            out = []
            for paper_id, abstract, meta in zip(page["ids"], page["documents"], page["metadatas"], strict=False):
                records = [
                    PaperRecord.model_validate({**row, "abstract": abstract}) for row in json.loads(meta["records"])
                ]
                paper = merge_paper(paper_id, records)
                out.append(
                    StoredPaper(
                        paper=paper,
                        records=records,
                        content_hash=meta["content_hash"],
                        meta_hash=meta["meta_hash"],
                        n_chunks=int(meta["n_chunks"]),
                    )
                )
            yield out

    def chunk_pages(self) -> Iterator[list[ChunkRow]]:
        """Every committed chunk with its text, a page at a time."""
        for rows in self._chunk_pages():
            yield [
                ChunkRow(cid, meta["paper_id"], int(meta["start"]), int(meta["end"]), text) for cid, text, meta in rows
            ]

    def chunk_rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every committed chunk as (id, text, metadata)."""
        return [row for rows in self._chunk_pages() for row in rows]

    def _chunk_pages(self) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
        """Pages of committed chunks as (id, text, metadata). A chunk's text is its paper's abstract[start:end]:
        each page reads the abstracts of its own papers, never all papers at once."""
        for page in self._pages(self._chunks, ["metadatas"]):
            metas = page["metadatas"]
            wanted = list(dict.fromkeys(meta["paper_id"] for meta in metas))
            found = self._call(self._papers.get, "read", ids=wanted, include=["documents"])
            abstracts = dict(zip(found["ids"], found["documents"], strict=True))
            yield [
                (cid, abstracts[meta["paper_id"]][meta["start"] : meta["end"]], meta)
                for cid, meta in zip(page["ids"], metas, strict=True)
                if meta["paper_id"] in abstracts
            ]

    def query(self, vector: Sequence[float], n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """The `n` chunks nearest to `vector` as (chunk id, cosine similarity), best first; `where` (from
        `Filters.chroma_where`) keeps only some papers' chunks."""
        total = self.count_chunks()
        if total == 0 or n <= 0:
            return []
        found = self._call(
            self._chunks.query,
            "search",
            query_embeddings=[list(vector)],
            n_results=min(n, total),
            where=where,
            include=["distances"],
        )
        return [
            (chunk_id, 1.0 - distance)
            for chunk_id, distance in zip(found["ids"][0], found["distances"][0], strict=True)
        ]

    def query_papers(self, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """The `n` committed papers whose whole text is nearest to `vector`, as (paper id, cosine similarity), best
        first."""
        total = self.count_papers()
        if total == 0 or n <= 0:
            return []
        found = self._call(
            self._papers.query,
            "search",
            query_embeddings=[list(vector)],
            n_results=min(n, total),
            include=["distances"],
        )
        return [(pid, 1.0 - distance) for pid, distance in zip(found["ids"][0], found["distances"][0], strict=True)]

    def paper_vectors(self, paper_ids: Sequence[str]) -> dict[str, list[float]]:
        """The vectors of the given committed papers (their title and abstract embedded whole), by paper id."""
        return self._vectors("_papers", paper_ids)

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of the given chunks."""
        return self._vectors("_chunks", chunk_ids)

    def _vectors(self, collection: str, ids: Sequence[str]) -> dict[str, list[float]]:
        """The vectors of `ids` in the collection named by its attribute (`_papers`, `_chunks`)."""
        if not ids:
            return {}
        wanted = list(dict.fromkeys(ids))

        def read() -> Any:  # the collection is looked up at each call: a reload replaces it
            return self._call(getattr(self, collection).get, "read", ids=wanted, include=["embeddings"])

        try:
            found = read()
        except StoreError:
            if self.path is None:
                raise
            # An embedded store's vectors are read from the index as this process loaded it; ids another process
            # committed since (the catalogue, a file of its own, already lists them) are not in it, and Chroma
            # fails the read ("Error finding id"). Read the files afresh, once.
            self.reload()
            found = read()
        return {cid: [float(x) for x in vec] for cid, vec in zip(found["ids"], found["embeddings"], strict=True)}

    def all_vectors(self) -> tuple[list[str], list[list[float]]]:
        """Every stored chunk's id and vector (for measuring the index against exact search)."""
        ids: list[str] = []
        vectors: list[list[float]] = []
        for page in self._pages(self._chunks, ["embeddings"]):
            ids.extend(page["ids"])
            vectors.extend([float(x) for x in vec] for vec in page["embeddings"])
        return ids, vectors

    def chunk_counts(self) -> Counter[str]:
        """Number of stored chunks per paper id, committed or not."""
        counts: Counter[str] = Counter()
        for page in self._pages(self._chunks, []):
            counts.update(chunk_id.rsplit(":", 1)[0] for chunk_id in page["ids"])
        return counts

    def count_papers(self) -> int:
        """Number of committed papers."""
        return int(self._call(self._papers.count, "read"))

    def count_chunks(self) -> int:
        """Number of stored chunks."""
        return int(self._call(self._chunks.count, "read"))

    def size_bytes(self) -> int | None:
        """Bytes on disk of the embedded store; None for a server."""
        if self.path is None or not self.path.exists():
            return None
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    # --- writing ---------------------------------------------------------------------------------------------

    def delete(self, paper_ids: Sequence[str]) -> None:
        """Remove papers: the commit mark first, so that an interruption leaves only orphan chunks."""
        ids = list(paper_ids)
        for start in range(0, len(ids), self._batch):
            batch = ids[start : start + self._batch]
            self._call(self._papers.delete, ids=batch)
            self._call(self._chunks.delete, where={"paper_id": {"$in": batch}})

    def delete_orphans(self, paper_ids: Sequence[str]) -> None:
        """Remove the chunks of papers that have no paper record."""
        ids = list(paper_ids)
        for start in range(0, len(ids), self._batch):
            self._call(self._chunks.delete, where={"paper_id": {"$in": ids[start : start + self._batch]}})

    def write(self, writes: Sequence[PaperWrite]) -> None:
        """Store papers with their chunks and vectors: chunks first, then each paper's record (the commit)."""
        if not writes:
            return
        ids: list[str] = []
        vectors: list[Sequence[float]] = []
        metadatas: list[dict[str, Any]] = []
        for item in writes:
            shared = {key: value for key, value in chunk_fields(item.paper).items() if value is not None}
            for chunk, vector in zip(item.chunks, item.vectors, strict=True):
                ids.append(chunk.chunk_id)
                vectors.append(vector)
                metadatas.append({**shared, "chunk": chunk.index, "start": chunk.start, "end": chunk.end})
        for start in range(0, len(ids), self._batch):
            end = start + self._batch
            self._call(
                self._chunks.upsert, ids=ids[start:end], embeddings=vectors[start:end], metadatas=metadatas[start:end]
            )
        self._call(
            self._papers.upsert,
            ids=[item.paper.paper_id for item in writes],
            documents=[item.paper.abstract for item in writes],
            embeddings=[item.whole for item in writes],
            metadatas=[self._paper_record(item) for item in writes],
        )

    def update(self, updates: Sequence[StoredPaper], papers: bool = True) -> None:
        """Rewrite the metadata of papers whose text, and so whose chunks and vectors, are unchanged (with
        `papers` False, their chunks' only)."""
        if not updates:
            return
        for item in updates:
            chunk_ids = [f"{item.paper.paper_id}:{index}" for index in range(item.n_chunks)]
            shared = chunk_fields(item.paper)
            self._call(self._chunks.update, ids=chunk_ids, metadatas=[shared] * len(chunk_ids))
        if not papers:
            return
        self._call(
            self._papers.update,
            ids=[item.paper.paper_id for item in updates],
            metadatas=[self._paper_record(item, clear=True) for item in updates],
        )

    def _paper_record(self, item: StoredPaper, clear: bool = False) -> dict[str, Any]:
        """The paper's record; with `clear`, fields without a value are None so that an update removes them."""
        records = [record.model_dump(mode="json", exclude={"abstract"}) for record in item.records]
        return {
            **(paper_fields(item.paper) if clear else paper_metadata(item.paper)),
            "records": json.dumps(records, ensure_ascii=False),
            "content_hash": item.content_hash,
            "meta_hash": item.meta_hash,
            "n_chunks": item.n_chunks,
        }

    def _call(self, method: Any, what: str = "write", **kwargs: Any) -> Any:
        """`method(**kwargs)`, with a failure as a StoreError that says what to do."""
        try:
            return method(**kwargs)
        except Exception as exc:
            raise self._failure(what, exc) from exc

    def _failure(self, what: str, exc: Exception) -> StoreError:
        """The one-line error for a failed Chroma call: a server that stopped answering is told apart from a
        refusal (a full disk, a bad request) by asking it for its heartbeat."""
        if self.path is None and not self._answers():
            return StoreError(
                f"the Chroma server at {self.location} stopped answering during a {what} ({type(exc).__name__}); "
                "start it again and run the command again: what was committed is kept, and an ingest completes the "
                "rest"
            )
        if what in ("write", "writer lease"):
            return StoreError(
                f"Chroma at {self.location} refused a write: {exc}; if its disk is full, free space and run the "
                "command again (what was committed is kept)"
            )
        return StoreError(f"Chroma at {self.location} failed a {what}: {exc}")

    def _answers(self) -> bool:
        try:
            self._client.heartbeat()
        except Exception:
            return False
        return True


def _embedded_client(path: Path) -> Any:
    """A Chroma client on the files in `path`, telemetry off."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))


def open_store(settings: Settings, embedder: str) -> Store:
    """The store the settings name: a Chroma server when RAG_CHROMA_HOST/PORT are set, else files under RAG_HOME."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.server_mode:
        host, port = settings.chroma_address
        location = f"http://{host}:{port}"
        try:
            client = chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {location} ({type(exc).__name__}); start it with "
                f"`chroma run --host {host} --port {port}` or unset RAG_CHROMA_HOST/RAG_CHROMA_PORT"
            ) from exc
        return Store(client, settings.collection, embedder, location, None)
    path = settings.chroma_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        client = _embedded_client(path)
    except Exception as exc:
        raise StoreError(f"cannot open the Chroma store in {path}: {exc}; check RAG_HOME") from exc
    return Store(client, settings.collection, embedder, str(path), path)
