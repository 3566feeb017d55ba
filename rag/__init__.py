"""Question answering over machine-learning paper abstracts, with every sentence cited."""

from rag.config import apply_offline_environment

apply_offline_environment()

from rag.api import StoreStats, ingest, list_papers, store_stats  # noqa: E402
from rag.config import Settings, load_settings  # noqa: E402
from rag.errors import ConfigError, EmbeddingError, IngestError, RagError, StoreError  # noqa: E402
from rag.ingest import IngestReport  # noqa: E402
from rag.types import Chunk, Paper, PaperRecord, ParseProblem, Source  # noqa: E402

__all__ = [
    "Chunk",
    "ConfigError",
    "EmbeddingError",
    "IngestError",
    "IngestReport",
    "Paper",
    "PaperRecord",
    "ParseProblem",
    "RagError",
    "Settings",
    "Source",
    "StoreError",
    "StoreStats",
    "ingest",
    "list_papers",
    "load_settings",
    "store_stats",
]
