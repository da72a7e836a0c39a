"""A real HTTP receiver for webhooks on loopback: verifies every signature with the
`standardwebhooks` library and records what arrived. Its behaviour can be switched at run time."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


def verify(secrets: list[str], raw: bytes, headers: dict[str, str]) -> bool:
    """Whether any of the secrets signed this message (Standard Webhooks, `standardwebhooks`)."""
    for secret in secrets:
        try:
            Webhook(secret).verify(raw, headers)
        except Exception:  # noqa: S112 (try the next secret)
            continue
        return True
    return False


@dataclass
class Received:
    path: str
    webhook_id: str
    timestamp: str
    body: dict[str, Any]
    verified: bool
    at: float
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Receiver:
    secrets: dict[str, list[str]] = field(default_factory=dict)  # path -> secrets that may sign
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = verify(receiver.secrets.get(self.path, []), raw, headers)
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            headers.get("webhook-id", ""),
                            headers.get("webhook-timestamp", ""),
                            json.loads(raw),
                            verified,
                            time.monotonic(),
                            raw,
                            headers,
                        )
                    )
                    status, delay, extra = receiver.status, receiver.delay, dict(receiver.headers)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]
