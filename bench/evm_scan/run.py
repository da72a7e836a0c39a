"""Benchmark: matching one EVM block's transfers against 100,000 watched addresses, against only
decoding them; and addresses derived per second.

    PYTHONPATH=. .venv/bin/python bench/evm_scan/run.py [--watched 100000] [--transfers 1000] [--rounds 7]

Run it from the repository root. It derives `--watched` addresses from a fresh account key (the
watched set, as the watcher builds it: `EvmKey.addresses`, timed: addresses per second), and builds,
as a node answers them (JSON text), one `eth_getBlockByNumber(full)` block with `--transfers`
transactions, half plain ETH transfers and half ERC-20 `transfer` calls, and the `eth_getLogs`
answer with their `Transfer` events (one in ten transfers to a watched address, the rest elsewhere;
a few from a token that is not accepted). Then, in turns for `--rounds` rounds:

1. the floor: decoding the block's transfers: `json.loads` of both answers, `rpc.parse_block`,
   `rpc.parse_logs` and `decode_transfer` of every log;
2. the workload: the same decoding inside the watcher's `match_blocks` (transactions and Transfer
   logs looked up in the watched dict and the accepted tokens: set lookups, no query per order).

It prints the time of each, the ratio workload/floor (target: matching adds <= 20 %), and the
derivation rate (target >= 10,000 addresses/s).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import secrets
import time
from typing import Any

from embit.bip32 import HDKey

from kassa.rails.evm.keys import parse_evm_key
from kassa.rails.evm.rpc import TRANSFER_TOPIC, decode_transfer, parse_block, parse_logs
from kassa.rails.evm.watcher import match_blocks

CHAIN = 1
TOKEN = "0x" + "a0" * 20
OTHER_TOKEN = "0x" + "b1" * 20


def answers(watched: list[str], transfers: int) -> tuple[str, str]:
    """(block JSON, logs JSON) as a node sends them."""
    block_hash = "0x" + secrets.token_hex(32)
    txs: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    for n in range(transfers):
        to = watched[(n * 97) % len(watched)].lower() if n % 10 == 0 else "0x" + secrets.token_hex(20)
        tx_hash = "0x" + secrets.token_hex(32)
        common = {
            "hash": tx_hash,
            "from": "0x" + secrets.token_hex(20),
            "nonce": hex(n),
            "blockHash": block_hash,
            "blockNumber": hex(1000),
            "transactionIndex": hex(n),
            "gas": hex(60000),
            "gasPrice": hex(10**9),
            "type": "0x2",
        }
        if n % 2 == 0:
            txs.append({**common, "to": to, "value": hex(10**15 + n), "input": "0x"})
        else:
            token = OTHER_TOKEN if n % 50 == 1 else TOKEN
            amount = 10**6 + n
            data = "0xa9059cbb" + to[2:].rjust(64, "0") + f"{amount:064x}"
            txs.append({**common, "to": token, "value": "0x0", "input": data})
            logs.append(
                {
                    "address": token,
                    "topics": [
                        TRANSFER_TOPIC,
                        "0x" + common["from"][2:].rjust(64, "0"),
                        "0x" + to[2:].rjust(64, "0"),
                    ],
                    "data": f"0x{amount:064x}",
                    "blockNumber": hex(1000),
                    "blockHash": block_hash,
                    "transactionHash": tx_hash,
                    "transactionIndex": hex(n),
                    "logIndex": hex(len(logs)),
                    "removed": False,
                }
            )
    block = {
        "number": hex(1000),
        "hash": block_hash,
        "parentHash": "0x" + secrets.token_hex(32),
        "timestamp": hex(1_796_000_000),
        "transactions": txs,
    }
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": block}), json.dumps(
        {"jsonrpc": "2.0", "id": 2, "result": logs}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--watched", type=int, default=100_000)
    parser.add_argument("--transfers", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    xpub = HDKey.from_seed(secrets.token_bytes(32)).derive("m/44h/60h/0h").to_public().to_string()
    key = parse_evm_key(xpub)
    start = time.perf_counter()
    addresses = key.addresses(0, args.watched)
    took = time.perf_counter() - start
    rate = args.watched / took
    print(
        f"derived {args.watched:,} addresses in {took:.2f} s: {rate:,.0f} addresses/s "
        f"(target >= 10,000/s: {'met' if rate >= 10_000 else 'NOT met'})"
    )
    watched = {a.lower(): a for a in addresses}
    block_text, logs_text = answers(addresses, args.transfers)

    def floor() -> int:
        block = parse_block(json.loads(block_text)["result"])
        logs = parse_logs(json.loads(logs_text)["result"])
        assert block is not None
        return len(block.transactions) + sum(1 for entry in logs if decode_transfer(entry))

    def workload() -> int:
        block = parse_block(json.loads(block_text)["result"])
        logs = parse_logs(json.loads(logs_text)["result"])
        assert block is not None
        return len(match_blocks([block], list(logs), CHAIN, watched, "ETH", {TOKEN: "USDC"}))

    expected = len([n for n in range(args.transfers) if n % 10 == 0])
    floor(), workload()  # warm up
    totals = {"floor": 0.0, "workload": 0.0}
    for round_ in range(args.rounds):
        line = []
        for phase in ["floor", "workload"] if round_ % 2 == 0 else ["workload", "floor"]:
            gc.collect()  # a collection of the 100,000 watched strings falls on neither phase
            start = time.perf_counter()
            got = floor() if phase == "floor" else workload()
            took = time.perf_counter() - start
            if phase == "workload":
                assert got == expected, (got, expected)
            totals[phase] += took
            line.append(f"{phase} {took * 1000:.2f} ms")
        print(f"round {round_ + 1}: " + ", ".join(line))
    ratio = totals["workload"] / totals["floor"]
    print(f"decode only (floor): {totals['floor'] / args.rounds * 1000:.2f} ms per block")
    per_block = totals["workload"] / args.rounds * 1000
    print(f"decode and match:    {per_block:.2f} ms per block ({expected} matched)")
    print(f"ratio workload/floor: {ratio:.2f} (matching adds {100 * (ratio - 1):.0f} %; target <= 20 %)")


if __name__ == "__main__":
    main()
