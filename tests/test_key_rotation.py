"""Rotating the server key: values sealed and refund links signed with a retired key (kept in
KASSA_OLD_SECRET_KEYS) still work, `kassa secrets rotate` re-seals every sealed column with the new
key (on SQLite and PostgreSQL), after which the retired key can go."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from kassa.cli import app
from kassa.clock import ManualClock
from kassa.config import ConfigError, load_settings
from kassa.crypto import SecretBox
from kassa.db.migrate import upgrade
from kassa.runtime import Runtime, build_runtime
from kassa.services.key_rotation import SEALED
from kassa.services.refund_links import LinkInvalid, RefundLinks
from tests.support.pg_databases import fresh_database

KEY_A = "a" * 16 + "0123456789abcdef0123456789abcdef"
KEY_B = "b" * 16 + "fedcba9876543210fedcba9876543210"
KEY_C = "c" * 48
T = TypeVar("T")
runner = CliRunner()


def test_a_value_sealed_with_the_old_key_opens_with_the_new_key_and_the_old_one() -> None:
    token = SecretBox(KEY_A).seal("wallet password")
    both = SecretBox(KEY_B, [KEY_A])
    assert both.open(token) == "wallet password"
    fresh = both.seal("webhook secret")
    assert SecretBox(KEY_B).open(fresh) == "webhook secret"  # sealed with the new key
    with pytest.raises(ValueError, match="KASSA_OLD_SECRET_KEYS"):
        SecretBox(KEY_A).open(fresh)
    resealed = both.reseal(token)
    assert resealed is not None and SecretBox(KEY_B).open(resealed) == "wallet password"
    assert both.reseal(resealed) is None  # already under the current key


def test_a_wrong_key_gives_the_clear_error() -> None:
    token = SecretBox(KEY_A).seal("wallet password")
    for box in (SecretBox(KEY_B), SecretBox(KEY_B, [KEY_C])):
        with pytest.raises(ValueError, match="cannot be decrypted with the server key nor any of"):
            box.open(token)
        with pytest.raises(ValueError, match="KASSA_OLD_SECRET_KEYS"):
            box.reseal(token)


def test_a_refund_link_signed_with_the_old_key_verifies_under_the_new_one() -> None:
    clock = ManualClock()

    def links(secret: str, *old: str) -> RefundLinks:
        return RefundLinks(secret, "https://pay.example", timedelta(days=7), clock, old_secrets=old)

    token = links(KEY_A).url("rfd_1").rsplit("/", 1)[1]
    assert links(KEY_B, KEY_C, KEY_A).read(token) == "rfd_1"
    with pytest.raises(LinkInvalid):
        links(KEY_B).read(token)
    new_token = links(KEY_B, KEY_A).url("rfd_2").rsplit("/", 1)[1]
    assert links(KEY_B).read(new_token) == "rfd_2"  # new links are signed with the new key
    with pytest.raises(LinkInvalid):
        links(KEY_A).read(new_token)


def test_old_secret_keys_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KASSA_CONFIG", raising=False)
    monkeypatch.setenv("KASSA_OLD_SECRET_KEYS", json.dumps([KEY_A, KEY_C]))
    settings = load_settings(secret_key=KEY_B)
    assert settings.old_secret_keys == [KEY_A, KEY_C]
    assert KEY_A not in repr(settings) and KEY_A not in str(settings)
    monkeypatch.setenv("KASSA_OLD_SECRET_KEYS", '["too short"]')
    with pytest.raises(ConfigError, match=r"KASSA_OLD_SECRET_KEYS: .*key #1 must be at least 32 characters"):
        load_settings()
    monkeypatch.delenv("KASSA_OLD_SECRET_KEYS")
    config = tmp_path / "kassa.toml"
    config.write_text(f'old_secret_keys = ["{KEY_A}"]\n')
    monkeypatch.setenv("KASSA_CONFIG", str(config))
    assert load_settings().old_secret_keys == [KEY_A]
    monkeypatch.delenv("KASSA_CONFIG")
    assert load_settings().old_secret_keys == []


def test_rotate_refuses_without_a_configured_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KASSA_CONFIG", raising=False)
    monkeypatch.delenv("KASSA_SECRET_KEY", raising=False)
    monkeypatch.setenv("KASSA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    monkeypatch.setenv("KASSA_SECRET_KEY_FILE", str(tmp_path / "missing.key"))
    result = runner.invoke(app, ["secrets", "rotate"])
    assert result.exit_code == 2 and "no server key is configured" in result.output
    assert not (tmp_path / "missing.key").exists()


# ----- on a database ---------------------------------------------------------------------------


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database of this backend, only for this test (rotation sees every row)."""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'rotate.db'}"
        upgrade(url)
        yield url
        return
    with fresh_database(database_url, "kassa_rotate") as url:
        upgrade(url)
        yield url


def with_runtime(url: str, key: str, old: list[str], work: Callable[[Runtime], Awaitable[T]]) -> T:
    settings = load_settings(
        database_url=url, secret_key=key, old_secret_keys=old, allow_private_webhooks=True
    )

    async def main() -> T:
        runtime = build_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(main())


async def populate(rt: Runtime) -> None:
    """A merchant with every kind of sealed value: rail secrets, an endpoint's secret and its previous
    one, the callback secret."""
    merchant = await rt.merchants.create("Rotating Shop")
    await rt.payment_methods.configure(
        merchant.pk,
        "monero",
        {"wallet_rpc_url": "http://127.0.0.1:18083", "username": "kassa", "password": "wallet-pass"},
    )
    endpoint = await rt.webhooks.create_endpoint(merchant.pk, "https://shop.example/hooks", ["*"], None, True)
    await rt.webhooks.rotate_secret(merchant.pk, endpoint["id"], overlap_seconds=3600)
    await rt.webhooks.create_endpoint(merchant.pk, "https://shop.example/other", ["*"], None, True)
    await rt.webhooks.rotate_callback_secret(merchant.pk)


async def opened(rt: Runtime) -> dict[str, str]:
    """Every sealed value in the database, opened with the runtime's keys: {"table.column pk": plain}."""
    out = {}
    async with rt.db.read() as conn:
        for table, columns in SEALED:
            for row in await conn.execute(select(table.c.pk, *(table.c[c] for c in columns))):
                for column in columns:
                    if row._mapping[column] is not None:
                        out[f"{table.name}.{column} {row.pk}"] = rt.box.open(row._mapping[column])
    return out


def rotate(url: str, key: str, old: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("KASSA_CONFIG", raising=False)
    monkeypatch.setenv("KASSA_DATABASE_URL", url)
    monkeypatch.setenv("KASSA_SECRET_KEY", key)
    monkeypatch.setenv("KASSA_OLD_SECRET_KEYS", json.dumps(old))
    return runner.invoke(app, ["secrets", "rotate", "--batch-size", "2"])


def test_rotate_reseals_every_column(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with_runtime(fresh_url, KEY_A, [], populate)
    originals = with_runtime(fresh_url, KEY_A, [], opened)
    assert {name.split()[0] for name in originals} == {
        "merchants.callback_secret",
        "payment_methods.secrets",
        "webhook_endpoints.secret",
        "webhook_endpoints.previous_secret",
    }
    assert json.loads(originals[next(k for k in originals if k.startswith("payment_methods"))]) == {
        "password": "wallet-pass"
    }

    # The new key without the old one opens nothing; rotating with it changes nothing and says so.
    with pytest.raises(ValueError, match="KASSA_OLD_SECRET_KEYS"):
        with_runtime(fresh_url, KEY_B, [], opened)
    refused = rotate(fresh_url, KEY_B, [], monkeypatch)
    assert refused.exit_code == 1, refused.output
    assert f"{len(originals)} secret(s) open with no configured key" in refused.output
    assert KEY_B not in refused.output and "wallet-pass" not in refused.output

    # B with A retired: everything opens, through the services too.
    assert with_runtime(fresh_url, KEY_B, [KEY_A], opened) == originals

    async def rail_password(rt: Runtime) -> Any:
        (config,) = [c for c in await rt.payment_methods.all_configs() if c.rail == "monero"]
        return config.settings["password"]

    assert with_runtime(fresh_url, KEY_B, [KEY_A], rail_password) == "wallet-pass"

    done = rotate(fresh_url, KEY_B, [KEY_A], monkeypatch)
    assert done.exit_code == 0, done.output
    assert f"re-sealed {len(originals)} secret(s) in 4 row(s)" in done.output  # merchant, method, 2 endpoints
    assert "can be dropped" in done.output
    again = rotate(fresh_url, KEY_B, [KEY_A], monkeypatch)
    assert again.exit_code == 0 and "re-sealed 0 secret(s) in 0 row(s)" in again.output

    # The old key can go.
    assert with_runtime(fresh_url, KEY_B, [], opened) == originals
    assert with_runtime(fresh_url, KEY_B, [], rail_password) == "wallet-pass"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        with_runtime(fresh_url, KEY_A, [], opened)
