"""The evaluation harness: question files and gold, metrics, answers from elsewhere, reports, resuming, the
judge check, and the CI gate on the development set."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from rag.evaluation.metrics import EvalAnswer, citation_scores, key_fact_recall, retrieval_scores
from rag.evaluation.questions import QuestionFileError, load_questions, resolve_gold

from tests.conftest import REPO, SEED, run_rag

DEV = REPO / "eval" / "questions.jsonl"
BASELINE = REPO / "eval" / "baseline.json"


class WordJudge:
    """A judge for metric tests: a claim is supported when all its words occur in the evidence."""

    name = "words"

    def supports(self, claim: str, evidence: list[str]) -> bool:
        text = " ".join(evidence).lower()
        return all(word in text for word in claim.lower().rstrip(".").split())


def test_retrieval_scores_match_their_definitions() -> None:
    scores = retrieval_scores(["x", "g1", "y", "x", "g2"], {"g1", "g2", "g3"})
    assert scores["hit"] == 1.0 and scores["mrr"] == 0.5
    assert scores["recall"] == pytest.approx(2 / 3)  # top 5 distinct: x, g1, y, g2
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert scores["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert retrieval_scores(["a", "b"], {"z"}) == {"hit": 0.0, "recall": 0.0, "mrr": 0.0, "ndcg": 0.0}


def test_alce_citation_recall_and_precision() -> None:
    answer = EvalAnswer(
        id="q",
        text="",
        abstained=False,
        sentences=[("red apples grow", [1, 2]), ("blue sky", [3]), ("green grass", [])],
        citations={1: ("red apples", None), 2: ("apples grow", None), 3: ("the sea is wide", None)},
        retrieved=None,
        retrieved_evidence=[],
    )
    recall, precision = citation_scores(answer, WordJudge())
    assert recall == pytest.approx(1 / 3)  # only the first sentence is supported by its citations together
    assert precision == pytest.approx(2 / 3)  # [1] and [2] are each needed; [3] supports nothing


def test_key_facts_ignore_case_and_spacing() -> None:
    assert key_fact_recall("It reaches 99.6%  AUROC at 77 fps.", ["99.6% auroc", "77 FPS", "MVTec"]) == pytest.approx(
        2 / 3
    )
    assert key_fact_recall("anything", []) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "q.jsonl line 1: not JSON"),
        ('{"id": "a"}', "q.jsonl line 1: missing field question, type, gold, answer, key_facts"),
        (
            '{"id": "a", "question": "?", "type": "factoid", "gold": "x", "answer": "", "key_facts": []}',
            "gold must be a list",
        ),
    ],
)
def test_a_malformed_question_file_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(QuestionFileError, match=message):
        load_questions(path)


def test_gold_that_matches_no_paper_or_several_is_an_error_naming_the_question(full_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import rag

    papers = {paper.paper_id: paper for paper in rag.list_papers(settings=full_store[0])}
    base = {"question": "?", "type": "factoid", "answer": "", "key_facts": []}
    fisher = {"source_file": SEED["003"].name, "ordinal": 1, "title": "Merging Models with Fisher-Weighted Averaging"}
    rows = [
        {**base, "id": "ok", "gold": [fisher]},
        {**base, "id": "prefix", "gold": [{"abstract_prefix": "Averaging the parameters of models"}]},
        # JSON writes an absent field as null: a paper with no title, or a field the author did not fill in
        {**base, "id": "null", "gold": [{**fisher, "title": None, "paper_id": None}]},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    resolved = resolve_gold(load_questions(path), papers)
    assert resolved["ok"] == resolved["prefix"] == resolved["null"] and len(resolved["ok"]) == 1
    for gold, message in (
        ({"title": "A Paper Nobody Wrote"}, "question bad: gold .* matches no stored paper"),
        ({"abstract_prefix": "We"}, "question bad: gold .* matches \\d+ different papers"),
        ({"title": None}, "question bad: gold .* names no paper"),
        ({"source_file": SEED["003"].name, "ordinal": 1, "title": "Pointer Networks"}, "matches no stored paper"),
    ):
        path.write_text(json.dumps({**base, "id": "bad", "gold": [gold]}) + "\n")
        with pytest.raises(QuestionFileError, match=message):
            resolve_gold(load_questions(path), papers)


@pytest.fixture
def home(full_store, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the shared store's home, for a `rag eval` that answers: it caches the answers under its home,
    which would make the shared store, read by every other test, depend on which evaluations ran before."""
    copy = tmp_path / "home"
    shutil.copytree(full_store[0].home, copy)
    return copy


def small_set(tmp_path: Path, ids: tuple[str, ...]) -> Path:
    rows = [line for line in DEV.read_text().splitlines() if json.loads(line)["id"] in ids]
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_rag_eval_writes_reports_compares_and_resumes_from_its_cache(home: Path, tmp_path: Path) -> None:
    questions = small_set(tmp_path, ("q-a-001", "q-b-005", "q-c-026", "q-a-032", "q-c-010"))
    out = tmp_path / "out"
    first = run_rag("eval", "--questions", str(questions), "--backend", "extractive", "--out", str(out), home=home)
    assert first.returncode == 0, first.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["questions"] == 5 and set(report["by_type"]) == {
        "factoid",
        "metadata",
        "method-name",
        "unanswerable",
    }
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 5 and "Failing questions" in html and "<script" not in html
    assert "| citation_recall |" in (out / "report.md").read_text()
    # The ranking beside the baselines, on the same three questions about papers' content.
    rankings = report["rankings"]
    assert rankings["questions"] == 3
    assert set(rankings) == {"questions", "ranking", "baseline dense", "baseline bm25", "baseline rrf"}
    for name in ("ranking", "baseline dense", "baseline bm25", "baseline rrf"):
        row = rankings[name]
        assert 0 <= row["hit@1"] <= row["hit@5"] <= row["hit@10"] <= 1 and row["hit@1"] <= row["mrr"] <= 1
    assert "| baseline dense |" in (out / "report.md").read_text()

    cached = list((home / "eval-cache").rglob("*.json"))  # this test's own home: only this run's answers
    assert sorted(path.name.rsplit("-", 1)[0] for path in cached) == ["q-a-001", "q-a-032", "q-b-005", "q-c-010",
                                                                       "q-c-026"]  # fmt: skip
    (one,) = [path for path in cached if path.name.startswith("q-a-001-")]
    answer = json.loads(one.read_text())
    answer["text"] = "A cached answer mentioning 16x [1]."
    one.write_text(json.dumps(answer))
    # An older report to compare with: a lower hit rate, and no key-fact recall at all.
    older = tmp_path / "older.json"
    older.write_text(json.dumps({**report, "overall": {**report["overall"], "hit": 0.25, "key_fact_recall": None}}))
    second = run_rag("eval", "--questions", str(questions), "--backend", "extractive", "--out", str(out),
                     "--compare", str(older), home=home)  # fmt: skip
    assert second.returncode == 0, second.stderr
    again = json.loads((out / "report.json").read_text())
    row = next(q for q in again["questions"] if q["id"] == "q-a-001")
    assert row["answer"]["text"] == "A cached answer mentioning 16x [1]."  # read from the cache, not asked again
    header = "metric                    before       now    change\n"
    assert header in second.stdout
    table = second.stdout.split(header)[1].splitlines()
    compared = {line.split()[0]: line.split()[1:] for line in table}
    now = again["overall"]
    assert compared["hit"] == ["0.250", f"{now['hit']:.3f}", f"{now['hit'] - 0.25:+.3f}"]
    assert compared["key_fact_recall"] == ["–", f"{now['key_fact_recall']:.3f}", "–"]  # not in the older report
    before, after = report["overall"]["mrr"], now["mrr"]  # retrieval: the same in both runs
    assert compared["mrr"] == [f"{before:.3f}", f"{after:.3f}", f"{after - before:+.3f}"]


def test_answers_produced_elsewhere_are_scored_the_same_way(full_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    questions = small_set(tmp_path, ("q-c-010", "q-a-032"))
    passage = (
        "We develop an alternative merging procedure based on the Laplace approximation where we approximate each "
        "model's posterior as a Gaussian distribution whose precision matrix corresponds to its Fisher information."
    )
    answers = tmp_path / "answers.jsonl"
    cited = {"number": 1, "passage": passage, "title": "Merging Models with Fisher-Weighted Averaging"}
    text = "Fisher merging approximates each posterior as a Gaussian [1]. It uses 12 GPUs [1]."
    rows = [
        {"id": "q-c-010", "answer": text, "citations": [cited], "abstained": False},
        {"id": "q-a-032", "answer": "No.", "citations": [], "abstained": True},
    ]
    answers.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "ext"
    result = run_rag("eval", "--questions", str(questions), "--answers", str(answers), "--out", str(out), "--json",
                     home=settings.home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    row = next(q for q in report["questions"] if q["id"] == "q-c-010")
    assert row["citation_recall"] == 0.5 and row["cited_gold"] == 1.0  # the 12 GPUs are in no passage
    assert report["overall"]["abstention_recall"] == 1.0 and report["config"]["backend"] is None


def test_html_in_questions_and_answers_produced_elsewhere_is_text_in_the_html_report(
    full_store, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = full_store
    img = '<img src=x onerror="alert(1)">'
    title = "Merging Models with Fisher-Weighted Averaging"
    question = {"id": f"q-{img}", "question": f"Which paper {img} merges models?", "type": "factoid",
                "gold": [{"title": title}], "answer": img, "key_facts": [f"a fact {img}"]}  # fmt: skip
    cited = {"number": 1, "passage": f"A passage {img} about merging.", "title": f"{title} {img}"}
    answer = {"id": question["id"], "answer": f"It merges {img} models [1].", "citations": [cited], "abstained": False}
    (tmp_path / "q.jsonl").write_text(json.dumps(question) + "\n")
    (tmp_path / "a.jsonl").write_text(json.dumps(answer) + "\n")
    result = run_rag("eval", "--questions", str(tmp_path / "q.jsonl"), "--answers", str(tmp_path / "a.jsonl"),
                     "--out", str(tmp_path / "out"), home=settings.home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<img" not in html
    assert html.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") >= 3  # the id, the question, the answer


@pytest.mark.slow
def test_fail_under_exits_1_naming_the_metric(home: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"  # nothing stored is about it: declined, so abstention recall is 1.0
    mars = {"id": "mars", "question": "What is the boiling point of water on Mars?", "type": "unanswerable",
            "gold": [], "answer": "", "key_facts": []}  # fmt: skip
    questions.write_text(json.dumps(mars) + "\n")
    result = run_rag("eval", "--questions", str(questions), "--backend", "extractive", "--out", str(tmp_path / "o"),
                     "--fail-under", "abstention_recall=1.01", home=home)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().endswith("error: abstention_recall = 1.0 is below 1.01")
    bad = run_rag("eval", "--questions", str(questions), "--fail-under", "happiness=0.5", "--out", str(tmp_path / "o"),
                  home=home)  # fmt: skip
    assert bad.returncode == 1 and "no such metric" in bad.stderr


@pytest.mark.slow
def test_fail_above_exits_1_naming_a_metric_that_must_stay_low(home: Path, tmp_path: Path) -> None:
    # Labelled answerable, but nothing stored is about it: the answer is declined, a false abstention.
    fisher = {"source_file": SEED["003"].name, "ordinal": 1}
    row = {"id": "mars", "question": "What is the boiling point of water on Mars?", "type": "factoid",
           "gold": [fisher], "answer": "", "key_facts": []}  # fmt: skip
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n")
    args = ("eval", "--questions", str(path), "--backend", "extractive", "--out", str(tmp_path / "o"))
    strict = run_rag(*args, "--fail-above", "false_abstention=0.0", home=home)
    assert strict.returncode == 1
    assert strict.stderr.strip().endswith("error: false_abstention = 1.0 is above 0.0")
    lenient = run_rag(*args, "--fail-above", "false_abstention=1.0", home=home)
    assert lenient.returncode == 0, lenient.stderr


@pytest.mark.slow
def test_the_offline_judge_catches_corrupted_claims_and_spares_faithful_ones(full_store) -> None:  # type: ignore[no-untyped-def]
    from rag.evaluation.judge_check import FAITHFUL, KINDS, run_judge_check
    from rag.evaluation.judges import OfflineJudge

    import rag

    pipe = rag.pipeline(full_store[0])
    result = run_judge_check(OfflineJudge(pipe.embedder), pipe, per_kind=30)
    per_kind = result["per_kind"]
    assert all(per_kind[kind]["cases"] == 30 for kind in (*FAITHFUL, *KINDS))
    # Corruptions made by the rules the judge applies, and another paper's text: nearly all caught.
    for kind in ("number", "entity", "negation", "other_abstract", "wrong_citation"):
        assert per_kind[kind]["flagged"] >= 27, (kind, per_kind[kind])
    # Made by other means: two names trading places and a blend of two papers' half sentences are often not caught
    # (docs/evaluation.md); each kind has its own floor, 2 under what was measured (18 and 20 of 30 on 336
    # papers), so that a judge that stops catching one kind fails here whatever the other does.
    assert per_kind["swapped_relation"]["flagged"] >= 16, per_kind["swapped_relation"]
    assert per_kind["mixed_papers"]["flagged"] >= 18, per_kind["mixed_papers"]
    # Faithful claims, verbatim or reworded, are not flagged.
    assert result["faithful_flagged"] <= 0.05 and result["paraphrase_flagged"] <= 0.05


@pytest.mark.slow
def test_the_development_set_meets_the_baseline_recorded_in_the_repo(home: Path, tmp_path: Path) -> None:
    result = run_rag("eval", "--backend", "extractive", "--judge", "offline", "--baseline", str(BASELINE),
                     "--split", "test", "--out", str(tmp_path / "dev"), "--workers", "2", home=home)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "dev" / "report.json").read_text())
    test_half = [line for line in DEV.read_text().splitlines() if json.loads(line)["split"] == "test"]
    assert report["overall"]["questions"] == len(test_half) >= 150
    # A gate no report can meet fails, naming each bound crossed (on three of the questions, to be quick).
    impossible = tmp_path / "impossible.json"
    impossible.write_text(json.dumps({"at_least": {"hit": 1.01}, "at_most": {"false_abstention": -0.01}}))
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(test_half[:3]) + "\n")
    failed = run_rag("eval", "--backend", "extractive", "--judge", "offline", "--baseline", str(impossible),
                     "--questions", str(few), "--out", str(tmp_path / "gate"), home=home)  # fmt: skip
    assert failed.returncode == 1
    assert re.search(r"^error: hit = [01](\.\d+)? is below 1\.01$", failed.stderr, re.M), failed.stderr
    assert re.search(r"^error: false_abstention = 0(\.\d+)? is above -0\.01$", failed.stderr, re.M), failed.stderr


def test_the_openai_judge_decomposes_then_verifies_each_claim(full_store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from rag.evaluation.judges import OpenAIJudge

    from tests.openai_server import Reply, serve

    settings, _ = full_store
    with serve() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
        judge = OpenAIJudge(settings.model_copy(update={"llm_model": "judge-model", "llm_retries": 0}))
        server.replies.extend([Reply("text", "- SSAM uses a binary mask.\n- SSAM converges like SAM."),
                               Reply("text", "yes, stated"), Reply("text", "yes, stated")])  # fmt: skip
        assert judge.supports("SSAM uses a binary mask and converges like SAM.", ["SSAM ... binary mask ... rate"])
        server.replies.extend([Reply("text", "One claim."), Reply("text", "No: the evidence says otherwise.")])
        assert not judge.supports("SSAM needs no mask.", ["SSAM achieves sparse perturbation by a binary mask."])
        prompts = [r.body["messages"][0]["content"] for r in server.requests]
    assert len(prompts) == 5
    assert prompts[0].startswith("Split the sentence below into its atomic factual claims")
    assert "Claim: SSAM converges like SAM." in prompts[2] and "SSAM ... binary mask ... rate" in prompts[2]
