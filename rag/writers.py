"""One writer at a time per store: a file lock beside an embedded store, a lease record on a Chroma server.

A second `rag ingest` waits for the first (told as the progress stage "wait"), then ingests against what the first
stored, so two writers end with the union of their papers. An embedded store's lock is an flock on
`RAG_HOME/ingest.lock`, which the kernel releases when its holder dies. A server is shared by clients on other
machines, so its lock lives in the server: one record in a collection of its own naming the writer and when its
lease runs out. The writer renews it as it commits batches; a writer that was killed stops renewing, and the next
one takes over once the lease has run out, or at once where the writer was a process of the same machine that has
ended. Chroma has no compare-and-swap, so a writer that finds the lease free
writes its name, waits TAKE_SETTLE_S for a racing writer's record to land, and reads the record back: only the
writer it names goes on.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from rag.config import Settings
from rag.errors import StoreError

Progress = Callable[[str, int, int], None]
# How long a server lease lasts unless renewed: far longer than one batch takes to embed and commit on a slow CPU.
LEASE_S = 60.0
# How often a waiting writer looks at the lease again, and how long a writer that took it waits before reading it
# back.
POLL_S = 2.0
TAKE_SETTLE_S = 0.5
_ID = "writer"


@contextmanager
def file_lock(settings: Settings, progress: Progress | None) -> Iterator[None]:
    """Hold `RAG_HOME/ingest.lock`, waiting while another process holds it."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / "ingest.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _tell(progress, waiting=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
            _tell(progress, waiting=False)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


class Lease:
    """The writer's lease on a Chroma server's store: one record in the collection `name`."""

    def __init__(self, client: Any, name: str, failure: Callable[[str, Exception], StoreError]) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._failure = failure  # the store's one-line error for a failed call (rag.store)
        try:
            self._records = client.get_or_create_collection(name, embedding_function=None)
        except Exception as exc:
            raise failure("writer lease", exc) from exc

    def hold(self, progress: Progress | None) -> None:
        """Take the lease, waiting while another writer's lease runs."""
        waited = False
        while not self._take():
            if not waited:
                _tell(progress, waiting=True)
                waited = True
            time.sleep(POLL_S)
        if waited:
            _tell(progress, waiting=False)

    def renew(self) -> None:
        """Push the lease's end LEASE_S on from now."""
        self._write(self.holder)

    def release(self) -> None:
        """Give the lease up (only if it is still ours)."""
        if self._current()[0] == self.holder:
            self._call(self._records.delete, ids=[_ID])

    def _take(self) -> bool:
        holder, ends = self._current()
        if holder not in (None, self.holder) and ends > time.time() and not _gone(holder):
            return False
        self._write(self.holder)
        time.sleep(TAKE_SETTLE_S)
        return self._current()[0] == self.holder

    def _current(self) -> tuple[str | None, float]:
        found = self._call(self._records.get, ids=[_ID], include=["metadatas"])
        if not found["ids"]:
            return None, 0.0
        meta = found["metadatas"][0] or {}
        return str(meta.get("holder")), float(meta.get("ends", 0.0))

    def _write(self, holder: str) -> None:
        record = {"holder": holder, "ends": time.time() + LEASE_S}
        self._call(self._records.upsert, ids=[_ID], embeddings=[[0.0]], metadatas=[record])

    def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except Exception as exc:
            raise self._failure("writer lease", exc) from exc


@contextmanager
def leased(lease: Lease, progress: Progress | None) -> Iterator[Lease]:
    """Hold `lease` for the block, giving it up at its end however the block ends."""
    lease.hold(progress)
    try:
        yield lease
    finally:
        with suppress(StoreError):  # a server that went away: the lease runs out by itself
            lease.release()


def _gone(holder: str) -> bool:
    """Whether the lease's holder was a process of this machine that has ended (its lease need not run out)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _tell(progress: Progress | None, waiting: bool) -> None:
    if progress is not None:
        progress("wait", 0 if waiting else 1, 1)
