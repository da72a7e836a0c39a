"""The `kassa` command line, run in-process against a fresh SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kassa.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KASSA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("KASSA_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    monkeypatch.delenv("KASSA_CONFIG", raising=False)
    return tmp_path


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_help_documents_every_command() -> None:
    out = invoke("--help")
    for command in ("serve", "worker", "migrate", "merchants", "keys", "rails", "demo"):
        assert command in out
    assert "--no-worker" in invoke("serve", "--help")
    assert "--disable-rail" in invoke("merchants", "update", "--help")


def test_merchants_and_keys(env: Path) -> None:
    assert "up to date" in invoke("migrate")
    created = json.loads(invoke("merchants", "create", "--name", "Corner Shop", "--json"))
    merchant_id, secret = created["merchant"]["id"], created["api_key"]["secret"]
    assert merchant_id.startswith("mch_") and secret.startswith("ksk_")
    assert "Corner Shop" in invoke("merchants", "list")
    updated = json.loads(invoke("merchants", "update", merchant_id, "--disable-rail", "test", "--json"))
    assert updated["rails"] == [{"rail": "test", "enabled": False}]
    policy = json.loads(invoke("merchants", "update", merchant_id, "--refund-policy", "automatic", "--json"))
    assert policy["refund_policy"] == "automatic"
    key = json.loads(invoke("keys", "create", "--merchant", merchant_id, "--scopes", "orders:read", "--json"))
    assert key["scopes"] == ["orders:read"]
    assert "revoked" in invoke("keys", "revoke", key["id"])
    admin = json.loads(invoke("keys", "create", "--admin", "--json"))
    assert admin["secret"].startswith("kadm_") and admin["scopes"] == ["admin"]
    configured = json.loads(invoke("rails", "configure", "test", "--merchant", merchant_id, "--json"))
    assert configured["enabled"] is True
    assert "ok" in invoke("rails", "check", "--merchant", merchant_id)


def test_clear_errors(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("migrate")
    result = runner.invoke(app, ["keys", "revoke", "key_nope"])
    assert result.exit_code == 1 and "no active API key" in result.output
    result = runner.invoke(app, ["keys", "create"])
    assert result.exit_code == 2 and "exactly one of" in result.output
    monkeypatch.setenv("KASSA_DATABASE_URL", "mysql://nope")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 2 and "KASSA_DATABASE_URL" in result.output


def test_config_file(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = env / "kassa.toml"
    config.write_text('base_url = "https://pay.example.com/"\nworker_interval = "soon"\n')
    monkeypatch.setenv("KASSA_CONFIG", str(config))
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 2 and "KASSA_WORKER_INTERVAL" in result.output
    config.write_text('base_url = "https://pay.example.com/"\n')
    from kassa.config import load_settings

    assert load_settings().base_url == "https://pay.example.com"
    monkeypatch.setenv("KASSA_BASE_URL", "https://env.example.com")
    assert load_settings().base_url == "https://env.example.com"  # the environment wins


def test_merchant_password_and_withdrawal_policy(env: Path) -> None:
    invoke("migrate")
    merchant_id = json.loads(invoke("merchants", "create", "--name", "Grin Shop", "--json"))["merchant"]["id"]
    result = runner.invoke(
        app,
        ["merchants", "update", merchant_id, "--password-stdin", "--json"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["has_password"] is True
    short = runner.invoke(app, ["merchants", "update", merchant_id, "--password-stdin"], input="short\n")
    assert short.exit_code == 2
    assert "12 to 256" in short.output
    updated = json.loads(
        invoke(
            "merchants",
            "update",
            merchant_id,
            "--withdrawal-policy",
            "daily",
            "--withdrawal-url",
            "https://wallet.example",
            "--json",
        )
    )
    assert (updated["withdrawal_policy"], updated["withdrawal_url"]) == ("daily", "https://wallet.example")
    bad = runner.invoke(app, ["merchants", "update", merchant_id, "--withdrawal-policy", "weekly"])
    assert bad.exit_code != 0
    assert "withdrawal_policy" in bad.output


def test_ledger_check(env: Path) -> None:
    import sqlite3

    assert "up to date" in invoke("migrate")
    assert "ledger ok" in invoke("ledger", "check")
    created = json.loads(invoke("merchants", "create", "--name", "Ledger Shop", "--json"))
    db = sqlite3.connect(env / "cli.db")
    with db:
        (merchant_pk,) = db.execute(
            "SELECT pk FROM merchants WHERE id = ?", (created["merchant"]["id"],)
        ).fetchone()
        db.execute(
            "INSERT INTO ledger_postings (id, merchant_pk, key, kind, test, created_at)"
            " VALUES ('lpo_1', ?, 'payment:pay_1:confirmed', 'payment', 0, '2026-12-03 12:00:00')",
            (merchant_pk,),
        )
        db.execute(
            "INSERT INTO ledger_entries (id, posting_pk, merchant_pk, test, account, currency, amount, kind,"
            " created_at) VALUES ('len_1', 1, ?, 0, 'balance', 'XMR', '5', 'payment', '2026-12-03 12:00:00')",
            (merchant_pk,),
        )
    db.close()
    result = runner.invoke(app, ["ledger", "check"])
    assert result.exit_code == 1, result.output
    assert "payment:pay_1:confirmed" in result.output and "1 entries" in result.output
    assert json.loads(runner.invoke(app, ["ledger", "check", "--json"]).output)["ok"] is False


def test_demo_and_dashboard_users(env: Path) -> None:
    first = json.loads(invoke("demo", "--json"))
    again = json.loads(invoke("demo", "--json"))
    assert first["merchant"]["id"] == again["merchant"]["id"]
    assert first["dashboard_user"]["email"] == again["dashboard_user"]["email"] == "demo@kassa.example"
    assert first["dashboard_user"]["password"] != again["dashboard_user"]["password"]  # a fresh one each run
    merchant_id = first["merchant"]["id"]
    made = runner.invoke(
        app,
        ["users", "create", "--merchant", merchant_id, "--email", "Clerk@Shop.Example", "--json"],
        input="a long passphrase\n",
    )
    assert made.exit_code == 0, made.output
    user = json.loads(made.output)
    assert user["email"] == "clerk@shop.example" and "password" not in made.output
    short = runner.invoke(
        app, ["users", "create", "--merchant", merchant_id, "--email", "x@shop.example"], input="short\n"
    )
    assert short.exit_code == 1 and "10 to 200 characters" in short.output
    listed = invoke("users", "list", "--merchant", merchant_id)
    assert "clerk@shop.example" in listed and "demo@kassa.example" in listed
    assert "disabled" in invoke("users", "disable", user["id"])
    assert "enabled" in invoke("users", "disable", user["id"], "--enable")
