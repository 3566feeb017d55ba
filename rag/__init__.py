"""Question answering over machine-learning paper abstracts, with every sentence cited."""

from rag.answerers import Turn
from rag.api import Pipeline, StoreStats, ask, ingest, list_papers, pipeline, store_stats
from rag.citations import SUPPORT_THRESHOLD, Support, judge_claim, paper_header, parse_markers, split_answer
from rag.config import Settings, load_settings
from rag.embedding import Embedder
from rag.errors import (
    ConfigError,
    EmbeddingError,
    IngestError,
    LLMBadResponse,
    LLMError,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
    LLMUnavailable,
    QuestionError,
    RagError,
    StoreError,
)
from rag.ingest import IngestReport
from rag.readable import readable, short_name
from rag.templates import ABSTAIN_PHRASE, HEDGE_PHRASE
from rag.types import (
    Answer,
    AnswerSentence,
    Chunk,
    Citation,
    Filters,
    Paper,
    PaperRecord,
    ParseProblem,
    Passage,
    Source,
    Usage,
)

__all__ = [
    "ABSTAIN_PHRASE",
    "HEDGE_PHRASE",
    "SUPPORT_THRESHOLD",
    "Answer",
    "AnswerSentence",
    "Chunk",
    "Citation",
    "ConfigError",
    "Embedder",
    "EmbeddingError",
    "Filters",
    "IngestError",
    "IngestReport",
    "LLMBadResponse",
    "LLMError",
    "LLMRateLimited",
    "LLMServerError",
    "LLMTimeout",
    "LLMUnavailable",
    "Paper",
    "PaperRecord",
    "ParseProblem",
    "Passage",
    "Pipeline",
    "QuestionError",
    "RagError",
    "Settings",
    "Source",
    "StoreError",
    "StoreStats",
    "Support",
    "Turn",
    "Usage",
    "ask",
    "ingest",
    "judge_claim",
    "list_papers",
    "load_settings",
    "paper_header",
    "parse_markers",
    "pipeline",
    "readable",
    "short_name",
    "split_answer",
    "store_stats",
]
