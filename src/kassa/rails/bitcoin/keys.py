"""The merchant's watch-only key: what it is given as, and the addresses it derives.

A merchant gives either an extended public key or an output descriptor (BIP 380 syntax, as Bitcoin
Core reads it); :func:`parse_key` turns either into an :class:`AddressKey`:

* an extended public key: xpub/ypub/zpub, tpub/upub/vpub, and Litecoin's Ltub/Mtub/ttub. Its version
  bytes say the script where they can (ypub/upub/Mtub: P2WPKH nested in P2SH; zpub/vpub: native
  P2WPKH); a plain xpub/tpub/Ltub/ttub takes the `script` argument ("wpkh" unless told). Addresses
  come from the receiving chain, ``/0/*``, as BIP 44/49/84/86 wallets hand them out.
* a single-key descriptor: ``wpkh(KEY)``, ``sh(wpkh(KEY))``, ``tr(KEY)`` or ``pkh(KEY)``, KEY being
  ``[fingerprint/origin/path]`` (optional) + an extended public key + an unhardened path ending in
  exactly one ``*``; the ``#checksum`` is checked when present.

Kassa never holds a private key: an xprv/tprv/..., a WIF key or a descriptor with one is refused, and
so is anything a watch-only key cannot derive (hardened steps after the key, ``*'``), anything not
ranged (one address could not serve many orders) and multisig or script descriptors. Every refusal
is a :class:`ValueError` whose message tells the merchant what to give instead (it is shown in the
API's 422 answer); no message repeats the text it was given, which may be a secret.

Derivation uses embit (https://github.com/diybitcoinhardware/embit). The key of the chain the ``*``
ranges over is derived once; each address then costs one public child step
(``HDKey.child``) and its encoding.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from embit import base58, bech32
from embit import script as scripts
from embit.base import EmbitError
from embit.bip32 import HDKey
from embit.descriptor.checksum import add_checksum
from embit.descriptor.checksum import checksum as descriptor_checksum

from kassa.rails.bitcoin.networks import NETWORKS, SCRIPT_TYPES, Network, ScriptType, embit_network

__all__ = ["MAX_INDEX", "AddressKey", "parse_key"]

MAX_INDEX: Final = 2**31 - 1
"""The last unhardened BIP 32 child index: a watch-only key derives indexes 0 ... 2**31 - 1."""

_HARDENED: Final = 2**31
_MAX_TEXT: Final = 2000  # longer than any single-key descriptor with an origin of ~100 steps
_EXTENDED_KEY_BYTES: Final = 78  # BIP 32 serialization: version, depth, parent, child, chain code, key
_MAX_DEPTH: Final = 255  # BIP 32 depth is one byte
_ONLY_PUBLIC: Final = (
    "Kassa only needs the PUBLIC key: give the account's extended public key (xpub/ypub/zpub, or a "
    "descriptor with one) and keep private keys out of Kassa. Treat the key you pasted as exposed."
)

_FUNCTION = re.compile(r"([a-z_]+)\((.*)\)", re.DOTALL)
_ORIGIN = re.compile(r"\[([0-9a-fA-F]{8})((?:/[0-9]{1,10}['hH]?)*)\]")
_NUMBER = re.compile(r"[0-9]{1,10}")
_HARDENED_STEP = re.compile(r"[0-9]{1,10}['hH]")
_HEX = re.compile(r"[0-9a-fA-F]+")
_MULTISIG: Final = frozenset({"wsh", "multi", "sortedmulti", "multi_a", "sortedmulti_a"})
_SINGLE_KEY: Final = (
    "that is a single raw key, which gives one address only: Kassa derives a new address per order "
    "from the account's extended public key ({expected}). Never give a private key."
)
_SCRIPT_CALLS: Final[dict[ScriptType, tuple[str, str]]] = {
    "wpkh": ("wpkh(", ")"),
    "sh-wpkh": ("sh(wpkh(", "))"),
    "tr": ("tr(", ")"),
    "pkh": ("pkh(", ")"),
}


def _descriptor_of(script: ScriptType, key_expression: str) -> str:
    opening, closing = _SCRIPT_CALLS[script]
    return opening + key_expression + closing


def _encoder(script: ScriptType, net: Network) -> Callable[[Any], str]:
    """How a derived child key (an embit ``HDKey``) becomes an address on `net`.

    The scriptPubKey is built by embit (``embit.script``) from the child's bare public key (given
    the HDKey, ``p2tr`` would build a tweaked HDKey, whose constructor base58-encodes it to check
    its own version: a third of a taproot address's cost). Base58 addresses are encoded by embit's
    ``Script.address``; segwit ones by embit's ``bech32_encode`` directly, because embit's
    ``bech32.encode`` decodes every address it has just encoded to check itself, which is half of
    the encoding's cost (the tests compare the result with embit's full path on every script type).
    """
    params = embit_network(net)
    hrp = net.bech32_hrp
    convert = bech32.convertbits
    encode = bech32.bech32_encode
    if script == "wpkh":
        v0 = bech32.Encoding.BECH32

        def wpkh(child: Any) -> str:
            # OP_0 <20-byte key hash>: the witness program is the script after its 2-byte push
            return cast(str, encode(v0, hrp, [0, *convert(scripts.p2wpkh(child.key).data[2:], 8, 5)]))

        return wpkh
    if script == "tr":
        v1 = bech32.Encoding.BECH32M

        def tr(child: Any) -> str:
            # OP_1 <32-byte tweaked x-only key> (BIP 86: key path only, no script tree)
            return cast(str, encode(v1, hrp, [1, *convert(scripts.p2tr(child.key).data[2:], 8, 5)]))

        return tr
    if script == "sh-wpkh":

        def sh_wpkh(child: Any) -> str:
            return cast(str, scripts.p2sh(scripts.p2wpkh(child.key)).address(params))

        return sh_wpkh

    def pkh(child: Any) -> str:
        return cast(str, scripts.p2pkh(child.key).address(params))

    return pkh


@dataclass(frozen=True, slots=True, repr=False)
class AddressKey:
    """A watch-only key and the script its addresses use; built by :func:`parse_key`.

    `xpub` is the extended public key in the version bytes the node writes (xpub on main chains,
    tpub on test chains), `path` the unhardened steps from it to the chain the addresses range over
    ((0,) for the receiving chain), `origin` the key origin as the node writes it
    (``"d34db33f/84'/0'/0'"``) or None. Never holds a private key.
    """

    network: Network
    script: ScriptType
    xpub: str
    path: tuple[int, ...] = (0,)
    origin: str | None = None
    _chain: Any = field(init=False, repr=False, compare=False)
    _encode: Callable[[Any], str] = field(init=False, repr=False, compare=False)
    _key_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.script not in SCRIPT_TYPES:
            raise ValueError(f"unknown script type {self.script!r}: one of {', '.join(SCRIPT_TYPES)}")
        if self.script not in self.network.script_types:
            raise ValueError(
                f"{self.script} addresses are not available on {self.network.name}: its node has no "
                f"descriptor to watch them; use {', '.join(self.network.script_types)}"
            )
        try:
            key = HDKey.from_base58(self.xpub)
        except (EmbitError, ValueError):
            raise ValueError("not a valid extended public key") from None
        if key.is_private or key.version != self.network.xpub:
            raise ValueError(f"expected an extended public key in {self.network.name}'s node version bytes")
        if any(not 0 <= step < _HARDENED for step in self.path):
            raise ValueError("the path after the key must be unhardened steps (0 ... 2**31 - 1)")
        chain = key.derive(list(self.path))
        # The id depends only on what the addresses depend on: the network, the script and the chain
        # key itself (point and chain code, BIP 32 metadata zeroed), so that every spelling of the
        # same addresses (a zpub, wpkh(xpub/0/*), with or without an origin, or the chain's own
        # xpub with /*) shares one index counter and no address is handed out twice.
        bare = HDKey(chain.key, chain.chain_code, version=self.network.xpub)
        identity = _descriptor_of(self.script, bare.to_base58() + "/*")
        key_id = hashlib.sha256(f"{self.network.name}\n{identity}".encode()).hexdigest()
        object.__setattr__(self, "_chain", chain)
        object.__setattr__(self, "_encode", _encoder(self.script, self.network))
        object.__setattr__(self, "_key_id", key_id)

    def __repr__(self) -> str:
        return (
            f"AddressKey(network={self.network.name!r}, script={self.script!r}, xpub={self.xpub!r}, "
            f"path={self.path!r}, origin={self.origin!r})"
        )

    @property
    def key_id(self) -> str:
        """A stable id of the addresses this key derives: 64 hex digits (SHA-256 of the network name
        and the descriptor of the derived chain, without origin or checksum). Two spellings of the
        same key (a zpub and the equivalent ``wpkh(xpub…/0/*)``) get the same id."""
        return self._key_id

    def address(self, index: int) -> str:
        """The address at `index` (0 ≤ index ≤ 2**31 - 1) of the chain."""
        _check_range(index, 1)
        return self._encode(self._chain.child(index))

    def addresses(self, start: int, count: int) -> list[str]:
        """The addresses at start, start + 1, ..., start + count - 1."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a whole number >= 0, not {count!r}")
        _check_range(start, count)
        child, encode = self._chain.child, self._encode
        return [encode(child(index)) for index in range(start, start + count)]

    def descriptor(self) -> str:
        """The public output descriptor a node imports, with its checksum: the node's version bytes
        (xpub/tpub), the origin kept, its hardened steps written ``'``. Byte for byte what
        ``getdescriptorinfo`` of Litecoin Core 0.21 (checked) and of Bitcoin Core before 26 answers;
        Bitcoin Core 26 and later write ``h`` in what they list, but import either spelling."""
        origin = f"[{self.origin}]" if self.origin else ""
        steps = "".join(f"/{step}" for step in self.path)
        return cast(str, add_checksum(_descriptor_of(self.script, f"{origin}{self.xpub}{steps}/*")))


def _check_range(start: int, count: int) -> None:
    if isinstance(start, bool) or not isinstance(start, int):
        raise ValueError(f"an address index is a whole number, not {start!r}")
    if start < 0 or start + count > MAX_INDEX + 1:
        last = start + max(count, 1) - 1
        shown = str(start) if last == start else f"{start} ... {last}"
        raise ValueError(f"address indexes run from 0 to {MAX_INDEX} (2**31 - 1): {shown} is out of range")


def parse_key(text: str, network: Network, script: str | None = None) -> AddressKey:
    """The watch-only key a merchant gave: an extended public key or a single-key descriptor.

    `script` ("wpkh", "sh-wpkh", "tr" or "pkh") says which addresses a plain xpub/tpub derives
    ("wpkh" if None); given with a key or descriptor that says otherwise, it is an error. Raises
    ValueError with a message for the merchant.
    """
    if script is not None and script not in SCRIPT_TYPES:
        raise ValueError(f"unknown script type {script!r}: choose one of {', '.join(SCRIPT_TYPES)}")
    if not isinstance(text, str):
        raise ValueError("the key must be text: an extended public key or an output descriptor")
    text = text.strip()
    if not text:
        raise ValueError("no key given: paste the account's extended public key or an output descriptor")
    if len(text) > _MAX_TEXT:
        raise ValueError(f"that is too long for a key or a single-key descriptor ({len(text)} characters)")
    if "(" in text or "#" in text or "[" in text:
        return _parse_descriptor(text, network, script)
    return _parse_bare_key(text, network, script)


def _expected_keys(net: Network) -> str:
    return "/".join(key.prefix for key in net.extended_keys)


def _parse_bare_key(text: str, net: Network, script: ScriptType | None) -> AddressKey:
    key, implied, prefix = _extended_public_key(text, net)
    if implied is not None and script is not None and script != implied:
        raise ValueError(
            f"a {prefix} key derives {implied} addresses, but script {script!r} was asked for: leave the "
            f"script out, or give the key as a descriptor"
        )
    return AddressKey(net, implied or script or "wpkh", key.to_base58(), (0,), None)


def _extended_public_key(text: str, net: Network) -> tuple[Any, ScriptType | None, str]:
    """(the key with the node's version bytes, the script its version implies, its prefix)."""
    if len(text.split()) >= 12:
        raise ValueError(
            "that looks like a seed phrase (mnemonic words). Never give it to anyone: " + _ONLY_PUBLIC
        )
    for known in NETWORKS.values():
        if text.lower().startswith(known.bech32_hrp + "1") and len(text) < 100:
            raise ValueError(
                "that is an address, not an extended public key: Kassa derives a new address per order "
                f"from the account's extended public key ({_expected_keys(net)})"
            )
    try:
        data = base58.decode_check(text)
    except ValueError:
        if _HEX.fullmatch(text) and len(text) in (64, 66, 130):
            raise ValueError(_SINGLE_KEY.format(expected=_expected_keys(net))) from None
        raise ValueError(
            f"that is not an extended public key ({_expected_keys(net)}) nor an output descriptor: check "
            "that it was copied whole (its checksum does not match)"
        ) from None
    prefix = text[:4]
    if len(data) in (33, 34) and (len(data) == 33 or data[-1] == 1):
        raise ValueError("that is a private key (WIF). " + _ONLY_PUBLIC)
    if len(data) == 21:
        raise ValueError(
            "that is an address, not an extended public key: Kassa derives a new address per order "
            f"from the account's extended public key ({_expected_keys(net)})"
        )
    if len(data) != _EXTENDED_KEY_BYTES:
        raise ValueError(
            f"that is not an extended public key ({_expected_keys(net)}) nor an output descriptor"
        )
    if data[45] == 0:  # BIP 32: a private key is serialized as 0x00 + 32 bytes, a public one 02/03 + 32
        raise ValueError(f"that is an extended PRIVATE key ({prefix}…). " + _ONLY_PUBLIC)
    version = data[:4]
    accepted = net.key_version(version)
    if accepted is None:
        owners = [other.name for other in NETWORKS.values() if other.key_version(version) is not None]
        if owners:
            raise ValueError(
                f"this {prefix}… key is for {', '.join(owners)}, but this is set up for {net.name}: "
                f"export the key of an account on {net.name} ({_expected_keys(net)})"
            )
        raise ValueError(
            f"unknown extended key version ({prefix}…): {net.name} takes {_expected_keys(net)} keys"
        )
    try:
        key = HDKey.parse(net.xpub + data[4:])
    except (EmbitError, ValueError):
        raise ValueError(
            f"that {accepted.prefix} key is damaged: its public key is not a valid point"
        ) from None
    return key, accepted.script, accepted.prefix


def _parse_descriptor(text: str, net: Network, asked: ScriptType | None) -> AddressKey:
    body, hashmark, given = text.partition("#")
    script, key_text = _script_and_key(body)
    if asked is not None and asked != script:
        raise ValueError(f"the descriptor derives {script} addresses, but script {asked!r} was asked for")
    origin = ""
    match = _ORIGIN.match(key_text)
    if match:
        origin = _canonical_origin(match[1], match[2])
        key_text = key_text[match.end() :]
    elif key_text.startswith("["):
        raise ValueError(
            "the key origin must be [fingerprint/path]: 8 hex digits, then steps like /84'/0'/0'"
        )
    key_part, *steps = key_text.split("/")
    key, implied, prefix = _descriptor_key(key_part, net)
    if implied is not None and implied != script:
        raise ValueError(f"a {prefix} key derives {implied} addresses, but the descriptor is for {script}")
    path = _ranged_path(steps)
    if key.depth + len(path) + 1 > _MAX_DEPTH:
        raise ValueError("the path is too deep for BIP 32 (255 levels)")
    # The checksum is checked last, so that a private key is refused as such whatever else is wrong.
    if hashmark:
        if len(given) != 8:
            raise ValueError("the descriptor's checksum (after '#') must be 8 characters")
        try:
            expected = descriptor_checksum(body)
        except EmbitError:
            raise ValueError("the descriptor has a character descriptors cannot contain") from None
        if given != expected:
            raise ValueError(
                "the descriptor's checksum does not match: it was changed or copied incompletely; copy it "
                "again from the wallet (or leave the '#...' part out)"
            )
    return AddressKey(net, script, key.to_base58(), path, origin or None)


def _script_and_key(body: str) -> tuple[ScriptType, str]:
    match = _FUNCTION.fullmatch(body)
    if match is None:
        raise ValueError(
            "that is not an output descriptor Kassa understands: give wpkh(KEY), sh(wpkh(KEY)), tr(KEY) or "
            "pkh(KEY), KEY being an extended public key with a path like /0/*"
        )
    name, inner = match[1], match[2]
    nested = _FUNCTION.fullmatch(inner) if name == "sh" else None
    if name in _MULTISIG or (nested is not None and nested[1] in _MULTISIG):
        raise ValueError(
            "multisig and script descriptors are not supported: Kassa derives single-key addresses, give "
            "wpkh(KEY), sh(wpkh(KEY)), tr(KEY) or pkh(KEY)"
        )
    if name == "sh":
        if nested is None or nested[1] != "wpkh":
            raise ValueError("sh() is supported only around one key's wpkh(): sh(wpkh(KEY))")
        return "sh-wpkh", _single_key(nested[2], "sh(wpkh())")
    if name == "tr":
        if "," in inner:
            raise ValueError(
                "taproot descriptors with script paths are not supported: give tr(KEY), key path only"
            )
        return "tr", _single_key(inner, "tr()")
    if name == "wpkh":
        return "wpkh", _single_key(inner, "wpkh()")
    if name == "pkh":
        return "pkh", _single_key(inner, "pkh()")
    raise ValueError(
        f"{name}() descriptors are not supported: Kassa derives single-key addresses, give wpkh(KEY), "
        "sh(wpkh(KEY)), tr(KEY) or pkh(KEY)"
    )


def _single_key(inner: str, what: str) -> str:
    if "," in inner or "(" in inner or ")" in inner:
        raise ValueError(f"{what} takes exactly one key: multisig and script descriptors are not supported")
    return inner


def _canonical_origin(fingerprint: str, path: str) -> str:
    steps = []
    for step in path.split("/")[1:]:
        hardened = step[-1] in "'hH"
        number = int(step[:-1] if hardened else step)
        if number >= _HARDENED:
            raise ValueError(f"the key origin's step {step} is out of range (each step is below 2**31)")
        steps.append(f"{number}'" if hardened else str(number))
    return "/".join([fingerprint.lower(), *steps])


def _descriptor_key(key_part: str, net: Network) -> tuple[Any, ScriptType | None, str]:
    if not key_part:
        raise ValueError("the descriptor has no key")
    if _HEX.fullmatch(key_part) and len(key_part) in (64, 66, 130):
        raise ValueError(
            "the descriptor's key is a single public key, which gives one address only: Kassa needs a "
            "ranged descriptor with an extended public key, like wpkh(xpub…/0/*)"
        )
    return _extended_public_key(key_part, net)


def _ranged_path(steps: list[str]) -> tuple[int, ...]:
    """The unhardened steps before the final ``*``."""
    path: list[int] = []
    for position, step in enumerate(steps):
        last = position == len(steps) - 1
        if step == "*":
            if not last:
                raise ValueError("the '*' must be the last step of the path, like /0/*")
            return tuple(path)
        if step in ("*'", "*h", "*H"):
            raise ValueError(
                "a hardened wildcard (*' or *h) cannot be derived from a public key: a watch-only key "
                "derives only unhardened children; use /0/* (and export the key at the account level)"
            )
        if step.startswith(("<", "{")):
            raise ValueError(
                "multipath descriptors (<0;1>) are not supported: give the receiving chain, /0/*"
            )
        if _HARDENED_STEP.fullmatch(step):
            raise ValueError(
                f"the hardened step /{step} after the key cannot be derived from a public key: export the "
                "extended public key at that level (the account's) and give only unhardened steps, like /0/*"
            )
        if not _NUMBER.fullmatch(step) or int(step) >= _HARDENED:
            raise ValueError(f"the path step /{step} is not a child index (0 ... 2**31 - 1) nor '*'")
        path.append(int(step))
    raise ValueError(
        "the descriptor is not ranged: it has no '*', so it gives one address only; Kassa needs a new "
        "address per order, like wpkh(xpub…/0/*)"
    )
