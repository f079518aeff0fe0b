"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 (the ``llm`` fixture): it checks the request as
the real API does, answers with queued ``Reply``s and records every request, for the LLM judge's tests."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

KEY_ENV = "JUDGE_TEST_KEY"


KEY = "sk-test-judge-0123456789"


PASS_REPLY = '{"score": 5, "verdict": "pass", "reasoning": "Every claim is in the context."}'


@dataclass
class Reply:
    status: int = 200
    content: str = PASS_REPLY
    usage: dict[str, Any] | None = field(default_factory=lambda: {"prompt_tokens": 1000, "completion_tokens": 500})
    model: str = "gpt-4o-mini"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # raw JSON body, replacing the completion (error responses)
    hang: bool = False  # hold the request until the test ends (client timeouts)


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.clock: Any = None  # when set, each request records clock() as "t"
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.barrier: threading.Barrier | None = None
        self.hold_seconds = 0.0
        self.release = threading.Event()
        self.base_url = ""

    def next_reply(self) -> Reply:
        with self.lock:
            return self.replies.pop(0) if self.replies else self.default


def _handler(llm: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout tests)
                pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record: dict[str, Any] = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
            if llm.clock is not None:
                record["t"] = llm.clock()
            with llm.lock:
                llm.requests.append(record)
                llm.in_flight += 1
                llm.max_in_flight = max(llm.max_in_flight, llm.in_flight)
            try:
                self._handle(raw, record)
            finally:
                with llm.lock:
                    llm.in_flight -= 1

        def _handle(self, raw: bytes, record: dict[str, Any]) -> None:
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                # Like OpenAI, the error echoes part of the key: the evaluator must redact it.
                given = self.headers.get("Authorization", "")
                self._send(401, {"error": {"message": f"Incorrect API key provided: {given[7:]}"}})
                return
            body = json.loads(raw)
            record["body"] = body
            ok = (
                isinstance(body.get("model"), str)
                and isinstance(body.get("messages"), list)
                and all({"role", "content"} <= set(m) for m in body["messages"])
                and isinstance(body.get("temperature"), int | float)
            )
            if not ok:
                self._send(400, {"error": {"message": "model, messages and temperature are required"}})
                return
            if llm.barrier is not None:
                with contextlib.suppress(threading.BrokenBarrierError):
                    llm.barrier.wait(timeout=2)
                llm.release.wait(llm.hold_seconds)
            reply = llm.next_reply()
            if reply.hang:
                llm.release.wait(10)
            if reply.body is not None:
                self._send(reply.status, reply.body, reply.headers)
                return
            completion: dict[str, Any] = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": reply.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply.content}, "finish_reason": "stop"}
                ],
            }
            if reply.usage is not None:
                completion["usage"] = reply.usage
            self._send(reply.status, completion, reply.headers)

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 64


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    fake = FakeLLM()
    server = _Server(("127.0.0.1", 0), _handler(fake))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    monkeypatch.setenv(KEY_ENV, KEY)
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
