"""Question answering over machine-learning paper abstracts, with every sentence cited."""

from rag.config import apply_offline_environment

apply_offline_environment()

from rag.answerers import Turn  # noqa: E402
from rag.api import Pipeline, StoreStats, ask, ingest, list_papers, pipeline, store_stats  # noqa: E402
from rag.citations import SUPPORT_THRESHOLD, Support, judge_claim, paper_header, parse_markers, split_answer  # noqa: E402
from rag.config import Settings, load_settings  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.errors import (  # noqa: E402
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
from rag.ingest import IngestReport  # noqa: E402
from rag.readable import readable, short_name  # noqa: E402
from rag.templates import ABSTAIN_PHRASE, HEDGE_PHRASE  # noqa: E402
from rag.types import (  # noqa: E402
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
