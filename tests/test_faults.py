"""Faults in the middle of an ingest: a disk that fills up (a file size limit, RLIMIT_FSIZE, in the child that
ingests) while the catalogue or the store writes gives one line naming what failed and what to do, and the next
run completes the store."""

from __future__ import annotations

import re
import resource
import signal
from pathlib import Path

from tests.conftest import SEED, run_rag


def _limited(size: int):  # type: ignore[no-untyped-def]
    def limit() -> None:  # in the child: a write past `size` bytes fails with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


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
