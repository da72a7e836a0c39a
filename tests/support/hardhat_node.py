"""A throwaway local EVM node (Hardhat 2 "Hardhat Network", chain id 31337) for the EVM rail tests.

Usage::

    with HardhatNode() as node:
        token = node.deploy_token("Test USD", "TUSD", 6)
        node.mint(token, node.accounts[1], 10**9)
        txhash = node.send_token(token, merchant, 250_000, sender=node.accounts[1])

What :meth:`HardhatNode.start` does (REAL-NODES.md, "EVM"):

* the npm packages pinned in tests/support/evm/package.json + package-lock.json (hardhat 2.29.1,
  solc 0.8.37) are installed with ``npm ci --no-audit --no-fund`` into tests/support/evm/node_modules
  ONLY when ``node_modules/.bin/hardhat`` is missing (~25 s; under a file lock, so parallel sessions
  install once). Hardhat 3 needs Node >= 22.13; Debian 12's Node 20 runs Hardhat 2;
* ``node_modules/.bin/hardhat node --hostname 127.0.0.1 --port <free port>`` (directly, not through
  npx) with cwd tests/support/evm, whose hardhat.config.js has no sources to compile, so nothing is
  downloaded; output goes to a log in a temp dir; waits until ``eth_chainId`` answers (~2.5 s);
* the 20 dev accounts (``eth_accounts``, 10,000 ETH each) are unlocked: ``eth_sendTransaction``
  from any of them needs no key. Automine is on: each transaction is mined into its own block at
  once, unless :meth:`automine` turned it off.

The test token is tests/support/evm/TestToken.sol compiled by compile.js into TestToken.json (abi +
bytecode, committed): tests never compile. ``mint`` is open to anyone.

Calldata is ABI-encoded here by hand (eth-abi is not a dependency): address, uint and string
arguments only, which is all the token needs.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from tests.support.monero_regtest import free_loopback_ports

logger = logging.getLogger(__name__)

EVM_DIR = Path(__file__).resolve().parent / "evm"
HARDHAT_BIN = EVM_DIR / "node_modules" / ".bin" / "hardhat"
TOKEN_ARTIFACT = EVM_DIR / "TestToken.json"
CHAIN_ID = 31337  # Hardhat Network's default
_LOOPBACK = "127.0.0.1"
_NPM_LOCK = Path(tempfile.gettempdir()) / "kassa-hardhat-npm-ci.lock"
_NPM_TIMEOUT = 900.0

# Function selectors (first 4 bytes of keccak256 of the signature).
_SEL_MINT = "40c10f19"  # mint(address,uint256)
_SEL_TRANSFER = "a9059cbb"  # transfer(address,uint256)
_SEL_BALANCE_OF = "70a08231"  # balanceOf(address)


class HardhatMissing(RuntimeError):
    """node or npm is not installed."""


class HardhatNodeError(RuntimeError):
    """The node failed to install, start or do what a test asked."""


class HardhatRpcError(HardhatNodeError):
    """A JSON-RPC error answer (``code``, ``rpc_message``)."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        self.code = code
        self.rpc_message = message
        super().__init__(f"hardhat {method}: error {code}: {message}")


def find_node_tools() -> tuple[str, str]:
    """Paths of ``node`` and ``npm``, or :class:`HardhatMissing`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        raise HardhatMissing(
            f"{missing} not found: the EVM tests run a local Hardhat node from npm packages "
            f"(tests/support/evm). Install Node.js >= 18 with npm (Debian: apt-get install -y nodejs npm, "
            "or run scripts/system-deps.sh)."
        )
    return node, npm


def ensure_installed() -> None:
    """``npm ci`` in tests/support/evm unless ``node_modules/.bin/hardhat`` is already there."""
    _, npm = find_node_tools()
    if HARDHAT_BIN.exists():
        return
    with _NPM_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be installing: wait for it
        try:
            if HARDHAT_BIN.exists():
                return
            logger.warning("installing hardhat and solc from npm into %s (npm ci)", EVM_DIR / "node_modules")
            started = time.monotonic()
            try:
                done = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=EVM_DIR,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=_NPM_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise HardhatNodeError(
                    f"npm ci in {EVM_DIR} did not finish within {_NPM_TIMEOUT:.0f} s"
                ) from exc
            output = "\n".join(
                line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()
            )
            if done.returncode != 0 or not HARDHAT_BIN.exists():
                tail = "\n".join(output.splitlines()[-25:])
                raise HardhatNodeError(
                    f"npm ci in {EVM_DIR} failed (exit {done.returncode}); is the npm registry "
                    f"reachable?\n{tail}"
                )
            logger.warning("npm ci took %.1f s", time.monotonic() - started)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@cache
def token_artifact() -> tuple[list[dict[str, Any]], str]:
    """(abi, creation bytecode hex without 0x) of TestToken.json."""
    artifact = json.loads(TOKEN_ARTIFACT.read_text())
    bytecode: str = artifact["bytecode"]
    return artifact["abi"], bytecode.removeprefix("0x")


# --------------------------------------------------------------------------------------------------
# Minimal ABI encoding: static words and dynamic strings.


def _word(value: int) -> str:
    if value < 0 or value >= 2**256:
        raise ValueError(f"not a uint256: {value}")
    return f"{value:064x}"


def _address_word(address: str) -> str:
    digits = address.lower().removeprefix("0x")
    if len(digits) != 40:
        raise ValueError(f"not an address: {address!r}")
    return "0" * 24 + digits


def _encode(args: Sequence[int | str], types: Sequence[str]) -> str:
    """ABI-encode ``args`` of ``types`` (``address``, ``uint*``, ``string``) without a selector."""
    head: list[str] = []
    tail: list[str] = []
    tail_offset = 32 * len(types)
    for kind, arg in zip(types, args, strict=True):
        if kind == "address":
            head.append(_address_word(str(arg)))
        elif kind.startswith("uint"):
            head.append(_word(int(arg)))
        elif kind == "string":
            raw = str(arg).encode("utf-8")
            head.append(_word(tail_offset))
            padded = raw.hex() + "00" * (-len(raw) % 32)
            tail.append(_word(len(raw)) + padded)
            tail_offset += 32 + len(padded) // 2
        else:
            raise ValueError(f"type {kind!r} not supported")
    return "".join(head) + "".join(tail)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        kept = [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(kept) or "(empty)"


class HardhatNode:
    """``hardhat node`` on a free loopback port, as a context manager; see the module docstring."""

    def __init__(self, *, startup_timeout: float = 60.0, stop_timeout: float = 10.0) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.workdir: Path | None = None
        self.accounts: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None
        self._ids = 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://{_LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        if self.workdir is None:
            raise HardhatNodeError("the node was never started")
        return self.workdir / "hardhat-node.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------ start / stop

    def start(self) -> Self:
        """Install the npm packages if needed, start the node, wait for it. Idempotent."""
        if self.running:
            return self
        ensure_installed()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="kassa-hardhat-"))
        atexit.register(self.close)
        try:
            for attempt in range(3):  # the free port may be taken before the node binds it
                self.port = free_loopback_ports(1)[0]
                if self._spawn():
                    break
                if attempt == 2:
                    raise HardhatNodeError(f"hardhat node found no free port:\n{_tail(self.log_path)}")
            self.accounts = [str(a).lower() for a in self.call("eth_accounts")]
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self) -> bool:
        """Start the process and wait for ``eth_chainId``; False when the port was taken."""
        env = dict(os.environ)
        env.update(
            HARDHAT_DISABLE_TELEMETRY_PROMPT="true",
            HARDHAT_HIDE_SOLIDITY_SURVEY_MESSAGE="true",
            NO_COLOR="1",
            FORCE_COLOR="0",
        )
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(HARDHAT_BIN), "node", "--hostname", _LOOPBACK, "--port", str(self.port)],
                cwd=EVM_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                log_text = self.log_path.read_text(errors="replace")
                if "EADDRINUSE" in log_text:
                    return False
                raise HardhatNodeError(
                    f"hardhat node exited with code {code} while starting; the end of its output:\n"
                    f"{_tail(self.log_path)}"
                )
            try:
                chain_id = int(self.call("eth_chainId", timeout=2.0), 16)
            except (httpx.TransportError, HardhatNodeError):
                chain_id = None
            if chain_id is not None:
                if chain_id != CHAIN_ID:
                    raise HardhatNodeError(f"hardhat node answered chain id {chain_id}, not {CHAIN_ID}")
                return True
            if time.monotonic() > deadline:
                raise HardhatNodeError(
                    f"hardhat node did not answer eth_chainId within {self.startup_timeout:.0f} s; the "
                    f"end of its output:\n{_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the node's process group, SIGKILL after ``stop_timeout``. Idempotent."""
        if self._http is not None:
            self._http.close()
            self._http = None
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "hardhat node (pid %d) ignored SIGTERM for %.0f s: SIGKILL",
                    process.pid,
                    self.stop_timeout,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # anything it left in its group
            os.killpg(process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop the node and delete its temp dir. Idempotent."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # ------------------------------------------------------------------ RPC

    def call(self, method: str, *params: Any, timeout: float = 60.0) -> Any:
        """Synchronous JSON-RPC 2.0 call; raises :class:`HardhatRpcError` for an error answer."""
        if self._http is None:
            self._http = httpx.Client(timeout=timeout)
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        response = self._http.post(self.url, json=body, timeout=timeout)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise HardhatNodeError(f"hardhat {method}: HTTP {response.status_code} {response.text[:200]!r}")
        error = answer.get("error")
        if error is not None:
            raise HardhatRpcError(method, error.get("code"), str(error.get("message")))
        return answer.get("result")

    # ------------------------------------------------------------------ chain control

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def mine(self, n: int = 1) -> int:
        """Mine ``n`` blocks (``hardhat_mine``; pending transactions go into the first); returns
        the new height."""
        self.call("hardhat_mine", hex(n))
        return self.block_number()

    def automine(self, on: bool) -> None:
        """``evm_setAutomine``: off keeps sent transactions pending until :meth:`mine`."""
        self.call("evm_setAutomine", on)

    def snapshot(self) -> str:
        """``evm_snapshot``: an id for :meth:`revert` (which uses it up)."""
        snapshot_id: str = self.call("evm_snapshot")
        return snapshot_id

    def revert(self, snapshot_id: str) -> None:
        """``evm_revert`` to ``snapshot_id`` (later snapshots are dropped with it)."""
        if self.call("evm_revert", snapshot_id) is not True:
            raise HardhatNodeError(f"evm_revert {snapshot_id}: no such snapshot")

    def receipt(self, txhash: str) -> dict[str, Any] | None:
        """The raw ``eth_getTransactionReceipt`` answer (None while pending)."""
        result: dict[str, Any] | None = self.call("eth_getTransactionReceipt", txhash)
        return result

    def balance(self, address: str) -> int:
        return int(self.call("eth_getBalance", address, "latest"), 16)

    # ------------------------------------------------------------------ transactions

    def _sender(self, sender: str | None) -> str:
        if not self.accounts:
            raise HardhatNodeError("the node was never started")
        return sender.lower() if sender is not None else self.accounts[0]

    def send_transaction(self, tx: dict[str, Any]) -> str:
        """``eth_sendTransaction`` from an unlocked dev account; returns the transaction hash."""
        txhash: str = self.call("eth_sendTransaction", tx)
        return txhash

    def send_eth(self, to: str, wei: int, sender: str | None = None) -> str:
        """Send ``wei`` from ``sender`` (dev account 0 by default); returns the transaction hash."""
        return self.send_transaction({"from": self._sender(sender), "to": to, "value": hex(wei)})

    def _mined_receipt(self, txhash: str, what: str) -> dict[str, Any]:
        receipt = self.receipt(txhash)
        if receipt is None:  # automine is off: mine it
            self.mine()
            receipt = self.receipt(txhash)
        if receipt is None or int(receipt["status"], 16) != 1:
            raise HardhatNodeError(f"{what} failed: receipt {receipt!r}")
        return receipt

    def deploy_token(self, name: str, symbol: str, decimals: int, sender: str | None = None) -> str:
        """Deploy a TestToken; returns its address (lower-case). Mines a block if automine is off."""
        _, bytecode = token_artifact()
        data = "0x" + bytecode + _encode([name, symbol, decimals], ["string", "string", "uint8"])
        txhash = self.send_transaction({"from": self._sender(sender), "data": data})
        address: str = self._mined_receipt(txhash, f"deploying {symbol}")["contractAddress"]
        return address.lower()

    def mint(self, token: str, to: str, amount: int) -> str:
        """``mint(to, amount)`` (open to anyone); returns the transaction hash. Mines a block if
        automine is off."""
        data = "0x" + _SEL_MINT + _encode([to, amount], ["address", "uint256"])
        txhash = self.send_transaction({"from": self._sender(None), "to": token, "data": data})
        self._mined_receipt(txhash, f"minting {amount} of {token}")
        return txhash

    def send_token(self, token: str, to: str, amount: int, sender: str | None = None) -> str:
        """``transfer(to, amount)`` from ``sender`` (dev account 0 by default); returns the
        transaction hash (pending while automine is off)."""
        data = "0x" + _SEL_TRANSFER + _encode([to, amount], ["address", "uint256"])
        return self.send_transaction({"from": self._sender(sender), "to": token, "data": data})

    def token_balance(self, token: str, address: str) -> int:
        data = "0x" + _SEL_BALANCE_OF + _encode([address], ["address"])
        return int(self.call("eth_call", {"to": token, "data": data}, "latest"), 16)
