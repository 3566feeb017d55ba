"""One Settings object read from RAG_* environment variables, and the offline environment every run needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CORPUS_DIR = PACKAGE_DIR / "data" / "corpus"
DEFAULT_HOME = Path(".rag")
DEFAULT_COLLECTION = "abstracts"
DEFAULT_EMBEDDING = "local"
DEFAULT_CHROMA_HOST = "127.0.0.1"
DEFAULT_CHROMA_PORT = 8000
# Chunks of about three sentences: small enough that a citation points at the sentences behind a claim,
# large enough to hold one idea; all-MiniLM-L6-v2 was trained on sequences of at most 128 word pieces.
DEFAULT_CHUNK_TOKENS = 128
DEFAULT_CHUNK_OVERLAP = 0
DEFAULT_EMBED_BATCH = 32
# Papers embedded and written per store transaction: the unit an interrupted ingest can lose and redo. The model
# sorts a batch's chunks by length before padding them: with 16 papers (about 50 chunks) the embed stage took 1.2x
# as long as with 128 (docs/benchmarks.md).
DEFAULT_INGEST_BATCH = 128
DEFAULT_LLM_MODEL = "gpt-4o-mini"
DEFAULT_LLM_TIMEOUT = 60.0
DEFAULT_LLM_RETRIES = 2
DEFAULT_LLM_CONTEXT = 8192
DEFAULT_LLM_MAX_TOKENS = 512
# The local model reads a prompt of about 1,500 tokens (the question and up to ten passages); a larger window
# costs memory and nothing else. Its answers are a few sentences.
DEFAULT_LOCAL_CONTEXT = 4096
DEFAULT_LOCAL_MAX_TOKENS = 160
# A small model reads about 200 tokens a second on 2 cores and loses the thread in long prompts: it is given the
# best passages up to this many tokens (docs/local-model.md).
DEFAULT_LOCAL_PASSAGE_TOKENS = 1200


def apply_offline_environment() -> None:
    """Tell the libraries of this program's own processes (the CLI, the UI, an ingest's embedding children) not to
    reach for the network: Hugging Face libraries look models up on the hub unless told they are offline, Chroma
    and Gradio send telemetry unless told not to. Values the user set are kept. `import rag` calls nothing of
    this: a library user's process keeps its environment, and the library passes what it needs where it loads
    (a local model path with local_files_only, Chroma's anonymized_telemetry, tiktoken's cache in
    rag/chunking.py)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Settings(BaseSettings):
    """Every knob of the program; each field is read from the environment variable RAG_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    home: Path = Field(
        default=DEFAULT_HOME,
        description="Folder for everything the program writes (the embedded store, caches, reports).",
    )
    corpus: Path = Field(
        default=DEFAULT_CORPUS_DIR,
        description="Files or folder `rag ingest` reads when given no path: the shipped abstracts by default.",
    )
    chroma_host: str | None = Field(
        default=None,
        description="Host of a Chroma server; when it or RAG_CHROMA_PORT is set the store is that server.",
    )
    chroma_port: int | None = Field(
        default=None, description="Port of a Chroma server (8000 when only the host is set)."
    )
    collection: str = Field(
        default=DEFAULT_COLLECTION,
        description="Prefix of the Chroma collection names, so that several corpora can share one server.",
    )
    embedding: str = Field(
        default=DEFAULT_EMBEDDING,
        description="`local` (all-MiniLM-L6-v2, shipped) or `openai:<model>` (an OpenAI-compatible endpoint).",
    )
    embed_batch: int = Field(default=DEFAULT_EMBED_BATCH, ge=1, description="Texts per embedding call.")
    embed_precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Weights of the local model when it embeds documents: `auto` is float16 where the CPU has "
        "AMX-FP16 (vectors within 2e-6 cosine of float32), else bfloat16 where it has AMX or AVX512-BF16 (within "
        "1e-4; about three times as fast as float32), else float32.",
    )
    chunk_tokens: int = Field(default=DEFAULT_CHUNK_TOKENS, ge=16, description="Largest chunk, in cl100k tokens.")
    chunk_overlap: int = Field(default=DEFAULT_CHUNK_OVERLAP, ge=0, description="Tokens shared by neighbouring chunks.")
    ingest_batch: int = Field(default=DEFAULT_INGEST_BATCH, ge=1, description="Papers committed to the store at once.")
    embed_process: bool = Field(
        default=True,
        description="Ingest embeds with the local model in two child processes, while this one writes the batch "
        "before (when there is more than one batch); off, it embeds and writes in turn.",
    )
    store_sentences: bool = Field(
        default=True,
        description="Ingest also embeds every chunk's sentences with the local model and keeps their vectors in the "
        "catalogue (float16, 768 bytes each), so that ranking a question's passage sentences reads them instead of "
        "running the model (not with an embeddings endpoint, which would be sent as many tokens again).",
    )
    backend: Literal["auto", "extractive", "openai", "local"] = Field(
        default="auto",
        description="Who writes answers: `extractive` (offline, no LLM), `openai` (an OpenAI-compatible endpoint), "
        "`local` (a GGUF model in this process), or `auto`: openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, "
        "else extractive.",
    )
    llm_model: str = Field(default=DEFAULT_LLM_MODEL, description="Chat model name at the OpenAI-compatible endpoint.")
    llm_timeout: float = Field(default=DEFAULT_LLM_TIMEOUT, gt=0, description="Seconds to wait for the endpoint.")
    llm_retries: int = Field(
        default=DEFAULT_LLM_RETRIES, ge=0, description="Retries after a failed call, with backoff."
    )
    llm_context: int = Field(default=DEFAULT_LLM_CONTEXT, ge=512, description="The model's context window, in tokens.")
    llm_max_tokens: int = Field(default=DEFAULT_LLM_MAX_TOKENS, ge=16, description="Longest answer, in tokens.")
    local_model: Path | None = Field(
        default=None,
        description="GGUF file the `local` backend runs; unset, the bundled Qwen2.5-Coder-0.5B-Instruct "
        "(the `local` extra).",
    )
    local_context: int = Field(
        default=DEFAULT_LOCAL_CONTEXT, ge=512, description="Context window the local model is given, in tokens."
    )
    local_max_tokens: int = Field(
        default=DEFAULT_LOCAL_MAX_TOKENS, ge=16, description="Longest answer of the local model, in tokens."
    )
    local_passage_tokens: int = Field(
        default=DEFAULT_LOCAL_PASSAGE_TOKENS,
        ge=64,
        description="The most passage text the local model reads, in its tokens; the best passages come first.",
    )
    rerank: Literal["auto", "local", "off"] = Field(
        default="auto",
        description="Reorder the best passages by how likely the local model finds the question after each "
        "(about 2 s per abstract on 2 cores): `auto` when the `local` backend answers, `local` for every "
        "backend (needs the `local` extra), `off` never.",
    )
    local_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads of the local model; unset, all cores read the prompt and all but one generate.",
    )

    @field_validator("embedding")
    @classmethod
    def _known_embedding(cls, value: str) -> str:
        if value == "local" or (value.startswith("openai:") and len(value) > len("openai:")):
            return value
        raise ValueError(
            f"RAG_EMBEDDING={value!r}: use 'local' or 'openai:<model>', e.g. openai:text-embedding-3-small"
        )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"RAG_CHUNK_OVERLAP={self.chunk_overlap} must be smaller than RAG_CHUNK_TOKENS={self.chunk_tokens}"
            )
        return self

    @property
    def sentence_vectors(self) -> bool:
        """Whether ingest stores sentence vectors: with the local model only, since an embeddings endpoint would
        be sent (and may charge for) as many tokens again."""
        return self.store_sentences and self.embedding == "local"

    @property
    def resolved_backend(self) -> str:
        """The backend `auto` stands for in this environment."""
        if self.backend != "auto":
            return self.backend
        return "openai" if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL") else "extractive"

    @property
    def server_mode(self) -> bool:
        """True when the store is a Chroma server rather than files under `home`."""
        return self.chroma_host is not None or self.chroma_port is not None

    @property
    def chroma_address(self) -> tuple[str, int]:
        """Host and port of the Chroma server, with the defaults filled in."""
        return (self.chroma_host or DEFAULT_CHROMA_HOST, self.chroma_port or DEFAULT_CHROMA_PORT)

    @property
    def chroma_path(self) -> Path:
        """Folder of the embedded Chroma store."""
        return self.home / "chroma"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with keyword overrides; a bad value becomes a one-line ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"RAG_{field.upper()}: {message}" if first["loc"] else message) from exc
