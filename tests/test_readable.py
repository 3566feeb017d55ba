"""Quoted abstract sentences read as parts of an answer: the paper named where its abstract says "we", and a
connective that points at an unseen sentence dropped; the rest stays the abstract's own words."""

from __future__ import annotations

import pytest

from rag.readable import readable, short_name
from rag.types import Paper


@pytest.mark.parametrize(
    ("sentence", "name", "expected"),
    [
        (
            "To address this issue, we propose a novel training pipeline for sparse models.",
            "AST",
            "AST proposes a novel training pipeline for sparse models.",
        ),
        (
            "In this paper, we propose SpikeGPT, a generative language model.",
            "SpikeGPT",
            "The paper proposes SpikeGPT, a generative language model.",
        ),
        (
            "We also show that our method outperforms the baselines.",
            "SSAM",
            "SSAM also shows that its method outperforms the baselines.",
        ),
        ("We found that it works.", "It", "It found that it works."),
        ("We study merging.", "It", "It studies merging."),
        ("Our experiments show gains.", "It", "Its experiments show gains."),
        ("Our experiments show gains.", "SSAM", "In SSAM, the experiments show gains."),
        ("This survey reviews 200 papers.", "“A Survey”", "“A Survey” reviews 200 papers."),
        (
            "Experiments show that our method works, which we attribute to sparsity.",
            "SSAM",
            "Experiments show that the authors’ method works, which the authors attribute to sparsity.",
        ),
        ("Moreover, the model reaches 90% accuracy on US data.", "X", "The model reaches 90% accuracy on US data."),
        ("Recent works study merging.", "X", "Recent works study merging."),
    ],
)
def test_a_quoted_sentence_names_its_paper_and_drops_a_dangling_lead(sentence: str, name: str, expected: str) -> None:
    assert readable(sentence, name) == expected


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("SpikeGPT: Generative Pre-trained Language Model with Spiking Neural Networks", "SpikeGPT"),
        ("TALE: Training-free Cross-domain Image Composition", "TALE"),
        ("Merging Models with Fisher-Weighted Averaging", "“Merging Models with Fisher-Weighted Averaging”"),
        (
            "Beyond Not-Forgetting: Continual Learning with Backward Knowledge Transfer",
            "“Beyond Not-Forgetting: Continual Learning with Backward Knowledge Transfer”",
        ),
        ("SF(DA)$^2$: Source-free Domain Adaptation", "“SF(DA)$^2$: Source-free Domain Adaptation”"),
    ],
)
def test_a_paper_is_named_by_the_method_its_title_opens_with_else_by_its_title(title: str, name: str) -> None:
    paper = Paper(
        paper_id="p",
        title=title,
        abstract="An abstract.",
        authors=None,
        et_al=False,
        n_authors=None,
        date=None,
        published=None,
        upvotes=None,
        category=None,
        has_code=None,
        organization=None,
        sources=[],
    )
    assert short_name(paper) == name
