"""What every answerer shares: the Answerer protocol, the Draft it returns, and earlier conversation turns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rag.types import Passage, Usage

if TYPE_CHECKING:
    from rag.rerank import Likelihood

OnText = Callable[[str], None]
# Told what the pipeline is doing while nothing is written yet ("Rereading the 2 best abstracts …"), for a UI.
OnStatus = Callable[[str], None]


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation: the question, the answer's text, and the papers it cited."""

    question: str
    answer: str
    paper_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Draft:
    """An answer as written, before its citations are checked; markers number the passages from 1."""

    text: str
    usage: Usage | None = None


class Answerer(Protocol):
    """Writes an answer to a question from numbered passages."""

    name: str

    @property
    def verbatim(self) -> bool:
        """Whether its sentences are the passages' own, quoted: then it reads whole passages and its answer needs
        no fallback. A model writing its own sentences reads excerpts, and a draft of which no sentence survives
        the citation check gives way to the offline answer."""
        ...

    @property
    def scorer(self) -> Likelihood | None:
        """The model that can say how likely a question is after a passage, for reranking; None when none can."""
        ...

    def answer(
        self, question: str, passages: Sequence[Passage], history: Sequence[Turn], on_text: OnText | None = None
    ) -> Draft:
        """The answer, with [n] markers pointing at passages[n-1]; `on_text` receives it as it is written."""
        ...


def emit(text: str, on_text: OnText | None) -> Draft:
    """A Draft of `text`, handed to `on_text` in one piece (for answerers that do not stream)."""
    if on_text is not None:
        on_text(text)
    return Draft(text=text)
