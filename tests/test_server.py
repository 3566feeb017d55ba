"""Server mode: the same ingest against a real `chroma run` on 127.0.0.1, and a clear error when it is down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import rag
from rag.config import Settings
from rag.embedding import embedder_name
from rag.errors import StoreError
from rag.store import open_store
from tests.conftest import RAG_BIN, SEED, free_port, run_rag, serve_on_a_free_port, wait_http
from tests.openai_server import refusing_port

CHROMA_BIN = Path(sys.executable).parent / "chroma"


def start_chroma(path: Path, port: int | None = None) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    """`chroma run` persisting to `path` on 127.0.0.1, on `port` or a free one, once its heartbeat answers (its log
    in `path`); the process and its port."""
    path.mkdir(parents=True, exist_ok=True)
    log = path / "server.log"

    def start(port: int) -> subprocess.Popen:  # type: ignore[type-arg]
        with open(log, "a") as out:
            return subprocess.Popen(
                [str(CHROMA_BIN), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def ready(port: int, process: subprocess.Popen) -> None:  # type: ignore[type-arg]
        # An open port is not a server that answers: chroma binds before its API serves. (v1 answers 410 Gone.)
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", process, log, seconds=60)

    if port is None:
        return serve_on_a_free_port(start, ready)
    return serve_on_the_port(port, start, ready)


def serve_on_the_port(
    port: int,
    start: Callable[[int], subprocess.Popen],  # type: ignore[type-arg]
    ready: Callable[[int, subprocess.Popen], None],  # type: ignore[type-arg]
    tries: int = 30,
) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    """A server `start`ed on `port`, a port its clients were told, once `ready` says it answers. Right after a
    server on it stopped the port may still be taken (by its closing socket, or another process meanwhile): a
    server that exits before it is ready is started again, a second later, up to `tries` times."""
    for attempt in range(1, tries + 1):
        process = start(port)
        try:
            ready(port, process)
            return process, port
        except RuntimeError:
            if process.poll() is None:  # running but not answering: not a port taken
                process.terminate()
                process.wait(timeout=30)
                raise
            if attempt == tries:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real Chroma server on a free loopback port, persisting to a temporary folder."""
    process, port = start_chroma(tmp_path_factory.mktemp("chroma-server"))
    yield port
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_a_chroma_server_killed_during_an_ingest_is_one_line_and_the_next_ingest_completes(tmp_path: Path) -> None:
    server, port = start_chroma(tmp_path / "server")
    env = {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(port), "RAG_INGEST_BATCH": "8"}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_MODELS_DIR"}
    ingest = subprocess.Popen(
        [str(RAG_BIN), "ingest", str(SEED["002"])],
        env={**full_env, "RAG_HOME": str(tmp_path / "home"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ingest.stderr is not None
        first = ingest.stderr.readline()  # the first committed batch
        assert first.startswith("embed: 8/"), first
        server.kill()
        server.wait(timeout=30)
        _, rest = ingest.communicate(timeout=300)
    finally:
        ingest.kill()
    errors = [line for line in rest.splitlines() if line.startswith("error: ")]
    assert ingest.returncode == 1 and "Traceback" not in rest and len(errors) == 1, rest
    assert errors[0].startswith(f"error: the Chroma server at http://127.0.0.1:{port} stopped answering during a ")
    assert "start it again and run the command again" in errors[0]
    server, _ = start_chroma(tmp_path / "server", port)  # the same port (the clients were told it), once free
    try:
        again = run_rag("ingest", str(SEED["002"]), home=tmp_path / "home", env=env)
        assert again.returncode == 0, again.stderr
        assert "50 in store" in again.stdout and "new 0 · changed 0 · unchanged 50" not in again.stdout, again.stdout
        settings = Settings(home=tmp_path / "home", chroma_host="127.0.0.1", chroma_port=port)
        assert len(rag.list_papers(settings=settings)) == 50
    finally:
        server.terminate()
        server.wait(timeout=30)


def first_line(process: subprocess.Popen) -> str:  # type: ignore[type-arg]
    assert process.stderr is not None
    return process.stderr.readline()


@pytest.mark.slow
def test_two_clients_ingesting_into_one_server_take_turns_and_end_with_the_union(
    chroma_server: int, tmp_path: Path
) -> None:
    """Two `rag ingest` processes with homes of their own (as on two machines) into one server's collection. A
    lease left by a writer that was killed holds them both until it runs out, then they take turns."""
    folder = Path(__file__).parent / "data" / "formats"
    expected = json.loads((folder / "EXPECTED.json").read_text(encoding="utf-8"))
    halves = [["arxiv_query.xml", "zotero.bib"], ["snapshot.json", "export.ris", "papers.csv", "openalex_works.json"]]
    env = {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(chroma_server), "RAG_COLLECTION": "two-writers"}
    settings = Settings(home=tmp_path / "reader", chroma_host="127.0.0.1", chroma_port=chroma_server,
                        collection="two-writers")  # fmt: skip
    lease = open_store(settings, embedder_name(settings)).lease()
    assert lease is not None

    def dead_writers_lease(ends: float) -> None:
        # A holder on no host of ours: only its end tells that it is gone.
        lease._records.upsert(ids=["writer"], embeddings=[[0.0]], metadatas=[{"holder": "gone:1:x", "ends": ends}])

    dead_writers_lease(time.time() + 3600)  # it runs out when the test says, not when a clock does
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_MODELS_DIR"}
    writers = [
        subprocess.Popen(
            [str(RAG_BIN), "ingest", *(str(folder / name) for name in half)],
            env={**base, **env, "RAG_HOME": str(tmp_path / f"client-{n}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, half in enumerate(halves)
    ]
    firsts = [first_line(writer) for writer in writers]
    for first in firsts:  # however long each took to start, it found the lease held and waits
        assert first.startswith(
            f"waiting: another `rag ingest` is writing to the Chroma server at 127.0.0.1:{chroma_server}"
        ), firsts
    dead_writers_lease(time.time() - 1)  # now it has run out
    results = [writer.communicate(timeout=600) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], (firsts, results)
    stored = {" ".join((p.title or "").casefold().split()): sorted(p.files) for p in rag.list_papers(settings=settings)}
    assert stored == {" ".join(p["title"].casefold().split()): sorted(p["files"]) for p in expected["papers"]}
    store = open_store(settings, embedder_name(settings))
    assert store.count_chunks() == sum(sp.n_chunks for sp in store.papers().values()) > 0
    assert lease._current()[0] is None  # the last writer gave the lease up


@pytest.mark.slow
def test_ingest_against_a_chroma_server_is_idempotent_and_lists_the_papers(chroma_server: int, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", chroma_host="127.0.0.1", chroma_port=chroma_server)
    first = rag.ingest([SEED["000"], SEED["002"]], settings=settings)
    assert (first.new, first.papers_total, first.failed_files) == (61, 61, [])
    second = rag.ingest([SEED["000"], SEED["002"]], settings=settings)
    assert (second.new, second.unchanged, second.chunks_embedded) == (0, 61, 0)
    assert second.chunks_total == first.chunks_total
    assert len(rag.list_papers(author="Li Shen", settings=settings)) == 27  # grep -c "Li Shen" 002_*.txt
    assert not (tmp_path / "home" / "chroma").exists()  # nothing was written locally

    stats = rag.store_stats(settings)
    assert stats.server and stats.location == f"http://127.0.0.1:{chroma_server}" and stats.size_bytes is None


@pytest.mark.slow
def test_rag_stats_through_the_cli_reads_the_server_named_by_the_environment(
    chroma_server: int, tmp_path: Path
) -> None:
    env = {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(chroma_server), "RAG_COLLECTION": "cli-test"}
    ingest = run_rag("ingest", str(SEED["000"]), home=tmp_path, env=env)
    assert ingest.returncode == 0, ingest.stderr
    stats = run_rag("stats", home=tmp_path, env=env)
    assert stats.returncode == 0
    assert f"http://127.0.0.1:{chroma_server} (server, n/a (server))" in stats.stdout
    assert "papers     11" in stats.stdout


def test_an_unreachable_server_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    with refusing_port() as port:  # nothing listens here, and nothing can start to
        result = run_rag("stats", home=tmp_path, env={"RAG_CHROMA_PORT": str(port)})
        assert result.returncode == 1
        assert result.stderr.startswith(f"error: cannot reach the Chroma server at http://127.0.0.1:{port}")
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
        with pytest.raises(StoreError):
            rag.store_stats(Settings(home=tmp_path, chroma_host="127.0.0.1", chroma_port=port))


@pytest.mark.slow
def test_asking_through_a_chroma_server_gives_every_client_the_same_answer(chroma_server: int, tmp_path: Path) -> None:
    env = {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(chroma_server), "RAG_COLLECTION": "ask-test"}
    writer = Settings(
        home=tmp_path / "writer", chroma_host="127.0.0.1", chroma_port=chroma_server, collection="ask-test"
    )
    assert rag.ingest([SEED["002"]], settings=writer).failed_files == []
    question = "Which method makes sharpness-aware minimization cheaper by perturbing only a sparse set of weights?"
    title = "Make Sharpness-Aware Minimization Stronger: A Sparsified Perturbation Approach"
    answer = rag.ask(question, settings=writer.model_copy(update={"home": tmp_path / "reader"}))
    assert not answer.abstained and answer.citations[0].title == title
    cli = run_rag("ask", question, "--json", home=tmp_path / "cli", env=env)
    assert cli.returncode == 0, cli.stderr
    shown = json.loads(cli.stdout)
    assert shown["text"] == answer.text and shown["citations"][0]["title"] == title
    assert not (tmp_path / "reader" / "chroma").exists()
    assert not (tmp_path / "cli" / "chroma").exists()  # the clients keep no store of their own


@pytest.mark.slow
def test_a_client_keeps_only_a_cache_and_catches_up_with_another_clients_ingest(
    chroma_server: int, tmp_path: Path
) -> None:
    def client(name: str) -> Settings:
        return Settings(home=tmp_path / name, chroma_host="127.0.0.1", chroma_port=chroma_server, collection="two")

    writer, reader = client("writer"), client("reader")
    rag.ingest([SEED["002"]], settings=writer)
    pipe = rag.pipeline(reader)
    question = "Which papers study out-of-distribution detection with pre-trained networks?"
    first = pipe.ask(question, filters=rag.Filters(source_file=SEED["001"].name))
    assert first.passages == []  # nothing from 001 is stored yet
    assert not (tmp_path / "reader" / "chroma").exists()  # a cache of records and keywords, no store

    rag.ingest([SEED["001"]], settings=writer)  # another client adds a file
    later = pipe.ask(question, filters=rag.Filters(source_file=SEED["001"].name))  # the same, long-lived pipeline
    assert later.passages and all(SEED["001"].name in p.paper.files for p in later.passages)
    again = rag.pipeline(client("third")).ask(question, filters=rag.Filters(source_file=SEED["001"].name))
    assert again.text == later.text and [c.chunk_id for c in again.citations] == [c.chunk_id for c in later.citations]


def test_a_server_that_exits_before_it_is_ready_is_started_again_on_another_port(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    started: list[int] = []

    def start(port: int) -> subprocess.Popen:  # type: ignore[type-arg]
        started.append(port)  # the first exits at once, as a server whose port was taken meanwhile does
        args = ["-c", "raise SystemExit(1)"] if len(started) == 1 else ["-m", "http.server", str(port)]
        return subprocess.Popen([sys.executable, *args, *(["--bind", "127.0.0.1"] if len(started) > 1 else [])],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    process, port = serve_on_a_free_port(
        start, lambda port, process: wait_http(f"http://127.0.0.1:{port}/", process, log, seconds=30)
    )
    try:
        assert len(started) == 2 and port == started[1]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_server_restarted_on_its_port_while_that_is_still_taken_is_started_again_until_it_binds(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    taken = socket.socket()  # the port the last server had, not free yet
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    started: list[subprocess.Popen] = []  # type: ignore[type-arg]

    def start(port: int) -> subprocess.Popen:  # type: ignore[type-arg]
        if len(started) == 2:
            taken.close()  # the port comes free after two servers found it taken
        args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        started.append(subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return started[-1]

    try:
        process, bound = serve_on_the_port(
            port, start, lambda port, process: wait_http(f"http://127.0.0.1:{port}/", process, log, seconds=30)
        )
        try:
            assert bound == port and len(started) == 3
            assert [p.returncode for p in started[:2]] == [1, 1]  # both exited: the port was taken
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        taken.close()


def test_the_free_port_helper_gives_a_port_it_does_not_hold_itself() -> None:
    port = free_port()
    assert 1024 <= port <= 65535  # a real port of the ephemeral range, never 0 ("any port") or a privileged one
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the helper closed its own socket
        sock.listen()
        assert sock.getsockname() == ("127.0.0.1", port)
