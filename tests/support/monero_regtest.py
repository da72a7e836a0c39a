"""A throwaway Monero regtest network: monerod plus a payer and a merchant monero-wallet-rpc.

Usage::

    with MoneroRegtest(merchant_rpc_login=("kassa", "secret")) as net:
        sub = ...  # create_address on net.merchant_wallet_url (view-only wallet)
        txid = net.pay(sub.address, 1_000_000_000_000)
        net.mine(1)

What :meth:`MoneroRegtest.start` does (REAL-NODES.md, "Monero regtest"):

* a temp dir and free loopback ports; every server binds 127.0.0.1 only;
* ``monerod --regtest --offline --fixed-difficulty 1`` (chain thrown away on exit);
* two ``monero-wallet-rpc``: the *payer* (full wallet, restored from fixed regtest-only keys so that
  mining to it can start while its wallet file is being written) and the *merchant* (optional
  ``--rpc-login`` for digest auth, optional extra args such as ``--tx-notify``);
* mines ``initial_blocks`` (default 100; coinbase unlocks after 60) to the payer;
* creates a full merchant wallet in the merchant wallet-rpc, reads its address and private view key,
  closes it and deletes its files, then restores it VIEW-ONLY there with ``generate_from_keys``:
  the merchant wallet-rpc never keeps a wallet that can spend.

Steps that do not depend on each other run in parallel (mining, payer restore, merchant creation).
Every process is stopped on exit (SIGTERM, then SIGKILL after a timeout), also when start fails;
processes also get ``PR_SET_PDEATHSIG`` (via ``setpriv``) so they die with the test process even
if it is killed. A failing start raises :class:`MoneroRegtestError` with the tail of the relevant
logs.

Gotchas found on monero 0.18 (Debian 12):

* ``--rpc-ssl disabled`` (all servers) and ``--daemon-ssl disabled`` (wallets) matter: with the
  default ``autodetect`` every server start and every wallet create/open generates an RSA
  certificate, 1-2 s each on a small machine.
* A wallet creation costs ~2.5 s regardless (wallet2 precomputes 50 x 200 subaddress keys), and
  ``generateblocks`` ~80 ms a block (RandomX): these dominate the start time.
* ``get_transfers`` ``min_height`` is exclusive; pool entries carry no ``confirmations`` field.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

logger = logging.getLogger(__name__)

# Regtest-only keys of the payer wallet (generated once with create_wallet + query_key). Fixed keys
# let mining to the payer start before its wallet file exists. Never use them outside regtest.
PAYER_ADDRESS = (
    "44Nr4jrde6jiXd4qJUTPuBRJ2GGyUyR46Kq7iytd24o83ZWyCmM3gWW6PDPveTAxDe4sP4nTFpBva5WmQ67WK1G7NK22z5Q"
)
PAYER_VIEW_KEY = "cf5a39363dc4414a9707c7cc5c87085c33e57e366afd51fad1aa24de18e66a01"
PAYER_SPEND_KEY = "ddad2f9549e4503d1c0623e76cef0fee970a6b9593d5ae5eb9a9375bc9da3608"

COINBASE_UNLOCK_BLOCKS = 60
CHANGE_UNLOCK_BLOCKS = 10
WATCH_ONLY_ERROR_CODE = -29
NOT_ENOUGH_UNLOCKED_MONEY_ERROR_CODE = -37
_LOOPBACK = "127.0.0.1"


class MoneroBinariesMissing(RuntimeError):
    """monerod or monero-wallet-rpc is not installed."""


class MoneroRegtestError(RuntimeError):
    """The regtest network failed to start or to do what a test asked."""


class RpcCallError(MoneroRegtestError):
    """A JSON-RPC error answer from one of the regtest servers."""

    def __init__(self, server: str, method: str, code: int | None, message: str) -> None:
        self.code = code
        self.rpc_message = message
        super().__init__(f"{server} {method}: error {code}: {message}")


def find_monero_binaries() -> tuple[str, str]:
    """Paths of monerod and monero-wallet-rpc (``$KASSA_MONEROD`` / ``$KASSA_MONERO_WALLET_RPC``
    override the PATH lookup), or :class:`MoneroBinariesMissing` with what to do."""
    found: dict[str, str | None] = {}
    looked: list[str] = []
    for name, variable in (("monerod", "KASSA_MONEROD"), ("monero-wallet-rpc", "KASSA_MONERO_WALLET_RPC")):
        override = os.environ.get(variable)
        found[name] = override or shutil.which(name)
        looked.append(f"${variable}={override}" if override else f"{name} on PATH")
    missing = [name for name, path in found.items() if not path or not os.access(path, os.X_OK)]
    if missing:
        raise MoneroBinariesMissing(
            f"{' and '.join(missing)} not found (looked for {', '.join(looked)}): "
            "the Monero regtest tests need the Monero "
            "0.18 binaries. Install them with the project's Makefile (it installs the Debian package "
            "`monero`: apt-get install -y monero), or point $KASSA_MONEROD and "
            "$KASSA_MONERO_WALLET_RPC at them."
        )
    return str(found["monerod"]), str(found["monero-wallet-rpc"])


def free_loopback_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held together while choosing, so distinct)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((_LOOPBACK, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


_NOTABLE = re.compile(r"error|fail|unrecognis|exception|cannot|can't|unable", re.IGNORECASE)


def _tail(path: Path, lines: int) -> str:
    """The last ``lines`` non-blank lines, preceded by earlier lines that look like errors."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    all_lines = [line for line in text.splitlines() if line.strip()]
    kept = all_lines[-lines:]
    notable = [line for line in all_lines[: len(all_lines) - len(kept)] if _NOTABLE.search(line)][-10:]
    if notable:
        kept = ["(earlier lines that look like errors:)", *notable, "(last lines:)", *kept]
    return "\n".join(kept) if kept else "(empty)"


_WORKDIR_PREFIX = "kassa-monero-"
_OWNER_FILE = "owner.pid"


def _remove_stale_workdirs() -> None:
    """Remove temp dirs left by runs that were killed before they could clean up (their servers
    died with them, see ``--pdeathsig``)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((path / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _redacted(argv: Sequence[str]) -> str:
    """The command line with the value of ``--rpc-login`` hidden."""
    shown = list(argv)
    for i, arg in enumerate(shown[:-1]):
        if arg in ("--rpc-login", "--daemon-login"):
            shown[i + 1] = shown[i + 1].split(":", 1)[0] + ":***"
    return " ".join(shown)


@dataclass
class ManagedProcess:
    """One server process with its logs: ``log_path`` (its ``--log-file``) and ``output_path``."""

    name: str
    argv: list[str]
    log_path: Path
    output_path: Path
    popen: subprocess.Popen[bytes]
    _terminated: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        """Log tails for an error message (the files go with the temp dir unless
        ``KASSA_KEEP_MONERO_DIR=1`` or ``keep_dir=True``)."""
        return (
            f"--- {self.name}: last lines of {self.log_path} ---\n{_tail(self.log_path, lines)}\n"
            f"--- {self.name}: last lines of {self.output_path} ---\n{_tail(self.output_path, lines)}"
        )

    def terminate(self) -> None:
        """Send SIGTERM once (only to this process, by its pid)."""
        if not self._terminated and self.popen.poll() is None:
            self._terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float) -> None:
        """SIGTERM, wait ``timeout`` s, then SIGKILL."""
        self.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing it", self.name, self.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(timeout=10)


class JsonRpc:
    """Minimal synchronous JSON-RPC client for the harness (the product code uses kassa's client)."""

    def __init__(
        self, name: str, url: str, login: tuple[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        self.name = name
        self.url = url
        self._client = httpx.Client(
            timeout=timeout, auth=httpx.DigestAuth(*login) if login is not None else None
        )
        self._ids = 0

    def close(self) -> None:
        self._client.close()

    def post(self, method: str, params: Mapping[str, Any] | None = None, timeout: float | None = None) -> Any:
        self._ids += 1
        payload = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": dict(params or {})}
        if timeout is None:
            return self._client.post(f"{self.url}/json_rpc", json=payload)
        return self._client.post(f"{self.url}/json_rpc", json=payload, timeout=timeout)

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        response = self.post(method, params, timeout)
        if response.status_code != 200:
            raise MoneroRegtestError(f"{self.name} {method}: HTTP {response.status_code}")
        body = response.json()
        if "error" in body:
            error = body["error"]
            raise RpcCallError(self.name, method, error.get("code"), str(error.get("message")))
        result: dict[str, Any] = body["result"]
        return result


@dataclass
class WalletRpcServer:
    """A running monero-wallet-rpc: its URL, optional login, wallet dir and process."""

    name: str
    url: str
    login: tuple[str, str] | None
    wallet_dir: Path
    process: ManagedProcess
    rpc: JsonRpc = field(repr=False)


@dataclass(frozen=True)
class WalletKeys:
    """A wallet's primary address and private keys (regtest only; the spend key stays in memory)."""

    address: str
    view_key: str
    spend_key: str = field(repr=False)


@dataclass(frozen=True)
class Payment:
    """What the payer's ``transfer`` answered."""

    txid: str
    tx_key: str
    amount: int
    fee: int


class MoneroRegtest:
    """monerod regtest + payer and merchant monero-wallet-rpc, as a context manager.

    ``merchant_rpc_login`` (user, password) starts the merchant wallet-rpc with ``--rpc-login``
    (digest auth) instead of ``--disable-rpc-login``; ``merchant_extra_args`` are appended to its
    command line (e.g. ``["--tx-notify", "/abs/script %s"]``).
    """

    def __init__(
        self,
        *,
        merchant_rpc_login: tuple[str, str] | None = None,
        merchant_extra_args: Sequence[str] = (),
        initial_blocks: int = 100,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        keep_dir: bool = False,
    ) -> None:
        if initial_blocks < COINBASE_UNLOCK_BLOCKS + 16:
            raise ValueError(
                f"initial_blocks must be at least {COINBASE_UNLOCK_BLOCKS + 16}: coinbase outputs unlock "
                "after 60 blocks and a transfer needs 16 unlocked outputs for its ring"
            )
        self.merchant_rpc_login = merchant_rpc_login
        self.merchant_extra_args = list(merchant_extra_args)
        self.initial_blocks = initial_blocks
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.keep_dir = keep_dir or bool(os.environ.get("KASSA_KEEP_MONERO_DIR"))

        self.workdir: Path | None = None
        self.timings: dict[str, float] = {}
        self._processes: list[ManagedProcess] = []
        self._wallets: dict[str, WalletRpcServer] = {}
        self._daemon: JsonRpc | None = None
        self._daemon_port = 0
        self._merchant_address = ""
        self._merchant_view_key = ""
        self._merchant_spend_key = ""
        self._binaries: tuple[str, str] | None = None
        self._started = False

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ public properties

    @property
    def daemon_url(self) -> str:
        return f"http://{_LOOPBACK}:{self._daemon_port}"

    @property
    def merchant_wallet_url(self) -> str:
        return self._wallet("merchant").url

    @property
    def payer_wallet_url(self) -> str:
        return self._wallet("payer").url

    @property
    def merchant_address(self) -> str:
        """Primary address of the merchant wallet (open view-only in the merchant wallet-rpc)."""
        return self._merchant_address

    @property
    def merchant_view_key(self) -> str:
        return self._merchant_view_key

    @property
    def merchant_spend_key(self) -> str:
        """Kept only in memory (for tests that need to spend as the merchant); never on disk."""
        return self._merchant_spend_key

    @property
    def payer_address(self) -> str:
        return PAYER_ADDRESS

    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes)

    @property
    def log_paths(self) -> dict[str, list[Path]]:
        return {p.name: [p.log_path, p.output_path] for p in self._processes}

    def wallet_server(self, name: str) -> WalletRpcServer:
        return self._wallet(name)

    # ------------------------------------------------------------------ start / stop

    def start(self) -> Self:
        if self._started:
            return self
        self._binaries = find_monero_binaries()
        self._started = True
        atexit.register(self.stop)
        t0 = time.monotonic()
        try:
            self._start(t0)
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        logger.info("monero regtest started in %.1f s: %s", self.timings["total"], self.timings)
        return self

    def _start(self, t0: float) -> None:
        _remove_stale_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        (self.workdir / _OWNER_FILE).write_text(str(os.getpid()))
        daemon_rpc_port, p2p_port = free_loopback_ports(2)
        self._daemon_port = daemon_rpc_port
        monerod, _ = self._require_binaries()
        data_dir = self.workdir / "monerod"
        data_dir.mkdir()
        daemon_process = self._spawn(
            "monerod",
            [
                monerod,
                "--regtest",
                "--offline",
                "--no-igd",
                "--fixed-difficulty",
                "1",
                "--non-interactive",
                "--data-dir",
                str(data_dir),
                "--log-file",
                str(self.workdir / "monerod.log"),
                "--log-level",
                "0",
                "--rpc-bind-ip",
                _LOOPBACK,
                "--rpc-bind-port",
                str(daemon_rpc_port),
                "--rpc-ssl",
                "disabled",
                "--p2p-bind-ip",
                _LOOPBACK,
                "--p2p-bind-port",
                str(p2p_port),
                "--no-zmq",
                "--disable-rpc-ban",
            ],
            log_path=self.workdir / "monerod.log",
        )
        self._daemon = JsonRpc("monerod", self.daemon_url, timeout=60)
        # The wallets are started right away: they only contact monerod when a wallet is opened.
        self._spawn_wallet_rpc("payer")
        self._spawn_wallet_rpc("merchant", login=self.merchant_rpc_login, extra_args=self.merchant_extra_args)

        self._wait_ready(daemon_process, self._daemon, "get_info")
        self.timings["monerod_ready"] = time.monotonic() - t0
        for name in ("payer", "merchant"):
            server = self._wallets[name]
            self._wait_ready(server.process, server.rpc, "get_version")
        self.timings["wallet_rpcs_ready"] = time.monotonic() - t0

        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="monero-regtest") as pool:
            steps: dict[str, tuple[Future[None], ManagedProcess]] = {
                "mine initial blocks": (
                    pool.submit(self._timed, "mined", t0, self._mine_initial),
                    daemon_process,
                ),
                "restore payer wallet": (
                    pool.submit(self._timed, "payer_wallet", t0, self._restore_payer),
                    self._wallets["payer"].process,
                ),
                "create merchant view-only wallet": (
                    pool.submit(self._timed, "merchant_wallet", t0, self._create_merchant),
                    self._wallets["merchant"].process,
                ),
            }
            for what, (future, process) in steps.items():
                try:
                    future.result()
                except Exception as exc:
                    raise MoneroRegtestError(
                        f"regtest start failed to {what}: {type(exc).__name__}: {exc}\n{process.tail()}"
                    ) from exc

        self._sync_wallet("payer")
        balance = self._wallet("payer").rpc.call("get_balance", {"account_index": 0})
        if balance.get("unlocked_balance", 0) <= 0:
            raise MoneroRegtestError(f"payer has no unlocked balance after mining: {balance}")
        self._sync_wallet("merchant")
        self.timings["wallets_synced"] = time.monotonic() - t0

    def _timed(self, key: str, t0: float, step: Any) -> None:
        step()
        self.timings[key] = time.monotonic() - t0

    def stop(self) -> None:
        """Stop every process (wallets first, then monerod) and remove the temp dir. Idempotent."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        wallets = [p for p in self._processes if p.name != "monerod"]
        daemons = [p for p in self._processes if p.name == "monerod"]
        for group in (wallets, daemons):
            for process in group:  # signal the whole group first, then wait: shutdowns overlap
                process.terminate()
            for process in group:
                try:
                    process.stop(self.stop_timeout)
                except Exception:  # keep stopping the others
                    logger.exception("could not stop %s (pid %d)", process.name, process.pid)
        for server in self._wallets.values():
            server.rpc.close()
        if self._daemon is not None:
            self._daemon.close()
        self._processes.clear()
        self._wallets.clear()
        self._daemon = None
        if self.workdir is not None and not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self._started = False

    # ------------------------------------------------------------------ helpers for tests

    def mine(self, n: int = 1, address: str | None = None) -> int:
        """Mine ``n`` blocks (to the payer unless ``address``); returns the new chain height."""
        result = self._daemon_rpc().call(
            "generateblocks",
            {"amount_of_blocks": n, "wallet_address": address or PAYER_ADDRESS},
            timeout=30 + n * 0.5,
        )
        return int(result["height"]) + 1

    def daemon_height(self) -> int:
        return int(self._daemon_rpc().call("get_info")["height"])

    def transfer(self, destinations: Sequence[tuple[str, int]]) -> Payment:
        """One payer transaction with one output per (address, atomic amount) destination."""
        payer = self._wallet("payer").rpc
        params = {
            "destinations": [{"address": address, "amount": amount} for address, amount in destinations],
            "priority": 0,
            "get_tx_key": True,
        }
        payer.call("refresh")
        try:
            result = payer.call("transfer", params)
        except RpcCallError as exc:
            if exc.code != NOT_ENOUGH_UNLOCKED_MONEY_ERROR_CODE:
                raise
            # Every transfer locks its change for 10 blocks: after many payments without mining,
            # unlock more coinbase and change outputs, then try once more.
            logger.warning("payer ran out of unlocked outputs: mining %d blocks", CHANGE_UNLOCK_BLOCKS)
            self.mine(CHANGE_UNLOCK_BLOCKS)
            self._sync_wallet("payer")
            result = payer.call("transfer", params)
        return Payment(
            txid=result["tx_hash"], tx_key=result["tx_key"], amount=result["amount"], fee=result["fee"]
        )

    def pay(self, address: str, amount_atomic: int) -> str:
        """Send ``amount_atomic`` piconero from the payer to ``address``; returns the txid.

        The transaction is relayed to monerod's pool at once; :meth:`mine` confirms it. If the payer
        has no unlocked outputs left, 10 blocks are mined first (logged as a warning).
        """
        return self.transfer([(address, amount_atomic)]).txid

    def flush_txpool(self, txids: Sequence[str]) -> None:
        """Drop these transactions from monerod's pool (``flush_txpool``), as if they had been
        evicted; the payer wallet does not relay them again by itself."""
        self._daemon_rpc().call("flush_txpool", {"txids": list(txids)})

    def pool_txids(self) -> set[str]:
        """The ids of the transactions in monerod's pool (``get_transaction_pool_hashes``)."""
        response = httpx.post(f"{self.daemon_url}/get_transaction_pool_hashes", json={}, timeout=10)
        response.raise_for_status()
        return set(response.json().get("tx_hashes") or [])

    def start_view_only_wallet_rpc(
        self,
        name: str,
        *,
        login: tuple[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> tuple[WalletRpcServer, WalletKeys]:
        """One more monero-wallet-rpc with a view-only wallet of fresh keys open, synced (~6 s).

        Its subaddresses never collide with the shared merchant wallet's; ``extra_args`` e.g.
        ``["--tx-notify", "/abs/script %s"]``. Stopped with the network.
        """
        server = self.start_wallet_rpc(name, login=login, extra_args=extra_args)
        keys = self._create_view_only(server, name)
        self._sync_wallet(name)
        return server, keys

    def start_spend_wallet_rpc(
        self, name: str, keys: WalletKeys | None = None, *, offline: bool = False
    ) -> WalletRpcServer:
        """One more monero-wallet-rpc with a FULL wallet open, restored from ``keys`` (default: the
        shared merchant's, i.e. the wallet the merchant's view-only wallet watches), synced (~4 s).

        Restored at height 0, so it knows every output of those keys but nothing the view-only wallet
        learnt by itself (imported key images, outgoing transactions). With ``offline`` the server
        runs ``--offline`` and is not synced: a cold signer, which knows only what it imports
        (``import_outputs``). Stopped with the network.
        """
        if keys is None:
            keys = WalletKeys(self.merchant_address, self.merchant_view_key, self.merchant_spend_key)
        server = self.start_wallet_rpc(name, extra_args=["--offline"] if offline else ())
        server.rpc.call(
            "generate_from_keys",
            {
                "filename": name,
                "address": keys.address,
                "viewkey": keys.view_key,
                "spendkey": keys.spend_key,
                "password": "",
                "restore_height": 0,
            },
        )
        if not offline:
            self._sync_wallet(name)
        return server

    def fund(self, destinations: Sequence[tuple[str, int]], *, unlock: bool = True) -> Payment:
        """One payer transaction to ``destinations`` (one output each), mined; with ``unlock`` also
        the blocks that make its outputs spendable: an output mined at height h unlocks once the
        chain has 10 blocks on top of it (``unlocked_balance`` stays 0, ``blocks_to_unlock`` 1, after
        only 10 blocks in all), so 11 are mined."""
        payment = self.transfer(destinations)
        self.mine(CHANGE_UNLOCK_BLOCKS + 1 if unlock else 1)
        return payment

    def sync_wallet(self, name: str) -> None:
        """Refresh the wallet-rpc ``name`` until it has scanned up to the daemon's height."""
        self._sync_wallet(name)

    def start_wallet_rpc(
        self,
        name: str,
        *,
        login: tuple[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> WalletRpcServer:
        """Start one more monero-wallet-rpc (no wallet open) on this network; stopped with it."""
        if name in self._wallets:
            raise ValueError(f"a wallet-rpc named {name!r} already exists")
        server = self._spawn_wallet_rpc(name, login=login, extra_args=extra_args)
        self._wait_ready(server.process, server.rpc, "get_version")
        return server

    # ------------------------------------------------------------------ internals

    def _require_binaries(self) -> tuple[str, str]:
        if self._binaries is None:
            self._binaries = find_monero_binaries()
        return self._binaries

    def _daemon_rpc(self) -> JsonRpc:
        if self._daemon is None:
            raise MoneroRegtestError("the regtest network is not running")
        return self._daemon

    def _wallet(self, name: str) -> WalletRpcServer:
        try:
            return self._wallets[name]
        except KeyError:
            raise MoneroRegtestError(f"no wallet-rpc named {name!r} is running") from None

    def _spawn(self, name: str, argv: list[str], log_path: Path) -> ManagedProcess:
        assert self.workdir is not None
        output_path = self.workdir / f"{name}.out"
        # setpriv --pdeathsig: the kernel sends SIGKILL to the server when the *thread* that spawned it
        # exits, so even a SIGKILLed test run leaves no orphan holding ports. Only from the main
        # thread: a server spawned from a short-lived thread would die with that thread.
        setpriv = shutil.which("setpriv")
        in_main_thread = threading.current_thread() is threading.main_thread()
        command = [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv and in_main_thread else argv
        with output_path.open("wb") as output:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        process = ManagedProcess(name, argv, log_path, output_path, popen)
        self._processes.append(process)
        return process

    def _spawn_wallet_rpc(
        self,
        name: str,
        *,
        login: tuple[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> WalletRpcServer:
        assert self.workdir is not None
        _, wallet_rpc = self._require_binaries()
        (port,) = free_loopback_ports(1)
        wallet_dir = self.workdir / f"wallet-{name}"
        ringdb_dir = self.workdir / f"ringdb-{name}"
        wallet_dir.mkdir()
        ringdb_dir.mkdir()
        log_path = self.workdir / f"wallet-{name}.log"
        argv = [
            wallet_rpc,
            "--daemon-address",
            f"{_LOOPBACK}:{self._daemon_port}",
            "--trusted-daemon",
            "--daemon-ssl",
            "disabled",
            "--rpc-bind-ip",
            _LOOPBACK,
            "--rpc-bind-port",
            str(port),
            "--rpc-ssl",
            "disabled",
            *(["--rpc-login", f"{login[0]}:{login[1]}"] if login else ["--disable-rpc-login"]),
            "--wallet-dir",
            str(wallet_dir),
            "--shared-ringdb-dir",
            str(ringdb_dir),
            "--no-dns",
            "--non-interactive",
            "--log-file",
            str(log_path),
            "--log-level",
            "0",
            *extra_args,
        ]
        process = self._spawn(f"wallet-{name}", argv, log_path)
        url = f"http://{_LOOPBACK}:{port}"
        server = WalletRpcServer(
            name, url, login, wallet_dir, process, JsonRpc(f"wallet-rpc {name}", url, login=login, timeout=60)
        )
        self._wallets[name] = server
        return server

    def _wait_ready(self, process: ManagedProcess, rpc: JsonRpc, method: str) -> None:
        """Poll until the server answers HTTP at all (a 401 also proves it is up)."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if not process.running():
                raise MoneroRegtestError(
                    f"{process.name} exited with code {process.popen.returncode} while starting\n"
                    f"command: {_redacted(process.argv)}\n{process.tail()}"
                )
            try:
                rpc.post(method, timeout=2)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise MoneroRegtestError(
                        f"{process.name} did not answer on {rpc.url} within {self.startup_timeout:.0f} s\n"
                        f"{process.tail()}"
                    ) from None
                time.sleep(0.05)
            else:
                return

    def _mine_initial(self) -> None:
        self._daemon_rpc().call(
            "generateblocks",
            {"amount_of_blocks": self.initial_blocks, "wallet_address": PAYER_ADDRESS},
            timeout=30 + self.initial_blocks * 0.5,
        )

    def _restore_payer(self) -> None:
        self._wallet("payer").rpc.call(
            "generate_from_keys",
            {
                "filename": "payer",
                "address": PAYER_ADDRESS,
                "spendkey": PAYER_SPEND_KEY,
                "viewkey": PAYER_VIEW_KEY,
                "password": "",
                "restore_height": 0,
            },
        )

    def _create_merchant(self) -> None:
        keys = self._create_view_only(self._wallet("merchant"), "merchant")
        self._merchant_address = keys.address
        self._merchant_view_key = keys.view_key
        self._merchant_spend_key = keys.spend_key

    def _create_view_only(self, server: WalletRpcServer, filename: str) -> WalletKeys:
        """Fresh keys: create a full wallet, read its keys, delete it, restore it view-only."""
        rpc = server.rpc
        full = f"{filename}-full"
        rpc.call("create_wallet", {"filename": full, "password": "", "language": "English"})
        address = rpc.call("get_address", {"account_index": 0})["address"]
        view_key = rpc.call("query_key", {"key_type": "view_key"})["key"]
        spend_key = rpc.call("query_key", {"key_type": "spend_key"})["key"]
        rpc.call("close_wallet")
        for path in server.wallet_dir.glob(f"{full}*"):
            path.unlink()
        rpc.call(
            "generate_from_keys",
            {
                "filename": filename,
                "address": address,
                "viewkey": view_key,
                "password": "",
                "restore_height": 0,
            },
        )
        try:
            rpc.call("query_key", {"key_type": "spend_key"})
        except RpcCallError as exc:
            if exc.code != WATCH_ONLY_ERROR_CODE:
                raise
        else:
            raise MoneroRegtestError(f"the {filename} wallet restored from address + view key can spend")
        return WalletKeys(address, view_key, spend_key)

    def _sync_wallet(self, name: str) -> None:
        """Refresh ``name`` until it has scanned up to the daemon's height."""
        rpc = self._wallet(name).rpc
        target = self.daemon_height()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            rpc.call("refresh", timeout=120)
            height = int(rpc.call("get_height")["height"])
            if height >= target:
                return
            if time.monotonic() > deadline:
                raise MoneroRegtestError(f"wallet {name} stuck at height {height} < {target}")
            time.sleep(0.05)
