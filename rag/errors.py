"""The exceptions this package raises; every message names the offending value and the fix.

RagError                 anything the user can act on; the CLI prints it as one line, exit code 1
├── ConfigError          a setting or argument that cannot work (bad RAG_* value, unknown backend)
├── IngestError          a corpus file that cannot be read or parsed (names the file and line)
├── StoreError           the vector store cannot be opened, read or written
└── EmbeddingError       the embedding model cannot be loaded or called
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error a user can fix; its message is one line."""


class ConfigError(RagError):
    """A setting or argument that cannot work."""


class IngestError(RagError):
    """A corpus file that cannot be read or parsed."""


class StoreError(RagError):
    """The vector store cannot be opened, read or written."""


class WriteError(RagError):
    """A file this program writes cannot be written: a full disk, a file size limit, no permission."""


class EmbeddingError(RagError):
    """The embedding model cannot be loaded or called."""


class QuestionError(RagError):
    """A question that cannot be asked: empty, or too long."""


class LLMError(RagError):
    """The LLM endpoint failed after bounded retries."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"LLM endpoint {endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason


class LLMUnavailable(LLMError):
    """The endpoint refused or dropped the connection."""


class LLMTimeout(LLMError):
    """The endpoint did not answer in time."""


class LLMRateLimited(LLMError):
    """The endpoint kept answering 429."""


class LLMServerError(LLMError):
    """The endpoint kept answering an error status."""


class LLMBadResponse(LLMError):
    """The endpoint answered with something that is not an answer."""
