"""Benchmark: the Bitcoin watcher matching one `listsinceblock` answer, against only parsing it.

    PYTHONPATH=. .venv/bin/python bench/utxo_scan/run.py [--orders 10000] [--transactions 1000]
        [--rounds 5]

Run it from the repository root. It derives `--orders` addresses from a regtest key (the open
orders), and builds one `listsinceblock` answer as Bitcoin Core 0.21 writes it (JSON text, amounts as
BTC numbers): `--transactions` receive entries to addresses of those orders (a fifth of them in the
mempool and signalling RBF, the rest in blocks; one in ten paying two orders in one transaction),
plus sends and coinbase entries the watcher must skip. Then, in turns for `--rounds` rounds:

1. the floor: what any watcher must do with the answer, parse it: `json.loads` with Decimal numbers
   and `rpc.since_block` (every entry typed, amounts to exact satoshis);
2. the workload: one `BitcoinWatcher.run_pass` over the same answer (parsed inside, as in
   production): outputs picked from the entries, references `txid:vout`, the unconfirmed ones'
   mempool check (a node that answers at once), new and changed sightings decided against what was
   reported before, and each sighting handed to a reporter that finds its order by address in a
   dict of the open orders (the core's indexed lookup, without the database), the cursor moved.

It prints transactions per second for both and the ratio workload/floor: the matching's share is
ratio - 1 (target <= 20 %). Recording a payment in the database is the core's `observe`, one
transaction per new payment; it is not part of matching and not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import time
from decimal import Decimal
from typing import Any

from embit import bip32
from embit.networks import NETWORKS as EMBIT_NETWORKS

from kassa.rails.base import RailConfig, Sighting
from kassa.rails.bitcoin.keys import parse_key
from kassa.rails.bitcoin.networks import network
from kassa.rails.bitcoin.rail import BitcoinSettings
from kassa.rails.bitcoin.rpc import MempoolEntry, SinceBlock, since_block
from kassa.rails.bitcoin.watcher import BitcoinWatcher


def regtest_descriptor() -> str:
    root = bip32.HDKey.from_seed(secrets.token_bytes(32), version=EMBIT_NETWORKS["regtest"]["xprv"])
    account = root.derive("m/84h/1h/0h").to_public()
    return f"wpkh([{root.my_fingerprint.hex()}/84h/1h/0h]{account.to_string()}/0/*)"


def listing(addresses: list[str], transactions: int, tip: int) -> str:
    """A listsinceblock answer as JSON text."""
    entries: list[dict[str, Any]] = []
    for n in range(transactions):
        txid = secrets.token_hex(32)
        in_pool = n % 5 == 0
        outputs = 2 if n % 10 == 1 else 1
        for vout in range(outputs):
            address = addresses[(n * 7 + vout * 3) % len(addresses)]
            entry: dict[str, Any] = {
                "involvesWatchonly": True,
                "address": address,
                "category": "receive",
                "amount": f"AMOUNT{(n % 97 + 1) * 123_457}",
                "label": "",
                "vout": vout,
                "confirmations": 0 if in_pool else 1 + n % 5,
                "bip125-replaceable": "yes" if in_pool else "no",
                "txid": txid,
                "walletconflicts": [],
                "time": 1_796_000_000 + n,
                "timereceived": 1_796_000_000 + n,
            }
            if in_pool:
                entry["trusted"] = False
            else:
                entry.update(
                    blockhash=secrets.token_hex(32),
                    blockheight=tip - n % 5,
                    blockindex=1 + vout,
                    blocktime=1_796_000_000 + n,
                )
            entries.append(entry)
        if n % 50 == 0:  # entries the watcher skips: a send, a coinbase
            entries.append({**entries[-1], "category": "send", "amount": "AMOUNT-1000", "vout": 9})
            entries.append({**entries[-1], "category": "generate", "amount": "AMOUNT5000000000", "vout": 0})
    body = {
        "result": {"transactions": entries, "removed": [], "lastblock": secrets.token_hex(32)},
        "error": None,
    }
    text = json.dumps(body)
    # Core writes amounts as JSON numbers in coins: 0.01234570, -0.00001000
    return _numbers(text)


def _numbers(text: str) -> str:
    out = []
    for piece in text.split('"AMOUNT'):
        if out:
            digits, _, rest = piece.partition('"')
            sats = int(digits)
            sign = "-" if sats < 0 else ""
            whole, frac = divmod(abs(sats), 10**8)
            out.append(f"{sign}{whole}.{frac:08d}{rest}")
        else:
            out.append(piece)
    return "".join(out)


def parse(text: str) -> SinceBlock:
    return since_block(json.loads(text, parse_float=Decimal)["result"])


class Node:
    """Answers the watcher's calls at once; `listsinceblock` parses the stored answer."""

    def __init__(self, text: str, tip: int) -> None:
        self.text = text
        self.tip = tip

    async def listsinceblock(self, *args: Any, **kwargs: Any) -> SinceBlock:
        return parse(self.text)

    async def getblockcount(self) -> int:
        return self.tip

    async def getblockhash(self, height: int) -> str:
        return f"{height:064x}"

    async def getmempoolentry(self, txid: str) -> MempoolEntry | None:
        return MempoolEntry(
            fee_sats=1410, modified_fee_sats=1410, vsize=141, time=0, height=self.tip, bip125_replaceable=True
        )

    async def gettransaction(self, txid: str) -> None:
        return None

    async def importmulti(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


class Reporter:
    """The core's side without the database: the order of a sighting found by its address."""

    def __init__(self, orders: dict[str, str]) -> None:
        self.orders = orders
        self.matched: list[tuple[str, Sighting]] = []
        self.state: dict[str, Any] = {}

    async def report(self, sighting: Sighting) -> None:
        order = self.orders.get(sighting.destination or "")
        if order is not None:
            self.matched.append((order, sighting))

    async def pending_references(self) -> set[str]:
        return set()

    async def submitted_references(self) -> set[str]:
        return set()

    async def derived(self) -> int:
        return len(self.orders)

    async def load_state(self) -> dict[str, Any]:
        return dict(self.state)

    async def save_state(self, state: dict[str, Any]) -> None:
        self.state = state


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--transactions", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    descriptor = regtest_descriptor()
    key = parse_key(descriptor, network("litecoin-regtest"))
    addresses = key.addresses(0, args.orders)
    orders = {address: f"ord_{i}" for i, address in enumerate(addresses)}
    tip = 5_000
    text = listing(addresses, args.transactions, tip)
    entries = len(parse(text).transactions)
    print(
        f"{args.orders} open orders, {args.transactions} transactions ({entries} wallet entries, "
        f"{len(text) // 1024} KiB of JSON), {args.rounds} rounds"
    )
    settings = BitcoinSettings(
        network="litecoin-regtest", xpub=descriptor, node_url="http://127.0.0.1:1", lookahead=10
    )
    config = RailConfig(1, "mch_bench", "litecoin", settings.model_dump(mode="json"))
    node = Node(text, tip)
    totals = {"floor": 0.0, "workload": 0.0}
    loop = asyncio.new_event_loop()

    async def workload() -> int:
        watcher = BitcoinWatcher(config, settings, key)
        watcher.imported = len(orders) + settings.lookahead  # nothing to import
        reporter = Reporter(orders)
        await watcher.run_pass(node, reporter)  # type: ignore[arg-type]
        return len(reporter.matched)

    parse(text), loop.run_until_complete(workload())  # warm up: first-call costs are not the workload's
    for round_ in range(args.rounds):
        phases = ["floor", "workload"] if round_ % 2 == 0 else ["workload", "floor"]
        line = []
        for phase in phases:
            start = time.perf_counter()
            if phase == "floor":
                parse(text)
            else:
                matched = loop.run_until_complete(workload())
                assert matched == entries - 2 * ((args.transactions + 49) // 50), matched
            took = time.perf_counter() - start
            totals[phase] += took
            line.append(f"{phase} {args.transactions / took:,.0f} tx/s")
        print(f"round {round_ + 1}: " + ", ".join(line))
    floor = args.transactions * args.rounds / totals["floor"]
    work = args.transactions * args.rounds / totals["workload"]
    ratio = totals["workload"] / totals["floor"]
    print(f"parse only (floor): {floor:,.0f} transactions/s")
    print(f"watcher pass:       {work:,.0f} transactions/s")
    print(f"ratio workload/floor: {ratio:.2f} (matching adds {100 * (ratio - 1):.0f} %; target <= 20 %)")


if __name__ == "__main__":
    main()
