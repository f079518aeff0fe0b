"""A small deterministic fake LLM application for probe tests: a real HTTP server on 127.0.0.1 (a free port)
whose answers, per question, can be switched mid-test.

Routes: ``POST /ask`` (the app: ``{"question"}`` → ``{"answer", "sources": [{"id", "content"}]}``) and
``POST /v1/chat/completions`` (OpenAI-compatible, answers the last user message, reports usage). A question's
``mode`` makes it misbehave: ``slow`` (answers after ``delay`` seconds), ``garbage`` (HTML, not JSON), ``error``
(HTTP 500) or ``shape`` (JSON without the answer field).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeLlmApp:
    answers: dict[str, str] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    sources: list[dict[str, str]] = field(default_factory=list)
    delay: float = 3.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer_for(self, question: str) -> str:
        return self.answers.get(question, "I do not know.")

    def start(self) -> FakeLlmApp:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                app.requests.append({"path": self.path, "headers": dict(self.headers), "body": payload})
                if self.path == "/ask":
                    question = str(payload.get("question", ""))
                elif self.path == "/v1/chat/completions":
                    question = [m for m in payload["messages"] if m["role"] == "user"][-1]["content"]
                else:
                    self._send(404, b'{"error": "no such route"}', "application/json")
                    return
                mode = app.modes.get(question, "ok")
                if mode == "slow":
                    time.sleep(app.delay)
                elif mode == "garbage":
                    self._send(200, b"<html><body>Bad gateway</body></html>", "text/html")
                    return
                elif mode == "error":
                    self._send(500, b'{"error": "model overloaded"}', "application/json")
                    return
                elif mode == "shape":
                    self._send(200, b'{"result": {"text": "wrong place"}}', "application/json")
                    return
                answer = app.answer_for(question)
                if self.path == "/ask":
                    body: dict[str, Any] = {"answer": answer, "sources": app.sources}
                else:
                    body = {
                        "id": "chatcmpl-fake", "object": "chat.completion", "model": payload["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": answer}}],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
                    }  # fmt: skip
                # After a timeout the probe has hung up: nobody reads this answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(200, json.dumps(body).encode(), "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
