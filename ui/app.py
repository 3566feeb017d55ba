"""The Gradio chat UI over the public API: streamed, cited answers with their sources as cards, settings and
filters, a corpus browser and the latest evaluation report. Everything from the corpus or a model is escaped
before it reaches the page."""

from __future__ import annotations

import html
import logging
import os
import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

import rag
from rag import ABSTAIN_PHRASE, Answer, Filters, RagError
from rag.citations import split_answer
from rag.formats import FORMATS, Options

EXAMPLES = [
    "Which papers here merge fine-tuned models, and how do their methods differ?",
    "Which paper compresses large language models by deleting rows and columns of weight matrices?",
    "What papers did Anke Tang write?",
    "How does Fisher merging approximate the posterior of each model?",
]
CSS = """
.card{border:1px solid #d0d7de;border-radius:8px;padding:8px 12px;margin:8px 0;background:#fafbfc}
.card .meta{color:#57606a;font-size:.85em;margin:2px 0 6px}
.card blockquote{margin:0;font-size:.92em}
.card mark{background:#fff3b0}
.unsupported{text-decoration:underline wavy #cf222e}
.flag{color:#cf222e;font-size:.85em}
.abstained{font-style:italic;color:#57606a}
.error{color:#cf222e}
.status{color:#57606a;font-style:italic}
"""
_MARKER = re.compile(r"\[(\d+)\]")
log = logging.getLogger("rag.ui")


def _e(text: object) -> str:
    """Text made safe for the page: HTML escaped, and no blank line that would end the HTML block."""
    return html.escape(str(text)).replace("\n", " ")


def render_answer(answer: Answer, turn: int) -> str:
    """An answer as one HTML block: sentences with [n] linking to their cards, unsupported ones marked, then the
    cards. Every string from the corpus or the model is escaped."""
    if answer.abstained:
        return f'<div><p class="abstained">{_e(ABSTAIN_PHRASE)}</p></div>'

    def link(match: re.Match[str]) -> str:
        n = match.group(1)
        return f'<a href="#src-{turn}-{n}" class="marker">[{n}]</a>'

    sentences = []
    for sentence in answer.sentences:
        body = _MARKER.sub(link, _e(sentence.text))
        if sentence.supported:
            sentences.append(body)
        else:
            why = "; ".join(sentence.problems) or f"support {sentence.support:.2f}"
            sentences.append(
                f'<span class="unsupported" title="{_e(why)}">{body}</span> <span class="flag">⚠ unsupported</span>'
            )
    cited = {c.number: [s.claim for s in answer.sentences if c.number in s.markers] for c in answer.citations}
    cards = [_card(citation, cited.get(citation.number, []), turn) for citation in answer.citations]
    removed = (
        '<p class="flag">Removed markers '
        + _e("".join(f"[{n}]" for n in answer.removed_markers))
        + ": they pointed at no passage.</p>"
        if answer.removed_markers
        else ""
    )
    return f"<div><p>{' '.join(sentences)}</p>{removed}{''.join(cards)}</div>"


def _source_sentence(claim: str, passage: str) -> str | None:
    """The sentence of `passage` that `claim` was quoted or reworded from: the one sharing most of the claim's
    words, when it shares at least half of them ("SpikeGPT proposes …" comes from "We propose …")."""
    wanted = set(re.findall(r"\w+", claim.lower()))
    best, share = None, 0.5
    for sentence in split_answer(passage):
        found = len(wanted & set(re.findall(r"\w+", sentence.lower()))) / max(1, len(wanted))
        if found >= share and sentence.strip() in passage:
            best, share = sentence.strip(), found
    return best


def _card(citation: Any, claims: list[str], turn: int) -> str:
    """One source card: number, title, authors, date, category, source file, and the passage with the cited
    sentences highlighted."""
    marked = {_source_sentence(claim, citation.passage) for claim in claims} - {None}
    passage = _e(citation.passage)
    for sentence in marked:
        core = _e(str(sentence))
        passage = passage.replace(core, f"<mark>{core}</mark>", 1)
    authors = ", ".join(citation.authors or []) or (
        f"{citation.n_authors} authors" if citation.n_authors else "authors not listed"
    )
    where = ", ".join(f"{s.file} #{s.position}" for s in citation.sources)
    facts = (authors, citation.date or "date not listed", citation.category or "", citation.identifier, where)
    meta = _e(" · ".join(x for x in facts if x))
    if citation.url and citation.url.startswith(("https://", "http://")):
        meta += f' · <a href="{_e(citation.url)}" target="_blank" rel="noopener noreferrer">link</a>'
    return (
        f'<div class="card" id="src-{turn}-{citation.number}">'
        f"<b>[{citation.number}] {_e(citation.title or '(untitled)')}</b>"
        f'<div class="meta">{meta}</div><blockquote>{passage}</blockquote></div>'
    )


def _ingest_summary(report: rag.IngestReport) -> str:
    """What an upload added, and every problem the file had, by line."""
    failed = [f"<li>{_e(f.error)}</li>" for f in report.failed_files]
    if failed:
        return f'<p class="error">Nothing was added.</p><ul>{"".join(failed)}</ul>'
    lines = [
        f"<p>Added {report.new} new papers; {report.changed} found again or changed, {report.unchanged} unchanged. "
        f"{report.papers_total} papers in the collection.</p>"
    ]
    if report.problems:
        items = "".join(f"<li>{_e(problem)}</li>" for problem in report.problems[:50])
        more = f"<li>… and {len(report.problems) - 50} more</li>" if len(report.problems) > 50 else ""
        lines.append(f"<p>{len(report.problems)} entries were not stored:</p><ul>{items}{more}</ul>")
    return "".join(lines)


def llm_status(settings: rag.Settings) -> str:
    """Which models the LLM answerers use: the local GGUF file, and the OpenAI-compatible endpoint if one is
    configured; never the key."""
    local = f"local: {settings.local_model.name if settings.local_model else 'bundled Qwen2.5-Coder-0.5B-Instruct'}"
    base = os.environ.get("OPENAI_BASE_URL")
    if base:
        return f"{local} · OpenAI-compatible endpoint: {base} (model {settings.llm_model})"
    if os.environ.get("OPENAI_API_KEY"):
        return f"{local} · OpenAI API (model {settings.llm_model})"
    return f"{local} · no OpenAI-compatible endpoint configured (set OPENAI_BASE_URL / OPENAI_API_KEY)"


def _filters(year_from: float | None, year_to: float | None, author: str, category: str, has_code: str) -> Filters:
    return Filters(
        year_from=int(year_from) if year_from else None,
        year_to=int(year_to) if year_to else None,
        author=(author or "").strip() or None,
        category=None if category in ("", "any") else category,
        has_code={"yes": True, "no": False}.get(has_code),
    )


def build(settings: rag.Settings, wait: float | None = None) -> gr.Blocks:
    """The whole app. `wait` bounds, in seconds, how long the chat waits for the answerer to make progress
    (stream a piece or finish) before it shows an error: by default the LLM's whole retry budget and a minute."""
    if wait is None:
        wait = settings.llm_timeout * (settings.llm_retries + 1) + 60
    pipe = rag.pipeline(settings)
    pipe.warm()  # the first question should be quick, and every one after it
    categories = ["any", *pipe.categories()]

    def respond(
        question: str,
        chat: list[dict[str, Any]],
        history: list[Answer],
        backend: str,
        k: float,
        year_from: float | None,
        year_to: float | None,
        author: str,
        category: str,
        has_code: str,
    ) -> Iterator[tuple[list[dict[str, Any]], list[Answer], str]]:
        question = (question or "").strip()
        if not question:
            yield chat, history, ""
            return
        chat = [*chat, {"role": "user", "content": _e(question)}, {"role": "assistant", "content": "…"}]
        yield chat, history, ""
        events: queue.Queue[tuple[str, object]] = queue.Queue()
        filters = _filters(year_from, year_to, author, category, has_code)

        def work() -> None:
            try:
                answer = pipe.ask(
                    question, int(k), filters=filters, backend=backend, history=history[-3:],
                    on_text=lambda delta: events.put(("text", delta)),
                    on_status=lambda status: events.put(("status", status)),
                )  # fmt: skip
                events.put(("answer", answer))
            except RagError as exc:
                events.put(("error", str(exc)))
            except Exception as exc:  # a bug, or a crash in a library: a message in the chat, details in the log
                log.exception("answering %r failed", question)
                events.put(("error", f"Something went wrong while answering ({type(exc).__name__}: {exc})"))

        threading.Thread(target=work, daemon=True, name="rag-ui-answer").start()
        streamed = ""
        while True:
            try:
                # Bounded: a worker that neither writes nor finishes within the wait is given up on.
                kind, value = events.get(timeout=wait)
            except queue.Empty:
                log.error("answering %r: no progress for %.0f s", question, wait)
                kind, value = "error", f"No answer after {wait:.0f} s; the answerer may be stuck"
            if kind == "status" and not streamed:  # what is being done until the first words arrive
                chat[-1] = {"role": "assistant", "content": f'<div><p class="status">{_e(str(value))}</p></div>'}
                yield chat, history, ""
            elif kind == "status":
                continue
            elif kind == "text":
                streamed += str(value)
                chat[-1] = {"role": "assistant", "content": f"<div><p>{_e(streamed)}</p></div>"}
                yield chat, history, ""
            elif kind == "answer" and isinstance(value, Answer):
                chat[-1] = {"role": "assistant", "content": render_answer(value, len(history) + 1)}
                yield chat, [*history, value], ""
                return
            else:
                advice = " Switch the backend to extractive to answer offline." if backend != "extractive" else ""
                message = str(value).rstrip(".")
                chat[-1] = {
                    "role": "assistant",
                    "content": f'<div><p class="error">{_e(message)}.{_e(advice)}</p></div>',
                }
                yield chat, history, ""
                return

    def api_ask(question: str, backend: str = "extractive", k: float = 5) -> dict[str, object]:
        """The answer as JSON (Answer.to_dict()), for programs."""
        try:
            return pipe.ask(question, int(k), backend=backend).to_dict()
        except RagError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            log.exception("answering %r through the API failed", question)
            return {"error": f"Something went wrong while answering ({type(exc).__name__}: {exc})"}

    def browse(search: str, author: str, year: float | None) -> list[list[str]]:
        papers = rag.list_papers(
            search=search or None, author=author or None, year=int(year) if year else None, settings=settings
        )
        return [
            [
                p.paper_id,
                p.date or "",
                p.title or "(untitled) " + p.abstract[:80],
                ", ".join(p.authors or []) + (" et al." if p.et_al else "")
                or (f"{p.n_authors} authors" if p.n_authors else ""),
                p.category or "",
                {True: "yes", False: "no", None: ""}[p.has_code],
                ", ".join(f"{s.file}#{s.position}" for s in p.sources),
            ]
            for p in papers
        ]

    def show_paper(table: Any, event: gr.SelectData) -> str:
        row = event.index[0] if isinstance(event.index, list | tuple) else event.index
        paper_id = table.iloc[row, 0] if hasattr(table, "iloc") else table[row][0]
        paper = pipe.paper(str(paper_id))
        if paper is None:
            return ""
        title = _e(paper.title or "(untitled)")
        return f'<div class="card"><b>{title}</b><blockquote>{_e(paper.abstract)}</blockquote></div>'

    def add_papers(upload: Any, format_name: str, progress: Any = gr.Progress()) -> tuple[str, list[list[str]]]:  # noqa: B008
        """Ingest an uploaded file (any format rag.formats reads) and say what it added."""
        if upload is None:
            return "Choose a file to add first.", browse("", "", None)
        path = Path(upload if isinstance(upload, str) else upload.name)

        def step(stage: str, done: int, total: int) -> None:
            if stage == "wait":
                progress(None, desc="waiting for another ingest into this store to finish")
            elif stage.startswith("read "):
                progress((done, total), desc=f"{stage}: {done:,} of {total:,} bytes")
            else:
                progress((done, total), desc=f"{stage}: {done} of {total} papers")

        options = Options(format=None if format_name == "detect" else format_name)
        try:
            report = rag.ingest([path], settings=settings, options=options, progress=step)
        except RagError as exc:
            try:
                listed = browse("", "", None)
            except RagError:  # the store itself failed: the table cannot be read either, and the error says why
                listed = []
            return f'<p class="error">{_e(exc)}</p>', listed
        return _ingest_summary(report), browse("", "", None)

    def latest_report() -> str:
        path = settings.home / "eval" / "report.html"
        if not path.exists():
            return "<p>No evaluation report yet: run <code>rag eval</code>.</p>"
        page = path.read_text(encoding="utf-8")
        match = re.search(r"<body>(.*)</body>", page, re.S)
        return match.group(1) if match else page  # the report escapes everything it shows

    with gr.Blocks(title="Paper abstracts: cited answers") as app:
        gr.Markdown("## Ask the paper abstracts\nEvery sentence of an answer cites the abstracts it rests on.")
        with gr.Tab("Ask"), gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Answers", height=560, sanitize_html=True, latex_delimiters=[], elem_id="chat"
                )
                history = gr.State([])
                question = gr.Textbox(label="Question", placeholder="Ask about the papers…", elem_id="question")
                with gr.Row():
                    send = gr.Button("Ask", variant="primary", elem_id="ask")
                    clear = gr.Button("New conversation")
                gr.Examples(EXAMPLES, inputs=question, label="Try")
            with gr.Column(scale=2):
                backend = gr.Radio(["extractive", "local", "openai"], value=settings.resolved_backend, label="Answerer")
                gr.Markdown(_e(llm_status(settings)), elem_id="llm-status")
                k = gr.Slider(1, 20, value=5, step=1, label="Passages (k)")
                with gr.Accordion("Filters", open=False):
                    year_from = gr.Number(label="From year", precision=0, value=None)
                    year_to = gr.Number(label="To year", precision=0, value=None)
                    author = gr.Textbox(label="Author")
                    category = gr.Dropdown(categories, value="any", label="Category")
                    has_code = gr.Radio(["any", "yes", "no"], value="any", label="Code listed")
        with gr.Tab("Corpus"):
            with gr.Row():
                search = gr.Textbox(label="Search titles and abstracts", elem_id="corpus-search")
                by_author = gr.Textbox(label="Author")
                year = gr.Number(label="Year", precision=0, value=None)
            table = gr.Dataframe(
                value=browse("", "", None),
                headers=["id", "date", "title", "authors", "category", "code", "found in"],
                datatype=["str"] * 7,
                interactive=False,
                wrap=True,
                elem_id="corpus-table",
            )
            detail = gr.HTML()
            with gr.Accordion("Add papers", open=False):
                gr.Markdown(
                    "A file of abstracts: an arXiv API result, the arXiv metadata snapshot, BibTeX, RIS, CSV, "
                    "JSON lines, OpenAlex works, or a scraped listing. Its papers can be asked about once it is in."
                )
                with gr.Row():
                    upload = gr.File(label="File", file_count="single", elem_id="add-file")
                    format_name = gr.Dropdown(["detect", *FORMATS], value="detect", label="Format")
                add = gr.Button("Add papers", elem_id="add-papers")
                added = gr.HTML(elem_id="add-summary")
        with gr.Tab("Evaluation"):
            report = gr.HTML(latest_report())
            gr.Button("Reload report").click(latest_report, outputs=report, api_visibility="private")

        inputs = [question, chatbot, history, backend, k, year_from, year_to, author, category, has_code]
        outputs = [chatbot, history, question]
        send.click(respond, inputs, outputs, concurrency_limit=4, api_visibility="private")
        question.submit(respond, inputs, outputs, concurrency_limit=4, api_visibility="private")
        clear.click(lambda: ([], []), outputs=[chatbot, history], api_visibility="private")
        for box in (search, by_author, year):
            box.change(browse, [search, by_author, year], table, api_visibility="private")
        table.select(show_paper, table, detail, api_visibility="private")
        add.click(add_papers, [upload, format_name], [added, table], concurrency_limit=1, api_visibility="private")
        api_question = gr.Textbox(visible=False)
        api_backend = gr.Textbox(visible=False)
        api_k = gr.Number(visible=False)
        api_out = gr.JSON(visible=False)
        api_question.submit(api_ask, [api_question, api_backend, api_k], api_out, api_name="ask", concurrency_limit=4)
    return app


def launch(settings: rag.Settings, host: str, port: int, auth: tuple[str, str] | None) -> None:
    """Build the app and serve it until interrupted."""
    app = build(settings)
    app.queue(default_concurrency_limit=4, max_size=64)
    print(f"rag ui: serving on http://{host}:{port}", flush=True)
    app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=False,
        show_error=False,
        quiet=True,
        css=CSS,
        footer_links=[],
    )
