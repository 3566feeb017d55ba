"""Ranking: the one stage that decides the order of papers for a question (`Ranker`), the signals it combines,
their fusion, and the simple baselines every change is measured against (`rag.ranking.baselines`)."""

from rag.ranking import baselines
from rag.ranking.fusion import WEIGHTS, close, fused, listed, preference
from rag.ranking.ranker import CANDIDATES, Ranked, Ranker, Ranking
from rag.ranking.signals import SIGNALS

__all__ = [
    "CANDIDATES",
    "SIGNALS",
    "WEIGHTS",
    "Ranked",
    "Ranker",
    "Ranking",
    "baselines",
    "close",
    "fused",
    "listed",
    "preference",
]
