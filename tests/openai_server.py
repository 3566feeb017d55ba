"""A real HTTP server on 127.0.0.1 that speaks the OpenAI REST protocol, for tests: scripted replies and faults,
and a record of every request it received."""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import threading
import time
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
    at: float = 0.0  # time.monotonic() on arrival


@dataclass(frozen=True)
class Reply:
    """What the server does with one chat request.

    kind: "text" (answer `text`), "cut" (stream part of `text`, then drop the connection), "malformed" (a body
    that is not JSON), "empty" (an answer with no content), "slow" (wait `delay` seconds, then answer).
    """

    kind: str = "text"
    text: str = ""
    delay: float = 0.0


def echo_answer(messages: list[dict[str, Any]]) -> str:
    """A faithful answer built from the prompt: the first sentence of passage [1], cited."""
    user = messages[-1]["content"]
    match = re.search(r"\[1\] [^\n]*\n[^\n]*\n(?P<text>[^\n]+)", user)
    if not match:
        return "I found nothing."
    first = re.split(r"(?<=[.!?])\s", match["text"], maxsplit=1)[0].rstrip(".")
    return f"{first} [1]."


@dataclass
class FakeOpenAI:
    """State shared with the handler: queued faults and replies, and the requests received."""

    requests: list[Recorded] = field(default_factory=list)
    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers) served first
    replies: list[Reply] = field(default_factory=list)  # served in order; then echo_answer
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
            state.requests.append(
                Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            )
            if state.faults:
                status, headers = state.faults.pop(0)
                self._send(status, self._fault(status), headers)
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
            if self.path.endswith("/chat/completions"):
                reply = state.replies.pop(0) if state.replies else Reply("text", echo_answer(body["messages"]))
                self._chat(body, reply)
                return
            self._send(404, {"error": {"message": f"no route {self.path}"}})

        def _fault(self, status: int) -> dict[str, Any]:
            if status == 401:  # as OpenAI refuses a key: its message quotes part of the key
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                message = f"Incorrect API key provided: {key[:3]}{'*' * 8}{key[-4:]}."
                return {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
            return {"error": {"message": f"scripted fault {status}", "type": "server_error"}}

        def _chat(self, body: dict[str, Any], reply: Reply) -> None:
            if reply.kind == "slow":
                time.sleep(reply.delay)
            if reply.kind == "malformed":
                raw = b"data: {this is not json\n\n" if body.get("stream") else b"{this is not json"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream" if body.get("stream") else "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return
            text = "" if reply.kind == "empty" else reply.text
            usage = {"prompt_tokens": 321, "completion_tokens": max(1, len(text.split())), "total_tokens": 0}
            if not body.get("stream"):
                message = {"role": "assistant", "content": text}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                self._send(200, {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [choice], "usage": usage})  # fmt: skip
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pieces = re.findall(r"\S+\s*", text) or [""]
            if reply.kind == "cut":
                pieces = pieces[: max(1, len(pieces) // 2)]
            for piece in pieces:
                self._event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                                          "finish_reason": None}]}, body)  # fmt: skip
            if reply.kind == "cut":
                self.wfile.write(b'40\r\ndata: {"choices": [')  # half a chunk, then the connection drops
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, body)
            if body.get("stream_options", {}).get("include_usage"):
                self._event({"choices": [], "usage": usage}, body)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _event(self, payload: dict[str, Any], body: dict[str, Any]) -> None:
            event = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"], **payload}
            self._chunk(f"data: {json.dumps(event)}\n\n".encode())

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

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


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections for the duration of the block. A port merely free when asked can
    be taken by another process before the test connects; this one is held by a socket bound to it (not
    listening), so a connect is refused and nobody else can bind it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
