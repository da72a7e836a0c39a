"""Benchmark: how fast Kassa notices a Monero payment (transfer -> order `processing`).

    PYTHONPATH=. .venv/bin/python bench/detect_latency/run.py [--payments 20] [--json FILE]

Run it from the repository root (needs monerod and monero-wallet-rpc 0.18: `apt-get install -y
monero`, as `make system-deps` does). In one run it:

1. starts a Monero regtest network (tests/support/monero_regtest.py: monerod, a payer wallet-rpc, a
   merchant wallet-rpc with a view-only wallet and digest auth) and a second view-only merchant
   wallet-rpc started with ``--tx-notify "src/kassa/rails/monero/kassa-notify.sh ENV_FILE %s"`` (the
   script docs/monero.md ships; ENV_FILE, mode 600, holds KASSA_URL and KASSA_API_KEY);
2. sets Kassa up the way an operator does, with the CLI on an SQLite file: `kassa migrate`,
   `kassa merchants create`, `kassa rails configure --merchant ID monero --set ...` (one merchant per
   mode, then disabled again with `kassa merchants update ID --disable-rail monero`), `KASSA_RATES`
   with a static XMR/USD rate; then starts `kassa serve` (worker in-process, so the real
   WatcherSupervisor runs the watchers);
3. per mode, enables that mode's rail alone (`PUT /api/v1/payment-methods/monero`; one watcher runs
   at a time) and waits until /readyz shows its watcher; then ``--payments`` times: creates a 10 USD
   order payable in XMR, waits a random 0-1 s (so payments land at random points of the polling
   cycle), pays its subaddress from the payer wallet, and takes the time when `transfer` returns;
   the latency is the `order.processing` event's time minus that (same machine, same clock; the
   event is written in the transaction that moves the order). Between modes one block is mined so
   that the pool starts empty;
4. prints p50 / p95 / max per mode, the targets, and the CPU time the merchant's wallet-rpc spent
   per minute in each mode (what faster polling costs).

Modes:

* ``notify``: the wallet with --tx-notify; rail settings ``poll_interval=30`` (the fallback) and
  ``auto_refresh_period=1`` (the watcher asks monero-wallet-rpc to refresh itself every second: the
  wallet runs --tx-notify only when it refreshes). Target p95 < 1.5 s.
* ``poll``: no --tx-notify, the default ``poll_interval=2``. Target p95 < poll_interval + 0.5 s.
* ``poll-fast``: the same with ``poll_interval=0.5`` (for comparison; target 1.0 s).

Exit status 0 when the measurement is sound (whether or not a target is met), 1 when something
failed (a payment never detected, a server did not start). Everything it started is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from scripts.procs import cpu_seconds  # noqa: E402
from tests.support.monero_regtest import MoneroRegtest, free_loopback_ports  # noqa: E402

KASSA = str(REPO / ".venv" / "bin" / "kassa")
NOTIFY_SCRIPT = REPO / "src" / "kassa" / "rails" / "monero" / "kassa-notify.sh"
RATE = "150"
ORDER_USD_CENTS = 1000
DUE = 66_666_666_667  # 10.00 USD at 150 USD/XMR, piconero, rounded up
SUPERVISOR_REFRESH = 5.0  # WatcherSupervisor's default: how often it re-reads the rail configurations


@dataclass
class Mode:
    name: str
    wallet: str  # which merchant wallet-rpc: "merchant" (plain) or "notify" (--tx-notify)
    settings: dict[str, Any]
    target_p95: float
    merchant_id: str = ""
    api_key: str = ""
    latencies: list[float] = field(default_factory=list)
    wallet_cpu_per_min: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "mode": self.name,
            "settings": {k: v for k, v in self.settings.items() if k != "password"},
            "n": len(lat),
            "p50_s": round(statistics.median(lat), 3),
            "p95_s": round(percentile(lat, 95), 3),
            "max_s": round(lat[-1], 3),
            "min_s": round(lat[0], 3),
            "target_p95_s": self.target_p95,
            "met": percentile(lat, 95) < self.target_p95,
            "wallet_rpc_cpu_s_per_min": round(self.wallet_cpu_per_min, 2),
        }


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, -(-len(values) * p // 100))
    return values[int(rank) - 1]


def kassa_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([KASSA, *args], env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise SystemExit(f"kassa {' '.join(args[:2])} failed: {result.stdout}{result.stderr}")
    return result.stdout


def wait_ready(base: str, merchants: list[str], process: subprocess.Popen[bytes], within: float = 30) -> None:
    """Until /readyz shows a running watcher for each merchant's Monero rail."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kassa serve exited with {process.returncode}")
        try:
            body = httpx.get(f"{base}/readyz", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        watchers = body.get("details", {}).get("watchers", {})
        if all(watchers.get(f"{m}/monero", {}).get("ok") for m in merchants):
            return
        time.sleep(0.1)
    raise SystemExit(f"watchers not all running within {within} s")


def measure(
    mode: Mode, net: MoneroRegtest, base: str, payments: int, wallet_pid: int, serve: subprocess.Popen[bytes]
) -> None:
    headers = {"Authorization": f"Bearer {mode.api_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        # Only this mode's watcher runs while it is measured: enable its rail (PUT with the masked
        # settings keeps the stored password), wait for its watcher, measure, disable it again.
        (method,) = [m for m in api.get("/api/v1/payment-methods").json()["data"] if m["rail"] == "monero"]
        api.put("/api/v1/payment-methods/monero", json=method["settings"]).raise_for_status()
        wait_ready(base, [mode.merchant_id], serve)
        time.sleep(1)  # its first passes (and its auto_refresh call) are done
        cpu0, t0 = cpu_seconds(wallet_pid), time.monotonic()
        for i in range(payments):
            response = api.post(
                "/api/v1/orders",
                json={"amount": ORDER_USD_CENTS, "currency": "USD", "payment_methods": ["XMR"]},
            )
            response.raise_for_status()
            order = response.json()
            assert order["amount_due"] == DUE, order
            time.sleep(random.uniform(0, 1))
            net.pay(order["payment_methods"][0]["address"], DUE)
            paid_at = time.time()
            deadline = time.monotonic() + 60
            while True:
                events = api.get(
                    "/api/v1/events", params={"order": order["id"], "type": "order.processing"}
                ).json()["data"]
                if events:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{mode.name}: payment {i + 1} not detected within 60 s")
                time.sleep(0.02)
            seen = datetime.fromisoformat(events[0]["created_at"].replace("Z", "+00:00")).timestamp()
            latency = seen - paid_at
            mode.latencies.append(latency)
            print(f"  {mode.name:9} payment {i + 1:2}: {latency:6.3f} s", flush=True)
        mode.wallet_cpu_per_min = (cpu_seconds(wallet_pid) - cpu0) / (time.monotonic() - t0) * 60
        api.delete("/api/v1/payment-methods/monero").raise_for_status()
    time.sleep(SUPERVISOR_REFRESH + 1)  # the supervisor stops the watcher


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--payments", type=int, default=20, help="payments per mode (default 20)")
    parser.add_argument("--modes", default="notify,poll,poll-fast", help="comma-separated modes")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    modes = {
        "notify": Mode("notify", "notify", {"poll_interval": 30, "auto_refresh_period": 1}, 1.5),
        "poll": Mode("poll", "merchant", {"poll_interval": 2}, 2.5),
        "poll-fast": Mode("poll-fast", "merchant", {"poll_interval": 0.5}, 1.0),
    }
    chosen = [modes[m] for m in args.modes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="kassa-bench-latency-"))
    env_file = tmp / "monero-notify.env"
    env_file.touch(mode=0o600)
    (port,) = free_loopback_ports(1)
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'kassa.db'}",
        "KASSA_SECRET_KEY_FILE": str(tmp / "secret.key"),
        "KASSA_BASE_URL": base,
        "KASSA_RATES": json.dumps({"primary": "static", "static": {"XMR/USD": RATE}}),
        "KASSA_LOG_LEVEL": "warning",
    }
    env.pop("KASSA_CONFIG", None)
    login = ("kassa", secrets.token_urlsafe(12))
    serve: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    with MoneroRegtest(merchant_rpc_login=login, initial_blocks=200) as net:
        notify_server, _ = net.start_view_only_wallet_rpc(
            "notify", login=login, extra_args=["--tx-notify", f"{NOTIFY_SCRIPT} {env_file} %s"]
        )
        wallets = {"merchant": net.wallet_server("merchant"), "notify": notify_server}
        print(f"regtest up in {time.monotonic() - started:.1f} s", flush=True)
        try:
            kassa_cli(env, "migrate")
            for mode in chosen:
                created = json.loads(
                    kassa_cli(env, "merchants", "create", "--name", f"bench {mode.name}", "--json")
                )
                mode.merchant_id = created["merchant"]["id"]
                mode.api_key = created["api_key"]["secret"]
                settings = {
                    "wallet_rpc_url": wallets[mode.wallet].url,
                    "username": login[0],
                    "password": login[1],
                    "daemon_url": net.daemon_url,
                    **mode.settings,
                }
                sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
                kassa_cli(env, "rails", "configure", "monero", "--merchant", mode.merchant_id, *sets)
                kassa_cli(env, "merchants", "update", mode.merchant_id, "--disable-rail", "monero")
                if mode.wallet == "notify":
                    env_file.write_text(f"KASSA_URL={base}\nKASSA_API_KEY={mode.api_key}\n")
            check = json.loads(
                kassa_cli(env, "rails", "check", "--merchant", chosen[0].merchant_id, "--json")
            )
            print("kassa rails check:", json.dumps([r for r in check if r["rail"] == "monero"]), flush=True)
            serve = subprocess.Popen(
                [KASSA, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(tmp / "kassa.log", "wb"),  # noqa: SIM115
            )
            wait_ready(base, [], serve)  # the server answers
            for mode in chosen:
                print(f"mode {mode.name}: {mode.settings}", flush=True)
                measure(mode, net, base, args.payments, wallets[mode.wallet].process.pid, serve)
                net.mine(1)
        finally:
            if serve is not None:
                serve.terminate()
                serve.wait(timeout=20)

    results = [m.summary() for m in chosen]
    print()
    print(f"{'mode':10} {'settings':46} {'n':>3} {'p50':>7} {'p95':>7} {'max':>7} {'target':>7}  wallet CPU")
    for r in results:
        print(
            f"{r['mode']:10} {json.dumps(r['settings']):46} {r['n']:3} {r['p50_s']:6.3f}s {r['p95_s']:6.3f}s "
            f"{r['max_s']:6.3f}s {'<' + str(r['target_p95_s']) + 's':>7}  "
            f"{r['wallet_rpc_cpu_s_per_min']:.2f} s/min  {'met' if r['met'] else 'MISSED'}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "results": results,
                    "raw": {m.name: m.latencies for m in chosen},
                    "modes": [asdict(m) | {"api_key": None} for m in chosen],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
