"""The `kassa` command line: serve, worker, migrate, merchants, keys, demo, secrets and more."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from kassa.config import ConfigError, Settings, load_settings
from kassa.errors import KassaError
from kassa.logs import configure_logging
from kassa.runtime import Runtime, build_runtime
from kassa.services.merchants import load_merchant

app = typer.Typer(help="Kassa, a self-hosted payment gateway.", no_args_is_help=True)
merchants_app = typer.Typer(help="Manage merchants.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
rails_app = typer.Typer(help="Configure merchants' payment rails.", no_args_is_help=True)
app.add_typer(merchants_app, name="merchants")
app.add_typer(keys_app, name="keys")
ledger_app = typer.Typer(help="The ledger (docs/ledger.md).", no_args_is_help=True)
app.add_typer(rails_app, name="rails")
app.add_typer(ledger_app, name="ledger")
payouts_app = typer.Typer(help="Payouts to the merchant's wallet (docs/payouts.md).", no_args_is_help=True)
app.add_typer(payouts_app, name="payouts")
secrets_app = typer.Typer(help="The server key: rotating it (docs/production.md).", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
users_app = typer.Typer(help="The merchant dashboard's users (docs/dashboard.md).", no_args_is_help=True)
app.add_typer(users_app, name="users")

T = TypeVar("T")
DEMO_USER = "demo@kassa.example"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _event_loop_run(main: Coroutine[Any, Any, T]) -> T:
    """uvloop where it is installed (uvicorn[standard] brings it; `kassa serve` runs on it too)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover (platforms without uvloop)
        return asyncio.run(main)
    return uvloop.run(main)


def _run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    settings = _settings()

    async def main() -> T:
        runtime = build_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return _event_loop_run(main())
    except KassaError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _migrate(settings: Settings) -> None:
    from kassa.db.migrate import upgrade

    upgrade(settings.database_url)


@app.command()
def migrate() -> None:
    """Apply database migrations (also done by `kassa serve`)."""
    settings = _settings()
    _migrate(settings)
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run the worker in-process.")] = False,
) -> None:
    """Migrate the database, then serve the API, checkout pages and (unless --no-worker) the worker."""
    import uvicorn

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    _migrate(settings)
    if no_worker:
        os.environ["KASSA_RUN_WORKER"] = "false"
    uvicorn.run(
        "kassa.asgi:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,  # ours (kassa.logs): text or JSON, with request ids
        log_level=settings.log_level,
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@app.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Serve this worker's /metrics on this port.")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run only the background worker (expiry, monitoring windows, rail watchers, deliveries)."""
    from kassa.worker.metrics_server import serve_metrics
    from kassa.worker.runner import run_all

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    _migrate(settings)

    async def main(runtime: Runtime) -> None:
        if metrics_port is None:
            await run_all(runtime)
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(run_all(runtime))
            group.create_task(serve_metrics(runtime, metrics_host, metrics_port))

    with contextlib.suppress(KeyboardInterrupt):
        _run(main)


def _emit(data: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else text)


@merchants_app.command("create")
def merchants_create(
    name: Annotated[str, typer.Option(help="The merchant's display name.")],
    email: Annotated[str | None, typer.Option(help="Where merchant notices go.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a merchant and print its id and a new API key (shown once)."""

    async def work(rt: Runtime) -> dict[str, Any]:
        merchant = await rt.merchants.create(name, email=email)
        key = await rt.keys.create(merchant.id)
        return {"merchant": merchant.public(), "api_key": key.public()}

    out = _run(work)
    _emit(
        out, as_json, f"merchant {out['merchant']['id']}\napi key  {out['api_key']['secret']}  (shown once)"
    )


@merchants_app.command("list")
def merchants_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List merchants."""

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        return [m.public() for m in await rt.merchants.all()]

    rows = _run(work)
    text = "\n".join(
        f"{m['id']}  {m['name']}  rails: {', '.join(r['rail'] for r in m['rails'] if r['enabled']) or '-'}"
        for m in rows
    )
    _emit(rows, as_json, text or "no merchants")


@merchants_app.command("update")
def merchants_update(
    merchant: Annotated[str, typer.Argument(help="Merchant id (mch_...).")],
    name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    enable_rail: Annotated[list[str] | None, typer.Option("--enable-rail", help="Turn a rail on.")] = None,
    disable_rail: Annotated[list[str] | None, typer.Option("--disable-rail", help="Turn a rail off.")] = None,
    confirmations: Annotated[int | None, typer.Option(min=0, max=1000, help="Default confirmations.")] = None,
    invoice_lifetime: Annotated[int | None, typer.Option(min=60, help="Seconds to pay.")] = None,
    tolerance_bps: Annotated[int | None, typer.Option(min=0, max=10_000, help="Payment tolerance.")] = None,
    late_payment_policy: Annotated[str | None, typer.Option(help="accept or refund.")] = None,
    withdrawal_policy: Annotated[str | None, typer.Option(help="immediate, daily or manual.")] = None,
    withdrawal_url: Annotated[str | None, typer.Option(help="The wallet's HTTPS endpoint.")] = None,
    refund_policy: Annotated[str | None, typer.Option(help="approve or automatic (refunds by rule).")] = None,
    payout_hour: Annotated[int | None, typer.Option(min=0, max=23, help="UTC hour of daily payouts.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Set the HTTP Basic password, read from standard input.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change a merchant's settings; turn rails on or off."""
    settings = {
        k: v
        for k, v in {
            "name": name,
            "email": email,
            "default_confirmations": confirmations,
            "invoice_lifetime": invoice_lifetime,
            "payment_tolerance_bps": tolerance_bps,
            "late_payment_policy": late_payment_policy,
            "withdrawal_policy": withdrawal_policy,
            "withdrawal_url": withdrawal_url,
            "refund_policy": refund_policy,
            "payout_hour": payout_hour,
        }.items()
        if v is not None
    }
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not 12 <= len(password) <= 256:
            typer.echo("error: the password must be 12 to 256 characters", err=True)
            raise typer.Exit(2)
        settings["password"] = password
    rails = {r: True for r in enable_rail or []} | {r: False for r in disable_rail or []}

    async def work(rt: Runtime) -> dict[str, Any]:
        return (await rt.merchants.update(merchant, settings, rails)).public()

    out = _run(work)
    on = ", ".join(r["rail"] for r in out["rails"] if r["enabled"]) or "-"
    _emit(out, as_json, f"merchant {out['id']} updated; rails on: {on}")


@users_app.command("create")
def users_create(
    merchant: Annotated[str, typer.Option(help="The merchant whose dashboard the user signs in to.")],
    email: Annotated[str, typer.Option(help="The user's email, their sign-in name.")],
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a dashboard user; the password is read from the first line of stdin."""
    password = sys.stdin.readline().rstrip("\n")

    async def work(rt: Runtime) -> dict[str, Any]:
        return await rt.users.create(merchant, email, password, name)

    out = _run(work)
    _emit(out, as_json, f"user {out['id']} ({out['email']}) can sign in at /dashboard")


@users_app.command("list")
def users_list(
    merchant: Annotated[str, typer.Option(help="Merchant id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A merchant's dashboard users."""

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        await rt.merchants.get(merchant)
        return await rt.users.list(merchant)

    out = _run(work)
    lines = [f"{u['id']}  {u['email']}  {'disabled' if u['disabled'] else 'active'}" for u in out]
    _emit(out, as_json, "\n".join(lines) or "no users")


@users_app.command("disable")
def users_disable(
    user: Annotated[str, typer.Argument(help="User id (usr_...).")],
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False,
) -> None:
    """Disable a dashboard user (their sessions end at once), or re-enable them."""

    async def work(rt: Runtime) -> dict[str, Any]:
        return await rt.users.set_disabled(user, not enable)

    out = _run(work)
    typer.echo(f"user {out['id']} {'disabled' if out['disabled'] else 'enabled'}")


@keys_app.command("create")
def keys_create(
    merchant: Annotated[str | None, typer.Option(help="Merchant id; omit with --admin.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Create an admin credential.")] = False,
    scopes: Annotated[list[str] | None, typer.Option("--scopes", help="Repeat for each scope.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key (printed once)."""
    if admin == (merchant is not None):
        typer.echo("error: give exactly one of --merchant ID or --admin", err=True)
        raise typer.Exit(2)

    async def work(rt: Runtime) -> dict[str, Any]:
        return (await rt.keys.create(merchant, scopes)).public()

    out = _run(work)
    _emit(out, as_json, f"{out['id']}  {out['secret']}  scopes: {' '.join(out['scopes'])}  (shown once)")


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id (key_...).")]) -> None:
    """Revoke an API key at once."""

    async def work(rt: Runtime) -> None:
        await rt.keys.revoke(key)

    _run(work)
    typer.echo(f"{key} revoked")


def _setting(pair: str) -> tuple[str, Any]:
    key, sep, raw = pair.partition("=")
    if not sep or not key:
        typer.echo(f"error: --set wants key=value, got {pair!r}", err=True)
        raise typer.Exit(2)
    try:
        value: Any = json.loads(raw)  # numbers, true/false, null, quoted strings
    except json.JSONDecodeError:
        value = raw
    return key, value


async def _merchant_pk(rt: Runtime, merchant_id: str) -> int:
    return (await rt.merchants.get(merchant_id)).pk


@rails_app.command("configure")
def rails_configure(
    rail: Annotated[str, typer.Argument(help="Rail name, e.g. monero.")],
    merchant: Annotated[str, typer.Option(help="Merchant id (mch_...).")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="key=value; repeat. Values may be JSON.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Configure and enable a rail for a merchant (the same as PUT /api/v1/payment-methods/{rail})."""
    settings = dict(_setting(p) for p in set_ or [])

    async def work(rt: Runtime) -> dict[str, Any]:
        return await rt.payment_methods.configure(await _merchant_pk(rt, merchant), rail, settings)

    out = _run(work)
    _emit(out, as_json, f"{rail} configured and enabled for {merchant}: {json.dumps(out['settings'])}")


@rails_app.command("list")
def rails_list(
    merchant: Annotated[str, typer.Option(help="Merchant id (mch_...).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A merchant's rails, secrets masked."""

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        return await rt.payment_methods.for_merchant(await _merchant_pk(rt, merchant))

    rows = _run(work)
    text = "\n".join(
        f"{r['rail']:10} {'on ' if r['enabled'] else 'off'} {json.dumps(r['settings'])}" for r in rows
    )
    _emit(rows, as_json, text or "no rails")


@rails_app.command("check")
def rails_check(
    merchant: Annotated[str, typer.Option(help="Merchant id (mch_...).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Tell whether each configured rail of a merchant is reachable and healthy; exit 1 if one is not."""

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        pk = await _merchant_pk(rt, merchant)
        out = []
        for method in await rt.payment_methods.for_merchant(pk):
            health = await rt.rail_check(pk, method["rail"])
            out.append(
                {
                    "rail": method["rail"],
                    "enabled": method["enabled"],
                    "ok": health.ok,
                    "details": health.details,
                }
            )
        return out

    rows = _run(work)
    _emit(
        rows,
        as_json,
        "\n".join(f"{r['rail']:10} {'ok  ' if r['ok'] else 'FAIL'} {json.dumps(r['details'])}" for r in rows)
        or "no rails",
    )
    if not all(r["ok"] for r in rows):
        raise typer.Exit(1)


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ensure a demo merchant with the test rail and print a fresh API key and a sample request."""
    settings = _settings()
    _migrate(settings)

    async def work(rt: Runtime) -> dict[str, Any]:
        found = [m for m in await rt.merchants.all() if m.name == "Demo Shop"]
        merchant = found[0] if found else await rt.merchants.create("Demo Shop")
        if "test" not in merchant.enabled_rails:
            merchant = await rt.merchants.update(merchant.id, {}, {"test": True})
        for key in await rt.keys.for_merchant(merchant.id):
            if key["revoked_at"] is None:
                await rt.keys.revoke(key["id"])
        issued = await rt.keys.create(merchant.id)
        password = secrets.token_urlsafe(12)
        if any(u["email"] == DEMO_USER for u in await rt.users.list(merchant.id)):
            await rt.users.reset_password(DEMO_USER, password)
        else:
            await rt.users.create(merchant.id, DEMO_USER, password, "Demo")
        user = {"email": DEMO_USER, "password": password}
        return {"merchant": merchant.public(), "api_key": issued.public(), "dashboard_user": user}

    out = _run(work)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    base = settings.base_url
    secret = out["api_key"]["secret"]
    typer.echo(
        f"""
Demo merchant: {out["merchant"]["id"]} (Demo Shop, test rail on)
API key:       {secret}
API docs:      {base}/docs
Dashboard:     {base}/dashboard  ({out["dashboard_user"]["email"]} / {out["dashboard_user"]["password"]})
Create an order:
  curl -s {base}/api/v1/orders -H 'Authorization: Bearer {secret}' \\
       -H 'Content-Type: application/json' -d '{{"amount": 1050, "currency": "USD"}}'
Then open its checkout_url in a browser and pay with the test buttons.
"""
    )


def main() -> None:  # pragma: no cover
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


@ledger_app.command("check")
def ledger_check(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Verify the whole ledger: every posting balances per currency, every kept balance is the sum
    of its entries. Exits 1 with the first fault found."""

    async def work(rt: Runtime) -> dict[str, Any]:
        broken = await rt.ledger.check()
        if broken is None:
            return {"ok": True}
        async with rt.db.read() as conn:
            merchant = await load_merchant(conn, pk=broken.merchant_pk)
        return {"ok": False, "posting": broken.posting, "merchant": merchant.id, "message": broken.message}

    out = _run(work)
    if out["ok"]:
        _emit(out, as_json, "ledger ok: every posting balances and every balance is the sum of its entries")
        return
    where = f"posting {out['posting']}" if out["posting"] else "balances"
    _emit(out, as_json, f"ledger broken: merchant {out['merchant']}, {where}: {out['message']}")
    raise typer.Exit(1)


@payouts_app.command("create")
def payouts_create(
    rail: Annotated[str, typer.Argument(help="The rail whose wallet pays, e.g. monero.")],
    merchant: Annotated[str, typer.Option(help="Merchant id (mch_...).")],
    amount: Annotated[
        int | None, typer.Option(min=1, help="Minor units; default: all of the balance.")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Only for rails of several currencies.")] = None,
    destination: Annotated[str | None, typer.Option(help="Default: the rail's payout_address.")] = None,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="Build it for your wallet to sign.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pay a merchant's balance out (the same as POST /api/v1/payouts)."""

    async def work(rt: Runtime) -> dict[str, Any]:
        return await rt.payouts.create(
            await _merchant_pk(rt, merchant),
            rail,
            currency=currency,
            amount=amount,
            destination=destination,
            unsigned=unsigned,
        )

    out = _run(work)
    _emit(out, as_json, f"payout {out['id']}: {out['amount']} {out['currency']} {out['status']}")


@payouts_app.command("list")
def payouts_list(
    merchant: Annotated[str, typer.Option(help="Merchant id (mch_...).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A merchant's latest payouts, newest first."""

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        rows, _more = await rt.payouts.page(await _merchant_pk(rt, merchant), 100, None)
        return rows

    rows = _run(work)
    text = "\n".join(
        f"{r['id']} {r['status']:18} {r['amount']} {r['currency']} -> {r['destination']} {r['reference']}"
        for r in rows
    )
    _emit(rows, as_json, text or "no payouts")


@secrets_app.command("rotate")
def secrets_rotate(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per transaction.")] = 500,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-seal every stored secret with the current server key, so the keys in KASSA_OLD_SECRET_KEYS
    can be dropped. Safe to run again; exits 1 when a secret opens with none of the keys."""
    from kassa.services.key_rotation import reseal_all

    settings = _settings()
    if not settings.secret_key and not settings.secret_key_file.exists():
        typer.echo(
            "error: no server key is configured (KASSA_SECRET_KEY, or the file named by "
            f"KASSA_SECRET_KEY_FILE: {settings.secret_key_file} does not exist); set the new key first, "
            "so that secrets are not re-sealed with a key made up on the spot",
            err=True,
        )
        raise typer.Exit(2)

    async def work(rt: Runtime) -> dict[str, Any]:
        report = await reseal_all(rt.db, rt.box, batch_size)
        return {
            "resealed": report.total,
            "rows": report.rows,
            "columns": report.resealed,
            "unreadable": report.unreadable,
        }

    out = _run(work)
    lines = [f"re-sealed {out['resealed']} secret(s) in {out['rows']} row(s) with the current server key"]
    lines += [f"  {name}: {count}" for name, count in out["columns"].items() if count]
    if out["unreadable"]:
        lines.append(
            f"error: {len(out['unreadable'])} secret(s) open with no configured key "
            f"(keep KASSA_OLD_SECRET_KEYS until they are fixed): {', '.join(out['unreadable'])}"
        )
    elif not settings.old_secret_keys:
        lines.append("every secret is sealed with the current key (KASSA_OLD_SECRET_KEYS is empty)")
    else:
        lines.append("every secret is sealed with the current key: KASSA_OLD_SECRET_KEYS can be dropped")
    _emit(out, as_json, "\n".join(lines))
    if out["unreadable"]:
        raise typer.Exit(1)
