"""A private redis-server on a free loopback port, in a temporary directory, saving nothing (the
shared rate-limit storage of several Kassa processes)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from scripts.procs import free_port


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run `make system-deps` (Debian's redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.log = workdir / "redis.log"
        self.command = [
            binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(workdir),
            "--save", "", "--appendonly", "no", "--logfile", str(self.log),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 20) -> RedisServer:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text(errors='replace')[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {within} s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
