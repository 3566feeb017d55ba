"""A ChatModel that runs a GGUF model in this process through llama-cpp-python: no server, no network. The
bundled Qwen2.5-Coder-0.5B-Instruct by default (rag/models.py), or any GGUF file named by RAG_LOCAL_MODEL."""

from __future__ import annotations

import atexit
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.answerers.base import OnText
from rag.answerers.llm import STOP, Message
from rag.config import Settings
from rag.errors import ConfigError, LLMBadResponse
from rag.models import INSTALL_HINT, resolve_model
from rag.rerank import READ_SENTENCES
from rag.types import Usage

# Tokens a chat template adds around each message (ChatML: "<|im_start|>role\n" … "<|im_end|>\n"), and to open
# the reply.
MESSAGE_FRAMING = 6
REPLY_FRAMING = 3

# Each answer's model state is kept (llama.cpp's own prompt cache, least recently used first out), so that the
# next answer rereads only what follows the longest prompt prefix it shares with one of them: the system prompt
# and instructions, about 180 tokens, instead of reading them again after the reranker has used the context.
PROMPT_CACHE_BYTES = 64 * 2**20

_loaded: dict[tuple[str, int, int, int], Any] = {}
_load_lock = threading.Lock()


def default_threads() -> tuple[int, int]:
    """Threads for generating and for reading the prompt. Reading the prompt is compute-bound and short, so it
    takes every core; generating is bound by memory bandwidth and long, so on a small machine it leaves one core
    to the web server, retrieval and the embedding model (docs/local-model.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1) if cores <= 4 else cores // 2, cores


class LocalChat:
    """llama.cpp in-process; one reply at a time per model, since a llama.cpp context is not thread-safe."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.path = resolve_model(settings.local_model, settings.home)
        self.endpoint = f"local model {self.path.name}"
        self.context = settings.local_context
        self.max_tokens = settings.local_max_tokens
        self.retries = settings.llm_retries
        self.passage_tokens: int | None = settings.local_passage_tokens
        threads, batch_threads = default_threads()
        if settings.local_threads is not None:
            threads = batch_threads = settings.local_threads
        self.threads = threads
        self._llama, self._lock = _load(self.path, self.context, threads, batch_threads)
        self._formatter: Any = None
        # What the reranker reads of each paper: the whole abstract where llama.cpp reads prompts with AVX-512
        # (about twice as fast), else the best sentences (rag.rerank.READ_SENTENCES), which keep a reranked
        # answer near 11 s on 2 AVX2 cores instead of 15 (docs/local-model.md).
        self.rerank_sentences: int | None = None if _reads_fast() else READ_SENTENCES

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the messages by the model's own tokenizer, with its chat template's framing."""
        return (
            sum(
                len(self._llama.tokenize(m["content"].encode("utf-8"), add_bos=False)) + MESSAGE_FRAMING
                for m in messages
            )
            + REPLY_FRAMING
        )

    def likelihood(self, messages: Sequence[Message], reply: str) -> float:
        """The mean log-probability per token of `reply` as the model's answer to `messages` (what a reranker
        asks: how likely is this question after this passage)."""
        with self._lock:
            prompt = self._prompt(messages)
            given = self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            wanted = self._llama.tokenize(reply.encode("utf-8"), add_bos=False, special=False)
            if not wanted:
                raise LLMBadResponse(self.endpoint, "no reply to score")
            try:
                return _mean_logprob(self._llama, given, wanted)
            except (RuntimeError, ValueError) as exc:
                raise LLMBadResponse(self.endpoint, f"scoring failed ({exc})") from exc
            finally:
                self._llama.reset()  # the context now holds this prompt, not the chat's cached one

    def _prompt(self, messages: Sequence[Message]) -> str:
        """`messages` in the model's own chat template, opened for its reply."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            metadata = self._llama.metadata
            template = metadata.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(f"{self.path}: the GGUF file has no chat template; give a chat model")
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=self._token_text(self._llama.token_eos()),
                bos_token=self._token_text(self._llama.token_bos()),
            )
        return str(self._formatter(messages=list(messages)).prompt)

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self._llama.detokenize([token], special=True).decode("utf-8", "replace")

    def stream(self, messages: Sequence[Message], on_text: OnText | None) -> tuple[str, Usage | None]:
        """The reply, greedy, streamed token by token; usage counted with the model's tokenizer."""
        pieces: list[str] = []
        with self._lock:
            try:
                for chunk in self._llama.create_chat_completion(
                    messages=list(messages), temperature=0.0, max_tokens=self.max_tokens, stop=STOP, stream=True
                ):
                    delta = chunk["choices"][0].get("delta", {}).get("content")
                    if delta:
                        pieces.append(delta)
                        if on_text is not None:
                            on_text(delta)
            except Exception as exc:  # llama.cpp raises plain exceptions (ValueError, RuntimeError)
                raise LLMBadResponse(self.endpoint, f"generation failed ({type(exc).__name__}: {exc})") from exc
            text = "".join(pieces).strip()
            completion = len(self._llama.tokenize(text.encode("utf-8"), add_bos=False)) if text else 0
        return text, Usage(prompt_tokens=self.count_tokens(messages), completion_tokens=completion, counted=True)


def _reads_fast() -> bool:
    """Whether the loaded llama.cpp reads prompts with AVX-512 instructions (its own report of what it uses)."""
    import llama_cpp

    return "AVX512 = 1" in llama_cpp.llama_print_system_info().decode("utf-8", "replace")


def _mean_logprob(llama: Any, given: list[int], wanted: list[int]) -> float:
    """Mean log-probability of the tokens `wanted` after the tokens `given`, from one pass over both (llama.cpp's
    own batch API: only the positions that predict a wanted token return logits)."""
    import llama_cpp
    import numpy as np

    tokens = given + wanted
    if len(tokens) > llama.n_ctx():
        raise ValueError(f"{len(tokens)} tokens exceed the context of {llama.n_ctx()}")
    ctx = llama.ctx
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    first = len(given) - 1  # the position whose logits predict the first wanted token
    total = 0.0
    step = llama.n_batch
    batch = llama_cpp.llama_batch_init(step, 0, 1)
    try:
        for start in range(0, len(tokens), step):
            piece = tokens[start : start + step]
            batch.n_tokens = len(piece)
            for i, token in enumerate(piece):
                position = start + i
                batch.token[i] = token
                batch.pos[i] = position
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = first <= position < len(tokens) - 1
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            for i in range(len(piece)):
                position = start + i
                if first <= position < len(tokens) - 1:
                    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(llama.n_vocab(),))
                    top = float(row.max())
                    total += float(row[tokens[position + 1]]) - top - math.log(float(np.exp(row - top).sum()))
    finally:
        llama_cpp.llama_batch_free(batch)
    return total / len(wanted)


@atexit.register
def _close_all() -> None:
    """Free the models before the interpreter tears down the modules llama.cpp's finaliser needs."""
    with _load_lock:
        for llama, _ in _loaded.values():
            llama.close()
        _loaded.clear()


def _load(path: Path, context: int, threads: int, batch_threads: int) -> tuple[Any, threading.Lock]:
    """The model loaded once per process and configuration, with the lock that serialises its use."""
    key = (str(path), context, threads, batch_threads)
    with _load_lock:
        if key not in _loaded:
            try:
                import llama_cpp
            except ImportError as exc:
                raise ConfigError(f"the local backend needs llama-cpp-python; {INSTALL_HINT}") from exc
            try:
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=context,
                    n_threads=threads,
                    n_threads_batch=batch_threads,
                    verbose=False,
                )
            except Exception as exc:
                raise ConfigError(f"{path}: llama.cpp cannot load it ({exc}); give a GGUF chat model") from exc
            llama.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=PROMPT_CACHE_BYTES))
            _loaded[key] = (llama, threading.Lock())
        return _loaded[key]
