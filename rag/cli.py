"""The `rag` command: thin click commands over the library; a RagError becomes one line and exit code 1."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from rag import api
from rag.config import apply_offline_environment, load_settings
from rag.errors import RagError
from rag.formats import FORMATS, Options

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def user_errors(command: F) -> F:
    """Print a RagError as one line on stderr and exit 1; anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RagError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted; the next `rag ingest` completes whatever was left half-done")

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Ask questions of a collection of machine-learning paper abstracts."""
    apply_offline_environment()  # this process is the program's own


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--prune", is_flag=True, help="Remove stored papers that are no longer in the given files.")
@click.option(
    "--format",
    "format_name",
    type=click.Choice(FORMATS, case_sensitive=False),
    help="Read every file in this format [default: told by each file's content and extension].",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="For CSV and JSON lines: the column holding FIELD, e.g. --field abstract=summary (repeatable).",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Only papers listed under this category, e.g. cs.LG (repeatable: any of them).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many papers from all the files.")
@user_errors
def ingest(
    paths: tuple[Path, ...],
    prune: bool,
    format_name: str | None,
    fields: tuple[str, ...],
    categories: tuple[str, ...],
    limit: int | None,
) -> None:
    """Parse, chunk, embed and store PATHS (files or folders; the shipped corpus when none): the scraped
    listings, arXiv API feeds, the arXiv metadata snapshot, BibTeX, RIS, CSV, JSON lines or OpenAlex works."""
    from rich.console import Console

    try:
        mapped = Options.parse_fields(fields)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--field") from None
    options = Options(
        format=format_name.casefold() if format_name else None,
        fields=mapped,
        categories=frozenset(c.casefold() for c in categories),
        limit=limit,
    )
    settings = load_settings()
    console = Console(stderr=True)
    where = (
        "the Chroma server at {}:{}".format(*settings.chroma_address) if settings.server_mode else str(settings.home)
    )
    with _progress(console, where) as progress:
        report = api.ingest(list(paths) or None, prune=prune, settings=settings, progress=progress, options=options)
    for problem in report.problems:
        if problem.line is not None:
            click.echo(f"warning: {problem}", err=True)
    for failed in report.failed_files:
        click.echo(f"error: {failed.error}", err=True)
    good = [f for f in report.files if f.error is None]
    seconds = report.seconds["total"]
    click.echo(f"ingested {len(good)} of {len(report.files)} files in {seconds:.1f} s")
    click.echo(
        f"papers  found {report.found} · new {report.new} · changed {report.changed} · "
        f"unchanged {report.unchanged} · removed {report.removed} · {report.papers_total} in store"
    )
    click.echo(f"chunks  {report.chunks_total} in store · {report.chunks_embedded} embedded this run")
    if report.failed_files:
        sys.exit(1)


class _progress:
    """A progress bar on a terminal; elsewhere one line per committed batch (a log shows how far it got)."""

    def __init__(self, console: Any, where: str = "the store") -> None:
        self.console = console
        self.where = where
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Callable[[str, int, int], None]:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        """`stage` is "embed" (papers stored of those to store), "read FILE" (bytes read of the file's size) or
        "wait" (0 of 1 while another ingest writes to the same store, 1 of 1 when it has finished)."""
        if stage == "wait":
            if not done:
                message = f"waiting: another `rag ingest` is writing to {self.where}; this one starts after it"
                click.echo(message, err=True)
            return
        if self.bar is None:
            if done and stage == "embed":
                click.echo(f"{stage}: {done}/{total} papers stored", err=True)
            elif done and done == total and stage.startswith("read "):
                click.echo(f"{stage}: {total:,} bytes", err=True)
            elif done and done == total:
                click.echo(f"{stage}: {done}/{total}", err=True)
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task("chunk, embed, store" if stage == "embed" else stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)  # an ingest plans window by window

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@main.command()
@click.argument("question")
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 50),
    help="Passages to retrieve [default: 5; 8 for questions about several papers].",
)
@click.option(
    "--backend",
    type=click.Choice(["extractive", "openai", "local"]),
    help="Who writes the answer [default: RAG_BACKEND].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@click.option("--year-from", type=int, metavar="Y", help="Only papers published in year Y or later.")
@click.option("--year-to", type=int, metavar="Y", help="Only papers published in year Y or earlier.")
@click.option("--author", metavar="NAME", help="Only papers with an author whose name contains NAME.")
@click.option(
    "--category",
    metavar="CODE",
    help="Only papers listed under this arXiv category, primary or cross-listed (e.g. LG, cs.LG).",
)
@click.option("--has-code/--no-code", default=None, help="Only papers listed with (or without) code.")
@click.option("--source-file", metavar="FILE", help="Only papers found in this corpus file.")
@click.option("--explain", is_flag=True, help="Also show why each paper ranked where it did: every signal's value.")
@user_errors
def ask(
    question: str,
    k: int | None,
    backend: str | None,
    as_json: bool,
    year_from: int | None,
    year_to: int | None,
    author: str | None,
    category: str | None,
    has_code: bool | None,
    source_file: str | None,
    explain: bool,
) -> None:
    """Answer QUESTION from the stored abstracts, every sentence cited, then list the sources."""
    from rich.console import Console

    from rag.filters import Filters

    filters = Filters(
        year_from=year_from,
        year_to=year_to,
        author=author,
        category=category,
        has_code=has_code,
        source_file=source_file,
    )
    settings = load_settings()
    console = Console(stderr=True)
    streamed: list[str] = []
    live = None
    if console.is_terminal and not as_json:
        from rich.live import Live
        from rich.text import Text

        live = Live(Text(""), console=console, transient=True, refresh_per_second=12)
        live.start()

    def on_text(delta: str) -> None:
        streamed.append(delta)
        if live is not None:
            live.update(Text("".join(streamed), style="dim"))

    def on_status(status: str) -> None:  # shown on the terminal until the first words arrive
        if live is not None and not streamed:
            live.update(Text(status, style="dim italic"))

    try:
        answer = api.ask(
            question, k, filters=filters, backend=backend, settings=settings, on_text=on_text, on_status=on_status
        )
    finally:
        if live is not None:
            live.stop()
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    _print_answer(answer)
    if explain:
        _print_ranking(answer)


def _print_ranking(answer: Any) -> None:
    """The retrieved papers in rank order, each with its fused score and every signal behind it."""
    from rag.ranking import SIGNALS, WEIGHTS

    ranked = [p for p in answer.passages if not p.expanded]
    if not ranked:
        return
    click.echo("\nRanking (score = weighted mean of the signals; weights " + ", ".join(
        f"{name} {WEIGHTS[name]}" for name in SIGNALS) + ")")  # fmt: skip
    click.echo("     " + f"{'score':>7}" + "".join(f"{name:>9}" for name in SIGNALS) + f"{'rerank':>8}  paper")
    for n, passage in enumerate(ranked, 1):
        values = "".join(f"{passage.signals.get(name, float('nan')):>9.3f}" for name in SIGNALS)
        rerank = f"{passage.rerank:>8.3f}" if passage.rerank is not None else f"{'':>8}"
        title = (passage.paper.title or passage.paper.abstract[:50] + "…")[:60]
        click.echo(f"[{n:>2}] {passage.score:>7.3f}{values}{rerank}  {title}")


def _print_answer(answer: Any) -> None:
    """The answer, its flagged sentences, then the numbered sources with their passages."""
    import textwrap

    width = 100
    click.echo(textwrap.fill(answer.text, width))
    flagged = [s for s in answer.sentences if not s.supported]
    if flagged and not answer.abstained:
        click.echo()
        for sentence in flagged:
            why = "; ".join(sentence.problems) or f"support {sentence.support:.2f}"
            click.echo(textwrap.fill(f"unsupported: {sentence.text} ({why})", width, subsequent_indent="  "))
    if answer.removed_markers:
        marks = "".join(f"[{n}]" for n in answer.removed_markers)
        click.echo(f"removed markers {marks}: they pointed at no retrieved passage")
    if not answer.citations:
        return
    click.echo("\nSources")
    for citation in answer.citations:
        title = citation.title or "(untitled)"
        click.echo(f"[{citation.number}] {title}")
        authors = ", ".join(citation.authors or []) or (f"{citation.n_authors} authors" if citation.n_authors else "")
        where = ", ".join(f"{s.file}#{s.position}" for s in citation.sources)
        facts = " · ".join(
            x
            for x in (authors, citation.date or "", citation.category or "", citation.identifier, citation.url, where)
            if x
        )
        click.echo(textwrap.fill(facts, width, initial_indent="    ", subsequent_indent="    "))
        click.echo(textwrap.fill(f"“{citation.passage}”", width, initial_indent="    ", subsequent_indent="    "))


@main.command(name="eval")
@click.option(
    "--questions",
    "questions_path",
    type=click.Path(path_type=Path),
    help="JSONL questions [default: the development set].",
)
@click.option(
    "--backend",
    type=click.Choice(["extractive", "openai", "local"]),
    help="Who writes the answers [default: RAG_BACKEND].",
)
@click.option(
    "--answers", "answers_path", type=click.Path(path_type=Path), help="Score answers produced elsewhere (JSONL)."
)
@click.option("--judge", type=click.Choice(["offline", "openai"]), default="offline", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Folder for report.json/.md/.html [default: RAG_HOME/eval]."
)
@click.option(
    "--compare", "compare_path", type=click.Path(path_type=Path), help="An older report.json to compare with."
)
@click.option(
    "--fail-under",
    multiple=True,
    metavar="METRIC=VALUE",
    help="Exit 1 when a metric (overall, or TYPE.METRIC) is below VALUE.",
)
@click.option(
    "--fail-above",
    multiple=True,
    metavar="METRIC=VALUE",
    help="Exit 1 when a metric that must stay low (e.g. false_abstention) is above VALUE.",
)
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(path_type=Path),
    help='A JSON file {"at_least": {METRIC: VALUE}, "at_most": {METRIC: VALUE}} (a flat object: minimums).',
)
@click.option(
    "--split",
    type=click.Choice(["tune", "test"]),
    help="Only the questions of one half: `tune` (what thresholds and weights are fitted on) or `test` (never).",
)
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True, help="Questions answered at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option(
    "--judge-check", is_flag=True, help="Also measure the judge on faithful and corrupted claims from the corpus."
)
@user_errors
def eval_command(
    questions_path: Path | None,
    backend: str | None,
    answers_path: Path | None,
    judge: str,
    out: Path | None,
    compare_path: Path | None,
    fail_under: tuple[str, ...],
    fail_above: tuple[str, ...],
    baseline_path: Path | None,
    split: str | None,
    workers: int,
    as_json: bool,
    judge_check: bool,
) -> None:
    """Score answers to a question set (the development questions by default): retrieval, citations,
    faithfulness, key facts, abstention."""
    from rich.console import Console

    import rag.evaluation.report as reports
    from rag.errors import ConfigError
    from rag.evaluation.judge_check import run_judge_check
    from rag.evaluation.judges import make_judge
    from rag.evaluation.runner import evaluate

    settings = load_settings()
    if questions_path is None:
        from importlib import resources

        questions_path = Path(str(resources.files("rag.evaluation").joinpath("questions.jsonl")))
    thresholds = _thresholds(fail_under, fail_above, baseline_path)
    old = None
    if compare_path is not None:
        try:
            old = json.loads(compare_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--compare {compare_path}: not a readable report.json ({exc})") from exc
    console = Console(stderr=True)
    with _progress(console) as progress:
        report = evaluate(
            questions_path,
            settings=settings,
            backend=backend,
            judge=judge,
            answers_path=answers_path,
            workers=workers,
            split=split,
            progress=lambda done, total: progress("questions", done, total),
        )
        if judge_check:
            pipe = api.pipeline(settings)
            report.judge_check = run_judge_check(make_judge(judge, settings, pipe.embedder), pipe)
    folder = out or settings.home / "eval"
    paths = reports.write(report, folder)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(reports.markdown(report).rstrip())
        click.echo(f"\nreports: {paths['json']}, {paths['md']}, {paths['html']}")
        if old is not None:
            click.echo("\n" + reports.compare(old, report))
    failed = _below(report, thresholds)
    if failed:
        for line in failed:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)


def _thresholds(
    fail_under: tuple[str, ...], fail_above: tuple[str, ...], baseline_path: Path | None
) -> dict[tuple[str, str], float]:
    """(metric, "under" | "above") → the bound it must not cross."""
    from rag.errors import ConfigError

    thresholds: dict[tuple[str, str], float] = {}
    if baseline_path is not None:
        try:
            data = json.loads(baseline_path.read_text())
            data.pop("about", None)
            if "at_least" in data or "at_most" in data:
                thresholds.update({(k, "under"): float(v) for k, v in data.get("at_least", {}).items()})
                thresholds.update({(k, "above"): float(v) for k, v in data.get("at_most", {}).items()})
            else:
                thresholds.update({(k, "under"): float(v) for k, v in data.items()})
        except (OSError, json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"--baseline {baseline_path}: expected a JSON object of metric: number, or at_least/at_most objects "
                f"of them ({exc})"
            ) from exc
    for option, side, items in (("--fail-under", "under", fail_under), ("--fail-above", "above", fail_above)):
        for item in items:
            metric, _, value = item.partition("=")
            try:
                thresholds[(metric.strip(), side)] = float(value)
            except ValueError as exc:
                raise ConfigError(f"{option} {item!r}: write METRIC=VALUE, e.g. citation_recall=0.9") from exc
    return thresholds


def _below(report: Any, thresholds: dict[tuple[str, str], float]) -> list[str]:
    """The bounds the report crosses, as messages."""
    from rag.errors import ConfigError

    failed = []
    for (name, side), bound in thresholds.items():
        scope, _, metric = name.rpartition(".")
        table = report.overall if not scope else report.by_type.get(scope)
        if table is None or metric not in table:
            option = "--fail-under" if side == "under" else "--fail-above"
            raise ConfigError(
                f"{option} {name}: no such metric; use e.g. citation_recall, false_abstention or "
                "factoid.key_fact_recall"
            )
        value = table[metric]
        if value is None or (value < bound if side == "under" else value > bound):
            shown = value if value is not None else "n/a"
            failed.append(f"{name} = {shown} is {'below' if side == 'under' else 'above'} {bound}")
    return failed


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--no-auth", is_flag=True, help="Serve a non-loopback address without RAG_UI_AUTH (anyone can ask).")
@user_errors
def ui(host: str, port: int, no_auth: bool) -> None:
    """Serve the chat UI (Gradio) on HOST:PORT."""
    import ipaddress
    import os

    from rag.errors import ConfigError

    auth = None
    credentials = os.environ.get("RAG_UI_AUTH")
    if credentials:
        user, _, password = credentials.partition(":")
        if not user or not password:
            raise ConfigError("RAG_UI_AUTH must be user:password")
        auth = (user, password)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and auth is None and not no_auth:
        raise ConfigError(
            f"--host {host} is reachable from other machines: set RAG_UI_AUTH=user:password, or pass --no-auth"
        )
    from rag.ui.app import launch

    launch(load_settings(), host, port, auth)


@main.command()
@click.option("--jsonl", is_flag=True, help="One JSON record per paper, with every field.")
@click.option(
    "--search", metavar="TEXT", help="Only papers with every word of TEXT starting a word of the title or abstract."
)
@click.option("--author", metavar="NAME", help="Only papers with an author whose name contains NAME.")
@click.option("--year", type=int, metavar="Y", help="Only papers published in year Y.")
@user_errors
def papers(jsonl: bool, search: str | None, author: str | None, year: int | None) -> None:
    """List the stored papers."""
    found = api.list_papers(search=search, author=author, year=year, settings=load_settings())
    if jsonl:
        for paper in found:
            click.echo(json.dumps(paper.model_dump(mode="json"), ensure_ascii=False))
        return
    if not found:
        click.echo("no stored paper matches" if (search or author or year) else "the store is empty; run `rag ingest`")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, box=None, pad_edge=False)
    for column in ("id", "date", "title", "authors", "found in"):
        table.add_column(column, overflow="fold")
    for paper in found:
        authors = ""
        if paper.authors:
            others = len(paper.authors) - 1
            authors = paper.authors[0] + (f" +{others}" if others else "") + (" et al." if paper.et_al else "")
        elif paper.n_authors:
            authors = f"{paper.n_authors} authors"
        where = ", ".join(f"{s.file}#{s.position}" for s in paper.sources)
        table.add_row(paper.paper_id, paper.date or "", paper.label(90), authors, where)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
    click.echo(f"{len(found)} papers")


@main.command()
@user_errors
def stats() -> None:
    """Papers per source file, chunks, store location and size, embedding model."""
    info = api.store_stats(load_settings())
    size = "n/a (server)" if info.size_bytes is None else f"{info.size_bytes / 1e6:.1f} MB"
    click.echo(f"store      {info.location} ({'server' if info.server else 'embedded'}, {size})")
    click.echo(f"embedding  {info.embedder}")
    click.echo(f"chunking   {info.chunking}")
    click.echo(f"papers     {info.papers}")
    click.echo(f"chunks     {info.chunks}")
    if info.index:
        settings = ", ".join(f"{key} {info.index[key]}" for key in ("max_neighbors", "ef_construction", "ef_search"))
        click.echo(f"index      HNSW, {settings}")
    if info.index_advice:
        click.echo(f"note       {info.index_advice}")
    for file, count in info.papers_per_file.items():
        click.echo(f"  {file}  {count} papers")


if __name__ == "__main__":
    main()
