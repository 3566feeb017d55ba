"""The chat UI in a real browser (Debian's Chromium driven by Playwright) and through the Gradio API: cited
answers with cards, marker links, escaping of hostile corpus text, a failing LLM endpoint, ten users at once, and
what adding a file replies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import rag
from rag.config import Settings
from tests.conftest import RAG_BIN, REPO, SEED, free_port, run_rag, serve_on_a_free_port, wait_http
from tests.openai_server import FakeOpenAI, Reply, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
KEY = "sk-ui-secret-never-on-the-page"
HOSTILE_ID = 'q-<img src=x onerror="window.__pwned = 5">'
HOSTILE_FACT = "<b>a fact no abstract states</b>"
HOSTILE_TITLE = '<script>window.__pwned = 1</script>Zebra Stripes <img src=x onerror="window.__pwned = 2">'
HOSTILE_ABSTRACT = (
    "We study zebra stripe camouflage for detecting striped animals in savanna photographs. "
    '<script>window.__pwned = 3</script> Our detector <img src=x onerror="window.__pwned = 4"> finds zebras in '
    "grassland scenes with a striped-pattern prior, and we report that stripe frequency matters more than colour. "
    "The detector runs on a single camera trap and needs no labelled zebra images for training at all."
)
QUESTIONS = {  # question → title of the paper its answer must cite first (all in 003)
    "How does Fisher merging approximate the posterior of each model?": "Merging Models with Fisher-Weighted Averaging",
    "Which paper proposes LocalStyleFool, a regional video style transfer attack?": (
        "LocalStyleFool: Regional Video Style Transfer Attack Using Segment Anything Model"
    ),
    "What does the Google Landmarks Dataset v2 benchmark offer for instance-level recognition?": (
        "Google Landmarks Dataset v2 -- A Large-Scale Benchmark for Instance-Level Recognition and Retrieval"
    ),
    "Which paper introduces domain-adversarial training of neural networks?": (
        "Domain-Adversarial Training of Neural Networks"
    ),
    "How do pareto domain adaptation methods balance the objectives?": "Pareto Domain Adaptation",
}


def _write_eval_report(settings: Settings, base: Path) -> None:
    """A real evaluation report in RAG_HOME/eval, for the Evaluation tab."""
    from rag.evaluation import report as reports
    from rag.evaluation.runner import evaluate

    rows = [line for line in (REPO / "eval" / "questions.jsonl").read_text().splitlines() if '"q-c-010"' in line]
    # A question whose id, text, gold paper's title and key fact carry HTML, answered from the planted page; its key
    # fact is in no abstract, so it fails and the report shows it whole.
    hostile = {
        "id": HOSTILE_ID,
        "question": 'Which paper detects zebras <img src=x onerror="window.__pwned = 6">?',
        "type": "factoid",
        "gold": [{"title": HOSTILE_TITLE}],
        "answer": HOSTILE_FACT,
        "key_facts": [HOSTILE_FACT],
    }
    rows.append(json.dumps(hostile))
    questions = base / "questions.jsonl"
    questions.write_text("\n".join(rows) + "\n")
    reports.write(evaluate(questions, settings=settings), settings.home / "eval")


def start_ui(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    """`rag ui` on a free loopback port with `env`, once it answers; the process and its port."""

    def start(port: int) -> subprocess.Popen:  # type: ignore[type-arg]
        with open(log, "w") as out:
            return subprocess.Popen(
                [str(RAG_BIN), "ui", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    return serve_on_a_free_port(start, lambda port, process: wait_http(f"http://127.0.0.1:{port}/", process, log))


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible server on loopback for the UI's openai backend."""
    with serve() as fake:
        yield fake


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, llm: FakeOpenAI) -> Iterator[str]:
    """`rag ui` on a free loopback port over 003 and a planted page whose title and abstract carry HTML."""
    base = tmp_path_factory.mktemp("ui")
    planted = base / "planted.txt"
    planted.write_text(f"new\n\nSubscribe\n\n{HOSTILE_TITLE}\n\n{HOSTILE_ABSTRACT}\n\n  • 2 authors\n·\nMay 1, 2024\n")
    home = base / "home"
    settings = Settings(home=home, chroma_host=None, chroma_port=None, backend="extractive")
    report = rag.ingest([SEED["003"], planted], settings=settings)
    assert report.failed_files == [] and report.problems == []
    _write_eval_report(settings, base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(RAG_HOME=str(home), RAG_BACKEND="extractive", RAG_LLM_RETRIES="0", OPENAI_BASE_URL=llm.base_url,
               OPENAI_API_KEY=KEY, RAG_MODELS_DIR=os.environ["RAG_MODELS_DIR"])  # fmt: skip
    log = base / "ui.log"
    process, port = start_ui(env, log)
    try:
        assert f"rag ui: serving on http://127.0.0.1:{port}" in log.read_text()
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed: apt-get install chromium (scripts/test does it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a browser test that cannot run is a failure, not a skip
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield chromium
        chromium.close()


def ask(page, question: str) -> None:  # type: ignore[no-untyped-def]
    before = page.locator("#chat .message-row, #chat [data-testid='bot']").count()
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function(
        "n => document.querySelectorAll(\"#chat .message-row, #chat [data-testid='bot']\").length > n", arg=before
    )


@pytest.mark.slow
def test_an_answer_shows_markers_that_lead_to_the_cards_of_its_sources(ui: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    ask(page, "How does Fisher merging approximate the posterior of each model?")
    marker = page.locator("#chat a.marker").first
    marker.wait_for(timeout=60_000)
    assert marker.inner_text() == "[1]"
    card = page.locator("#chat .card").first
    assert "[1] Merging Models with Fisher-Weighted Averaging" in card.inner_text()
    assert "2 authors · Nov 18, 2021 · 003_38268af9df130c14.txt #1" in card.inner_text()
    assert card.locator("mark").count() >= 1  # the cited sentence is highlighted
    card_id = card.get_attribute("id")
    assert marker.get_attribute("href") == f"#{card_id}"
    marker.click()
    page.wait_for_function("id => location.hash === '#' + id", arg=card_id)
    box = card.bounding_box()
    assert box is not None and 0 <= box["y"] < 900  # the card is on screen
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-answer.png"))
    assert KEY not in page.content()
    page.close()


@pytest.mark.slow
def test_html_in_titles_and_abstracts_is_shown_as_text_and_runs_nothing(ui: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    ask(page, "Which paper detects zebras from their stripe camouflage?")
    page.locator("#chat .card").first.wait_for(timeout=60_000)
    text = page.inner_text("#chat")
    assert "<script>window.__pwned = 1</script>Zebra Stripes" in text
    # No element was made of the text: an <img> whose onerror had not fired yet would still be in the page.
    assert page.locator("#chat img, #chat script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.get_by_role("tab", name="Corpus").click()
    page.fill("#corpus-search textarea", "zebra")
    page.wait_for_function("() => document.querySelector('#corpus-table').innerText.includes('Zebra Stripes')")
    assert "<script>window.__pwned = 1</script>Zebra Stripes" in page.inner_text("#corpus-table")
    assert page.locator("#corpus-table img, #corpus-table script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.screenshot(path=str(ARTIFACTS / "ui-escaping.png"))
    page.close()


@pytest.mark.slow
def test_an_openai_answer_streams_in_and_shows_its_cards(ui: str, browser, llm: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    assert f"OpenAI-compatible endpoint: {llm.base_url}" in page.inner_text("#llm-status")
    page.get_by_role("radio", name="openai").check()
    sentence = (
        "We develop an alternative merging procedure based on the Laplace approximation where we approximate each "
        "model's posterior as a Gaussian distribution whose precision matrix corresponds to its Fisher information"
    )
    llm.replies.append(Reply("text", f"{sentence} [1]. Training it needs 12 GPUs for a week [1]."))
    ask(page, "How does Fisher merging approximate the posterior of each model?")
    page.locator("#chat a.marker").first.wait_for(timeout=60_000)
    assert "[1] Merging Models with Fisher-Weighted Averaging" in page.locator("#chat .card").first.inner_text()
    flagged = page.locator("#chat .unsupported")
    assert flagged.count() == 1 and "12 GPUs" in flagged.inner_text()
    assert "number 12 not in the cited passages" in (flagged.get_attribute("title") or "")
    request = [r for r in llm.requests if r.path.endswith("/chat/completions")][-1]
    assert request.body["stream"] is True
    assert KEY not in page.content()
    page.close()


LAST_BOT = "(() => { const b = document.querySelectorAll(\"#chat [data-testid='bot']\"); return b[b.length - 1]; })()"


@pytest.mark.slow
def test_a_local_model_answer_appears_piece_by_piece_before_its_cards(ui: str, browser, bundled: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    assert "local: bundled Qwen2.5-Coder-0.5B-Instruct" in page.inner_text("#llm-status")
    page.get_by_role("radio", name="local").check()
    ask(page, "How does Fisher merging approximate the posterior of each model?")
    # While the model reads its prompt, the chat says so instead of an ellipsis.
    page.wait_for_function(
        f"() => {{ const m = {LAST_BOT}; return m && m.querySelector('.status') !== null"
        " && m.innerText.includes('The model is reading'); }",
        timeout=120_000,
    )
    # Partial text of the model's reply, before the checked answer with its source cards replaces it.
    page.wait_for_function(
        f"() => {{ const m = {LAST_BOT}; if (!m) return false; const t = m.innerText.trim();"
        " return t.length > 3 && t !== '…' && !m.querySelector('.card') && !m.querySelector('.status'); }",
        timeout=120_000,
    )
    partial = page.evaluate(f"() => {LAST_BOT}.innerText")
    page.wait_for_function(f"() => {LAST_BOT}.querySelector('.card') !== null", timeout=120_000)
    final = page.evaluate(f"() => {LAST_BOT}.innerText")
    assert partial.strip() and partial != final
    assert "Merging Models with Fisher-Weighted Averaging" in page.locator("#chat .card").last.inner_text()
    page.screenshot(path=str(ARTIFACTS / "ui-local-answer.png"))
    page.close()


@pytest.fixture(scope="module")
def faulty_ui(full_store) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served from this process, its pipeline failing on two questions: one raises an unexpected error
    (not a RagError), one never returns; the chat waits 3 s for progress. Every other question is answered by the
    real pipeline, which says it is still at work every half second: the 3 s are for the stuck answerer only, not
    for how fast this machine answers."""
    from rag.ui.app import build

    settings, _ = full_store
    settings = settings.model_copy(update={"backend": "extractive"})
    release = threading.Event()
    original = rag.Pipeline.ask

    def ask(self, question, *args, **kwargs):  # type: ignore[no-untyped-def]
        if "explode" in question:
            raise RuntimeError("a bug deep inside a library")
        if "hang" in question:
            release.wait(120)
            raise RuntimeError("released at the end of the test")
        answered = threading.Event()

        def still_at_work() -> None:
            while not answered.wait(0.5):
                kwargs["on_status"]("Still answering…")

        beat = threading.Thread(target=still_at_work, daemon=True)
        beat.start()
        try:
            return original(self, question, *args, **kwargs)
        finally:
            answered.set()
            beat.join()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rag.Pipeline, "ask", ask)
        app = build(settings, wait=3)
        app.queue(default_concurrency_limit=4)
        # Without a port, Gradio binds the first free one of its range itself: no port chosen here can be taken
        # before it binds.
        app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{app.server_port}/"
        finally:
            release.set()
            app.close()


@pytest.mark.slow
def test_an_unexpected_error_or_a_stuck_answerer_is_a_message_and_the_chat_keeps_serving(
    faulty_ui: str, browser, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(faulty_ui)
    ask(page, "Why does this explode?")
    error = page.locator("#chat .error").last
    error.wait_for(timeout=60_000)
    assert "Something went wrong while answering (RuntimeError: a bug deep inside a library)" in error.inner_text()
    assert any("answering 'Why does this explode?' failed" in r.getMessage() for r in caplog.records)
    ask(page, "Why does this hang?")
    page.wait_for_function("() => document.querySelectorAll('#chat .error').length === 2", timeout=60_000)
    assert "No answer after 3 s" in page.locator("#chat .error").last.inner_text()
    ask(page, "How does Fisher merging approximate the posterior of each model?")
    page.locator("#chat a.marker").first.wait_for(timeout=60_000)  # the same app still answers
    page.close()


@pytest.mark.slow
def test_a_failing_llm_endpoint_is_a_message_and_the_offline_answerer_still_works(
    ui: str, browser, llm: FakeOpenAI
) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    llm.faults.append((503, {}))
    page.get_by_role("radio", name="openai").check()
    ask(page, "How does Fisher merging approximate the posterior of each model?")
    error = page.locator("#chat .error").first
    error.wait_for(timeout=60_000)
    assert f"LLM endpoint {llm.base_url}: HTTP 503 after 0 retries" in error.inner_text()
    assert "Switch the backend to extractive" in error.inner_text()
    page.get_by_role("radio", name="extractive").check()
    ask(page, "Which paper introduces domain-adversarial training of neural networks?")
    page.locator("#chat a.marker").first.wait_for(timeout=60_000)
    assert KEY not in page.content()
    page.close()


@pytest.mark.slow
def test_the_evaluation_tab_shows_the_latest_report(ui: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    page.get_by_role("tab", name="Evaluation").click()
    page.get_by_text("citation_recall per question type").first.wait_for(timeout=30_000)
    assert page.locator("svg[aria-label='latency histogram']").count() == 1
    body = page.inner_text("body")
    assert "citation_precision" in body
    # The hostile question's id (and its answer, from the planted page) are in the page as text (the failing
    # questions may sit in a closed <details>, out of innerText): no element was made of them.
    assert 'q-&lt;img src=x onerror="window.__pwned = 5"&gt;' in page.content()
    assert page.locator("img").count() == 0 and page.evaluate("typeof window.__pwned") == "undefined"
    page.close()


@pytest.mark.slow
def test_ten_simultaneous_questions_each_get_their_own_sources(ui: str) -> None:
    from gradio_client import Client

    client = Client(ui, verbose=False)
    questions = list(QUESTIONS) * 2

    def one(question: str) -> tuple[str, dict]:  # type: ignore[type-arg]
        return question, client.predict(question, "extractive", 5, api_name="/ask")

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, questions))
    assert len(results) == 10
    for question, answer in results:
        assert answer["question"] == question and not answer["abstained"], answer
        assert answer["citations"][0]["title"] == QUESTIONS[question]


def test_serving_beyond_loopback_needs_auth_or_an_explicit_no_auth(tmp_path: Path) -> None:
    result = run_rag("ui", "--host", "0.0.0.0", "--port", str(free_port()), home=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "error: --host 0.0.0.0 is reachable from other machines: set RAG_UI_AUTH=user:password, or pass --no-auth\n"
    )
    bad = run_rag("ui", "--host", "0.0.0.0", home=tmp_path, env={"RAG_UI_AUTH": "nopassword"})
    assert (bad.returncode, bad.stderr) == (1, "error: RAG_UI_AUTH must be user:password\n")


@pytest.mark.slow
def test_with_rag_ui_auth_the_api_refuses_a_client_without_credentials_and_answers_one_with_them(  # type: ignore[no-untyped-def]
    full_store, tmp_path: Path
) -> None:
    import urllib.error
    import urllib.request

    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    settings, _ = full_store
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(RAG_HOME=str(settings.home), RAG_BACKEND="extractive", RAG_UI_AUTH="alice:s3cret")
    log = tmp_path / "ui.log"
    process, port = start_ui(env, log)
    url = f"http://127.0.0.1:{port}/"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "config", timeout=10)
        assert refused.value.code == 401
        question = "How does Fisher merging approximate the posterior of each model?"
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False).predict(question, "extractive", 5, api_name="/ask")
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, auth=("alice", "wrong"), verbose=False)
        answer = Client(url, auth=("alice", "s3cret"), verbose=False).predict(
            question, "extractive", 5, api_name="/ask"
        )
        assert answer["citations"][0]["title"] == "Merging Models with Fisher-Weighted Averaging"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _card_titles(page, turn: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Titles on the source cards of the `turn`-th answer of the conversation."""
    bold = page.locator(f"[id^='src-{turn}-'] b").all_inner_texts()
    return [text.split("] ", 1)[1] for text in bold]


PEFT = "Which papers here do parameter-efficient transfer learning, and how do their methods differ?"


@pytest.mark.slow
def test_a_follow_up_and_a_filter_set_in_the_browser_shape_the_next_answer(ui: str, browser) -> None:  # type: ignore[no-untyped-def]
    from rag.corpus import merge_records, parse_file

    years = {p.title: p.year for p in merge_records(parse_file(SEED["003"]).records)}
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    # 003 holds one paper that merges models and several on parameter-efficient transfer: a list answer lists
    # the papers that fit (rag.ranking.listed), so the question asks about the latter.
    ask(page, PEFT)
    page.locator("[id^='src-1-']").first.wait_for(timeout=60_000)
    first = set(_card_titles(page, 1))
    assert len(first) >= 2
    ask(page, "And which of them works on vision-and-language tasks?")  # a follow-up: it may only draw on those
    page.locator("[id^='src-2-']").first.wait_for(timeout=60_000)
    follow = _card_titles(page, 2)
    assert follow and set(follow) <= first

    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("() => !document.querySelector(\"[id^='src-1-']\")")
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("From year").fill("2024")
    ask(page, PEFT)
    page.locator("[id^='src-1-']").first.wait_for(timeout=60_000)
    filtered = _card_titles(page, 1)
    assert filtered and all((years.get(title) or 0) >= 2024 for title in filtered), filtered
    page.screenshot(path=str(ARTIFACTS / "ui-follow-up-and-filter.png"))
    page.close()


QUOKKA_BIB = """@article{quill2025quokka,
  title = {Tiny {Quokka} Networks},
  author = {Quill, Ada and M{\\"u}ller, J{\\'e}r{\\^o}me},
  abstract = {We introduce Quokka, a 12-layer network that ranks wallaby photographs by their fur
    density. Quokka reaches 91.4\\% accuracy on the Rottnest benchmark while using 3 million parameters.},
  year = {2025},
  eprint = {2501.01234}, archivePrefix = {arXiv}, primaryClass = {cs.CV},
}

@misc{talk, title = {A Talk Without an Abstract}, author = {Roe, Jo}, year = {2024}}
"""


@pytest.mark.slow
def test_papers_added_in_the_corpus_tab_are_listed_and_answered_with_their_cards(  # type: ignore[no-untyped-def]
    ui: str, browser, tmp_path: Path
) -> None:
    upload = tmp_path / "quokka.bib"
    upload.write_text(QUOKKA_BIB, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(ui)
    page.get_by_role("tab", name="Corpus").click()
    page.get_by_text("Add papers", exact=True).first.click()
    page.set_input_files("#add-file input[type=file]", str(upload))
    page.locator("#add-file .file-preview").first.wait_for(timeout=30_000)  # uploaded
    page.click("#add-papers")
    page.locator("#add-summary").get_by_text("Added 1 new papers").wait_for(timeout=120_000)
    summary = page.inner_text("#add-summary")
    assert "quokka.bib line 10: entry talk: no abstract; the entry is not stored" in summary, summary
    page.fill("#corpus-search textarea, #corpus-search input", "quokka")
    page.wait_for_function(
        "() => document.querySelector('#corpus-table').innerText.includes('Tiny Quokka Networks')", timeout=30_000
    )
    page.get_by_role("tab", name="Ask").click()
    ask(page, "Which network ranks wallaby photographs by their fur density?")
    page.locator("[id^='src-1-']").first.wait_for(timeout=60_000)
    assert _card_titles(page, 1)[0] == "Tiny Quokka Networks"
    card = page.inner_text("[id^='src-1-']")
    assert "Ada Quill, Jérôme Müller" in card and "arXiv:2501.01234" in card
    page.screenshot(path=str(ARTIFACTS / "ui-add-papers.png"))
    page.close()


@pytest.fixture(scope="module")
def embeddings() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible embeddings endpoint on loopback: the one endpoint a test can make fail on demand."""
    with serve() as fake:
        yield fake


@pytest.fixture(scope="module")
def adding(tmp_path_factory: pytest.TempPathFactory, embeddings: FakeOpenAI) -> tuple[object, Settings]:
    """The app built in this process over an empty store whose vectors come from `embeddings`, and its settings."""
    from rag.ui.app import build

    home = tmp_path_factory.mktemp("adding") / "home"
    settings = Settings(
        home=home, chroma_host=None, chroma_port=None, backend="extractive", embedding="openai:test-embed"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_BASE_URL", embeddings.base_url)
        patch.setenv("OPENAI_API_KEY", KEY)
        return build(settings), settings


@pytest.fixture
def add_papers(adding, embeddings: FakeOpenAI, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """What the "Add papers" button runs, called as Gradio calls it: (the uploaded file's path, the format) →
    (the summary's HTML, the corpus table)."""
    monkeypatch.setenv("OPENAI_BASE_URL", embeddings.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    app, _ = adding
    return next(block.fn for block in app.fns.values() if getattr(block.fn, "__name__", "") == "add_papers")


def test_adding_papers_without_choosing_a_file_says_to_choose_one(add_papers, embeddings: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    assert add_papers(None, "detect") == ("Choose a file to add first.", [])
    assert embeddings.requests == []


def test_a_file_without_one_readable_paper_adds_nothing_and_says_why(add_papers, adding, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    upload = tmp_path / "talks.bib"
    upload.write_text("@misc{talk, title = {A Talk Without an Abstract}, author = {Roe, Jo}, year = {2024}}\n")
    summary, table = add_papers(str(upload), "detect")
    assert summary == (
        '<p class="error">Nothing was added.</p><ul><li>talks.bib: no paper with an abstract could be read (bibtex); '
        "first problem: talks.bib line 1: entry talk: no abstract; the entry is not stored</li></ul>"
    )
    assert table == [] and rag.list_papers(settings=adding[1]) == []


def test_an_upload_whose_embedding_fails_is_an_error_in_the_summary_and_stores_nothing(  # type: ignore[no-untyped-def]
    add_papers, adding, embeddings: FakeOpenAI, tmp_path: Path
) -> None:
    upload = tmp_path / "quokka.bib"
    upload.write_text(QUOKKA_BIB, encoding="utf-8")
    embeddings.faults.extend([(500, {})] * 3)  # the first try and both retries
    summary, table = add_papers(str(upload), "detect")
    assert summary == (
        f'<p class="error">embeddings endpoint {embeddings.base_url}/ answered HTTP 500 for model '
        "&#x27;test-embed&#x27; after retries; check the model name and the server</p>"
    )
    assert KEY not in summary and table == [] and rag.list_papers(settings=adding[1]) == []


@pytest.mark.slow
def test_an_upload_while_the_chroma_server_is_down_is_a_one_line_error_not_a_crash(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from rag.ui.app import build

    from tests.test_server import start_chroma

    server, port = start_chroma(tmp_path / "chroma")
    settings = Settings(home=tmp_path / "home", chroma_host="127.0.0.1", chroma_port=port, backend="extractive",
                        store_sentences=False)  # fmt: skip
    try:
        app = build(settings)
        add = next(block.fn for block in app.fns.values() if getattr(block.fn, "__name__", "") == "add_papers")
    finally:
        server.terminate()
        server.wait(timeout=30)
    upload = tmp_path / "quokka.bib"
    upload.write_text(QUOKKA_BIB, encoding="utf-8")
    summary, table = add(str(upload), "detect")  # the table cannot be read either: the error says why
    assert summary.startswith('<p class="error">') and f"127.0.0.1:{port}" in summary, summary
    assert table == []
