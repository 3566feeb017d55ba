"""Question answering over machine-learning paper abstracts, with every sentence cited.

What users call is exported here; the stages' own parts (the citation check, the readable rewriting, the chunk
and record types) are imported from their modules (docs/architecture.md)."""

from rag.answerers import Turn
from rag.api import Pipeline, StoreStats, ask, ingest, list_papers, pipeline, store_stats
from rag.config import Settings, load_settings
from rag.errors import ConfigError, EmbeddingError, IngestError, LLMError, QuestionError, RagError, StoreError
from rag.filters import Filters
from rag.ingest import IngestReport
from rag.templates import ABSTAIN_PHRASE, HEDGE_PHRASE
from rag.types import Answer, AnswerSentence, Citation, Origin, Paper, Passage, Source, Usage

__all__ = [
    "ABSTAIN_PHRASE",
    "HEDGE_PHRASE",
    "Answer",
    "AnswerSentence",
    "Citation",
    "ConfigError",
    "EmbeddingError",
    "Filters",
    "IngestError",
    "IngestReport",
    "LLMError",
    "Origin",
    "Paper",
    "Passage",
    "Pipeline",
    "QuestionError",
    "RagError",
    "Settings",
    "Source",
    "StoreError",
    "StoreStats",
    "Turn",
    "Usage",
    "ask",
    "ingest",
    "list_papers",
    "load_settings",
    "pipeline",
    "store_stats",
]
