"""Shared fixtures: every test that takes `kassa` runs against SQLite and against PostgreSQL.

PostgreSQL comes from KASSA_TEST_POSTGRES_URL (set by `make test`), or a private one is started
for the session. Each test gets its own merchant, so tests never see each other's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.receiver import Receiver
from tests.support.server import KassaServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("KASSA_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    from scripts.pgtmp import TempPostgres

    with TempPostgres() as pg:
        yield pg.url


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    backend = request.param
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'kassa.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", BACKENDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def kassa(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KassaServer]:
    secret_file = tmp_path_factory.mktemp("secret") / "kassa-secret.key"
    server = KassaServer(database_url, str(secret_file)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def merchant(kassa: KassaServer) -> tuple[str, str]:
    """A fresh merchant: (merchant id, API key)."""
    return kassa.new_merchant()


@pytest.fixture
def api(kassa: KassaServer, merchant: tuple[str, str]) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as this test's merchant."""
    with httpx.Client(
        base_url=kassa.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def anon(kassa: KassaServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kassa.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver for webhooks on loopback (tests/support/receiver.py)."""
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
