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


class EmbeddingError(RagError):
    """The embedding model cannot be loaded or called."""
