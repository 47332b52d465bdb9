"""A small OpenAI-compatible chat endpoint on 127.0.0.1, for the LLM-path tests.

A real HTTP server (``http.server`` in a thread), not a mock object: the
assistant's real client sends real requests to it. It records every request
(path, headers, JSON body) and answers with the reply the test sets, an HTTP
error, or a delay longer than the client's timeout."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def user_prompt(self) -> str:
        return next(m["content"] for m in self.body["messages"] if m["role"] == "user")


@dataclass
class FakeChatServer:
    reply: str = "I have nothing to say."
    status: int = 200
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.received.append(Received(self.path, dict(self.headers), body))
                if server.delay_s:
                    time.sleep(server.delay_s)
                if server.status != 200:
                    self.send_response(server.status)
                    self.end_headers()
                    return
                payload = json.dumps({
                    "id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": server.reply}}],
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
