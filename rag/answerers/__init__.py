"""The answerers behind one protocol: `extractive` (offline, verbatim sentences), `openai` (any OpenAI-compatible
endpoint) and `local` (a GGUF model run in this process by llama.cpp); the two LLM ones share llm.py."""

from __future__ import annotations

from rag.answerers.base import Answerer, Draft, OnStatus, OnText, Turn
from rag.answerers.extractive import ExtractiveAnswerer
from rag.answerers.llm import LLMAnswerer
from rag.config import Settings
from rag.embedding import Embedder
from rag.errors import ConfigError

BACKENDS = ("extractive", "openai", "local")


def make_answerer(backend: str, settings: Settings, embedder: Embedder) -> Answerer:
    """The answerer named `backend`: 'extractive', 'openai' or 'local'."""
    if backend == "extractive":
        return ExtractiveAnswerer(embedder)
    if backend == "openai":
        from rag.answerers.openai import OpenAIChat

        return LLMAnswerer(OpenAIChat(settings))
    if backend == "local":
        from rag.answerers.local import LocalChat

        return LLMAnswerer(LocalChat(settings))
    raise ConfigError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS", "Answerer", "Draft", "ExtractiveAnswerer", "LLMAnswerer", "OnStatus", "OnText", "Turn", "make_answerer"
]  # fmt: skip
