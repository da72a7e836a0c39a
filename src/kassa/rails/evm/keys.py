"""The merchant's watch-only key for the EVM rail: what it is given as, and the addresses it derives.

Every order gets a fresh address from the merchant's extended public key, at the BIP 44 path
``m/44'/60'/0'/0/i`` that MetaMask, hardware wallets (Ledger, Trezor) and ``bip-utils`` use, so
Kassa never holds a private key. :func:`parse_evm_key` takes:

* the ACCOUNT key, the extended public key of ``m/44'/60'/a'`` (depth 3; ``a`` is read from the
  key's own child number, 0 for the wallet's first account): addresses are its ``/0/i``;
* the RECEIVING CHAIN key, of ``m/44'/60'/a'/0`` (depth 4): addresses are its ``/i``. The chain key
  does not say which account it belongs to: ``a`` is 0 unless a key origin says otherwise;
* either, written like a descriptor's key expression: an optional origin
  ``[fingerprint/44h/60h/0h]`` (``h``, ``H`` or ``'``; its steps must match the key's depth and
  child number), then the key, then optionally the ranged path, ``/0/*`` after an account key or
  ``/*`` after a chain key, and optionally a ``#checksum`` (BIP 380's, checked).

:class:`EvmKey.level` says which of the two was given. Both spellings of one chain derive the same
addresses and share one :attr:`EvmKey.key_id`.

Kassa never holds a private key: an xprv (or any extended private key), a 64-hex-digit raw private
key, a WIF key or seed words are refused, and so are keys at other depths (a master key, a coin
key, the change chain ``.../1``, a single address's key), other version bytes (ypub, zpub, tpub:
Bitcoin wallets' keys) and Bitcoin output descriptors. Every refusal is a :class:`ValueError` whose
message says what to give instead; no message repeats the text it was given, which may be a
secret. An xpub does not record its coin type: a Bitcoin ``m/44'/0'/0'`` account key is an xpub at
depth 3 too, and derives valid Ethereum addresses that the merchant's Ethereum wallet does not
show. Only a key origin (checked when given) tells them apart, so the merchant should compare
:meth:`EvmKey.address` ``(0)`` with the wallet's first address.

Libraries, chosen by measurement (bench/evm_addresses/run.py and the candidate table in its
docstring): embit (https://github.com/diybitcoinhardware/embit, also the Bitcoin rail's) decodes
and checks the extended key; python-bip32 (https://github.com/darosior/python-bip32, on coincurve
/ libsecp256k1) does the public child steps: the chain key once, then one ``CKDpub`` per index;
coincurve gives the child's uncompressed point; eth-hash with its safe-pysha3 backend hashes
(Keccak-256, about 1 µs against pycryptodome's 9). The EIP-55 checksum is written here (five lines
over that Keccak): eth_utils' ``to_checksum_address`` validates and converts so much that it alone
costs ~45 µs, half of the 100 µs an address may take at the 10,000/s target.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import coincurve
from bip32 import BIP32, BIP32DerivationError
from embit import base58
from embit.base import EmbitError
from embit.bip32 import HDKey
from embit.descriptor.checksum import checksum as descriptor_checksum
from embit.ec import PublicKey
from eth_hash.backends import pysha3
from eth_hash.main import Keccak256

__all__ = ["MAX_INDEX", "EvmKey", "KeyLevel", "checksum_address", "keccak256", "parse_evm_key"]

MAX_INDEX: Final = 2**31 - 1
"""The last unhardened BIP 32 child index: a watch-only key derives indexes 0 ... 2**31 - 1."""

KeyLevel = Literal["account", "chain"]
"""Which key the merchant gave: the account's (m/44'/60'/a') or its receiving chain's (.../0)."""

keccak256: Final = Keccak256(pysha3.backend)
"""Ethereum's Keccak-256 (eth-hash, safe-pysha3 backend; it checks the backend on the first call)."""

_HARDENED: Final = 2**31
_XPUB: Final = bytes.fromhex("0488b21e")
_DEPTH_ACCOUNT: Final = 3
_DEPTH_CHAIN: Final = 4
_MAX_TEXT: Final = 1000  # an origin, an xpub (111 characters), a path and a checksum fit many times
_EXTENDED_KEY_BYTES: Final = 78  # BIP 32: version, depth, parent fingerprint, child, chain code, key
_EXPECTED: Final = (
    "Kassa needs the account's extended public key (xpub) of m/44'/60'/0' (depth 3), as MetaMask-"
    "compatible and hardware wallets export it, or the one of its receiving chain m/44'/60'/0'/0 "
    "(depth 4)"
)
_ONLY_PUBLIC: Final = (
    "Kassa only needs the PUBLIC key: give the account's extended public key (xpub… of m/44'/60'/0') "
    "and keep private keys out of Kassa. Treat the key you pasted as exposed."
)
_OTHER_VERSIONS: Final = {
    # SLIP-0132 public versions Bitcoin-family wallets write; none is used for Ethereum keys
    bytes.fromhex("049d7cb2"): "ypub (Bitcoin, BIP 49)",
    bytes.fromhex("04b24746"): "zpub (Bitcoin, BIP 84)",
    bytes.fromhex("0295b43f"): "Ypub (Bitcoin multisig)",
    bytes.fromhex("02aa7ed3"): "Zpub (Bitcoin multisig)",
    bytes.fromhex("043587cf"): "tpub (Bitcoin test networks)",
    bytes.fromhex("044a5262"): "upub (Bitcoin test networks, BIP 49)",
    bytes.fromhex("045f1cf6"): "vpub (Bitcoin test networks, BIP 84)",
    bytes.fromhex("019da462"): "Ltub (Litecoin)",
    bytes.fromhex("01b26ef6"): "Mtub (Litecoin)",
}
_HEX = re.compile(r"[0-9a-fA-F]+")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_ORIGIN = re.compile(r"\[([0-9a-fA-F]{8})((?:/[0-9]{1,10}['hH]?)*)\]")
_UPPER_NIBBLES: Final = frozenset("89abcdef")


def _eip55(lower_hex40: str) -> str:
    """EIP-55: a hex letter is upper case where the same nibble of keccak(lower hex text) is >= 8."""
    digest = keccak256(lower_hex40.encode("ascii")).hex()
    return "0x" + "".join(
        [c.upper() if d in _UPPER_NIBBLES else c for c, d in zip(lower_hex40, digest, strict=False)]
    )


def checksum_address(address: str) -> str:
    """`address` (``0x`` + 40 hex digits) in its EIP-55 mixed-case form.

    An all-lower or all-upper case address is taken as it is (it carries no checksum); a mixed-case
    one must carry a valid EIP-55 checksum, else it is refused as a likely typo (ValueError).
    """
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise ValueError("an Ethereum address is 0x followed by 40 hex digits")
    digits = address[2:]
    checksummed = _eip55(digits.lower())
    if digits != digits.lower() and digits != digits.upper() and address != checksummed:
        raise ValueError(
            "the address's mix of upper and lower case does not match its EIP-55 checksum: it was "
            "probably mistyped; copy it again"
        )
    return checksummed


def _address_of(uncompressed_point: bytes) -> str:
    """The EIP-55 address of a public key given as the 64 bytes x || y."""
    return _eip55(keccak256(uncompressed_point)[-20:].hex())


@dataclass(frozen=True, slots=True, repr=False)
class EvmKey:
    """A watch-only key of an Ethereum account and the addresses it derives; see :func:`parse_evm_key`.

    `xpub` is the extended public key as given (xpub version bytes), `level` which key it is
    ("account": m/44'/60'/`account`', addresses ``/0/i``; "chain": m/44'/60'/`account`'/0,
    addresses ``/i``), `origin` the key origin when one was given (``"73c5da0a/44'/60'/0'"``).
    Never holds a private key.
    """

    xpub: str
    level: KeyLevel = "account"
    account: int = 0
    origin: str | None = None
    _chain: Any = field(init=False, repr=False, compare=False)
    _key_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.level not in ("account", "chain"):
            raise ValueError(f"the key level is 'account' or 'chain', not {self.level!r}")
        if isinstance(self.account, bool) or not isinstance(self.account, int):
            raise ValueError("the account number is a whole number")
        if not 0 <= self.account < _HARDENED:
            raise ValueError("the account number runs from 0 to 2**31 - 1")
        try:
            key = HDKey.from_base58(self.xpub)
        except (EmbitError, ValueError):
            raise ValueError("not a valid extended public key") from None
        if key.is_private or key.version != _XPUB:
            raise ValueError("expected an extended public key with xpub version bytes")
        depth = _DEPTH_ACCOUNT if self.level == "account" else _DEPTH_CHAIN
        if key.depth != depth:
            raise ValueError(f"an {self.level} key is at depth {depth}, this one at depth {key.depth}")
        if self.level == "account" and key.child_number != _HARDENED + self.account:
            raise ValueError(f"this key is not the one of account {self.account}' (its child number differs)")
        if self.level == "chain" and key.child_number != 0:
            raise ValueError("a receiving chain key is child 0 of its account")
        node = BIP32(key.chain_code, pubkey=key.sec())
        if self.level == "account":
            chain_code, point = node.get_extended_pubkey_from_path([0])
            node = BIP32(chain_code, pubkey=point)
        # The id depends only on what the addresses depend on: the chain key itself (point and chain
        # code, BIP 32 metadata zeroed), so that every spelling of the same chain (the account xpub,
        # the chain's own xpub, with or without origin) shares one index counter and no address is
        # handed out twice.
        bare = HDKey(PublicKey.parse(node.pubkey), node.chaincode, version=_XPUB).to_base58()
        object.__setattr__(self, "_chain", node)
        object.__setattr__(self, "_key_id", hashlib.sha256(f"evm\n{bare}".encode()).hexdigest())

    def __repr__(self) -> str:
        return (
            f"EvmKey(xpub={self.xpub!r}, level={self.level!r}, account={self.account!r}, "
            f"origin={self.origin!r})"
        )

    @property
    def key_id(self) -> str:
        """A stable id of the addresses this key derives: 64 hex digits, the SHA-256 of ``"evm\\n"`` and
        the receiving chain's key serialized with its BIP 32 metadata (depth, parent fingerprint,
        child number) zeroed. The account xpub and its chain's xpub get the same id."""
        return self._key_id

    @property
    def chain_path(self) -> str:
        """The BIP 32 path of the receiving chain the addresses range over: ``m/44'/60'/0'/0``."""
        return f"m/44'/60'/{self.account}'/0"

    def path(self, index: int) -> str:
        """The full BIP 32 path of the address at `index` (``m/44'/60'/0'/0/<index>``), for the record
        a later sweep (with the merchant's seed) derives the private key from."""
        _check_range(index, 1)
        return f"{self.chain_path}/{index}"

    def address(self, index: int) -> str:
        """The EIP-55 address at `index` (0 ≤ index ≤ 2**31 - 1) of the receiving chain."""
        _check_range(index, 1)
        return self.addresses(index, 1)[0]

    def addresses(self, start: int, count: int) -> list[str]:
        """The addresses at start, start + 1, ..., start + count - 1: one public child step (the chain
        key is derived once, at parsing), one point decompression and two Keccak-256 each."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a whole number >= 0, not {count!r}")
        _check_range(start, count)
        child, point = self._chain.get_pubkey_from_path, coincurve.PublicKey
        try:
            return [
                _address_of(point(child([index])).format(compressed=False)[1:])
                for index in range(start, start + count)
            ]
        except BIP32DerivationError:
            # BIP 32: with probability below 2**-127 an index gives no key; wallets skip it
            raise ValueError("BIP 32 derives no key at one of these indexes: skip it") from None


def _check_range(start: int, count: int) -> None:
    if isinstance(start, bool) or not isinstance(start, int):
        raise ValueError(f"an address index is a whole number, not {start!r}")
    if start < 0 or start + count > MAX_INDEX + 1:
        last = start + max(count, 1) - 1
        shown = str(start) if last == start else f"{start} ... {last}"
        raise ValueError(f"address indexes run from 0 to {MAX_INDEX} (2**31 - 1): {shown} is out of range")


def parse_evm_key(text: str) -> EvmKey:
    """The watch-only key a merchant gave: the account's xpub (m/44'/60'/a'), its receiving chain's
    (m/44'/60'/a'/0), either optionally as ``[origin]xpub…/0/*`` (``/*`` after a chain key) and
    ``#checksum``. Raises ValueError with a message for the merchant that never repeats `text`."""
    if not isinstance(text, str):
        raise ValueError("the key must be text: the account's extended public key (xpub…)")
    text = text.strip()
    if not text:
        raise ValueError("no key given: paste the account's extended public key (xpub… of m/44'/60'/0')")
    if len(text) > _MAX_TEXT:
        raise ValueError(f"that is too long for an extended public key ({len(text)} characters)")
    _refuse_non_keys(text)
    body, hashmark, given_checksum = text.partition("#")
    origin_fingerprint, origin_steps, rest = _split_origin(body)
    key_text, slash, suffix = rest.partition("/")
    data = _decode_extended_key(key_text)
    key = _checked_key(data)
    level: KeyLevel = "account" if key.depth == _DEPTH_ACCOUNT else "chain"
    account = key.child_number - _HARDENED if level == "account" else 0
    if slash:
        _check_ranged_suffix(level, suffix)
    origin = None
    if origin_steps is not None:
        account = _check_origin(origin_steps, key, level, account)
        steps = ["44'", "60'", f"{account}'"] + (["0"] if level == "chain" else [])
        origin = "/".join([origin_fingerprint.lower(), *steps])
    # The checksum is checked last, so that a private key is refused as such whatever else is wrong.
    if hashmark:
        if len(given_checksum) != 8:
            raise ValueError("the checksum (after '#') must be 8 characters")
        try:
            expected = descriptor_checksum(body)
        except EmbitError:
            raise ValueError("the key expression has a character descriptors cannot contain") from None
        if given_checksum != expected:
            raise ValueError(
                "the checksum does not match: the key was changed or copied incompletely; copy it again "
                "from the wallet (or leave the '#...' part out)"
            )
    return EvmKey(key.to_base58(), level, account, origin)


def _refuse_non_keys(text: str) -> None:
    """Seed words, raw hex keys, addresses and descriptors: each refused with its own message."""
    words = text.split()
    if len(words) >= 12:
        raise ValueError(
            "that looks like a seed phrase (mnemonic words). Never give it to anyone: " + _ONLY_PUBLIC
        )
    if len(words) > 1:
        raise ValueError(f"an extended public key is one word without spaces. {_EXPECTED}")
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if _HEX.fullmatch(digits):
        if len(digits) == 64:
            raise ValueError(
                "that is 64 hex digits, the form of a raw PRIVATE key (or of a hash). " + _ONLY_PUBLIC
            )
        if len(digits) == 40:
            raise ValueError(
                "that is an Ethereum address, which receives one payment only: Kassa derives a new "
                f"address per order from an extended public key. {_EXPECTED}"
            )
        if len(digits) in (66, 128, 130):
            raise ValueError(
                "that is a single raw public key, which gives one address only: Kassa derives a new "
                f"address per order. {_EXPECTED}"
            )
    if "(" in text or ")" in text:
        raise ValueError(
            "that is an output descriptor for Bitcoin-style scripts (wpkh(), pkh(), tr(), ...); Ethereum "
            f"takes the bare key, optionally as [fingerprint/44h/60h/0h]xpub…/0/*. {_EXPECTED}"
        )


def _split_origin(body: str) -> tuple[str, list[str] | None, str]:
    """(fingerprint, origin steps or None, the rest) of ``[fingerprint/44h/60h/0h]rest``."""
    if not body.startswith("["):
        return "", None, body
    match = _ORIGIN.match(body)
    if match is None:
        raise ValueError(
            "the key origin must be [fingerprint/path]: 8 hex digits, then steps like /44h/60h/0h, then ]"
        )
    return match[1], match[2].split("/")[1:], body[match.end() :]


def _decode_extended_key(key_text: str) -> bytes:
    try:
        data = cast(bytes, base58.decode_check(key_text))
    except ValueError:
        if key_text[:4] in ("xprv", "tprv", "yprv", "zprv"):
            raise ValueError(
                "that looks like an extended PRIVATE key (and is damaged besides). " + _ONLY_PUBLIC
            ) from None
        raise ValueError(
            f"that is not an extended public key: check that it was copied whole (its checksum does not "
            f"match, or it has characters base58 does not use). {_EXPECTED}"
        ) from None
    if len(data) in (33, 34) and (len(data) == 33 or data[-1] == 1):
        raise ValueError("that is a private key (WIF). " + _ONLY_PUBLIC)
    if len(data) == 21:
        raise ValueError(f"that is a Bitcoin-style address, not an extended public key. {_EXPECTED}")
    if len(data) != _EXTENDED_KEY_BYTES:
        raise ValueError(f"that is not an extended public key. {_EXPECTED}")
    return data


def _checked_key(data: bytes) -> Any:
    """The embit HDKey of 78 serialized bytes, if it is an xpub at depth 3 or 4 of a BIP 44 path."""
    if data[45] == 0:  # BIP 32: a private key is serialized as 0x00 + 32 bytes, a public one 02/03 + 32
        raise ValueError("that is an extended PRIVATE key (xprv…). " + _ONLY_PUBLIC)
    version = data[:4]
    if version != _XPUB:
        other = _OTHER_VERSIONS.get(version)
        if other:
            raise ValueError(
                f"that is a {other} key, which Bitcoin-family wallets export; Ethereum wallets export "
                f"the account key as an xpub. {_EXPECTED}"
            )
        raise ValueError(f"unknown extended key version bytes: Ethereum keys are xpubs. {_EXPECTED}")
    try:
        key = HDKey.parse(data)
    except (EmbitError, ValueError):
        raise ValueError("that xpub is damaged: its public key is not a valid point") from None
    depth, child = key.depth, key.child_number
    if depth == _DEPTH_ACCOUNT:
        if child < _HARDENED:
            raise ValueError(
                "this depth-3 key is not an account key: a BIP 44 account is a hardened step (0', 1', "
                f"...), this key's is not. {_EXPECTED}"
            )
        return key
    if depth == _DEPTH_CHAIN:
        if child == 1:
            raise ValueError(
                "that is the CHANGE chain's key (m/44'/60'/0'/1), whose addresses wallets do not show "
                f"for receiving. {_EXPECTED}"
            )
        if child != 0:
            raise ValueError(
                "this depth-4 key is not a receiving chain key (m/44'/60'/0'/0: child 0 of the "
                f"account). {_EXPECTED}"
            )
        return key
    raise ValueError(
        f"{_DEPTH_HINTS.get(depth, 'this key is at the wrong depth')} (depth {depth}). {_EXPECTED}"
    )


_DEPTH_HINTS: Final = {
    0: "that is a wallet's master (root) public key, m",
    1: "that key is at the purpose level, m/44'",
    2: "that key is at the coin level, m/44'/60'",
    5: "that is a single address's key, like m/44'/60'/0'/0/0, which gives one address only",
}


def _check_ranged_suffix(level: KeyLevel, suffix: str) -> None:
    """The path after the key: ``0/*`` after an account key, ``*`` after a chain key."""
    expected = "0/*" if level == "account" else "*"
    if suffix == expected:
        return
    if any(hardened in suffix for hardened in ("'", "h", "H")):
        raise ValueError(
            "a hardened step after the key cannot be derived from a public key: give the account's "
            "xpub followed by /0/* (or nothing)"
        )
    if level == "account":
        if suffix in ("1/*", "1"):
            raise ValueError(
                "/1/* is the change chain, whose addresses wallets do not show for receiving: give the "
                "account's xpub followed by /0/* (or nothing)"
            )
        raise ValueError(
            "after an account key (m/44'/60'/0') the path is /0/*, the receiving chain (or leave it out)"
        )
    raise ValueError(
        "after a receiving chain key (m/44'/60'/0'/0) the path is /*, its addresses (or leave it out)"
    )


def _check_origin(steps: list[str], key: Any, level: KeyLevel, account: int) -> int:
    """The account number the origin gives; raises unless it is m/44'/60'/a'(/0) matching the key."""
    numbers: list[int] = []
    for step in steps:
        hardened = step[-1] in "'hH"
        number = int(step[:-1] if hardened else step)
        if number >= _HARDENED:
            raise ValueError("a key origin step is out of range (each step is below 2**31)")
        numbers.append(number + _HARDENED if hardened else number)
    if len(numbers) != key.depth:
        raise ValueError(
            f"the key origin has {len(numbers)} steps but the key is at depth {key.depth}: the origin is "
            "the path from the master key to this key, like [fingerprint/44h/60h/0h] for an account key"
        )
    if numbers[0] != _HARDENED + 44:
        raise ValueError("the key origin does not start with 44' (BIP 44): Ethereum wallets use m/44'/60'/0'")
    if numbers[1] != _HARDENED + 60:
        raise ValueError(
            "the key origin's coin type is not 60' (Ethereum's; 0' is Bitcoin's): export the key of "
            "m/44'/60'/0' from the Ethereum account"
        )
    if numbers[2] < _HARDENED:
        raise ValueError("the key origin's account step must be hardened, like 0'")
    if numbers[-1] != key.child_number:
        raise ValueError("the key origin's last step does not match the key's own child number")
    return numbers[2] - _HARDENED if level == "chain" else account
