"""A `kassa worker` killed with SIGKILL in the middle of delivering, on PostgreSQL, with two worker
processes competing: after a replacement starts, nothing is lost and nothing goes to the wrong
endpoint.

Two merchants each have an endpoint on the same loopback receiver (distinct paths, each verified
with its own secret). Two real `kassa worker` processes deliver while orders are created through
the API. At about a fifth of the way, the receiver stops answering (its "gate" closes) until one
chosen worker has a request in flight there; that worker gets SIGKILL, the gate opens, a replacement
worker starts. The killed worker's leases run out (KASSA_WEBHOOK_LEASE_SECONDS=3) and the other
workers send those messages again, with the same webhook-id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from kassa.db.tables import deliveries
from tests.support.pg_databases import fresh_database as new_database
from tests.support.server import KassaServer
from tests.webhooks.test_reliability import (
    PAID_FLOW,
    HookReceiver,
    all_events,
    first_arrivals_in_sequence,
    pay_orders,
    register,
)

SECRET_KEY = "5b1f0c3a9e8d7c6b5a493827161504f3e2d1c0b9a8f7e6d5c4b3a29180706f5e"  # shared by all processes
ORDERS_PER_MERCHANT = 100
KASSA = Path(sys.executable).with_name("kassa")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc"),
]


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server, dropped afterwards."""
    with new_database(postgres_url, "kassa_crash") as url:
        yield url


class Workers:
    """`kassa worker` subprocesses, each in its own session, logs in files."""

    def __init__(self, database_url: str, logs: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
        self.env.update(
            KASSA_DATABASE_URL=database_url,
            KASSA_SECRET_KEY=SECRET_KEY,
            KASSA_ALLOW_PRIVATE_WEBHOOKS="true",
            KASSA_WEBHOOK_LEASE_SECONDS="3",
            KASSA_LOG_LEVEL="warning",
        )
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.procs) + 1}.log").open("wb")
        proc = subprocess.Popen(
            [str(KASSA), "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> str:
        return (self.logs / f"worker-{index + 1}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def local_ports(pid: int, remote_port: int) -> set[int]:
    """The local ports of the TCP connections process `pid` holds to 127.0.0.1:`remote_port`."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def test_sigkill_mid_delivery_loses_nothing_and_misroutes_nothing(
    fresh_database: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    server = KassaServer(fresh_database, str(tmp_path / "unused.key"), secret_key=SECRET_KEY).start()
    hooks = HookReceiver().start()
    hooks.answer = lambda _arrival: (200, 0.01)  # slow-ish: a worker always has sends in flight
    workers = Workers(fresh_database, tmp_path)
    total = 2 * ORDERS_PER_MERCHANT * len(PAID_FLOW)
    try:
        shops = {}
        for path in ("/a", "/b"):
            _, key = server.new_merchant(f"Shop {path}")
            with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
                register(api, hooks, path)
            shops[path] = key
        victim = workers.start()
        workers.start()

        # Orders come in through the API while both workers deliver.
        with ThreadPoolExecutor(2) as pool:
            creating = {
                path: pool.submit(pay_orders, server, key, ORDERS_PER_MERCHANT, 2)
                for path, key in shops.items()
            }
            wait_for(lambda: len(hooks.snapshot()) >= total // 5, 60, "the first deliveries")

            # Hold every answer until the victim has a request in flight here, then kill it.
            hooks.gate.clear()
            try:

                def victim_in_flight() -> set[str]:
                    """Webhook-ids of the victim's requests that the receiver holds unanswered."""
                    mine = local_ports(victim.pid, int(hooks.url.rsplit(":", 1)[1]))
                    with hooks.lock:
                        return {msg_id for port, msg_id in hooks.in_flight.items() if port in mine}

                wait_for(lambda: bool(victim_in_flight()), 20, "the victim worker to be sending")
                cut_off = victim_in_flight()
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(timeout=10)
                arrived_at_kill = len(hooks.snapshot())
            finally:
                hooks.gate.set()
            workers.start()  # the replacement
            order_ids = {path: future.result(timeout=120) for path, future in creating.items()}
        assert cut_off, "the victim was killed while sending"
        assert arrived_at_kill < total, "killed in the middle, not after the end"

        async def pending() -> tuple[int, int]:
            async with server.runtime.db.read() as conn:
                rows = dict(
                    (
                        await conn.execute(
                            select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
                        )
                    ).all()
                )
            return rows.get("succeeded", 0), sum(rows.values())

        wait_for(lambda: server.call(pending()) == (total, total), 60, "every delivery to succeed", 0.25)
        elapsed = time.monotonic() - started
        survivors = [p.poll() for p in workers.procs[1:]]
        logs = [workers.log(i) for i in range(len(workers.procs))]

        events = {}
        for path, key in shops.items():
            with httpx.Client(
                base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as api:
                events[path] = all_events(api)
    finally:
        workers.kill_all()
        hooks.stop()
        server.stop()

    assert survivors == [None, None], "the other workers kept running"
    for text in logs:
        assert "Traceback" not in text, text[-3000:]

    arrivals = hooks.snapshot()
    assert {a.path for a in arrivals} == {"/a", "/b"}
    # Nothing to the wrong endpoint: every message verifies with the secret of the path it came
    # to, and is an event of the merchant that owns that path.
    assert all(a.verified for a in arrivals)
    for path, shop_events in events.items():
        got = hooks.snapshot(path)
        assert len(shop_events) == ORDERS_PER_MERCHANT * len(PAID_FLOW)
        assert {e["order"] for e in shop_events} == set(order_ids[path])
        assert {a.webhook_id for a in got} == {e["id"] for e in shop_events}, "nothing lost, nothing foreign"
        assert all(a.body["order"] in order_ids[path] for a in got)
        for order_id, sequence in first_arrivals_in_sequence(got).items():
            assert sequence == [1, 2, 3, 4, 5], (path, order_id)

    # Duplicates only as the same message again: same webhook-id, same body.
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for a in arrivals:
        bodies[a.webhook_id].add(a.raw)
    assert all(len(b) == 1 for b in bodies.values())
    copies = Counter(a.webhook_id for a in arrivals)
    # What the killed worker was sending went out again from a surviving worker.
    assert all(copies[i] >= 2 for i in cut_off), {i: copies[i] for i in cut_off}
    print(
        f"\n{total} deliveries by 2+1 workers in {elapsed:.1f}s; killed one with {len(cut_off)} "
        f"in flight after {arrived_at_kill} arrivals; {sum(n - 1 for n in copies.values())} duplicate(s)"
    )
