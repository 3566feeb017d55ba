"""A real HTTP server on 127.0.0.1 that speaks the OpenAI REST protocol, for tests: scripted replies and faults,
and a record of every request it received."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMBEDDING_DIMENSION = 64


def hashed_embedding(text: str, dimension: int = EMBEDDING_DIMENSION) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words get similar vectors."""
    vector = [0.0] * dimension
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,;:()").encode()).digest()
        vector[digest[0] % dimension] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """State shared with the handler: queued faults, and the requests received."""

    requests: list[Recorded] = field(default_factory=list)
    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers) served first
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if state.faults:
                status, headers = state.faults.pop(0)
                self._send(status, {"error": {"message": f"scripted fault {status}", "type": "server_error"}}, headers)
                return
            if self.path.endswith("/embeddings"):
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                data = [
                    {"object": "embedding", "index": i, "embedding": hashed_embedding(text)}
                    for i, text in enumerate(inputs)
                ]
                usage = {"prompt_tokens": sum(len(t.split()) for t in inputs), "total_tokens": 0}
                self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})
                return
            self._send(404, {"error": {"message": f"no route {self.path}"}})

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@contextmanager
def serve() -> Iterator[FakeOpenAI]:
    """Run the server on a free loopback port for the duration of the block."""
    state = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
