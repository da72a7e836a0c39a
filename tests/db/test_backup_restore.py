"""Backups on PostgreSQL, as docs/production.md tells an operator to take them: a database with paid,
refunded, expired and open orders and a payout is dumped with the real `pg_dump -Fc`, restored with
`pg_restore` into a new database, and the restored one is current with the migrations, passes
`kassa ledger check`, holds every row of every table exactly as the original, and keeps working (its
sequences carry on; rail secrets open with the same server key)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from scripts.pgtmp import SEARCH
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from kassa.cli import app
from kassa.db.migrate import alembic_config
from kassa.db.tables import metadata
from tests.api.test_ledger_api import paid_order
from tests.support.pg_databases import dsn, fresh_database
from tests.support.server import KassaServer

pytestmark = pytest.mark.slow
runner = CliRunner()


def pg_binary(name: str) -> str:
    for folder in SEARCH:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found: install PostgreSQL's client programs (apt-get install postgresql)")
    return found


@pytest.fixture
def databases(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Two new databases on the test PostgreSQL server: the original and the one restored into."""
    with (
        fresh_database(postgres_url, "kassa_backup") as original,
        fresh_database(postgres_url, "kassa_restored") as restored,
    ):
        yield original, restored


def pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection options for pg_dump and pg_restore, and the environment with the password."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or ""]
    return args, env


def every_row(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the schema: its rows, (column, value) pairs, in primary-key order."""

    async def read() -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(dsn(url))
        try:
            rows = {}
            for table in metadata.sorted_tables:  # names from the schema, not from input
                query = f'SELECT * FROM "{table.name}" ORDER BY pk'  # noqa: S608
                rows[table.name] = [tuple(r.items()) for r in await conn.fetch(query)]
            return rows
        finally:
            await conn.close()

    return asyncio.run(read())


def populate(kassa: KassaServer) -> None:
    _, key = kassa.new_merchant("Backed-up Shop")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        paid = [paid_order(api, amount) for amount in (2500, 1000, 777)]
        refund = api.post(
            f"/api/v1/orders/{paid[0]['id']}/refunds", json={"amount": 500, "destination": "test:customer"}
        )
        assert refund.status_code == 201, refund.text
        wallet = api.put("/api/v1/payment-methods/test", json={"payout_address": "test:merchant-wallet"})
        assert wallet.status_code == 200, wallet.text
        payout = api.post("/api/v1/payouts", json={"rail": "test", "currency": "USD", "amount": 1200})
        assert payout.status_code == 201, payout.text
        monero = api.put(
            "/api/v1/payment-methods/monero",
            json={"wallet_rpc_url": "http://127.0.0.1:18083", "username": "shop", "password": "wallet-pass"},
        )
        assert monero.status_code == 200, monero.text
        hook = api.post(
            "/api/v1/webhook-endpoints", json={"url": "https://shop.example/hooks", "event_types": ["*"]}
        )
        assert hook.status_code == 201, hook.text
        for amount in (300, 400):
            created = api.post("/api/v1/orders", json={"amount": amount, "currency": "EUR"})
            assert created.status_code == 201, created.text
    kassa.clock.advance(3600)
    assert kassa.tick() == 2  # the EUR orders expire


def test_a_pg_dump_restores_to_an_equal_working_database(
    databases: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_dump, pg_restore = pg_binary("pg_dump"), pg_binary("pg_restore")
    original, restored = databases
    secret_file = str(tmp_path / "kassa-secret.key")  # backed up apart from the dump
    kassa = KassaServer(original, secret_file).start()
    try:
        populate(kassa)
    finally:
        kassa.stop()

    dump = tmp_path / "kassa.dump"
    args, env = pg_args(original)
    name = make_url(original).database or ""
    subprocess.run([pg_dump, *args, "-Fc", "-f", str(dump), name], env=env, check=True, capture_output=True)
    args, env = pg_args(restored)
    subprocess.run(
        [
            pg_restore,
            *args,
            "--exit-on-error",
            "--no-owner",
            "-d",
            make_url(restored).database or "",
            str(dump),
        ],
        env=env,
        check=True,
        capture_output=True,
    )

    # Current with the migrations: the restored revision is the head, and `kassa migrate` has nothing to do.
    heads = set(ScriptDirectory.from_config(alembic_config(restored)).get_heads())

    async def revision() -> set[str]:
        conn = await asyncpg.connect(dsn(restored))
        try:
            return {r["version_num"] for r in await conn.fetch("SELECT version_num FROM alembic_version")}
        finally:
            await conn.close()

    assert asyncio.run(revision()) == heads
    monkeypatch.delenv("KASSA_CONFIG", raising=False)
    monkeypatch.delenv("KASSA_SECRET_KEY", raising=False)
    monkeypatch.setenv("KASSA_DATABASE_URL", restored)
    monkeypatch.setenv("KASSA_SECRET_KEY_FILE", secret_file)
    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0 and "up to date" in migrated.output, migrated.output
    checked = runner.invoke(app, ["ledger", "check"])
    assert checked.exit_code == 0 and "ledger ok" in checked.output, checked.output

    # Row for row, every table.
    before, after = every_row(original), every_row(restored)
    for table in ("orders", "payments", "refunds", "payouts", "ledger_postings", "ledger_entries"):
        assert before[table], f"the original has no {table}: the test would prove nothing"
    assert {dict(o)["status"] for o in before["orders"]} == {"paid", "expired"}
    for table in before:
        assert after[table] == before[table], table

    # The restored database keeps working: new rows get fresh keys, the rail secrets open.
    revived = KassaServer(restored, secret_file).start()
    try:
        _, key = revived.new_merchant("After the restore")
        with httpx.Client(
            base_url=revived.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as api:
            assert paid_order(api, 1234)["status"] == "paid"
        (old_merchant,) = [
            m for m in revived.call(revived.runtime.merchants.all()) if m.name == "Backed-up Shop"
        ]
        configs = revived.call(revived.runtime.payment_methods.all_configs())
        (monero,) = [c for c in configs if c.merchant_pk == old_merchant.pk and c.rail == "monero"]
        assert monero.settings["password"] == "wallet-pass"
    finally:
        revived.stop()
    checked = runner.invoke(app, ["ledger", "check"])
    assert checked.exit_code == 0 and "ledger ok" in checked.output, checked.output
