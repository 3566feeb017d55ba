"""Quoted abstract sentences read as parts of an answer: the paper named where its abstract says "we", and a
connective that points at an unseen sentence dropped; the rest stays the abstract's own words."""

from __future__ import annotations

import pytest

from rag.readable import introduced_name, lead_sentence, readable, short_name
from rag.text import INTRODUCES, OWN_WORK
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
        ("Our analysis shows leakage.", "The untitled paper", "The untitled paper’s analysis shows leakage."),
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
    assert short_name(a_paper(title)) == name


def a_paper(title: str | None) -> Paper:
    return Paper(
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


@pytest.mark.parametrize(
    ("passage", "name"),
    [
        (
            "Attacks transfer poorly. We propose a novel attack method, dubbed reverse adversarial perturbation (RAP).",
            "RAP",
        ),
        ("We introduce a dual-stage progressive enhancement network, denoted as DPENet, for deraining.", "DPENet"),
        ("In this paper, we propose SliceGPT, a new post-training sparsification scheme.", "SliceGPT"),
        ("We present Relay Residual Diffusion Extreme Image Compression (RDEIC), which uses x.", "RDEIC"),
        # A plural acronym is a kind of model, and a sentence that introduces nothing names nothing.
        ("We propose to rank with Large Language Models (LLMs).", None),
        ("CIFAR-10 (C10) is a benchmark. Results on ImageNet improve.", None),
        # A study introduces no method; its acronym is someone else's, and so is one far from the verb.
        ("This paper presents a study of Classifier-Free Guidance (CFG). We propose Adaptive Guidance (AG).", "AG"),
        (
            "We propose self-evolution learning for PLMs to wisely predict the informative tokens that should be "
            "masked, and supervise the masked language modeling (MLM) process with rectified smooth labels.",
            None,
        ),
        # It names its method in a form no answer can write: no other term stands in for it.
        ("We propose a method dubbed ``Knowledge Distillation'' (KD^{3}). We build a block called MixDist.", None),
    ],
)
def test_the_name_a_passage_gives_its_method_is_the_one_it_introduces(passage: str, name: str | None) -> None:
    assert introduced_name(passage) == name


def test_papers_listed_together_go_by_the_names_their_passages_give_them_when_their_titles_give_none() -> None:
    titled, named = a_paper("SpikeGPT: Spiking Language Models"), a_paper("Boosting the Transferability of Attacks")
    passage = "We propose a novel attack method, dubbed reverse adversarial perturbation (RAP)."
    assert short_name(named, passage) == "RAP" and short_name(titled, passage) == "SpikeGPT"
    assert short_name(named) == "“Boosting the Transferability of Attacks”"
    lead = lead_sentence([(1, titled), (2, named), (3, a_paper(None))], ["SpikeGPT", "RAP", "The untitled paper"])
    assert lead == "These papers bear on the question: SpikeGPT, RAP and an untitled paper [1][2][3]."


@pytest.mark.parametrize(
    ("sentence", "introduces", "own"),
    [
        ("We propose SpikeGPT, a generative language model.", True, True),
        ("In this context, the paper proposes Effective Knowledge Fusion (KnFu) algorithm.", True, True),
        ("We further develop a two-stage algorithm named FedSLR.", True, True),
        ("This work introduces an innovative technique called Adaptive Model Merging (AdaMerging).", True, True),
        ("Our approach, dubbed reverse adversarial perturbation (RAP), is simple.", True, True),
        ("In this work, we study the role of guidance in diffusion models.", False, True),
        ("Recent works like FuseLLM and FuseChat have demonstrated the potential of transfer.", False, False),
        ("A recent development known as task arithmetic has revealed that models can be merged.", False, False),
    ],
)
def test_one_definition_says_which_sentences_introduce_a_method_and_which_speak_of_the_paper_itself(
    sentence: str, introduces: bool, own: bool
) -> None:
    assert bool(INTRODUCES.search(sentence)) is introduces
    assert bool(OWN_WORK.search(sentence)) is own
