"""The project as llama-index parts, for llama-index users: a retriever over the stored abstracts, a query engine
whose answers carry checked citations, and a chat model that lets any llama-index LLM write the answers.

Importing llama_index.core costs seconds, so nothing else in the project imports this module: a `rag ask` never
pays for it.

    from rag.llamaindex import AbstractsRetriever, AbstractsQueryEngine

    nodes = AbstractsRetriever(k=5).retrieve("Which papers merge fine-tuned models?")
    response = AbstractsQueryEngine(llm=my_llm).query("Which papers merge fine-tuned models?")
    response.source_nodes  # the cited passages; response.metadata["citations"]: the checked citations
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import LLM
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.answerers.base import OnText
from rag.answerers.llm import LLMAnswerer, Message
from rag.api import Pipeline
from rag.config import Settings
from rag.errors import LLMBadResponse
from rag.filters import Filters
from rag.types import Answer, Passage, Usage

# The name a llama-index LLM answers under in a Pipeline.
BACKEND = "llama-index"


def node(passage: Passage) -> NodeWithScore:
    """A passage as llama-index holds one: the chunk's id and text, its offsets in the abstract, and the paper's
    metadata (title, authors, date, arXiv id, DOI, categories, source files)."""
    paper = passage.paper
    metadata = {
        "paper_id": paper.paper_id,
        "title": paper.title,
        "authors": ", ".join(paper.authors or []),
        "date": paper.date,
        "year": paper.year,
        "arxiv_id": paper.arxiv_id,
        "doi": paper.doi,
        "categories": ", ".join(paper.listed_categories),
        "files": ", ".join(paper.files),
    }
    text_node = TextNode(
        id_=passage.chunk_id,
        text=passage.text,
        metadata={key: value for key, value in metadata.items() if value not in (None, "")},
        start_char_idx=passage.start,
        end_char_idx=passage.end,
        excluded_embed_metadata_keys=list(metadata),
        excluded_llm_metadata_keys=["paper_id", "files", "categories"],
    )
    return NodeWithScore(node=text_node, score=passage.score)


class AbstractsRetriever(BaseRetriever):
    """The project's hybrid retrieval (dense and BM25, fused) as a llama-index retriever: the `k` best chunks,
    at most two of any paper, each a NodeWithScore carrying its chunk id."""

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        k: int = 5,
        filters: Filters | None = None,
        settings: Settings | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.pipeline = pipeline or Pipeline(settings)
        self.k = k
        self.filters = filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        retriever = self.pipeline.retriever
        retriever.refresh()
        return [node(p) for p in retriever.retrieve(query_bundle.query_str, self.k, self.filters)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


class AbstractsQueryEngine(BaseQueryEngine):
    """`Pipeline.ask` as a llama-index query engine: the Response's text is the cited answer, its `source_nodes`
    the passages it cites (in marker order: [n] is the n-th), and its metadata the checked citations, the sentences
    the check could not back, and whether the collection did not hold the answer. With `llm`, that llama-index
    LLM writes the answer; without, the configured backend does."""

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        llm: LLM | None = None,
        k: int | None = None,
        filters: Filters | None = None,
        settings: Settings | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.pipeline = pipeline or Pipeline(settings)
        self.backend: str | None = None
        if llm is not None:
            self.pipeline.add_answerer(BACKEND, LLMAnswerer(LlamaIndexChat(llm)))
            self.backend = BACKEND
        self.k = k
        self.filters = filters

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def _query(self, query_bundle: QueryBundle) -> Response:
        answer = self.pipeline.ask(query_bundle.query_str, self.k, filters=self.filters, backend=self.backend)
        return response(answer)

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        return await asyncio.to_thread(self._query, query_bundle)


def response(answer: Answer) -> Response:
    """An Answer as a llama-index Response: `source_nodes` are the cited passages in the order of their markers."""
    by_chunk = {p.chunk_id: p for p in answer.passages}
    cited = [node(by_chunk[c.chunk_id]) for c in answer.citations]
    metadata: dict[str, Any] = {
        "citations": [c.model_dump(mode="json") for c in answer.citations],
        "unsupported": [s.model_dump(mode="json") for s in answer.unsupported],
        "abstained": answer.abstained,
        "hedged": answer.hedged,
        "origin": answer.origin,
    }
    return Response(response=answer.text, source_nodes=cited, metadata=metadata)


class LlamaIndexChat:
    """Any llama-index LLM as the chat model an LLM answerer writes with (Ollama, vLLM, a hosted model or
    llama.cpp, through their llama-index integrations): the prompts, the context fitting, the citation check and
    the fallback are the project's own."""

    def __init__(self, llm: LLM, retries: int = 1, passage_tokens: int | None = None) -> None:
        from rag.chunking import tiktoken_encoding

        self.llm = llm
        meta = llm.metadata
        self.name = f"{BACKEND}:{meta.model_name}"
        self.endpoint = type(llm).__name__
        self.context = meta.context_window
        self.max_tokens = meta.num_output if meta.num_output > 0 else 512
        self.retries = retries
        self.passage_tokens = passage_tokens
        self._encoding = tiktoken_encoding()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """cl100k tokens of the messages, with a few for each message's framing: the LLM's own tokenizer is not
        known through llama-index, and cl100k counts English at or above most models' own."""
        return sum(len(self._encoding.encode(m["content"])) + 4 for m in messages)

    def stream(self, messages: Sequence[Message], on_text: OnText | None) -> tuple[str, Usage | None]:
        """The reply, streamed through `llm.stream_chat`."""
        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        pieces: list[str] = []
        try:
            for part in self.llm.stream_chat(chat):
                if part.delta:
                    pieces.append(part.delta)
                    if on_text is not None:
                        on_text(part.delta)
        except Exception as exc:  # an integration's own error types are not known here
            raise LLMBadResponse(self.endpoint, f"the LLM failed ({type(exc).__name__}: {exc})") from exc
        return "".join(pieces), None
