"""Reports of an evaluation run: JSON (everything), a Markdown summary, a self-contained HTML page with plots
(inline SVG, no scripts) and the failing questions, and a metric-by-metric comparison with an older run."""

from __future__ import annotations

import html
import json
from pathlib import Path

from rag.evaluation.metrics import METRICS
from rag.evaluation.runner import Report, write_whole

SUMMARY = (
    *METRICS,
    "single_cited_gold",
    "abstention_precision",
    "abstention_recall",
    "false_abstention",
    "latency_p50",
    "latency_p95",
)


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown(report: Report) -> str:
    """Overall and per-type metrics as Markdown tables, then the judge check when there is one."""
    types = list(report.by_type)
    lines = [
        "# Evaluation",
        "",
        f"{report.overall['questions']} questions"
        + (f" ({report.config['split']} half)" if report.config.get("split") else "")
        + f" · backend {report.config['backend'] or 'answers file'} · "
        f"judge {report.config['judge']} · code {report.config['code']}",
        "",
        "| metric | overall | " + " | ".join(types) + " |",
        "| --- | --- | " + " | ".join("---" for _ in types) + " |",
    ]
    for metric in SUMMARY:
        cells = [_fmt(report.overall.get(metric))] + [_fmt(report.by_type[t].get(metric)) for t in types]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines.append(
        f"| questions | {report.overall['questions']} | "
        + " | ".join(str(report.by_type[t]["questions"]) for t in types)
        + " |"
    )
    if report.judge_check:
        lines += ["", "## Judge check", "", "| claims | cases | flagged |", "| --- | --- | --- |"]
        for kind, row in report.judge_check["per_kind"].items():
            lines.append(f"| {kind} | {row['cases']} | {row['flagged']} |")
        lines.append("")
        lines.append(
            f"Corrupted claims flagged: {_fmt(report.judge_check['corrupted_flagged'])} (target ≥ 0.90); "
            f"faithful claims flagged: {_fmt(report.judge_check['faithful_flagged'])} (target ≤ 0.05)."
        )
    if report.rankings:
        lines += ["", f"## Ranking ({report.rankings['questions']} questions about papers' content)", ""]
        lines += ["| ranking | hit@1 | hit@5 | hit@10 | MRR |", "| --- | --- | --- | --- | --- |"]
        for name, row in report.rankings.items():
            if isinstance(row, dict):
                lines.append(
                    f"| {name} | " + " | ".join(_fmt(row[key]) for key in ("hit@1", "hit@5", "hit@10", "mrr")) + " |"
                )
    failing = [row for row in report.rows if row.failures]
    lines += ["", f"{len(failing)} questions with a failure; see report.html for their answers."]
    for note in report.notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def _bars(title: str, values: dict[str, float | None], maximum: float = 1.0) -> str:
    """A horizontal bar chart as inline SVG."""
    rows = [(label, value) for label, value in values.items() if value is not None]
    height = 24 * len(rows) + 30
    parts = [f'<svg width="560" height="{height}" role="img" aria-label="{html.escape(title)}">']
    parts.append(f'<text x="0" y="16" font-weight="bold">{html.escape(title)}</text>')
    for index, (label, value) in enumerate(rows):
        y = 28 + index * 24
        width = 0 if not maximum else max(0.0, min(1.0, value / maximum)) * 300
        parts.append(f'<text x="0" y="{y + 14}">{html.escape(label)}</text>')
        parts.append(f'<rect x="190" y="{y}" width="{width:.1f}" height="18" fill="#4c78a8"/>')
        parts.append(f'<text x="{195 + width:.1f}" y="{y + 14}">{value:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(seconds: list[float]) -> str:
    if not seconds:
        return "<p>No latencies (answers read from a file).</p>"
    top = max(seconds) or 1.0
    bins = [0] * 20
    for value in seconds:
        bins[min(19, int(value / top * 20))] += 1
    tallest = max(bins) or 1
    parts = ['<svg width="560" height="170" role="img" aria-label="latency histogram">',
             '<text x="0" y="16" font-weight="bold">Latency per question (seconds)</text>']  # fmt: skip
    for index, count in enumerate(bins):
        height = count / tallest * 120
        parts.append(f'<rect x="{index * 27}" y="{140 - height:.1f}" width="24" height="{height:.1f}" fill="#f58518"/>')
    parts.append(f'<text x="0" y="160">0</text><text x="500" y="160">{top:.2f}</text></svg>')
    return "".join(parts)


def html_page(report: Report) -> str:
    """A self-contained page: summary tables, plots, and every failing question with its answer."""
    charts = []
    for metric in ("citation_recall", "faithfulness", "key_fact_recall", "hit", "mrr"):
        charts.append(_bars(f"{metric} per question type", {t: v.get(metric) for t, v in report.by_type.items()}))
    charts.append(_histogram([row.seconds for row in report.rows if row.seconds is not None]))
    if report.judge_check:
        per_kind = report.judge_check["per_kind"]
        rates = {k: (v["flagged"] / v["cases"] if v["cases"] else None) for k, v in per_kind.items()}
        charts.append(_bars("Judge check: share flagged (faithful should be low)", rates))
    failing = []
    for row in report.rows:
        if not row.failures:
            continue
        shown = report.answers.get(row.id) or {}
        citations = shown.get("citations") or []
        items = (
            "".join(
                f"<li>[{html.escape(str(c.get('number')))}] <b>{html.escape(str(c.get('title') or '(untitled)'))}</b>: "
                f"{html.escape(str(c.get('passage')))}</li>"
                for c in citations
            )
            if isinstance(citations, list)
            else "".join(f"<li>[{html.escape(str(n))}] {html.escape(str(t))}</li>" for n, t in citations.items())
        )
        failing.append(
            f"<tr><td>{html.escape(row.id)}</td><td>{html.escape(row.type)}</td>"
            f"<td>{html.escape('; '.join(row.failures))}</td><td>{html.escape(str(shown.get('text', '')))}"
            f"<ul>{items}</ul></td></tr>"
        )
    body = markdown_to_html_table(report)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}svg{display:block;margin:1em 0}</style>"
        f"</head><body><h1>Evaluation report</h1>{body}{''.join(charts)}"
        f"<h2>Failing questions ({len(failing)})</h2><table><tr><th>id</th><th>type</th><th>failure</th>"
        f"<th>answer and citations</th></tr>{''.join(failing)}</table></body></html>"
    )


def markdown_to_html_table(report: Report) -> str:
    """The summary table as HTML."""
    types = list(report.by_type)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in types)
    rows = "".join(
        f"<tr><td>{m}</td><td>{_fmt(report.overall.get(m))}</td>"
        + "".join(f"<td>{_fmt(report.by_type[t].get(m))}</td>" for t in types)
        + "</tr>"
        for m in SUMMARY
    )
    config = html.escape(json.dumps(report.config))
    return f"<p><code>{config}</code></p><table><tr><th>metric</th><th>overall</th>{head}</tr>{rows}</table>"


def write(report: Report, folder: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `folder`."""
    paths = {"json": folder / "report.json", "md": folder / "report.md", "html": folder / "report.html"}
    write_whole(paths["json"], json.dumps(report.as_dict(), indent=2, ensure_ascii=False), "the report")
    write_whole(paths["md"], markdown(report), "the report")
    write_whole(paths["html"], html_page(report), "the report")
    return paths


def compare(old: dict[str, object], new: Report) -> str:
    """A table of each overall metric in an older JSON report and in this run, with the change."""
    overall = old.get("overall")
    before: dict[str, object] = overall if isinstance(overall, dict) else {}
    lines = [f"{'metric':<22}{'before':>10}{'now':>10}{'change':>10}"]
    for metric in SUMMARY:
        a, b = before.get(metric), new.overall.get(metric)
        change = f"{b - a:+.3f}" if isinstance(a, int | float) and isinstance(b, int | float) else "–"
        lines.append(f"{metric:<22}{_fmt(a):>10}{_fmt(b):>10}{change:>10}")
    return "\n".join(lines)
