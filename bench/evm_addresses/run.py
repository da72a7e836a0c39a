"""Benchmark: EVM addresses derived per second from a watch-only key, against the bare child step.

    PYTHONPATH=. .venv/bin/python bench/evm_addresses/run.py [--count 10000] [--rounds 5]

Run it from the repository root. In one run, with the account key m/44'/60'/0' of the "abandon ...
about" test mnemonic, it:

1. parses the account's xpub with `kassa.rails.evm.keys.parse_evm_key` and checks the first
   addresses against the standard vector (0x9858EfFD232B4033E47d90003D41EC34EcaEda94, ...);
2. the workload: `EvmKey.addresses(start, --count)`, the fast path (the chain key derived once,
   then per index one public child step, the point's decompression, two Keccak-256 and EIP-55);
3. the floor: `--count` bare python-bip32 child steps, `BIP32.get_pubkey_from_path([i])` on the
   same chain key, what one index costs before it is an address;
4. for comparison, embit's child step, `HDKey.child(i)` (the Bitcoin rail's library): slower, as
   every HDKey it builds base58-encodes itself to check its own version bytes;
5. the phases take turns in `--rounds` rounds (their order rotating, fresh indexes each round), so a
   change in the machine's load weighs on all alike; each round's rates are printed, then the totals,
   the workload/floor ratio and the CPU per address.

The target is >= 10,000 addresses/s; missing it is reported, not an error: this is a measurement.
It exits non-zero only when a check fails (a wrong address, a workload that disagrees with embit).

The library was chosen by a one-off measurement of the candidates (2 cores, Python 3.11, CPU time
per address while a CI run shared the machine; child step + uncompressed point + Keccak + EIP-55):

    candidate                                                           addresses/s   child step alone
    embit HDKey.child + eth_utils.to_checksum_address (pycryptodome)         5,400       8,800/s
    embit HDKey.child + Keccak (safe-pysha3) + EIP-55 here                   7,600       8,800/s
    bip-utils Bip44 ... AddressIndex(i).PublicKey().ToAddress()             6,100      10,100/s
    bip-utils Bip32Secp256k1.ChildKey(i) + safe-pysha3 + EIP-55 here         8,500      10,100/s
    bip-utils Bip32Slip10EcdsaDerivator.CkdPub (internal API) + same        11,400      13,900/s
    python-bip32 get_pubkey_from_path([i]) + coincurve + same (chosen)      13,100      18,400/s
    hand-written CKDpub on coincurve (hmac + PublicKey.add), not used       18,700      24,500/s

Keccak-256 of 64 bytes: safe-pysha3 1.0 µs, pycryptodome 9 µs; EIP-55: eth_utils 40-56 µs, the
list comprehension in kassa.rails.evm.keys 4.5 µs + one Keccak.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

from bip32 import BIP32
from embit import bip39
from embit.bip32 import HDKey
from embit.util import secp256k1

from kassa.rails.evm.keys import EvmKey, checksum_address, keccak256, parse_evm_key

TARGET_RATE = 10_000

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
FIRST = [
    "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
    "0xb6716976A3ebe8D39aCEB04372f22Ff8e6802D7A",
]


def embit_address(chain: HDKey, index: int) -> str:
    point = secp256k1.ec_pubkey_parse(chain.child(index).key.sec())
    raw = secp256k1.ec_pubkey_serialize(point, secp256k1.EC_UNCOMPRESSED)
    return checksum_address("0x" + keccak256(raw[1:])[-20:].hex())


def measure(count: int, rounds: int) -> bool:
    account = HDKey.from_seed(bip39.mnemonic_to_seed(MNEMONIC)).derive("m/44h/60h/0h").to_public()
    key: EvmKey = parse_evm_key(account.to_base58())
    if key.addresses(0, 3) != FIRST:
        print(f"FAIL: addresses 0-2 are {key.addresses(0, 3)}, the vector says {FIRST}", file=sys.stderr)
        return False
    embit_chain = account.child(0)
    # the chain key, cached like the workload's
    chain = BIP32(embit_chain.chain_code, pubkey=embit_chain.sec())
    if [embit_address(embit_chain, i) for i in range(0, 100, 9)] != key.addresses(0, 100)[::9]:
        print("FAIL: the workload disagrees with embit's derivation", file=sys.stderr)
        return False

    def workload(numbers: range) -> None:
        key.addresses(numbers.start, len(numbers))

    def floor(numbers: range) -> None:
        child = chain.get_pubkey_from_path
        for i in numbers:
            child([i])

    def embit_child(numbers: range) -> None:
        child = embit_chain.child
        for i in numbers:
            child(i)

    phases: dict[str, Callable[[range], None]] = {
        "addresses": workload,
        "floor": floor,
        "embit child": embit_child,
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
        f"EvmKey.addresses {rate['addresses']:,.0f}/s "
        f"({cpu['addresses'] / count * 1e6:.0f} µs CPU each; target >= {TARGET_RATE:,}/s: {verdict})"
    )
    print(
        f"floor, bare python-bip32 get_pubkey_from_path([i]) {rate['floor']:,.0f}/s "
        f"({cpu['floor'] / count * 1e6:.0f} µs each)"
    )
    print(
        f"embit HDKey.child(i), for comparison {rate['embit child']:,.0f}/s "
        f"({cpu['embit child'] / count * 1e6:.0f} µs each)"
    )
    print(f"ratio addresses/floor {rate['addresses'] / rate['floor']:.2f}")
    return True


def cli() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="indexes derived per phase")
    parser.add_argument("--rounds", type=int, default=5, help="turns the phases take")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{args.count} indexes per phase, {args.rounds} rounds")
    return 0 if measure(max(1, args.count), max(1, args.rounds)) else 1


if __name__ == "__main__":
    sys.exit(cli())
