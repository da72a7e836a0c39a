"""`kassa serve` and `kassa worker` as an operator runs them: real processes, JSON logs, /metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from scripts.procs import free_port

KASSA = shutil.which("kassa", path=str(Path(sys.executable).parent))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
    out.update(
        KASSA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}",
        KASSA_SECRET_KEY_FILE=str(tmp_path / "secret.key"),
        KASSA_LOG_FORMAT="json",
    )
    return out


def wait_for(url: str, proc: subprocess.Popen[str], headers: dict[str, str] | None = None) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            return httpx.get(url, headers=headers, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def started(env: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def start(
    started: list[subprocess.Popen[str]], args: list[str], env: dict[str, str]
) -> subprocess.Popen[str]:
    assert KASSA is not None
    proc = subprocess.Popen(
        [KASSA, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started.append(proc)
    return proc


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return err


def test_serve_writes_json_lines_with_request_ids(
    env: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    env = {**env, "KASSA_ACCESS_LOG": "true", "KASSA_METRICS_TOKEN": "a-metrics-token-for-ops"}
    proc = start(started, ["serve", "--port", str(port), "--no-worker"], env)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", proc)
    assert httpx.get(f"{base}/readyz", headers={"X-Request-Id": "ops-ready-1"}).status_code == 200
    metrics = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer a-metrics-token-for-ops"})
    assert (
        metrics.status_code == 200
        and 'kassa_http_requests_total{method="GET",route="/readyz",status="200"}' in metrics.text
    )
    err = stop(proc)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    ready = [line for line in lines if line.get("event") == "request" and line["path"] == "/readyz"]
    assert ready[0]["request_id"] == "ops-ready-1" and ready[0]["status"] == 200
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the server's own lines too
    assert "a-metrics-token-for-ops" not in err


def test_worker_serves_its_metrics_on_its_own_port(
    env: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    proc = start(started, ["worker", "--metrics-port", str(port)], env)
    r = wait_for(f"http://127.0.0.1:{port}/metrics", proc)
    assert r.status_code == 200 and 'kassa_orders{status="open"} 0.0' in r.text
    assert "kassa_webhook_deliveries" in r.text
    stop(proc)
    assert proc.returncode is not None
