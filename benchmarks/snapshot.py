"""Reading the arXiv metadata snapshot: records/s and peak memory as the file grows, with a same-run baseline.

    .venv/bin/python benchmarks/snapshot.py --sizes 20000 100000 300000 --selected 1000 --runs 3 [--ingest]

Each size is a snapshot file made here in the snapshot's documented schema (id, submitter, authors, title,
comments, journal-ref, doi, report-no, categories, license, abstract, versions, update_date, authors_parsed): the
abstracts are the shipped corpus's, each with its record number appended so that every record is a distinct
paper, hard-wrapped and indented as the snapshot writes them. Exactly `--selected` records, spread evenly through
the file, are listed under cs.LG; the rest under other categories.

Measured, each in a fresh child process so that its peak resident memory is its own:
* baseline: `json.loads` of every line, keeping nothing: the least any reader of the file must do;
* read: `rag.formats.read_file` with the category cs.LG, as `rag ingest --category cs.LG` reads the file;
* with `--ingest`: the whole `rag ingest FILE --category cs.LG` as a cold command into an empty store (embedding the
  selected papers dominates it).
The file is read a line at a time, so peak memory should stay flat as the file grows and the selection does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from page import printed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_snapshot(path: Path, size: int, selected: int) -> None:
    """`size` records in the snapshot's schema, `selected` of them (evenly spread) under cs.LG."""
    from rag.config import DEFAULT_CORPUS_DIR
    from rag.corpus import merge_records, parse_file

    records = [r for file in sorted(DEFAULT_CORPUS_DIR.glob("*.txt")) for r in parse_file(file).records]
    papers = [p for p in merge_records(records) if p.title and p.authors]
    every = max(1, size // selected)
    with path.open("w", encoding="utf-8") as out:
        for n in range(size):
            paper = papers[n % len(papers)]
            abstract = f"{paper.abstract} (Record {n}.)"
            month, number = divmod(n, 99_999)
            row = {
                "id": f"{7 + month // 12:02d}{month % 12 + 1:02d}.{number + 1:05d}",
                "submitter": (paper.authors or ["A. Nonymous"])[0],
                "authors": ", ".join(paper.authors or []),
                "title": paper.title,
                "comments": "10 pages, 3 figures",
                "journal-ref": None,
                "doi": None,
                "report-no": None,
                "categories": "cs.LG stat.ML" if n % every == 0 and n // every < selected else "math.PR cs.IT",
                "license": "http://arxiv.org/licenses/nonexclusive-distrib/1.0/",
                "abstract": "  " + textwrap.fill(abstract, 78, break_on_hyphens=False).replace("\n", "\n  ") + "\n",
                "versions": [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}],
                "update_date": "2008-11-13",
                "authors_parsed": [[a.split()[-1], " ".join(a.split()[:-1]), ""] for a in paper.authors or []],
            }
            out.write(json.dumps(row) + "\n")


def cpu_name() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "unknown CPU")


def child(mode: str, path: str) -> None:
    """Run one measurement in this (child) process and print its records, seconds and peak RSS as JSON. The
    import is made before the clock starts: a command pays it once, whatever the file's size."""
    from rag.formats import Options, read_file

    start = time.perf_counter()
    if mode == "baseline":
        with open(path, "rb") as handle:
            count = sum(1 for line in handle if json.loads(line) is not None)
        kept = 0
    else:
        parsed = read_file(Path(path), Options(categories=frozenset({"cs.lg"})))
        kept = len(parsed.records)
        count = 0  # the parent knows how many lines the file has
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": count, "kept": kept, "seconds": seconds, "peak_mb": peak}))


def measure(mode: str, path: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def ingest(path: Path) -> dict[str, float]:
    """A cold `rag ingest FILE --category cs.LG` into an empty store: seconds and the child's peak RSS."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "RAG_HOME": home}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "rag"), "ingest", str(path), "--category", "cs.LG"],
            env=env, capture_output=True, check=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "peak_mb": max(before, after) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--selected", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ingest", action="store_true", help="also time the whole cold ingest command")
    parser.add_argument("--page", action="store_true", help="also write the figures into docs/benchmarks.md")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with printed("snapshot", args.page):
        print(f"{cpu_name()}; medians of {args.runs} runs; {args.selected} records under cs.LG in each file")
        header = f"{'records':>9} {'MB':>7} {'baseline rec/s':>15} {'read rec/s':>11} {'ratio':>6} "
        header += f"{'baseline peak MB':>17} {'read peak MB':>13}"
        print(header + ("  ingest s / peak MB" if args.ingest else ""))
        with tempfile.TemporaryDirectory() as base:
            for size in args.sizes:
                path = Path(base) / f"snapshot-{size}.json"
                make_snapshot(path, size, args.selected)
                runs = {mode: [measure(mode, path) for _ in range(args.runs)] for mode in ("baseline", "read")}
                speed = {m: statistics.median(size / r["seconds"] for r in rows) for m, rows in runs.items()}
                peak = {m: statistics.median(r["peak_mb"] for r in rows) for m, rows in runs.items()}
                assert all(r["kept"] == args.selected for r in runs["read"]), runs["read"]
                line = f"{size:>9,} {path.stat().st_size / 2**20:>7.0f} {speed['baseline']:>15,.0f} "
                line += f"{speed['read']:>11,.0f} {speed['read'] / speed['baseline']:>6.2f} "
                line += f"{peak['baseline']:>17.0f} {peak['read']:>13.0f}"
                if args.ingest:
                    done = ingest(path)
                    line += f"  {done['seconds']:.1f} s / {done['peak_mb']:.0f} MB"
                print(line, flush=True)
                path.unlink()


if __name__ == "__main__":
    main()
