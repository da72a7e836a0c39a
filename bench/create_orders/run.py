"""Benchmark: create orders on Kassa (PostgreSQL) against a bare FastAPI echo, with wrk.

    PYTHONPATH=. .venv/bin/python bench/create_orders/run.py [--duration 10] [--rounds 3]

Run it from the repository root. In one run it:

1. starts a private PostgreSQL (scripts/pgtmp.py) on 127.0.0.1, runs `kassa migrate`, and creates a
   merchant and an API key with `kassa merchants create --name Bench --json`;
2. starts `kassa serve --workers 1` and the bare reference (bench/create_orders/bare_app.py: FastAPI +
   the same request model, validate and echo only, served by the same `uvicorn.run` call) on
   127.0.0.1, and waits for `/readyz`;
3. warms both up, then drives them alternately (bare, kassa, bare, kassa, ...) with
   `wrk -t2 -c32 -d<N>s --latency -s post.lua`, POSTing `{"amount": 1050, "currency": "USD", ...}`;
4. after each Kassa run, checks that the orders table grew by the number of successful responses
   (at least that many, at most that many plus the connection count, for requests in flight when
   wrk stopped), and at the end that every order has its quote and its order.created event;
5. prints orders/s, p50 and p99 per run, their medians, and the ratio Kassa / bare.

It exits non-zero when a sanity check fails (a server does not start, a probe request is wrong, wrk
reports non-2xx responses or socket errors, orders are missing). Missing the target (ratio >= 0.35,
Kassa p99 < 50 ms) is reported, not an error: this is a measurement. Every process it started and
the PostgreSQL are stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from scripts.pgtmp import TempPostgres, _binary
from scripts.procs import CLK_TCK, child_pids, cpu_seconds, free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LUA = HERE / "post.lua"
BARE_APP = HERE / "bare_app.py"
PATH = "/api/v1/orders"
BODY = {"amount": 1050, "currency": "USD", "description": "bench"}
TARGET_RATIO = 0.35
TARGET_P99_MS = 50.0


class BenchError(Exception):
    """A sanity check failed: the figures cannot be trusted."""


# ----- processes -------------------------------------------------------------------------------


class Server:
    """A server subprocess in its own session (so stopping it stops its children too)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} exited with code {self.proc.returncode}\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  {self.name}| {line}" for line in text[-lines:])

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, _ = self.request("GET", "/readyz", timeout=2)
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise BenchError(
            f"{self.name} was not ready on {self.base}/readyz within {timeout:.0f}s\n{self.tail()}"
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stack(self) -> str:
        """Which event loop and HTTP parser the server really runs, from the libraries it has mapped."""
        try:
            maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        except OSError:
            return "unknown"
        loop = "uvloop" if "/uvloop/" in maps else "asyncio"
        http = "httptools" if "/httptools/" in maps else "h11"
        return f"{loop} + {http}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)  # our own child's process group, nothing else
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log_file.close()


class PostgresCpu:
    """CPU used by the postmaster and its backends between two samples."""

    def __init__(self, pg: TempPostgres) -> None:
        pidfile = pg.dir / "data" / "postmaster.pid"
        self.postmaster = int(pidfile.read_text().split()[0])

    def sample(self) -> dict[int, float]:
        pids = [self.postmaster, *child_pids(self.postmaster)]
        return {pid: cpu_seconds(pid) for pid in pids}

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children_cpu_seconds() -> tuple[float, float]:
    """CPU of this process's reaped children (wrk, once waited for) plus this process itself."""
    kids, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return kids.ru_utime + kids.ru_stime, me.ru_utime + me.ru_stime


def kassa_command() -> str:
    candidate = Path(sys.executable).with_name("kassa")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("kassa")
    if not found:
        raise BenchError("the `kassa` command was not found: install the project into the virtualenv")
    return found


def run_cli(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


# ----- the database check ----------------------------------------------------------------------


def _plain_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _query(url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(_plain_url(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def count_orders(url: str) -> int:
    return int(asyncio.run(_query(url, "SELECT count(*) FROM orders")))


def settled_order_count(url: str, timeout: float = 10.0) -> int:
    """The order count once requests still in flight when wrk stopped have finished."""
    last = count_orders(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = count_orders(url)
        if now == last:
            return now
        last = now
    return last


# ----- wrk -------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    server: str
    round: int
    requests: int
    ok: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    server_cpu: float = 0.0  # cores used by the server process during the run
    postgres_cpu: float = 0.0  # cores used by PostgreSQL (all backends) during the run
    wrk_cpu: float = 0.0  # cores used by wrk
    other_cpu: float = 0.0  # cores used by everything else on the machine: noise
    orders_added: int | None = None

    @property
    def server_ms_per_request(self) -> float:
        """CPU time the server spent per request: steadier than orders/s on a busy machine."""
        return 1000 * self.server_cpu / self.rps if self.rps else 0.0


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).splitlines()[0].strip()


def run_wrk(url: str, token: str, args: argparse.Namespace, duration: int) -> tuple[dict[str, Any], str]:
    argv = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "KASSA_BENCH_TOKEN": token}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk printed no WRK_JSON line (is post.lua's done() intact?):\n{done.stdout}")
    data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    match = re.search(r"^Requests/sec:\s+([\d.]+)", done.stdout, re.MULTILINE)
    data["rps"] = float(match.group(1)) if match else data["requests"] / (data["duration_us"] / 1e6)
    return data, done.stdout


def check_wrk(name: str, data: dict[str, Any], text: str) -> None:
    errors = {k: v for k, v in data["errors"].items() if v}
    if errors or data["requests"] == 0:
        detail = ", ".join(f"{k}={v}" for k, v in errors.items()) if errors else "no requests completed"
        raise BenchError(
            f"{name}: wrk reported failures ({detail}); 'status' counts non-2xx/3xx responses\n{text}"
        )


# ----- the run ---------------------------------------------------------------------------------


@dataclass
class Setup:
    pg_url: str
    token: str
    merchant: str
    kassa: Server
    bare: Server
    pg_cpu: PostgresCpu
    results: list[WrkResult] = field(default_factory=list)


def probe(server: Server, token: str) -> dict[str, Any]:
    """One request by hand before wrk: the right status and a body that is really an order/echo."""
    status, raw = server.request(
        "POST",
        PATH,
        json.dumps(BODY).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    if status != 201:
        raise BenchError(f"{server.name}: probe POST {PATH} answered {status}: {raw[:500]!r}")
    body: dict[str, Any] = json.loads(raw)
    if body.get("amount") != BODY["amount"] or body.get("currency") != BODY["currency"]:
        raise BenchError(f"{server.name}: the probe's answer does not match the request: {body}")
    return body


def measure(setup: Setup, server: Server, rnd: int, args: argparse.Namespace, duration: int) -> WrkResult:
    server.check_alive()
    is_kassa = server is setup.kassa
    before = settled_order_count(setup.pg_url) if is_kassa else None
    cpu0, pg0, busy0, (kids0, me0) = (
        server.cpu_seconds(),
        setup.pg_cpu.sample(),
        machine_busy_seconds(),
        children_cpu_seconds(),
    )
    t0 = time.monotonic()
    data, text = run_wrk(server.base + PATH, setup.token, args, duration)
    elapsed = time.monotonic() - t0
    cpu1, pg1, busy1, (kids1, me1) = (
        server.cpu_seconds(),
        setup.pg_cpu.sample(),
        machine_busy_seconds(),
        children_cpu_seconds(),
    )
    server.check_alive()
    check_wrk(f"{server.name} round {rnd}", data, text)
    if args.verbose:
        print(text)
    lat = data["latency_us"]
    result = WrkResult(
        server=server.name,
        round=rnd,
        requests=data["requests"],
        ok=data["requests"] - data["errors"]["status"],
        rps=data["rps"],
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        errors=data["errors"],
        server_cpu=(cpu1 - cpu0) / elapsed,
        postgres_cpu=PostgresCpu.used(pg0, pg1) / elapsed,
        wrk_cpu=(kids1 - kids0) / elapsed,
    )
    ours = (cpu1 - cpu0) + PostgresCpu.used(pg0, pg1) + (kids1 - kids0) + (me1 - me0)
    result.other_cpu = max(0.0, (busy1 - busy0) - ours) / elapsed
    if is_kassa:
        assert before is not None
        after = settled_order_count(setup.pg_url)
        result.orders_added = after - before
        if not result.ok <= result.orders_added <= result.ok + args.connections:
            raise BenchError(
                f"kassa round {rnd}: wrk counted {result.ok} successful responses but the orders table "
                f"grew by {result.orders_added} (expected {result.ok}..{result.ok + args.connections})"
            )
    return result


def profile_kassa(setup: Setup, args: argparse.Namespace) -> None:
    """One extra, unmeasured Kassa run under py-spy: a flame graph and collapsed stacks in args.profile."""
    pyspy = Path(sys.executable).with_name("py-spy")
    if not pyspy.exists():
        raise BenchError("--profile needs py-spy in the virtualenv: .venv/bin/pip install py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    duration = args.duration
    recorders = [
        subprocess.Popen(
            [
                str(pyspy),
                "record",
                "--pid",
                str(setup.kassa.proc.pid),
                "--duration",
                str(duration + 1),
                "--rate",
                "250",
                "--format",
                fmt,
                "--output",
                str(args.profile / name),
                *(["--native"] if args.profile_native else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for fmt, name in (("flamegraph", "kassa.svg"), ("raw", "kassa.collapsed"))
    ]
    try:
        time.sleep(1)
        print(f"profiling kassa with py-spy for {duration}s (not measured) ...", flush=True)
        data, text = run_wrk(setup.kassa.base + PATH, setup.token, args, duration)
        check_wrk("kassa under py-spy", data, text)
        for rec in recorders:
            _, err = rec.communicate(timeout=duration + 60)
            if rec.returncode != 0:
                raise BenchError(f"py-spy failed ({rec.returncode}): {err.decode(errors='replace')}")
    finally:
        for rec in recorders:
            if rec.poll() is None:
                rec.kill()
                rec.wait()
    print(f"  {data['rps']:.1f} req/s under the profiler; wrote {args.profile}/kassa.svg and kassa.collapsed")


def check_integrity(pg_url: str) -> tuple[int, int, int]:
    async def counts() -> tuple[int, int, int]:
        import asyncpg

        conn = await asyncpg.connect(_plain_url(pg_url))
        try:
            o = await conn.fetchval("SELECT count(*) FROM orders")
            q = await conn.fetchval("SELECT count(DISTINCT order_pk) FROM quotes")
            e = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'order.created'")
            return int(o), int(q), int(e)
        finally:
            await conn.close()

    o, q, e = asyncio.run(counts())
    if not o == q == e:
        raise BenchError(
            f"inconsistent database: {o} orders, {q} orders with quotes, {e} order.created events"
        )
    return o, q, e


def environment() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg_version = subprocess.run(
        [str(Path(_binary("pg_ctl")).with_name("postgres")), "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    info = {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": pg_version,
        "wrk": wrk_version(),
        "kassa": _git_state(),
    }
    for dist in (
        "fastapi",
        "starlette",
        "pydantic",
        "uvicorn",
        "uvloop",
        "httptools",
        "sqlalchemy",
        "asyncpg",
    ):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    return info


def _git_state() -> str:
    """The commit Kassa was measured at, and whether src/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} (src/ with uncommitted changes)" if dirty else head


def median_of(results: list[WrkResult], attr: str) -> float:
    return float(statistics.median(getattr(r, attr) for r in results))


NOISY_OTHER_CPU = 0.25  # cores used by unrelated processes above which a run is flagged


def report(setup: Setup, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    rows = setup.results
    columns = (
        f"{'server':<7}{'round':>7}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}"
        f"{'srv CPU':>9}{'srv ms/req':>11}{'pg CPU':>8}{'wrk CPU':>9}{'other':>7}{'db +rows':>10}"
    )
    rule = "-" * len(columns)
    print(f"\n{columns}\n{rule}")
    for r in rows:
        added = "" if r.orders_added is None else str(r.orders_added)
        flag = " *" if r.other_cpu > NOISY_OTHER_CPU else ""
        print(
            f"{r.server:<7}{r.round:>7}{r.rps:>10.1f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.requests:>10}"
            f"{r.server_cpu:>9.2f}{r.server_ms_per_request:>11.3f}{r.postgres_cpu:>8.2f}{r.wrk_cpu:>9.2f}"
            f"{r.other_cpu:>7.2f}{added:>10}{flag}"
        )
    print(rule)
    summary: dict[str, Any] = {}
    for name in ("bare", "kassa"):
        mine = [r for r in rows if r.server == name]
        s = summary[name] = {
            "rps": median_of(mine, "rps"),
            "p50_ms": median_of(mine, "p50_ms"),
            "p99_ms": median_of(mine, "p99_ms"),
            "server_cpu": median_of(mine, "server_cpu"),
            "server_ms_per_request": median_of(mine, "server_ms_per_request"),
            "postgres_cpu": median_of(mine, "postgres_cpu"),
        }
        print(
            f"{name:<7}{'median':>7}{s['rps']:>10.1f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{'':>10}"
            f"{s['server_cpu']:>9.2f}{s['server_ms_per_request']:>11.3f}{s['postgres_cpu']:>8.2f}"
        )
    ratio = summary["kassa"]["rps"] / summary["bare"]["rps"]
    bare_rows = [r for r in rows if r.server == "bare"]
    kassa_rows = [r for r in rows if r.server == "kassa"]
    pairs = [k.rps / b.rps for b, k in zip(bare_rows, kassa_rows, strict=True)]
    ratio_ok = ratio >= TARGET_RATIO
    p99_ok = summary["kassa"]["p99_ms"] < TARGET_P99_MS
    noisy = [f"{r.server} {r.round}" for r in rows if r.other_cpu > NOISY_OTHER_CPU]
    print(
        f"\nratio Kassa / bare (medians): {ratio:.3f}   per round: {', '.join(f'{p:.3f}' for p in pairs)}"
        f"   target >= {TARGET_RATIO}: {'MET' if ratio_ok else 'MISSED'}"
    )
    print(
        f"Kassa p99 (median of rounds): {summary['kassa']['p99_ms']:.2f} ms"
        f"   target < {TARGET_P99_MS:.0f} ms: {'MET' if p99_ok else 'MISSED'}"
    )
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, {args.rounds} rounds per "
        f"server, alternating, after {args.warmup}s of warm-up each; {env['cpus']} CPUs ({env['cpu']}).\n"
        "CPU columns are cores used during the run (1.00 = one CPU busy for the whole run); srv ms/req is\n"
        "the server's CPU time per request; 'other' is CPU used by unrelated processes on the machine."
    )
    print(
        f"Kassa {env['kassa']}; {setup.kassa.stack()}; Python {env['python']}; {env['postgres']}; "
        f"FastAPI {env['fastapi']}, SQLAlchemy {env['sqlalchemy']}, asyncpg {env['asyncpg']}"
    )
    if noisy:
        print(
            f"warning: other processes used more than {NOISY_OTHER_CPU} cores during {', '.join(noisy)} "
            "(marked *): the machine was busy, expect noisy figures"
        )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "server_stack": setup.kassa.stack(),
        "command": " ".join(sys.argv),
        "settings": {
            "threads": args.threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
        },
        "environment": env,
        "runs": [{**asdict(r), "server_ms_per_request": r.server_ms_per_request} for r in rows],
        "median": summary,
        "ratio": ratio,
        "ratio_per_round": pairs,
        "noisy_runs": noisy,
        "target": {"ratio": TARGET_RATIO, "p99_ms": TARGET_P99_MS, "ratio_met": ratio_ok, "p99_met": p99_ok},
    }


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    kassa = kassa_command()
    print("starting PostgreSQL ...", flush=True)
    with TempPostgres(database="kassa_bench") as pg:
        kassa_port, bare_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
        env.update(
            KASSA_DATABASE_URL=pg.url,
            KASSA_BASE_URL=f"http://127.0.0.1:{kassa_port}",
            KASSA_SECRET_KEY_FILE=str(workdir / "key"),
            KASSA_ACCESS_LOG="false",
            KASSA_LOG_LEVEL="warning",
            # The limiter runs (its cost is part of the figure) but never refuses the benchmark's key.
            KASSA_RATE_LIMIT_ORDERS="1000000/second",
        )
        run_cli([kassa, "migrate"], env)
        out = run_cli([kassa, "merchants", "create", "--name", "Bench", "--json"], env)
        try:
            created = json.loads(out)
            token, merchant = created["api_key"]["secret"], created["merchant"]["id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(
                f"unexpected output of `kassa merchants create --json` ({exc}):\n{out}"
            ) from None
        servers: list[Server] = []
        try:
            print(f"starting kassa serve on 127.0.0.1:{kassa_port} and the bare app on 127.0.0.1:{bare_port}")
            kassa_server = Server(
                "kassa",
                [kassa, "serve", "--host", "127.0.0.1", "--port", str(kassa_port), "--workers", "1"],
                env,
                kassa_port,
                workdir / "kassa.log",
            )
            servers.append(kassa_server)
            bare_env = {k: v for k, v in env.items() if not k.startswith("KASSA_")}
            bare_server = Server(
                "bare",
                [sys.executable, str(BARE_APP), "--host", "127.0.0.1", "--port", str(bare_port)],
                bare_env,
                bare_port,
                workdir / "bare.log",
            )
            servers.append(bare_server)
            kassa_server.wait_ready()
            bare_server.wait_ready()
            setup = Setup(pg.url, token, merchant, kassa_server, bare_server, PostgresCpu(pg))
            order = probe(kassa_server, token)
            probe(bare_server, token)
            print(f"probe ok: kassa created {order['id']} for merchant {merchant}; bare echoed the body")
            stacks = {server.name: server.stack() for server in servers}
            if len(set(stacks.values())) != 1:
                raise BenchError(f"the servers do not run the same loop and HTTP parser: {stacks}")
            forked = {server.name: n for server in servers if (n := len(child_pids(server.proc.pid)))}
            if forked:
                raise BenchError(f"a server runs more than one process (child processes: {forked})")
            print(f"both servers run {stacks['kassa']}, one process each")
            env_info = environment()

            if args.warmup > 0:
                for server in (bare_server, kassa_server):
                    print(f"warming up {server.name} for {args.warmup}s ...", flush=True)
                    data, text = run_wrk(server.base + PATH, token, args, args.warmup)
                    check_wrk(f"{server.name} warm-up", data, text)
            for rnd in range(1, args.rounds + 1):
                for server in (bare_server, kassa_server):
                    print(f"round {rnd}/{args.rounds}: {server.name} for {args.duration}s ...", flush=True)
                    result = measure(setup, server, rnd, args, args.duration)
                    setup.results.append(result)
                    print(
                        f"  {result.rps:.1f} req/s  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms",
                        flush=True,
                    )
            if args.profile:
                profile_kassa(setup, args)
            orders, _, _ = check_integrity(pg.url)
            print(f"database consistent: {orders} orders, each with its quote and its order.created event")
            for server in servers:
                server.check_alive()
            return report(setup, args, env_info)
        except BaseException:
            for server in servers:
                tail = server.tail(15)
                if tail:
                    print(f"--- last lines of {server.name}'s log ---\n{tail}", file=sys.stderr)
            raise
        finally:
            for server in reversed(servers):
                server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Kassa create-order throughput vs a bare FastAPI echo (wrk, PostgreSQL).",
        epilog="Run from the repository root: PYTHONPATH=. .venv/bin/python bench/create_orders/run.py",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server (default 3)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measured runs per server, alternating (default 3)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the measured runs, profile one more Kassa run with py-spy into DIR (svg + collapsed)",
    )
    parser.add_argument("--profile-native", action="store_true", help="with --profile: include C frames")
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output for every run")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.rounds < 1 or args.warmup < 0 or args.connections < 1 or args.threads < 1:
        parser.error("durations, rounds, connections and threads must be positive")
    if args.threads > args.connections:
        parser.error("wrk needs at least one connection per thread")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk not found (apt-get install -y wrk)", file=sys.stderr)
        return 2

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-"))
    try:
        results = bench(args, workdir)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
