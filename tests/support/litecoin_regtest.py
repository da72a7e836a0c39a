"""A throwaway litecoind regtest node (Litecoin Core 0.21, a Bitcoin Core 0.21 fork) with a funded
payer wallet, for the Bitcoin-family rail tests.

Usage::

    with LitecoinRegtest() as node:
        url = node.create_watch_only_wallet("merchant")  # then importmulti a descriptor
        txid = node.pay(address, 150_000)
        node.mine()

What :meth:`LitecoinRegtest.start` does (REAL-NODES.md, "Bitcoin Core family"):

* a temp dir (``kassa-litecoin-*``; stale ones from killed runs are removed) and a ``litecoin.conf``
  with every option in ``[regtest]``, RPC and P2P on free loopback ports, bound to 127.0.0.1 only,
  user ``kassa`` and a random password; ``extra_conf`` lines (e.g. ``walletnotify=...``) are added;
* ``/usr/lib/litecoin/litecoind -datadir=D -conf=D/litecoin.conf`` (``/usr/bin/litecoind`` is a
  wrapper that writes to ``~/.litecoin``), waits until ``getblockchaininfo`` answers (-28 while
  warming up);
* ``createwallet payer`` and ``generatetoaddress`` 150 blocks to it: 50 mature coinbase outputs of
  50 LTC, so payments spend confirmed coins and do not chain on each other's change.

Gotchas found on Litecoin Core 0.21.2.1:

* MWEB (LIP-0002) activates on regtest at height 432, and from then on every block must carry a
  HogEx transaction that needs a prior MWEB peg-in: ``generatetoaddress`` fails with
  "bad-txns-vin-empty" and the chain is stuck at 431. ``vbparams=mweb:-2:0:0:0`` (NEVER_ACTIVE)
  keeps MWEB off; ``mweb:0:1`` (a timeout in the past) does NOT.
* ``mempoolreplacement`` defaults to 0 in Litecoin Core: its mempool refuses every BIP125
  replacement ("txn-mempool-conflict", -26) although ``bip125-replaceable`` still says "yes".
  The harness sets it to 1 (Bitcoin Core's behaviour) unless ``mempool_replacement=False``.
* Shutdown waits for idle keep-alive RPC connections to time out (``rpcservertimeout``, 30 s by
  default) BEFORE flushing the chain state and wallets, so killing the node early loses wallet
  state. The harness sets ``rpcservertimeout=6``: above httpx's 5 s keep-alive expiry, so a
  client never reuses a connection the node has closed, and a stop takes at most ~6 s.
* Outputs below ~0.00005 LTC are refused by the wallet: "Transaction amount too small" (dust).
* Regtest coinbase is 50 LTC, halving every 150 blocks; coinbase matures after 100 blocks.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from kassa.rails.bitcoin.rpc import sats_to_btc_str, to_sats
from tests.support.monero_regtest import free_loopback_ports

logger = logging.getLogger(__name__)

LITECOIND = "/usr/lib/litecoin/litecoind"
RPC_USER = "kassa"
PAYER_WALLET = "payer"
COINBASE_MATURITY = 100
INITIAL_BLOCKS = COINBASE_MATURITY + 50
RPC_IN_WARMUP = -28
_LOOPBACK = "127.0.0.1"
_WORKDIR_PREFIX = "kassa-litecoin-"
_OWNER_FILE = "owner.pid"
# BIP125: the replacement pays the replaced transactions' fees plus at least the incremental relay
# fee (1 sat/vB) for its own size; 20,000 sats covers up to 20 kvB.
_REPLACEMENT_EXTRA_FEE = 20_000


class LitecoindMissing(RuntimeError):
    """litecoind is not installed."""


class LitecoinRegtestError(RuntimeError):
    """The node failed to start or to do what a test asked."""


class LitecoinRpcCallError(LitecoinRegtestError):
    """A JSON-RPC error answer (``code``, ``rpc_message``)."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        self.code = code
        self.rpc_message = message
        super().__init__(f"litecoind {method}: error {code}: {message}")


def find_litecoind() -> str:
    """Path of litecoind (``$KASSA_LITECOIND`` overrides), or :class:`LitecoindMissing`."""
    path = os.environ.get("KASSA_LITECOIND") or LITECOIND
    if not os.access(path, os.X_OK):
        raise LitecoindMissing(
            f"{path} not found: the Bitcoin-family regtest tests need Litecoin Core 0.21 "
            "(Debian package `litecoind`: apt-get install -y litecoind, or run scripts/system-deps.sh), "
            "or point $KASSA_LITECOIND at a litecoind binary."
        )
    return path


def _remove_stale_workdirs() -> None:
    """Remove temp dirs of runs that were killed before they could clean up."""
    for path in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((path / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        kept = [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(kept) or "(empty)"


class LitecoinRegtest:
    """litecoind on a private regtest chain, as a context manager; see the module docstring.

    :meth:`stop` / :meth:`start` restart the node on the same datadir and ports (wallets loaded
    before are loaded again); leaving the ``with`` block (or :meth:`close`) also deletes the datadir.
    """

    def __init__(
        self,
        *,
        extra_conf: Sequence[str] = (),
        mempool_replacement: bool = True,
        initial_blocks: int = INITIAL_BLOCKS,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        keep_dir: bool = False,
    ) -> None:
        self.extra_conf = list(extra_conf)
        self.mempool_replacement = mempool_replacement
        self.initial_blocks = initial_blocks
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.keep_dir = keep_dir or bool(os.environ.get("KASSA_KEEP_LITECOIN_DIR"))
        self.rpc_user = RPC_USER
        self.rpc_password = secrets.token_urlsafe(18)
        self.workdir: Path | None = None
        self.rpc_port = 0
        self.p2p_port = 0
        self.payer_address = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None
        self._ids = 0
        self._wallets_to_load: list[str] = []

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ properties

    @property
    def rpc_url(self) -> str:
        return f"http://{_LOOPBACK}:{self.rpc_port}"

    @property
    def datadir(self) -> Path:
        if self.workdir is None:
            raise LitecoinRegtestError("the node was never started")
        return self.workdir

    @property
    def debug_log(self) -> Path:
        return self.datadir / "regtest" / "debug.log"

    def wallet_url(self, name: str) -> str:
        return f"{self.rpc_url}/wallet/{quote(name, safe='')}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------ start / stop

    def start(self) -> Self:
        """Start the node: the first time on a new datadir with a funded payer, afterwards (after
        :meth:`stop`) on the same datadir, loading the wallets that were loaded. Idempotent."""
        if self.running:
            return self
        binary = find_litecoind()
        first = self.workdir is None
        if first:
            _remove_stale_workdirs()
            self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (self.workdir / _OWNER_FILE).write_text(str(os.getpid()))
            self.rpc_port, self.p2p_port = free_loopback_ports(2)
            self._write_conf()
        atexit.register(self.close)
        try:
            self._spawn(binary)
            if first:
                self.call("createwallet", PAYER_WALLET)
                self.payer_address = self.call("getnewaddress", wallet=PAYER_WALLET)
                self.mine(self.initial_blocks)
            else:
                for name in self._wallets_to_load:
                    self.call("loadwallet", name)
        except BaseException:
            self.close()
            raise
        return self

    def stop(self) -> None:
        """Stop the node (``stop`` RPC, then SIGTERM / SIGKILL after ``stop_timeout``), keeping the
        datadir for :meth:`start`. Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(Exception):
                self._wallets_to_load = list(self.call("listwallets"))
            with contextlib.suppress(Exception):
                self.call("stop")
            if self._http is not None:  # our own idle connection would delay the shutdown too
                self._http.close()
                self._http = None
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "litecoind (pid %d) did not stop in %.0f s: SIGTERM", process.pid, self.stop_timeout
                )
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait(timeout=10)
        self._process = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def close(self) -> None:
        """Stop the node and delete the datadir (unless ``keep_dir``). Idempotent."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        self.stop()
        if self.workdir is not None and not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    # ------------------------------------------------------------------ RPC

    def call(self, method: str, *params: Any, wallet: str | None = None, timeout: float = 60.0) -> Any:
        """Synchronous JSON-RPC call (to ``/wallet/<wallet>`` with ``wallet``); fractional numbers come
        back as Decimal. Raises :class:`LitecoinRpcCallError` for an error answer."""
        if self._http is None:
            self._http = httpx.Client(auth=(self.rpc_user, self.rpc_password), timeout=timeout)
        self._ids += 1
        url = self.wallet_url(wallet) if wallet is not None else self.rpc_url + "/"
        body = json.dumps({"jsonrpc": "1.0", "id": self._ids, "method": method, "params": list(params)})
        response = self._http.post(url, content=body, timeout=timeout)
        try:
            answer = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise LitecoinRegtestError(
                f"litecoind {method}: HTTP {response.status_code} {response.text[:200]!r}"
            )
        error = answer.get("error")
        if error is not None:
            raise LitecoinRpcCallError(method, error.get("code"), str(error.get("message")))
        return answer.get("result")

    # ------------------------------------------------------------------ chain helpers

    def mine(self, n: int = 1, to: str | None = None) -> list[str]:
        """Mine ``n`` blocks (coinbase to the payer unless ``to``); returns their hashes."""
        hashes: list[str] = self.call("generatetoaddress", n, to or self.payer_address, timeout=60 + n)
        return hashes

    def height(self) -> int:
        return int(self.call("getblockcount"))

    def invalidate(self, blockhash: str) -> None:
        """``invalidateblock``: disconnect the block and its descendants (their transactions return
        to the mempool); the node stays on the remaining chain until :meth:`reconsider`."""
        self.call("invalidateblock", blockhash)

    def reconsider(self, blockhash: str) -> None:
        self.call("reconsiderblock", blockhash)

    # ------------------------------------------------------------------ payments

    def pay(self, address: str, sats: int, replaceable: bool = True) -> str:
        """``sendtoaddress`` from the payer (BIP125-signalling unless ``replaceable=False``)."""
        txid: str = self.call(
            "sendtoaddress", address, sats_to_btc_str(sats), "", "", False, replaceable, wallet=PAYER_WALLET
        )
        return txid

    def pay_many(self, amounts: Mapping[str, int], replaceable: bool = True) -> str:
        """``sendmany`` from the payer: one transaction, one output per address."""
        outputs = {address: sats_to_btc_str(sats) for address, sats in amounts.items()}
        txid: str = self.call("sendmany", "", outputs, 0, "", [], replaceable, wallet=PAYER_WALLET)
        return txid

    def conflicting_tx(self, txid: str, to_address: str) -> str:
        """A signed transaction spending all the inputs of the payer's transaction ``txid`` to
        ``to_address`` alone, paying the fees of ``txid`` and of its mempool descendants plus 20,000
        sats, so that it is a valid BIP125 replacement; returns its hex (not published)."""
        raw = self.call("getrawtransaction", txid, True)
        inputs = [{"txid": i["txid"], "vout": i["vout"], "sequence": 0xFFFFFFFD} for i in raw["vin"]]
        # The spent outputs, for the signer: it cannot find coins already spent in a block.
        prevtxs = []
        for i in raw["vin"]:
            spent = self.call("getrawtransaction", i["txid"], True)["vout"][i["vout"]]
            script = spent["scriptPubKey"]["hex"]
            prevtxs.append(
                {"txid": i["txid"], "vout": i["vout"], "scriptPubKey": script, "amount": spent["value"]}
            )
        total_in = sum(to_sats(p["amount"]) for p in prevtxs)
        for p in prevtxs:
            p["amount"] = str(p["amount"])  # Decimal → exact string for the JSON body
        total_out = sum(to_sats(o["value"]) for o in raw["vout"])
        try:
            entry = self.call("getmempoolentry", txid)
            replaced_fees = to_sats(entry["fees"]["descendant"])
        except LitecoinRpcCallError:  # not in the mempool (mined or evicted)
            replaced_fees = total_in - total_out
        value = total_in - replaced_fees - _REPLACEMENT_EXTRA_FEE
        unsigned = self.call("createrawtransaction", inputs, [{to_address: sats_to_btc_str(value)}], 0, True)
        signed = self.call("signrawtransactionwithwallet", unsigned, prevtxs, wallet=PAYER_WALLET)
        if not signed.get("complete"):
            raise LitecoinRegtestError(f"could not sign a replacement of {txid}: {signed.get('errors')}")
        hex_tx: str = signed["hex"]
        return hex_tx

    def replace(self, txid: str, new_address: str) -> str:
        """Double-spend the mempool transaction ``txid`` (made by the payer) with a higher fee to
        ``new_address``: a BIP125 replacement that evicts ``txid`` and its descendants. Returns the
        replacement's txid."""
        new_txid: str = self.call("sendrawtransaction", self.conflicting_tx(txid, new_address))
        return new_txid

    def mine_conflicting(self, txid: str, to_address: str) -> str:
        """Make the best chain hold a double spend of ``txid`` instead of ``txid`` (a reorg when it
        was mined): the block holding ``txid`` (if any) is invalidated, a block with the conflicting
        transaction is mined with ``generateblock``, then enough blocks for the new branch to be
        longer, and the old block is reconsidered (a valid, shorter fork). Returns the hash of the
        block holding the conflicting transaction."""
        hex_tx = self.conflicting_tx(txid, to_address)
        info = self.call("getrawtransaction", txid, True)
        old_block = info.get("blockhash")
        depth = 0
        if old_block is not None:
            depth = int(self.call("getblockheader", old_block)["confirmations"])
            self.invalidate(old_block)
        block: str = self.call("generateblock", self.payer_address, [hex_tx])["hash"]
        if depth > 0:
            self.mine(depth)  # depth + 1 blocks on the new branch against depth on the old one
            self.reconsider(old_block)
            if self.call("getbestblockhash") == old_block:
                raise LitecoinRegtestError("the old branch is still the best chain after reconsiderblock")
        return block

    def create_watch_only_wallet(self, name: str) -> str:
        """``createwallet name true true`` (blank, no private keys, legacy); returns its RPC URL."""
        self.call("createwallet", name, True, True)
        return self.wallet_url(name)

    # ------------------------------------------------------------------ internals

    def _write_conf(self) -> None:
        lines = [
            "regtest=1",
            "[regtest]",
            "server=1",
            "listen=0",
            "connect=0",
            "dnsseed=0",
            "upnp=0",
            "fallbackfee=0.0002",
            "txindex=1",
            f"rpcbind={_LOOPBACK}",
            f"rpcallowip={_LOOPBACK}",
            f"rpcport={self.rpc_port}",
            f"port={self.p2p_port}",
            f"rpcuser={self.rpc_user}",
            f"rpcpassword={self.rpc_password}",
            "vbparams=mweb:-2:0:0:0",  # see the module docstring
            f"mempoolreplacement={int(self.mempool_replacement)}",
            "rpcservertimeout=6",  # see the module docstring
            *self.extra_conf,
        ]
        (self.datadir / "litecoin.conf").write_text("\n".join(lines) + "\n")

    def _spawn(self, binary: str) -> None:
        datadir = self.datadir
        argv = [binary, f"-datadir={datadir}", f"-conf={datadir / 'litecoin.conf'}", "-printtoconsole=0"]
        # setpriv --pdeathsig: the node dies with the test process even when that is SIGKILLed.
        setpriv = shutil.which("setpriv")
        command = [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv
        output = datadir / "litecoind.out"
        with output.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=datadir,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                raise LitecoinRegtestError(
                    f"litecoind exited with status {self._process.returncode} while starting\n"
                    f"--- {output} ---\n{_tail(output)}\n--- {self.debug_log} ---\n{_tail(self.debug_log)}"
                )
            try:
                self.call("getblockchaininfo", timeout=5)
                return
            except LitecoinRpcCallError as exc:
                if exc.code != RPC_IN_WARMUP:
                    raise
            except (httpx.TransportError, LitecoinRegtestError):
                pass  # not listening yet (or answering 503 while starting)
            if time.monotonic() > deadline:
                raise LitecoinRegtestError(
                    f"litecoind did not answer within {self.startup_timeout:.0f} s\n"
                    f"--- {self.debug_log} ---\n{_tail(self.debug_log)}"
                )
            time.sleep(0.05)
