"""The `rag` command as a user runs it: exit codes, one-line errors, listings, and no network needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import rag
from rag.catalogue import open_catalogue
from rag.config import Settings
from rag.embedding import embedder_name
from rag.store import open_store
from tests.conftest import RAG_BIN, SEED, run_rag

PAPER_FIELDS = {
    "paper_id",
    "title",
    "abstract",
    "authors",
    "et_al",
    "n_authors",
    "date",
    "published",
    "upvotes",
    "category",
    "has_code",
    "organization",
    "sources",
    "arxiv_id",
    "doi",
    "url",
    "categories",
    "venue",
    "updated",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding 000 (one abstract per line) and 002 (arXiv listing), ingested by the command."""
    home = tmp_path_factory.mktemp("cli") / "home"
    result = run_rag("ingest", str(SEED["000"]), str(SEED["002"]), home=home)
    assert result.returncode == 0, result.stderr
    assert "papers  found 61 · new 61 · changed 0 · unchanged 0 · removed 0 · 61 in store" in result.stdout
    assert "embed: 61/61 papers stored" in result.stderr  # not a terminal: progress as log lines
    return home


def test_papers_jsonl_prints_one_record_per_paper_with_every_field(home: Path) -> None:
    result = run_rag("papers", "--jsonl", home=home)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 61 and all(set(r) == PAPER_FIELDS for r in records)
    radiance = next(r for r in records if r["title"] == "Compressing Volumetric Radiance Fields to 1 MB")
    assert radiance["authors"] == ["Lingzhi Li", "Zhen Shen", "Zhongshu Wang"] and radiance["et_al"] is True
    assert radiance["published"] == "2022-11-29" and radiance["sources"] == [
        {"file": SEED["002"].name, "position": 4, "line": 13}
    ]
    untitled = [r for r in records if r["title"] is None]
    assert len(untitled) == 11 and all(r["sources"][0]["file"] == SEED["000"].name for r in untitled)


@pytest.mark.parametrize(
    ("args", "count"),
    [
        (["--author", "enneng yang"], 4),
        (["--year", "2024"], 3),
        (["--search", "radiance field"], 4),
        (["--search", "radiance field", "--year", "2023"], 1),
        (["--search", "merging"], 3),  # grep -P "(?<!\w)merging": 3 papers; "emerging" is not a match
        (["--search", "MERG"], 4),  # word starts, any case: also "merge" and "merged"
        (["--author", "Nobody Atall"], 0),
    ],
)
def test_papers_filters_by_author_year_and_text(home: Path, args: list[str], count: int) -> None:
    result = run_rag("papers", "--jsonl", *args, home=home)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == count


def test_papers_table_and_stats_describe_the_store(home: Path) -> None:
    table = run_rag("papers", "--author", "Lingzhi Li", home=home)
    assert "Compressing Volumetric Radiance Fields to 1 MB" in table.stdout and table.stdout.endswith(
        "3 papers\n"
    )  # grep -c "Lingzhi Li" 002_*.txt
    stats = run_rag("stats", home=home)
    assert f"store      {home / 'chroma'} (embedded," in stats.stdout
    assert "embedding  all-MiniLM-L6-v2" in stats.stdout and "papers     61" in stats.stdout
    assert f"  {SEED['000'].name}  11 papers" in stats.stdout and f"  {SEED['002'].name}  50 papers" in stats.stdout


@pytest.mark.slow  # subprocess ingests
def test_ingest_reports_each_bad_file_in_one_line_ingests_the_rest_and_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SEED["000"], folder)
    (folder / "empty.txt").write_text("")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / "huge.txt").write_text("y" * (10 * 1024 * 1024))
    result = run_rag("ingest", str(folder), str(tmp_path / "gone.txt"), home=tmp_path / "home")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(errors) == sorted(
        [
            "error: empty.txt: empty file; nothing to ingest",
            "error: image.png: binary file (contains NUL bytes); pass the scraped text listing instead",
            "error: huge.txt: no paper could be read (lines layout); first problem: huge.txt line 1: 10,485,760 "
            "characters on one line, longer than any abstract (20,000); is this a listing?",
            f"error: {tmp_path / 'gone.txt'}: no such file or folder; check the path",
        ]
    )
    assert "Traceback" not in result.stderr
    assert "ingested 1 of 5 files" in result.stdout and "new 11" in result.stdout


@pytest.mark.slow  # subprocess ingests
def test_a_block_that_does_not_parse_is_a_warning_with_its_line(tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    text = SEED["003"].read_text(encoding="utf-8").replace("Sep 25, 2023", "Sep 31, 2023", 1)
    page.write_text(text, encoding="utf-8")
    result = run_rag("ingest", str(page), home=tmp_path / "home")
    assert result.returncode == 0
    assert "warning: page.txt line 215: no such date: 'Sep 31, 2023'; kept as written" in result.stderr
    assert "new 64" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RAG_CHUNK_TOKENS": "many"}, "error: RAG_CHUNK_TOKENS: Input should be a valid integer"),
        (
            {"RAG_EMBEDDING": "word2vec"},
            "error: RAG_EMBEDDING: RAG_EMBEDDING='word2vec': use 'local' or 'openai:<model>'",
        ),
        ({"RAG_CHUNK_OVERLAP": "500"}, "error: RAG_CHUNK_OVERLAP=500 must be smaller than RAG_CHUNK_TOKENS=128"),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_it(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = run_rag("stats", home=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_papers_on_an_empty_store_says_what_to_run(tmp_path: Path) -> None:
    result = run_rag("papers", home=tmp_path / "fresh")
    assert (result.returncode, result.stdout) == (0, "the store is empty; run `rag ingest`\n")
    stats = run_rag("stats", home=tmp_path / "fresh")
    assert stats.returncode == 0 and "papers     0" in stats.stdout
    assert not (tmp_path / "fresh").exists()  # reading never creates a store


# The second guard, for where network namespaces are refused: every socket a Python library opens or every name
# it resolves is checked by an audit hook; anything but loopback or a local socket is logged and refused.
NETWORK_GUARD = """
import ipaddress, os, sys

def _local(host):
    if host in (None, "", "localhost") or isinstance(host, bytes) and host == b"localhost":
        return True
    try:
        return ipaddress.ip_address(host if isinstance(host, str) else host.decode()).is_loopback
    except ValueError:
        return False

def _guard(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event in ("socket.connect", "socket.sendto") and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    if not _local(host):
        with open(os.environ["NETWORK_LOG"], "a") as log:
            log.write(f"{event} {host!r}\\n")
        raise OSError(f"network use refused by the test: {event} {host!r}")

sys.addaudithook(_guard)
from rag.cli import main
sys.argv = ["rag", *sys.argv[1:]]
main()
"""


def _namespaces_work() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rn", "true"]).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("guard", ["network namespace", "audit hook"])
def test_ingest_and_ask_work_with_no_network_at_all(guard: str, tmp_path: Path) -> None:
    import os
    import sys

    from tests.conftest import RAG_BIN

    if guard == "network namespace" and not _namespaces_work():
        pytest.skip("this kernel refuses network namespaces; the audit-hook case checks the same without them")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "HF_", "TIKTOKEN"))}
    env["RAG_HOME"] = str(tmp_path / "home")
    env["NETWORK_LOG"] = str(tmp_path / "network.log")
    runner = ["unshare", "-rn", str(RAG_BIN)] if guard == "network namespace" else [sys.executable, "-c", NETWORK_GUARD]
    ingest = subprocess.run([*runner, "ingest", str(SEED["000"])], env=env, capture_output=True, text=True)
    assert ingest.returncode == 0, ingest.stderr
    assert "new 11" in ingest.stdout
    ask = subprocess.run(
        [*runner, "ask", "What does domain adaptation transfer?"], env=env, capture_output=True, text=True
    )
    assert ask.returncode == 0, ask.stderr
    assert "[1]" in ask.stdout
    assert not (tmp_path / "network.log").exists(), (tmp_path / "network.log").read_text()


@pytest.mark.slow  # subprocess ingests
def test_two_ingests_into_one_home_at_once_end_with_the_union_of_their_papers(tmp_path: Path) -> None:
    """Two real `rag ingest` processes on different files of one home: each waits while the home is locked (here
    by the test, as by a running ingest), then they write one after the other, and the store holds every paper
    of both, those found in both files once, listing both."""
    import fcntl

    folder = Path(__file__).parent / "data" / "formats"
    expected = json.loads((folder / "EXPECTED.json").read_text(encoding="utf-8"))
    halves = [["arxiv_query.xml", "zotero.bib"], ["snapshot.json", "export.ris", "papers.csv", "openalex_works.json"]]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_MODELS_DIR"}
    with open(home / "ingest.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        writers = [
            subprocess.Popen(
                [str(RAG_BIN), "ingest", *(str(folder / name) for name in half)],
                env={**env, "RAG_HOME": str(home)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for half in halves
        ]
        for writer in writers:
            assert writer.stderr is not None
            assert writer.stderr.readline().startswith(f"waiting: another `rag ingest` is writing to {home}")
    results = [writer.communicate(timeout=600) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], results
    settings = Settings(home=home, chroma_host=None, chroma_port=None)
    by_title = {
        " ".join((p.title or "").casefold().split()): sorted(p.files) for p in rag.list_papers(settings=settings)
    }
    assert by_title == {" ".join(p["title"].casefold().split()): sorted(p["files"]) for p in expected["papers"]}
    store = open_store(settings, embedder_name(settings))
    assert store.count_chunks() == sum(sp.n_chunks for sp in store.papers().values()) > 0
    assert open_catalogue(settings).count() == len(expected["papers"])


def test_asking_before_any_ingest_says_the_store_is_empty_not_that_the_papers_do_not_answer(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    result = run_rag("ask", "Which papers merge fine-tuned models?", home=home)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: no papers are stored in {home / 'chroma'}: run `rag ingest` first\n"
    assert not home.exists()  # asking never creates a store


@pytest.mark.slow
def test_eval_judge_check_reports_how_many_faithful_and_corrupted_claims_the_judge_flags(
    home: Path, tmp_path: Path
) -> None:
    from rag.evaluation.judge_check import FAITHFUL, KINDS

    questions = tmp_path / "one.jsonl"
    dev = (Path(__file__).parents[1] / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions.write_text(next(line for line in dev if '"q-a-012"' in line) + "\n", encoding="utf-8")
    result = run_rag("eval", "--questions", str(questions), "--backend", "extractive", "--judge-check", "--out",
                     str(tmp_path / "out"), home=home)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    check = json.loads((tmp_path / "out" / "report.json").read_text())["judge_check"]
    per_kind = check["per_kind"]
    assert list(per_kind) == [*FAITHFUL, *KINDS] and all(row["cases"] > 0 for row in per_kind.values()), per_kind
    # What it prints is what it measured: a row per kind of claim, then the two rates against their targets.
    section = result.stdout[result.stdout.index("## Judge check") :]
    for kind, row in per_kind.items():
        assert f"| {kind} | {row['cases']} | {row['flagged']} |" in section
    corrupted = sum(per_kind[k]["flagged"] for k in KINDS) / sum(per_kind[k]["cases"] for k in KINDS)
    assert check["corrupted_flagged"] == round(corrupted, 4)
    assert (
        f"Corrupted claims flagged: {check['corrupted_flagged']:.3f} (target ≥ 0.90); "
        f"faithful claims flagged: {check['faithful_flagged']:.3f} (target ≤ 0.05)." in section
    )
    # The offline judge flags no abstract sentence cited to its own abstract, and every sentence of another one.
    assert per_kind["faithful"]["flagged"] == 0
    assert per_kind["other_abstract"]["flagged"] == per_kind["other_abstract"]["cases"]


@pytest.mark.slow
def test_ingest_prune_removes_the_papers_of_the_files_not_given_and_says_how_many(tmp_path: Path) -> None:
    from rag.corpus import parse_file

    records = [r for r in parse_file(SEED["002"]).records if r.title][:5]
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    for path, part in ((kept, records[:2]), (dropped, records[2:])):
        rows = [json.dumps({"title": r.title, "abstract": r.abstract, "authors": r.authors}) for r in part]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    home = tmp_path / "home"
    both = run_rag("ingest", str(kept), str(dropped), home=home)
    assert both.returncode == 0, both.stderr
    # Without --prune, a file not given keeps its papers.
    alone = run_rag("ingest", str(kept), home=home)
    assert "found 2 · new 0 · changed 0 · unchanged 2 · removed 0 · 5 in store" in alone.stdout, alone.stdout
    pruned = run_rag("ingest", "--prune", str(kept), home=home)
    assert pruned.returncode == 0, pruned.stderr
    assert "found 2 · new 0 · changed 0 · unchanged 2 · removed 3 · 2 in store" in pruned.stdout, pruned.stdout
    listed = [json.loads(line) for line in run_rag("papers", "--jsonl", home=home).stdout.splitlines()]
    assert sorted(p["title"] for p in listed) == sorted(r.title for r in records[:2])
    assert {s["file"] for p in listed for s in p["sources"]} == {"kept.jsonl"}


@pytest.mark.slow
def test_ui_no_auth_serves_beyond_loopback_with_no_login(home: Path, tmp_path: Path) -> None:
    """--no-auth matters only off loopback (test_ui: without it, --host 0.0.0.0 is refused), so the UI listens on
    every address and the test reaches it through loopback."""
    import urllib.request

    from tests.conftest import serve_on_a_free_port, wait_http

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_")) or k == "RAG_MODELS_DIR"}
    env.update(RAG_HOME=str(home), RAG_BACKEND="extractive")
    log = tmp_path / "ui.log"

    def start(port: int) -> subprocess.Popen:  # type: ignore[type-arg]
        with open(log, "w") as out:
            command = [str(RAG_BIN), "ui", "--host", "0.0.0.0", "--port", str(port), "--no-auth"]
            return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    process, port = serve_on_a_free_port(start, lambda port, p: wait_http(f"http://127.0.0.1:{port}/", p, log))
    try:
        assert f"rag ui: serving on http://0.0.0.0:{port}" in log.read_text()
        url = f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url + "gradio_api/login_check", timeout=10) as checked:
            assert checked.status == 200  # 401 when RAG_UI_AUTH asks for a login
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = json.loads(response.read())
        assert "auth_required" not in config and config["components"], sorted(config)
    finally:
        process.terminate()
        process.wait(timeout=30)
