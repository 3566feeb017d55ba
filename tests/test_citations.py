"""Reading what real models write: every citation style, echoed headings, reasoning blocks and lists become checked
sentences; a sentence without a marker is attributed to the passage that supports it, and one that nothing
supports is flagged. Passages are real retrieved chunks of the shipped corpus."""

from __future__ import annotations

import pytest

import rag
from rag import Pipeline
from rag.answerers.llm import ReasoningFilter
from rag.api import Request
from rag.citations import check, clean_draft, finish_cut, is_decline, judge_claim, normalise_markers, split_answer
from rag.text import sentences
from rag.types import Origin, Passage

FISHER = "Merging Models with Fisher-Weighted Averaging"
# A sentence of the Fisher-merging abstract (003, paper 1), and a claim of another paper of the same retrieval.
FISHER_CLAIM = (
    "We develop an alternative merging procedure based on the Laplace approximation where we approximate each "
    "model's posterior as a Gaussian distribution whose precision matrix corresponds to its Fisher information."
)


@pytest.fixture(scope="module")
def pipe(full_store) -> Pipeline:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    return Pipeline(settings)


@pytest.fixture(scope="module")
def passages(pipe: Pipeline) -> list[Passage]:
    found = pipe.retriever.retrieve("How does Fisher merging approximate the posterior?", 5, expand=2)
    rank = {pid: n for n, pid in reversed(list(enumerate(p.paper_id for p in found)))}
    found.sort(key=lambda p: (rank[p.paper_id], p.start))  # each paper's chunks together, in abstract order
    assert found[0].paper.title == FISHER
    return found


def fisher_numbers(passages: list[Passage]) -> list[int]:
    return [n for n, p in enumerate(passages, 1) if p.paper.title == FISHER]


def holding(passages: list[Passage], claim: str) -> set[int]:
    """The numbers of the passages whose text holds `claim` word for word."""
    found = {n for n, p in enumerate(passages, 1) if claim in p.text}
    assert found, "no passage holds the claim"
    return found


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("merges [1][2].", "merges [1][2]."),
        ("merges [1, 2].", "merges [1][2]."),
        ("merges [1-3].", "merges [1][2][3]."),
        ("merges [1–3].", "merges [1][2][3]."),
        ("merges (1).", "merges [1]."),
        ("merges (1, 3).", "merges [1][3]."),
        ("merges 【2】.", "merges [2]."),
        ("merges (Source 2).", "merges [2]."),
        ("merges, as Source 2 says.", "merges, as [2] says."),
        ("merges [Passage 4].", "merges [4]."),
        ("merges[^3].", "merges[3]."),
    ],
)
def test_the_citation_styles_models_write_are_read_as_markers(written: str, read: str) -> None:
    assert normalise_markers(written) == read


def test_a_parenthesised_number_inside_a_sentence_is_not_a_citation() -> None:
    assert normalise_markers("It has two steps: (1) merge the weights and (2) tune them.") == (
        "It has two steps: (1) merge the weights and (2) tune them."
    )


def test_reasoning_lists_labels_and_leading_markers_are_cleaned_away() -> None:
    draft = (
        "<think>The user asks about merging.\nPassage 1 fits.</think>\n"
        "Answer: **Fisher merging** works [1]\n- [2] It uses the Fisher"
    )
    assert clean_draft(draft) == "Fisher merging works [1]. It uses the Fisher [2]."
    assert clean_draft("<think>never closed, so all of it is reasoning") == ""


def test_every_style_cites_the_passage_it_names(passages: list[Passage]) -> None:
    first = fisher_numbers(passages)[0]
    for style in (f"[{first}]", f"({first})", f"【{first}】", f"(Source {first})"):
        checked = check(FISHER_CLAIM.rstrip(".") + f" {style}.", passages)
        assert [(s.markers, s.supported, s.attributed) for s in checked.sentences] == [([first], True, False)], style


def test_an_echoed_heading_is_not_a_claim(passages: list[Passage]) -> None:
    paper = passages[0].paper
    draft = f"[1] {paper.title} ({paper.date})\n[1] “{paper.title}”\n{FISHER_CLAIM} [1]"
    checked = check(draft, passages)
    assert [s.claim for s in checked.sentences] == [FISHER_CLAIM]


def test_a_list_of_echoed_headings_cut_off_mid_title_states_nothing(pipe: Pipeline, passages: list[Passage]) -> None:
    # What the bundled model wrote for a single-paper question: the headings, the last one cut off by its token
    # limit. Before, '"Merging Mod [1].' passed the check as a supported claim.
    titles = list(dict.fromkeys(p.paper.title for p in passages))
    draft = "\n".join(f'[{n}] "{title}"' for n, title in enumerate(titles, 1)) + f'\n[{len(titles) + 1}] "Merging Mod'
    checked = check(draft, passages, pipe.embedder)
    assert checked.sentences == []
    assert checked.named_papers[0] == passages[0].paper_id
    # A heading whose title ends in "?" splits in two; the quote and marker left over state nothing either.
    split = check(f'[1] "{FISHER}? [Passage 1]"\n{FISHER_CLAIM} [1]', passages, pipe.embedder)
    assert [s.claim for s in split.sentences] == [FISHER_CLAIM]
    # What the bundled model wrote for several papers: a title split at its "?" into two pieces, and the end of a
    # title with part of its date. Pieces of a heading state nothing either.
    title = passages[0].paper.title
    half = title.split(" with ")
    pieces = check(
        f'"{half[0]}? [1]" {half[1]} [1].\n"{half[1]}" ({passages[0].paper.date.split(",")[0]}, [1].', passages
    )
    assert pieces.sentences == [] and pieces.named_papers == [passages[0].paper_id]
    # A quoted title that the writer finished and went on from is a claim like any other.
    finished = check(f'"{FISHER}" approximates each model\'s posterior as a Gaussian [1].', passages, pipe.embedder)
    assert [s.supported for s in finished.sentences] == [True]


def test_an_echoed_question_states_nothing(pipe: Pipeline, passages: list[Passage]) -> None:
    # The bundled model, hedging, wrote the question it was asked back in quotes; its words are the passage's, so
    # it passed the check as a claim. A question claims nothing, whoever asks it.
    draft = f'"How does Fisher merging approximate each model\'s posterior? " {FISHER_CLAIM} [1]'
    assert [s.claim for s in check(draft, passages, pipe.embedder).sentences] == [FISHER_CLAIM]
    # A title that asks is a name inside a claim, not a question.
    titled = check(f"“{FISHER}?” develops an alternative merging procedure [1].", passages, pipe.embedder)
    assert len(titled.sentences) == 1


def test_a_sentence_cut_off_by_the_token_limit_is_completed_from_the_passage_it_copies(passages: list[Passage]) -> None:
    number = fisher_numbers(passages)[0]
    cut = FISHER_CLAIM[: FISHER_CLAIM.index("corresponds to") + len("corresponds t")]  # mid-word, as tokens end
    opening = "Averaging the parameters of models that have the same architecture is a form of merging [1]."
    finished = finish_cut(f"{opening}\n{cut}", passages)
    assert finished == f"{opening}\n{FISHER_CLAIM[:-1]} [{number}]."
    (_, last) = check(finished, passages).sentences
    assert last.supported and last.claim == FISHER_CLAIM
    # A copied sentence opened with a quotation mark is completed without it: it is cited, not quoted.
    assert finish_cut(f'"{cut}', passages) == f"{FISHER_CLAIM[:-1]} [{number}]."
    # A reply that ends its sentence, or whose cut-off words copy no passage, stays as it was written.
    assert finish_cut(f"{FISHER_CLAIM} [{number}]", passages) == f"{FISHER_CLAIM} [{number}]"
    own = "Fisher merging weighs each parameter by how much the model relies on"
    assert finish_cut(own, passages) == own


def test_a_sentence_without_a_marker_is_attributed_to_the_passage_that_supports_it(passages: list[Passage]) -> None:
    checked = check(FISHER_CLAIM, passages)
    (sentence,) = checked.sentences
    assert sentence.supported and sentence.attributed
    assert sentence.markers and set(sentence.markers) <= holding(passages, FISHER_CLAIM)


def test_a_sentence_cited_to_the_wrong_passage_is_attributed_to_the_right_one(passages: list[Passage]) -> None:
    wrong = next(n for n, p in enumerate(passages, 1) if p.paper.title != FISHER)
    (sentence,) = check(FISHER_CLAIM.rstrip(".") + f" [{wrong}].", passages).sentences
    assert sentence.supported and sentence.attributed
    assert sentence.markers and set(sentence.markers) <= holding(passages, FISHER_CLAIM)  # so [wrong] is gone


def test_a_sentence_that_nothing_supports_is_flagged_not_dropped(passages: list[Passage]) -> None:
    claim = "Fisher merging needs 12 GPUs for a week of training."
    (sentence,) = check(claim, passages).sentences
    assert not sentence.supported and not sentence.markers
    assert "no citation, and no passage supports it" in sentence.problems


def test_an_unchecked_example_sentence_copied_from_a_prompt_is_never_supported(passages: list[Passage]) -> None:
    (sentence,) = check("The method prunes 50% of the weights [2].", passages).sentences
    assert not sentence.supported


def test_a_model_that_declines_is_respected(pipe: Pipeline, passages: list[Passage]) -> None:
    assert is_decline("The passages do not mention how many GPUs were used.")
    assert not is_decline("Fisher merging does not need any training data.")
    request = Request("q", "local", passages, [], None)
    answer = request.assemble("The provided passages do not contain this information.", Origin.DRAFT, None,
                              pipe.embedder)  # fmt: skip
    assert answer.abstained and answer.origin == Origin.DECLINED == "declined"
    mixed = request.assemble(f"{FISHER_CLAIM} [1] The passages do not say how fast it is.", Origin.DRAFT, None,
                             pipe.embedder)  # fmt: skip
    assert not mixed.abstained and [s.claim for s in mixed.sentences] == [FISHER_CLAIM]


def test_the_stream_hides_reasoning_even_when_a_tag_is_split_across_pieces() -> None:
    shown: list[str] = []
    stream = ReasoningFilter(shown.append)
    for piece in ["<thi", "nk>plan: cite [1]</th", "ink>Fisher merging ", "works [1].", " <", "b>"]:
        stream(piece)
    stream.flush()
    assert "".join(shown) == "Fisher merging works [1]. <b>"


def test_a_claim_that_reverses_the_passages_direction_is_unsupported(pipe: Pipeline) -> None:
    sentence = next(
        s
        for paper in rag.list_papers(settings=pipe.settings)
        for s in split_answer(paper.abstract)
        if " outperforms " in s and " underperform" not in s
    )
    assert judge_claim(sentence, [sentence], embedder=pipe.embedder).supported
    reversed_claim = judge_claim(
        sentence.replace(" outperforms ", " underperforms ", 1), [sentence], embedder=pipe.embedder
    )
    assert not reversed_claim.supported
    assert any("direction reversed" in problem for problem in reversed_claim.problems)


def test_a_sentence_does_not_end_at_an_abbreviation_and_does_end_at_a_glued_full_stop() -> None:
    text = (
        "Talking head generation needs a driving video.Existing works rely on 2D cues (e.g. landmarks), "
        "i.e. sparse points. They gain 14% in Abs.Rel on MVSEC. We propose DaGAN."
    )
    assert sentences(text) == [
        "Talking head generation needs a driving video.",
        "Existing works rely on 2D cues (e.g. landmarks), i.e. sparse points.",
        "They gain 14% in Abs.Rel on MVSEC.",
        "We propose DaGAN.",
    ]
