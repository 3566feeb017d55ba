"""Documents embedded in child processes, so that an ingest's writes overlap its embedding.

Chroma's embedded client holds Python's global lock for the whole of a write, so a thread that embeds the next
batch while the main thread writes the last one makes no progress (measured: a pure-Python thread ran at 10% of
its speed beside a Chroma upsert). Child processes have locks of their own: the parent chunks and writes batch i
while the children embed batch i + 1, and the parent never imports torch. Two children of one torch thread each
share a 2-core machine better than one child of two threads, whose threads wait for each other at every
operation while the parent holds a core. Parent and children alternate strictly (one batch in flight), so no
pipe fills both ways.

The children serve every ingest of a process with the same model settings, and end with it.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rag.config import apply_offline_environment
from rag.errors import EmbeddingError


def _serve(conn: Connection, batch_size: int, precision: str, cache: Path | None, threads: int) -> None:
    """The child: embed each list of texts received, answer ("ok", float32 array) or ("error", message)."""
    import numpy as np
    import torch

    from rag.embedding import LocalEmbedder

    torch.set_num_threads(threads)

    embedder = LocalEmbedder(batch_size=batch_size, precision=precision, cache=cache)
    try:
        embedder.warm()  # load the model while the parent chunks the first batch
    except Exception as exc:  # told to the parent at its first batch
        failure: str | None = str(exc)
    else:
        failure = None
    while True:
        try:
            texts = conn.recv()
        except EOFError:  # the parent has gone: so does the child
            return
        if texts is None:
            return
        answer: tuple[str, Any]
        try:
            if failure is not None:
                raise EmbeddingError(failure)
            answer = ("ok", np.asarray(embedder.embed_documents(texts), dtype=np.float32))
        except Exception as exc:  # the parent raises it as its own error
            answer = ("error", str(exc))
        try:
            conn.send(answer)
        except OSError:  # the parent has gone while the batch was embedded
            return


class EmbeddingProcess:
    """A child process running the local model: `submit` a batch of texts, then `result` its vectors.

    The child is a fresh `python -c`, not a multiprocessing child: multiprocessing's spawn runs the parent's
    main script again in the child, which a script or notebook calling `rag.ingest` without a `__main__` guard
    cannot survive."""

    def __init__(self, batch_size: int, precision: str, cache: Path | None, threads: int) -> None:
        import os

        ours, theirs = socket.socketpair()
        with theirs:
            args = [
                str(theirs.fileno()),
                str(batch_size),
                precision,
                str(cache) if cache is not None else "",
                str(threads),
            ]
            self._process = subprocess.Popen(
                [sys.executable, "-c", "import sys, rag.worker as w; w.main(sys.argv[1:])", *args],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C at the terminal is the parent's to handle; it ends the child
                env={**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"},
            )
        self._conn = Connection(ours.detach())
        self._waiting = False

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def submit(self, texts: Sequence[str]) -> None:
        """Hand a batch to the child; it embeds while the caller does something else."""
        if self._waiting:  # an ingest that failed after its last submit: that result is nobody's
            self.result()
        try:
            self._conn.send(list(texts))
        except OSError as exc:
            raise self._ended() from exc
        self._waiting = True

    def result(self) -> list[list[float]]:
        """The unit vectors of the batch submitted last, waiting for them."""
        self._waiting = False
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._ended() from exc
        if status == "error":
            raise EmbeddingError(value)
        vectors: Any = value
        return vectors.tolist()

    def close(self) -> None:
        """End the child at once: it holds nothing but the model (unloading torch would take a second or two)."""
        self._process.kill()
        self._process.wait()
        self._conn.close()

    def _ended(self) -> EmbeddingError:
        self._waiting = False
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        return EmbeddingError(
            f"the embedding process ended (exit code {self._process.returncode}); nothing of the unfinished batch "
            "was stored: run `rag ingest` again"
        )


class EmbeddingPool:
    """Children that share each batch: every one embeds a share of it on its own cores."""

    def __init__(self, processes: list[EmbeddingProcess]) -> None:
        self.processes = processes
        self._size = 0

    @property
    def alive(self) -> bool:
        return all(process.alive for process in self.processes)

    def submit(self, texts: Sequence[str]) -> None:
        """Deal the texts out in turn (so that every share has long and short ones) and start every child."""
        texts = list(texts)
        self._size = len(texts)
        for index, process in enumerate(self.processes):
            process.submit(texts[index :: len(self.processes)])

    def result(self) -> list[list[float]]:
        """The unit vectors of the texts submitted last, in their order."""
        shares = [process.result() for process in self.processes]
        vectors: list[list[float]] = [[] for _ in range(self._size)]
        for index, share in enumerate(shares):
            vectors[index :: len(self.processes)] = share
        return vectors

    def close(self) -> None:
        for process in self.processes:
            process.close()


_pool: tuple[tuple[int, str, Path | None], EmbeddingPool] | None = None
_lock = threading.Lock()


def embedding_pool(batch_size: int, precision: str, cache: Path | None) -> EmbeddingPool:
    """This process's children for these model settings, started on first use (or again, if one died, or the
    settings changed: one pool at a time, each child holds a model): as many as there are cores, up to two,
    sharing the cores (torch's threads in one process wait for each other at every operation; two processes
    do not). Only the first makes the ONNX export, if it is missing."""
    import os

    global _pool
    key = (batch_size, precision, cache)
    with _lock:
        if _pool is not None and (_pool[0] != key or not _pool[1].alive):
            _pool[1].close()
            _pool = None
        if _pool is None:
            cores = os.cpu_count() or 1
            children = min(2, cores)
            threads = max(1, cores // children)
            processes = [
                EmbeddingProcess(batch_size, precision, cache if index == 0 else None, threads)
                for index in range(children)
            ]
            _pool = (key, EmbeddingPool(processes))
        return _pool[1]


@atexit.register
def close_pool() -> None:
    """End the children, if any."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool[1].close()
            _pool = None


def main(args: list[str]) -> None:
    """The child's entry point: socket fd, batch size, precision, models folder ("" for none), threads."""
    fd, batch, precision, cache, threads = args
    apply_offline_environment()
    _serve(Connection(int(fd)), int(batch), precision, Path(cache) if cache else None, int(threads))
