"""Paper → Chunks: sentence-aligned runs of an abstract, cut by llama-index's SentenceSplitter, sized in
cl100k tokens counted by tiktoken."""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rag.types import Chunk, Paper

if TYPE_CHECKING:
    import tiktoken
    from llama_index.core.node_parser import SentenceSplitter

TOKEN_ENCODING = "cl100k_base"
_ENVIRONMENT = threading.Lock()


def tiktoken_encoding(model: str | None = None) -> tiktoken.Encoding:
    """tiktoken's encoding for `model` (cl100k when tiktoken does not know it), read from the BPE files that
    llama-index-core ships: tiktoken downloads them unless TIKTOKEN_CACHE_DIR names a cache, so it names that one
    while the encoding loads (as llama-index does), and no longer: the caller's environment is left as it was."""
    import tiktoken

    spec = importlib.util.find_spec("llama_index.core")
    bundled = Path(spec.origin).parent / "_static" / "tiktoken_cache" if spec and spec.origin else None
    with _ENVIRONMENT:
        pointed = bundled is not None and "TIKTOKEN_CACHE_DIR" not in os.environ
        if pointed:
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
        try:
            if model is not None:
                try:
                    return tiktoken.encoding_for_model(model)
                except KeyError:
                    pass
            return tiktoken.get_encoding(TOKEN_ENCODING)
        finally:
            if pointed:
                del os.environ["TIKTOKEN_CACHE_DIR"]


class Chunker:
    """Cuts abstracts into chunks of whole sentences of at most `chunk_tokens` tokens."""

    def __init__(self, chunk_tokens: int, chunk_overlap: int = 0) -> None:
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap

    @property
    def signature(self) -> str:
        """Everything that decides where chunks fall; a stored paper cut another way is cut again."""
        return f"llama-index-sentence/{TOKEN_ENCODING}/{self.chunk_tokens}/{self.chunk_overlap}"

    @cached_property
    def _encoding(self) -> tiktoken.Encoding:
        return tiktoken_encoding()

    @cached_property
    def _splitter(self) -> SentenceSplitter:
        from llama_index.core.node_parser import SentenceSplitter

        return SentenceSplitter(
            chunk_size=self.chunk_tokens,
            chunk_overlap=self.chunk_overlap,
            tokenizer=self._encoding.encode,
        )

    def count_tokens(self, text: str) -> int:
        """Number of cl100k tokens in `text`."""
        return len(self._encoding.encode(text))

    def chunk(self, paper: Paper) -> list[Chunk]:
        """The paper's abstract as chunks; each chunk's text is exactly abstract[start:end]."""
        abstract = paper.abstract
        chunks: list[Chunk] = []
        cursor = 0
        for index, text in enumerate(self._splitter.split_text(abstract)):
            start = abstract.find(text, cursor)
            if start < 0:  # the splitter never rewrites text; if it ever does, fail loudly rather than misquote
                raise RuntimeError(f"chunk {index} of paper {paper.paper_id} is not a substring of its abstract")
            end = start + len(text)
            chunks.append(
                Chunk(
                    chunk_id=f"{paper.paper_id}:{index}",
                    paper_id=paper.paper_id,
                    index=index,
                    text=text,
                    start=start,
                    end=end,
                    tokens=self.count_tokens(text),
                )
            )
            cursor = start + 1 if self.chunk_overlap else end
        return chunks


def paper_text(paper: Paper) -> str:
    """What is embedded for a whole paper: its title and abstract (the model reads its first 256 word pieces)."""
    return f"{paper.title}\n{paper.abstract}" if paper.title else paper.abstract


def embedding_text(paper: Paper, chunk: Chunk) -> str:
    """What is embedded for a chunk: its paper's title gives the passage its topic."""
    return f"{paper.title}\n{chunk.text}" if paper.title else chunk.text
