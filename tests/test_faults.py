"""Faults in the middle of a run: a disk that fills up (a file size limit, RLIMIT_FSIZE, in the child) while the
catalogue, the store or an evaluation writes gives one line naming what failed and what to do, keeps what was
written whole, and the next run completes the work."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SEED, run_rag


def _limited(size: int):  # type: ignore[no-untyped-def]
    def limit() -> None:  # in the child: a write past `size` bytes fails with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.slow
def test_a_write_refused_for_lack_of_space_is_one_line_and_the_next_run_completes_the_store(tmp_path: Path) -> None:
    whole = run_rag("ingest", str(SEED["000"]), home=tmp_path / "whole")  # also makes the model files it needs
    assert whole.returncode == 0, whole.stderr
    failed_in = set()
    # With this Chroma, a file limit of 300 kB stops the catalogue's first write, one of 450 kB a store write.
    for size in (300_000, 450_000):
        home = tmp_path / f"home-{size}"
        failed = run_rag("ingest", str(SEED["000"]), home=home, preexec_fn=_limited(size))
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
        assert failed.returncode == 1 and "Traceback" not in failed.stderr and len(errors) == 1, failed.stderr
        assert "run the command again" in errors[0]
        failed_in.add("catalogue" if "cannot write the catalogue" in errors[0] else errors[0].split(" refused")[0])
        again = run_rag("ingest", str(SEED["000"]), home=home)
        assert again.returncode == 0, again.stderr
        assert re.findall(r"(\d+) in store", again.stdout) == re.findall(r"(\d+) in store", whole.stdout)
        asked = run_rag("ask", "What does domain adaptation transfer?", home=home)
        assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr
    assert failed_in == {"catalogue", f"error: Chroma at {tmp_path / 'home-450000' / 'chroma'}"}


# `rag eval` in a child whose disk "fills up" once its store and catalogue are open (their files at their size).
_EVAL_WITH_A_FULL_DISK = """
import resource, signal, sys
import rag
from rag.cli import main
rag.pipeline().ask("warm up")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.argv = ["rag", *sys.argv[2:]]
main()
"""


@pytest.mark.slow
def test_a_full_disk_during_an_evaluation_is_one_line_and_keeps_the_cache_and_report_whole(  # type: ignore[no-untyped-def]
    full_store, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # a copy: the evaluation cache is written under its home, the shared store stays as read
    shutil.copytree(full_store[0].home, home)
    first = json.loads((REPO / "eval" / "questions.jsonl").read_text().splitlines()[0])
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({**first, "id": "q-full-disk"}) + "\n")
    out = tmp_path / "out"
    command = ["eval", "--questions", str(questions), "--backend", "extractive", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_MODELS_DIR"}
    env["RAG_HOME"] = str(home)

    def limited(size: int) -> subprocess.CompletedProcess[str]:
        code = [sys.executable, "-c", _EVAL_WITH_A_FULL_DISK, str(size), *command]
        return subprocess.run(code, env=env, capture_output=True, text=True, timeout=600)

    cache = home / "eval-cache"
    full = limited(8_000)  # an answer in the cache takes more
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert (
        full.stderr.startswith("error: cannot write the evaluation cache at ")
        and "run the command again" in full.stderr
    )
    assert len(full.stderr.strip().splitlines()) == 1, full.stderr
    assert not [path for path in cache.rglob("*") if path.is_file()], "no half-written answer, no partial file"

    done = run_rag(*command, home=home)
    assert done.returncode == 0, done.stderr
    [cached] = [path for path in cache.rglob("*") if path.is_file()]  # this test's home: its one answer
    assert cached.name.startswith("q-full-disk-")
    assert cached.stat().st_size > 8_000
    before = {path.name: path.read_text() for path in out.iterdir()}

    refused = limited(1_000)  # every answer comes from the cache; the report is what must be written
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot write the report at "), refused.stderr
    assert {path.name: path.read_text() for path in out.iterdir()} == before  # the last report, whole
