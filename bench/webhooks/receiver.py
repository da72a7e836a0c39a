"""A fast webhook receiver for the benchmark: raw asyncio HTTP/1.1 with keep-alive (uvloop if present).

    python bench/webhooks/receiver.py --port 9000 --secrets secrets.json [--verify-every 20]

Answers every POST with `200 ok` at once. It counts messages, keeps the set of `webhook-id`s per path,
and verifies every Nth message with the `standardwebhooks` library against the path's secret
(`secrets.json`: {"/m0": "whsec_…", …}). `GET /stats` answers the counts as JSON; `POST /reset` clears
them. It is deliberately minimal (no chunked bodies, no pipelining) so that it is never the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any, cast

from standardwebhooks import Webhook

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class Stats:
    def __init__(self, secrets: dict[str, str], verify_every: int) -> None:
        self.hooks = {path: Webhook(secret) for path, secret in secrets.items()}
        self.verify_every = verify_every
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.ids: dict[str, set[str]] = {}
        self.verified = 0
        self.bad: list[str] = []

    def record(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.count += 1
        msg_id = headers.get("webhook-id", "")
        self.ids.setdefault(path, set()).add(msg_id)
        if self.verify_every and self.count % self.verify_every == 0:
            hook = self.hooks.get(path)
            try:
                if hook is None:
                    raise ValueError(f"no secret for {path}")
                hook.verify(body, headers)
                self.verified += 1
            except Exception as exc:
                if len(self.bad) < 20:
                    self.bad.append(f"{path} {msg_id}: {exc}")

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "unique": sum(len(ids) for ids in self.ids.values()),
            "per_path": {path: len(ids) for path, ids in sorted(self.ids.items())},
            "verified": self.verified,
            "bad": self.bad,
        }


class Http(asyncio.Protocol):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, path, _ = head[0].split(" ", 2)
            self.respond(method, path, headers, body)

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        assert self.transport is not None
        if method == "POST" and path == "/reset":
            self.stats.reset()
            self.transport.write(OK)
        elif method == "GET" and path == "/stats":
            data = json.dumps(self.stats.summary()).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
        else:
            self.stats.record(path, headers, body)
            self.transport.write(OK)


async def serve(port: int, stats: Stats) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Http(stats), "127.0.0.1", port, backlog=1024)
    print(f"receiver listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--verify-every", type=int, default=20)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    stats = Stats(json.loads(args.secrets.read_text()), args.verify_every)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(serve(args.port, stats))
            return
    asyncio.run(serve(args.port, stats))


if __name__ == "__main__":
    main()
