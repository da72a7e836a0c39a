"""The `kassa` command line: serve, worker, migrate, merchants, keys, demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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

T = TypeVar("T")


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
    configure_logging(settings.log_level)
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
        log_level=settings.log_level,
        proxy_headers=False,
    )


@app.command()
def worker() -> None:
    """Run only the background worker (expiry, monitoring windows, rail watchers)."""
    from kassa.worker.runner import run_all

    settings = _settings()
    configure_logging(settings.log_level)
    _migrate(settings)

    async def main(runtime: Runtime) -> None:
        await run_all(runtime)

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
        return {"merchant": merchant.public(), "api_key": issued.public()}

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
