"""Benchmark: deliver 10,000 webhook events with Kassa's DeliveryWorker, against a plain httpx loop.

    PYTHONPATH=. .venv/bin/python bench/webhooks/run.py [--db postgresql|sqlite|both] [--events 10000]
        [--concurrency 32] [--endpoints 8] [--rounds 3] [--breakdown] [--profile DIR [--profile-native]]

Run it from the repository root. In one run it:

1. starts a private PostgreSQL (scripts/pgtmp.py) on 127.0.0.1, or makes an SQLite file, and migrates
   it (Alembic);
2. creates `--endpoints` merchants with one webhook endpoint each (through the services, so secrets
   are sealed as in production), all on one local receiver (bench/webhooks/receiver.py, its own
   process: raw asyncio HTTP/1.1 + uvloop, answers 200 at once, verifies every 20th signature);
3. seeds `--events` events and their deliveries with SQLAlchemy Core inserts: orders of five events
   each (the paid flow), spread round-robin over the merchants, written sequence by sequence (all
   first events, then all second events, ...) as a steady stream of orders would leave them;
4. per round: posts every delivery's body, signed exactly as the worker signs it, with a plain
   `httpx.AsyncClient` and `--concurrency` tasks; then resets the deliveries to pending and times
   `DeliveryWorker.drain()` with `KASSA_WEBHOOK_CONCURRENCY=--concurrency` (and a per-endpoint cap of
   concurrency / endpoints) doing the same work: claim, sign, send, record each attempt;
5. checks after each phase that the receiver got every webhook-id once at the right path, that the
   sampled signatures verify, and (Kassa) that every delivery is `succeeded` with one attempt logged;
6. prints deliveries/s per phase and round, the medians, the ratio Kassa / plain, and the CPU time per
   delivery of this process, the receiver and PostgreSQL.

Targets (reported, not enforced): ratio >= 0.5 and >= 1,000 deliveries/s. `--breakdown` adds the time
spent in each step of the worker; `--profile DIR` records one extra Kassa round under py-spy
(`pip install py-spy`). Exits non-zero when a check fails. Every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvloop
from scripts.procs import child_pids, cpu_seconds, free_port
from sqlalchemy import delete, func, insert, select, text, update

from kassa.config import Settings, load_settings
from kassa.db.migrate import upgrade
from kassa.db.tables import deliveries, delivery_attempts, events, webhook_endpoints
from kassa.ids import new_id
from kassa.notify.signing import sign_headers
from kassa.runtime import Runtime, build_runtime
from kassa.services.views import iso
from kassa.worker import deliveries as delivery_module
from kassa.worker.deliveries import DeliveryWorker, webhook_body

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SECRET_KEY = "b3nch" * 13  # any key of 32+ characters: it only seals the endpoints' secrets
FLOW = ["order.created", "payment.received", "payment.confirmed", "order.processing", "order.paid"]
TARGET_RATIO = 0.5
TARGET_RATE = 1000.0


class BenchError(Exception):
    """A check failed: the figures cannot be trusted."""


# ----- processes and CPU -----------------------------------------------------------------------


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds used by this process, the receiver and PostgreSQL (postmaster + backends)."""

    def __init__(self, receiver_pid: int, postmaster_pid: int | None) -> None:
        self.receiver_pid = receiver_pid
        self.postmaster_pid = postmaster_pid

    def sample(self) -> dict[str, Any]:
        pg: dict[int, float] = {}
        if self.postmaster_pid is not None:
            pg = {p: cpu_seconds(p) for p in [self.postmaster_pid, *child_pids(self.postmaster_pid)]}
        return {"self": self_cpu(), "receiver": cpu_seconds(self.receiver_pid), "pg": pg}

    @staticmethod
    def used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        pg = sum(max(0.0, t - before["pg"].get(pid, 0.0)) for pid, t in after["pg"].items())
        return {
            "self": after["self"] - before["self"],
            "receiver": after["receiver"] - before["receiver"],
            "pg": pg,
        }


class Receiver:
    def __init__(self, secrets: dict[str, str], workdir: Path, port: int) -> None:
        secrets_file = workdir / "secrets.json"
        secrets_file.write_text(json.dumps(secrets))
        self.port = port
        self.log = (workdir / "receiver.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "receiver.py"), "--port", str(port), "--secrets", str(secrets_file)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the receiver did not start (see {workdir / 'receiver.log'})") from None
                time.sleep(0.05)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=10).json()
        return result

    def reset(self) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own child's process group, nothing else
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# ----- seeding ---------------------------------------------------------------------------------


def order_snapshot(order_id: str, sequence: int, amount: int) -> dict[str, Any]:
    """An order as events carry it (same shape and about the same size as `order_view`)."""
    status = ["open", "open", "open", "processing", "paid"][sequence - 1]
    now = iso(datetime.now(UTC))
    return {
        "id": order_id,
        "object": "order",
        "order_id": f"shop-{order_id[-8:]}",
        "status": status,
        "exception": None,
        "amount": amount,
        "currency": "USD",
        "cart": None,
        "description": "Benchmark order",
        "email": None,
        "confirmations": 0,
        "expires_at": now,
        "timer_paused": status == "processing",
        "timer_remaining": None,
        "late": False,
        "checkout_url": f"http://127.0.0.1:8000/pay/{order_id}",
        "success_url": "https://shop.example/thanks",
        "cancel_url": "https://shop.example/cart",
        "callback_url": None,
        "fulfillment_url": None,
        "session_id": None,
        "metadata": {"customer": "c-1234"},
        "method": "test",
        "payment_methods": [
            {
                "method": "test",
                "currency": "USD",
                "amount": amount,
                "rate": "1",
                "address": f"test:{order_id}",
                "payment_uri": None,
                "expires_at": now,
            }
        ],
        "payment_currency": "USD",
        "amount_due": amount,
        "amount_received": amount if sequence > 1 else 0,
        "amount_confirmed": amount if sequence > 2 else 0,
        "amount_refunded": 0,
        "payments": [],
        "test": True,
        "version": sequence,
        "created_at": now,
        "updated_at": now,
        "paid_at": now if status == "paid" else None,
        "closed_at": now if status == "paid" else None,
    }


@dataclass
class Seeded:
    endpoints: list[dict[str, Any]]  # id, pk, merchant_pk, url, path, secret
    events: int
    messages: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)  # url, body, headers


async def seed(runtime: Runtime, receiver_url: str, n_endpoints: int, n_events: int) -> Seeded:
    endpoints = []
    for i in range(n_endpoints):
        merchant = await runtime.merchants.create(f"Bench Shop {i}")
        path = f"/m{i}"
        view = await runtime.webhooks.create_endpoint(merchant.pk, receiver_url + path, ["*"], None, True)
        endpoints.append({**view, "merchant_pk": merchant.pk, "path": path})
    async with runtime.db.read() as conn:
        pks = dict((await conn.execute(select(webhook_endpoints.c.id, webhook_endpoints.c.pk))).all())
    for ep in endpoints:
        ep["pk"] = pks[ep["id"]]

    n_orders = -(-n_events // len(FLOW))
    orders = [(new_id("ord"), endpoints[k % n_endpoints], 1000 + k) for k in range(n_orders)]
    start = runtime.clock.now() - timedelta(hours=1)
    rows = []
    for sequence, kind in enumerate(FLOW, start=1):
        for order_id, ep, amount in orders:
            if len(rows) == n_events:
                break
            rows.append(
                {
                    "id": new_id("evt"),
                    "merchant_pk": ep["merchant_pk"],
                    "type": kind,
                    "object_type": "order",
                    "object_id": order_id,
                    "order_id": order_id,
                    "sequence": sequence,
                    "data": order_snapshot(order_id, sequence, amount),
                    "test": True,
                    "created_at": start + timedelta(milliseconds=len(rows)),
                }
            )
    by_merchant = {ep["merchant_pk"]: ep for ep in endpoints}
    async with runtime.db.transaction() as tx:
        for chunk in range(0, len(rows), 2000):
            await tx.conn.execute(insert(events), rows[chunk : chunk + 2000])
        event_pks = dict((await tx.conn.execute(select(events.c.id, events.c.pk))).all())
        dl = []
        for row in rows:
            ep = by_merchant[row["merchant_pk"]]
            dl.append(
                {
                    "id": new_id("dlv"),
                    "merchant_pk": ep["merchant_pk"],
                    "event_pk": event_pks[row["id"]],
                    "endpoint_pk": ep["pk"],
                    "url": ep["url"],
                    "channel": ep["id"],
                    "order_id": row["order_id"],
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": row["created_at"],
                    "created_at": row["created_at"],
                }
            )
        for chunk in range(0, len(dl), 2000):
            await tx.conn.execute(insert(deliveries), dl[chunk : chunk + 2000])

    # The same messages for the plain loop: the body the worker builds, signed the way it signs.
    seeded = Seeded(endpoints, len(rows))
    now = datetime.now(UTC)
    for row in rows:
        ep = by_merchant[row["merchant_pk"]]
        body = webhook_body(
            {
                "event_id": row["id"],
                "type": row["type"],
                "created_at": row["created_at"],
                "sequence": row["sequence"],
                "order_id": row["order_id"],
                "test": row["test"],
                "data": json.dumps(row["data"]),  # as SQLAlchemy's JSON type stored it
            }
        )
        headers = {"content-type": "application/json", **sign_headers([ep["secret"]], row["id"], now, body)}
        seeded.messages.append((ep["url"], body, headers))
    return seeded


async def reset_deliveries(runtime: Runtime) -> None:
    async with runtime.db.transaction() as tx:
        await tx.conn.execute(delete(delivery_attempts))
        await tx.conn.execute(
            update(deliveries).values(
                status="pending",
                attempts=0,
                next_attempt_at=deliveries.c.created_at,
                leased_until=None,
                lease=None,
                last_status_code=None,
                last_error=None,
                completed_at=None,
            )
        )
    if runtime.db.is_postgres:
        async with runtime.db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE deliveries"))
            await conn.execute(text("VACUUM ANALYZE delivery_attempts"))


# ----- the two phases --------------------------------------------------------------------------


async def plain_loop(messages: list[tuple[str, bytes, dict[str, str]]], concurrency: int) -> None:
    """The reference: one httpx.AsyncClient (httpx's default limits), `concurrency` senders."""
    queue = iter(messages)
    failures = 0
    async with httpx.AsyncClient(timeout=15) as client:

        async def sender() -> None:
            nonlocal failures
            for url, body, headers in queue:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code != 200:
                    failures += 1

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    if failures:
        raise BenchError(f"plain loop: {failures} non-200 answers")


Message = tuple[str, bytes, dict[str, str]]  # url, signed body, headers


async def pooled_loop(messages: list[Message], concurrency: int, per_target: int) -> None:
    """A second reference, httpx used as Kassa uses it: one client per endpoint with `per_target`
    keep-alive connections, and as many senders per endpoint (httpcore's per-request cost grows with
    the connections in its pool, so one shared client is slower at this concurrency)."""
    by_target: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_target[message[0]].append(message)
    failures = 0
    limits = httpx.Limits(max_connections=per_target, max_keepalive_connections=per_target)
    clients = {url: httpx.AsyncClient(timeout=15, limits=limits) for url in by_target}
    try:

        async def sender(client: httpx.AsyncClient, queue: Iterator[Message]) -> None:
            nonlocal failures
            for url, body, headers in queue:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code != 200:
                    failures += 1

        senders = []
        for url, items in by_target.items():
            queue = iter(items)
            senders += [sender(clients[url], queue) for _ in range(per_target)]
        await asyncio.gather(*senders)
    finally:
        for client in clients.values():
            await client.aclose()
    if failures:
        raise BenchError(f"pooled loop: {failures} non-200 answers")


@contextlib.contextmanager
def breakdown() -> Iterator[dict[str, list[float]]]:
    """Time the worker's steps (claim, secrets, HTTP, batched settles) by wrapping them."""
    timings: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    originals: dict[str, Any] = {}

    def timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                entry = timings[name]
                entry[0] += 1
                entry[1] += time.perf_counter() - started

        return wrapper

    for name in ("_claim", "_secrets", "_settle_batch"):
        originals[name] = getattr(DeliveryWorker, name)
        setattr(DeliveryWorker, name, timed(name.strip("_"), originals[name]))
    originals["deliver"] = delivery_module.deliver
    delivery_module.deliver = timed("http", originals["deliver"])  # type: ignore[assignment]
    try:
        yield timings
    finally:
        for name in ("_claim", "_secrets", "_settle_batch"):
            setattr(DeliveryWorker, name, originals[name])
        delivery_module.deliver = originals["deliver"]


async def check_delivered(runtime: Runtime, expected: int) -> None:
    async with runtime.db.read() as conn:
        statuses = dict(
            (
                await conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
            ).all()
        )
        logged = (await conn.execute(select(func.count()).select_from(delivery_attempts))).scalar()
    if statuses != {"succeeded": expected} or logged != expected:
        raise BenchError(f"after the Kassa phase: deliveries {statuses}, attempts logged {logged}")


def check_received(receiver: Receiver, seeded: Seeded, phase: str) -> dict[str, Any]:
    stats = receiver.stats()
    expected = {ep["path"]: 0 for ep in seeded.endpoints}
    for url, _, _ in seeded.messages:
        expected["/" + url.rsplit("/", 1)[1]] += 1
    if stats["count"] != seeded.events or stats["unique"] != seeded.events:
        raise BenchError(f"{phase}: receiver counted {stats['count']} ({stats['unique']} unique)")
    if stats["per_path"] != expected:
        raise BenchError(f"{phase}: per path {stats['per_path']} != {expected}")
    if stats["bad"] or stats["verified"] == 0:
        raise BenchError(f"{phase}: signature check failed: {stats['bad']}")
    return stats


# ----- main ------------------------------------------------------------------------------------


@dataclass
class Run:
    db: str
    rates: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "pooled": [], "kassa": []})
    cpu: dict[str, list[dict[str, float]]] = field(
        default_factory=lambda: {"plain": [], "pooled": [], "kassa": []}
    )
    steps: dict[str, list[float]] = field(default_factory=dict)


async def bench_one(
    url: str, db_name: str, args: argparse.Namespace, workdir: Path, postmaster: int | None
) -> Run:
    port = free_port()
    per_target = max(1, -(-args.concurrency // args.endpoints))
    settings: Settings = load_settings(
        database_url=url,
        secret_key=SECRET_KEY,
        allow_private_webhooks=True,
        webhook_concurrency=args.concurrency,
        webhook_per_target=per_target,
        db_pool_size=max(10, args.concurrency // 2),
        log_level="warning",
        access_log=False,
    )
    runtime = build_runtime(settings)
    receiver: Receiver | None = None
    run = Run(db_name)
    try:
        seed_start = time.perf_counter()
        seeded = await seed(runtime, f"http://127.0.0.1:{port}", args.endpoints, args.events)
        print(
            f"[{db_name}] seeded {seeded.events} events and deliveries for {args.endpoints} endpoints "
            f"in {time.perf_counter() - seed_start:.1f}s; concurrency {args.concurrency}, "
            f"{per_target} per endpoint",
            flush=True,
        )
        receiver = Receiver({ep["path"]: ep["secret"] for ep in seeded.endpoints}, workdir, port)
        meter = CpuMeter(receiver.proc.pid, postmaster)

        async def timed(phase: str, work: Callable[[], Awaitable[None]]) -> float:
            assert receiver is not None
            receiver.reset()
            before, started = meter.sample(), time.perf_counter()
            await work()
            elapsed = time.perf_counter() - started
            run.cpu[phase].append(CpuMeter.used(before, meter.sample()))
            check_received(receiver, seeded, phase)
            rate = seeded.events / elapsed
            run.rates[phase].append(rate)
            return rate

        async def kassa_phase() -> None:
            worker = DeliveryWorker(runtime)  # as `kassa worker` builds it (its own OutboundPools)
            try:
                await worker.drain()
            finally:
                await worker.aclose()

        # Warm-up: one small pass of each, so that neither pays for imports and first connections.
        async with httpx.AsyncClient() as warm:
            for url_, body, headers in seeded.messages[:50]:
                await warm.post(url_, content=body, headers=headers)

        for round_no in range(1, args.rounds + 1):
            plain = await timed("plain", lambda: plain_loop(seeded.messages, args.concurrency))
            pooled = await timed("pooled", lambda: pooled_loop(seeded.messages, args.concurrency, per_target))
            await reset_deliveries(runtime)
            if args.breakdown:
                with breakdown() as steps:
                    kassa = await timed("kassa", kassa_phase)
                run.steps = {k: [v[0], v[1]] for k, v in steps.items()}
            else:
                kassa = await timed("kassa", kassa_phase)
            await check_delivered(runtime, seeded.events)
            print(
                f"[{db_name}] round {round_no}: plain {plain:7.0f}/s   pooled {pooled:7.0f}/s   "
                f"kassa {kassa:7.0f}/s   ratio {kassa / plain:.2f} ({kassa / pooled:.2f} to pooled)",
                flush=True,
            )
            await reset_deliveries(runtime)

        if args.profile:
            await profile_round(runtime, kassa_phase, Path(args.profile), db_name, args.profile_native)
    finally:
        if receiver is not None:
            receiver.stop()
        await runtime.close()
    return run


async def profile_round(
    runtime: Runtime, kassa_phase: Callable[[], Awaitable[None]], out: Path, db_name: str, native: bool
) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):  # noqa: ASYNC240 (once, before the measured part)
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return
    await reset_deliveries(runtime)
    collapsed = out / f"webhooks-{db_name}.collapsed"
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(os.getpid()),
        "--rate",
        "250",
        *(["--native"] if native else []),
        "--format",
        "raw",
        "-o",
        str(collapsed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)
    try:
        await kassa_phase()
    finally:
        proc.send_signal(signal.SIGINT)
        await proc.wait()
    print(f"[{db_name}] profile of one Kassa round: {collapsed}")


def ms_per_delivery(samples: list[dict[str, float]], key: str, events: int) -> float:
    return statistics.median(sample[key] for sample in samples) * 1000 / events


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.events} events, {args.endpoints} endpoints, concurrency {args.concurrency}, "
        f"{args.rounds} round(s); {platform.python_version()} on {os.cpu_count()} CPU(s)"
    )
    print(
        "| database | plain httpx (deliveries/s) | httpx, a client per endpoint | Kassa (deliveries/s) | "
        "ratio (to the client per endpoint) | CPU ms per delivery: Kassa process / receiver / PostgreSQL |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for run in runs:
        plain = statistics.median(run.rates["plain"])
        pooled = statistics.median(run.rates["pooled"])
        kassa = statistics.median(run.rates["kassa"])
        cpu = {k: ms_per_delivery(run.cpu["kassa"], k, args.events) for k in ("self", "receiver", "pg")}
        pcpu = {k: ms_per_delivery(run.cpu["plain"], k, args.events) for k in ("self", "receiver")}
        ocpu = {k: ms_per_delivery(run.cpu["pooled"], k, args.events) for k in ("self", "receiver")}
        pg_cpu = f"{cpu['pg']:.2f}" if run.db == "postgresql" else "-"
        print(
            f"| {run.db} | {plain:,.0f} | {pooled:,.0f} | {kassa:,.0f} | {kassa / plain:.2f} "
            f"({kassa / pooled:.2f}) | "
            f"{cpu['self']:.2f} / {cpu['receiver']:.2f} / {pg_cpu} "
            f"(plain loop: {pcpu['self']:.2f} / {pcpu['receiver']:.2f}; "
            f"a client per endpoint: {ocpu['self']:.2f} / {ocpu['receiver']:.2f}) |"
        )
        ok_ratio = kassa / plain >= TARGET_RATIO
        ok_rate = kassa >= TARGET_RATE
        print(
            f"  {run.db}: target ratio >= {TARGET_RATIO}: {'met' if ok_ratio else 'MISSED'}; "
            f"target >= {TARGET_RATE:,.0f}/s: {'met' if ok_rate else 'MISSED'}"
        )
        if run.steps:
            print(f"  {run.db}: worker steps in the last round (count, total s, mean ms):")
            for name, (count, total) in sorted(run.steps.items(), key=lambda kv: -kv[1][1]):
                print(f"    {name:8} {int(count):6d} {total:8.2f} {total / max(count, 1) * 1000:8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="postgresql")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--endpoints", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="time the worker's steps")
    parser.add_argument("--profile", metavar="DIR", help="record one more Kassa round with py-spy")
    parser.add_argument("--profile-native", action="store_true", help="with --profile: include C frames")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    runs = []
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-webhooks-"))
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    try:
        if args.db in ("postgresql", "both"):
            from scripts.pgtmp import TempPostgres

            with TempPostgres() as pg:
                upgrade(pg.url)
                postmaster = int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])
                runs.append(uvloop.run(bench_one(pg.url, "postgresql", args, workdir, postmaster)))
        if args.db in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
            upgrade(url)
            runs.append(uvloop.run(bench_one(url, "sqlite", args, workdir, None)))
    except BenchError as exc:
        print(f"benchmark check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(runs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
