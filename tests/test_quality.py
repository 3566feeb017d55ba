"""The code reads as the style guide asks: ruff-clean and formatted, and mypy-clean on the library."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_and_the_code_is_formatted() -> None:
    lint = run(str(BIN / "ruff"), "check", "rag", "eval", "ui", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout
    formatting = run(str(BIN / "ruff"), "format", "--check", "rag", "eval", "ui", "tests", "benchmarks")
    assert formatting.returncode == 0, formatting.stdout


@pytest.mark.slow
def test_mypy_is_clean_on_the_library_with_evaluation_and_ui_as_imported() -> None:
    result = run(str(REPO / "scripts" / "typecheck"))
    assert result.returncode == 0, result.stdout
    # rag.evaluation and rag.ui are checked under the names the library imports them by, not skipped as missing.
    checked = int(re.search(r"(\d+) source files", result.stdout).group(1))  # type: ignore[union-attr]
    assert checked == len(list((REPO / "rag").rglob("*.py"))) + len(list((REPO / "eval").glob("*.py"))) + len(
        list((REPO / "ui").glob("*.py"))
    ), result.stdout


def test_the_readme_is_short_and_every_link_of_the_docs_resolves_to_a_file_of_the_repository() -> None:
    readme = REPO / "README.md"
    assert readme.stat().st_size <= 12_000
    pages = [readme, *sorted((REPO / "docs").glob("*.md"))]
    linked = set()
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_file() and path.is_relative_to(REPO), f"{page.name}: {target}"
            linked.add(path)
    assert {p.resolve() for p in pages[1:]} <= linked  # every docs page is reachable


def test_the_package_exports_what_users_call_and_not_the_stages_parts() -> None:
    import rag

    assert all(hasattr(rag, name) for name in rag.__all__)
    assert {"ask", "ingest", "list_papers", "Pipeline", "Answer", "Filters", "Origin", "RagError"} <= set(rag.__all__)
    internals = {"judge_claim", "split_answer", "paper_header", "parse_markers", "Embedder", "SUPPORT_THRESHOLD"}
    assert not internals & set(rag.__all__)
    assert rag.Origin.NO_EVIDENCE == "no-evidence" and rag.Answer.model_fields["origin"].default is rag.Origin.DRAFT
