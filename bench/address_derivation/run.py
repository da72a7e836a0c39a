"""Benchmark: addresses derived per second from a watch-only key, against embit's bare child step.

    PYTHONPATH=. .venv/bin/python bench/address_derivation/run.py [--count 10000] [--rounds 5]
        [--script wpkh|sh-wpkh|tr|pkh|all]

Run it from the repository root. In one run, per script type (BIP 84 / 49 / 86 / 44 account keys of
the "abandon ... about" test mnemonic, on the bitcoin network), it:

1. parses the account's extended public key with `kassa.rails.bitcoin.keys.parse_key` and checks
   the first addresses against the BIP test vectors;
2. the workload: `AddressKey.addresses(start, --count)`, the fast path (the chain key derived once,
   then one child step and one encoding per index);
3. the floor: `--count` bare embit `HDKey.child(i)` calls on the same cached chain key, what one
   index costs before it is an address (the EC step, and what embit's HDKey does around it);
4. for comparison, embit's plain address path per index: `script.p2wpkh(child).address(network)`
   (or p2sh/p2tr/p2pkh) on the cached chain key, which the workload's encoding shortcuts;
5. the phases take turns in `--rounds` rounds (their order rotating, fresh indexes each round), so a
   change in the machine's load weighs on all alike; each round's rates are printed, then the totals,
   the workload/floor ratio and the CPU per address.

The target is ~10,000 addresses/s; missing it is reported, not an error: this is a measurement. It
exits non-zero only when a check fails (a wrong address, a workload that disagrees with the
comparison path).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from embit import script as scripts
from embit.bip32 import HDKey

from kassa.rails.bitcoin.keys import AddressKey, parse_key
from kassa.rails.bitcoin.networks import NETWORKS, embit_network

TARGET_RATE = 10_000

# Account keys of the mnemonic "abandon abandon ... about" and their first receiving address, from
# BIP 84 (zpub), SLIP-0132 (ypub: BIP 49's own vector is on testnet), BIP 86 (xpub of m/86'/0'/0')
# and SLIP-0132 (xpub of m/44'/0'/0').
ACCOUNTS: dict[str, tuple[str, str]] = {
    "wpkh": (
        "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs",
        "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    ),
    "sh-wpkh": (
        "ypub6Ww3ibxVfGzLrAH1PNcjyAWenMTbbAosGNB6VvmSEgytSER9azLDWCxoJwW7Ke7icmizBMXrzBx9979FfaHxHcrArf3zbeJJJUZPf663zsP",
        "37VucYSaXLCAsxYyAPfbSi9eh4iEcbShgf",
    ),
    "tr": (
        "xpub6BgBgsespWvERF3LHQu6CnqdvfEvtMcQjYrcRzx53QJjSxarj2afYWcLteoGVky7D3UKDP9QyrLprQ3VCECoY49yfdDEHGCtMMj92pReUsQ",
        "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr",
    ),
    "pkh": (
        "xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSoekkudhUd9yLb6qx39T9nMdj",
        "1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA",
    ),
}

_EMBIT_SCRIPT: dict[str, Callable[[Any], Any]] = {
    "wpkh": scripts.p2wpkh,
    "sh-wpkh": lambda child: scripts.p2sh(scripts.p2wpkh(child)),
    "tr": scripts.p2tr,
    "pkh": scripts.p2pkh,
}


def measure(script: str, count: int, rounds: int) -> bool:
    net = NETWORKS["bitcoin"]
    text, first = ACCOUNTS[script]
    key: AddressKey = parse_key(text, net, script)
    if key.address(0) != first:
        print(f"FAIL: {script} address 0 is {key.address(0)}, the BIP vector says {first}", file=sys.stderr)
        return False
    chain = HDKey.from_base58(key.xpub).derive(list(key.path))  # the chain key, cached like the workload's
    params = embit_network(net)
    to_script = _EMBIT_SCRIPT[script]
    if [to_script(chain.child(i)).address(params) for i in range(100)] != key.addresses(0, 100):
        print(f"FAIL: {script}: the workload disagrees with embit's address path", file=sys.stderr)
        return False

    def workload(numbers: range) -> None:
        key.addresses(numbers.start, len(numbers))

    def floor(numbers: range) -> None:
        child = chain.child
        for i in numbers:
            child(i)

    def embit_path(numbers: range) -> None:
        child = chain.child
        for i in numbers:
            to_script(child(i)).address(params)

    phases: dict[str, Callable[[range], None]] = {
        "addresses": workload,
        "floor": floor,
        "embit path": embit_path,
    }
    seconds = dict.fromkeys(phases, 0.0)
    cpu = dict.fromkeys(phases, 0.0)
    per_round = max(1, count // rounds)
    done = 0
    for r in range(rounds):
        size = per_round if r < rounds - 1 else count - done
        numbers = range(1000 + done, 1000 + done + size)  # fresh indexes each round
        done += size
        names = list(phases)[r % len(phases) :] + list(phases)[: r % len(phases)]
        took = {}
        for name in names:
            started, used = time.perf_counter(), time.process_time()
            phases[name](numbers)
            took[name] = time.perf_counter() - started
            seconds[name] += took[name]
            cpu[name] += time.process_time() - used
        print(
            f"  round {r + 1}/{rounds}: "
            + "  ".join(f"{name} {size / took[name]:,.0f}/s" for name in phases)
            + f"  ratio {took['floor'] / took['addresses']:.2f}",
            flush=True,
        )
    rate = {name: count / seconds[name] for name in phases}
    verdict = "met" if rate["addresses"] >= TARGET_RATE else "NOT met"
    print(
        f"{script}: AddressKey.addresses {rate['addresses']:,.0f}/s "
        f"({cpu['addresses'] / count * 1e6:.0f} µs CPU each; target ~{TARGET_RATE:,}/s: {verdict})"
    )
    print(
        f"{script}: floor, bare HDKey.child(i) {rate['floor']:,.0f}/s "
        f"({cpu['floor'] / count * 1e6:.0f} µs each)"
    )
    print(
        f"{script}: embit's address path {rate['embit path']:,.0f}/s "
        f"({cpu['embit path'] / count * 1e6:.0f} µs each; the workload is "
        f"{rate['addresses'] / rate['embit path']:.2f}x of it)"
    )
    print(f"{script}: ratio addresses/floor {rate['addresses'] / rate['floor']:.2f}")
    return True


def cli() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="indexes derived per phase")
    parser.add_argument("--rounds", type=int, default=5, help="turns the phases take")
    parser.add_argument("--script", choices=[*ACCOUNTS, "all"], default="wpkh")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{args.count} indexes per phase, {args.rounds} rounds")
    ok = True
    for script in ACCOUNTS if args.script == "all" else [args.script]:
        ok = measure(script, args.count, max(1, args.rounds)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cli())
