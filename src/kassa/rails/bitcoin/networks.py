"""Network parameters of Bitcoin Core and its forks, as data.

A :class:`Network` holds what Kassa needs to derive, encode and check addresses on one chain: the
address prefixes the node ENCODES with, the extended-key version bytes the node writes in its
descriptors, the extended public key versions a merchant's wallet may hand over (each with the
script type it implies), and what the node's ``getblockchaininfo`` answers as ``chain``. A further
Bitcoin Core fork is one more entry in :data:`NETWORKS`.

Sources of the constants:

* Bitcoin: Bitcoin Core's chain parameters (``base58Prefixes``, ``bech32_hrp``), the same values
  as embit's ``embit.networks.NETWORKS`` (a test compares them); BIP 173 (``bc``/``tb``) and
  SLIP-0173 (``bcrt``); extended key versions from BIP 32 (xpub/tpub), BIP 49 (ypub/upub),
  BIP 84 (zpub/vpub) and SLIP-0132. ``tr()`` descriptors need Bitcoin Core 22 or later.
* Litecoin: Litecoin Core 0.21 ``src/chainparams.cpp`` (``CMainParams``, ``CTestNetParams``,
  ``CRegTestParams``) and ``src/key_io.cpp`` (``DestinationEncoder`` writes P2SH with
  ``SCRIPT_ADDRESS2``; ``DecodeDestination`` still reads the older ``SCRIPT_ADDRESS``). Ltub, Mtub
  and ttub from SLIP-0132; zpub for Litecoin native segwit, and tpub/upub/vpub on its testnet, from
  Trezor's coin definitions (``common/defs/bitcoin/litecoin.json``, ``litecoin_testnet.json``:
  ``xpub_magic_segwit_native`` = 0x04b24746, ``xpub_magic_segwit_p2sh`` = 0x044a5262 and
  ``xpub_magic_segwit_native`` = 0x045f1cf6 on testnet). The chain names, the node's
  ``deriveaddresses`` answers (rltc1…, Q…) and its ``getdescriptorinfo`` checksums were checked
  against a litecoind v0.21.2.1 in regtest.
* BIP 44 coin types from SLIP-0044 (0 Bitcoin, 2 Litecoin, 1 every testnet).

Extended public keys share version bytes across chains (a zpub is both a Bitcoin and a Litecoin key;
a tpub serves every test chain), so a key's network is checked only as far as its bytes tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "NETWORKS",
    "SCRIPT_TYPES",
    "KeyVersion",
    "Network",
    "ScriptType",
    "embit_network",
    "network",
]

ScriptType = Literal["wpkh", "sh-wpkh", "tr", "pkh"]
"""The single-key script types Kassa derives: native segwit v0 (P2WPKH), P2WPKH nested in P2SH,
taproot key-path only (BIP 86 P2TR) and legacy P2PKH."""

SCRIPT_TYPES: Final[tuple[ScriptType, ...]] = ("wpkh", "sh-wpkh", "tr", "pkh")


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """Version bytes of an extended PUBLIC key a merchant may give, and what they imply."""

    prefix: str  # what the base58 text starts with: "xpub", "zpub", "Ltub", ...
    version: bytes  # the 4 version bytes
    script: ScriptType | None  # the script the version implies; None: plain (xpub/tpub), ask


@dataclass(frozen=True, slots=True)
class Network:
    """One chain of one coin. Bytes are the serialized values (one byte for the address prefixes)."""

    name: str  # "bitcoin", "bitcoin-testnet", ..., "litecoin-regtest"
    coin: str  # currency code of the amounts: "BTC", "LTC"
    uri_scheme: str  # BIP 21 scheme: "bitcoin", "litecoin"
    chain: str  # what the node's getblockchaininfo answers as "chain": main, test, signet, regtest
    bech32_hrp: str  # segwit address prefix (BIP 173/350)
    p2pkh: bytes  # base58 prefix of P2PKH addresses (PUBKEY_ADDRESS)
    p2sh: bytes  # base58 prefix the node ENCODES P2SH addresses with
    wif: bytes  # base58 prefix of WIF private keys (SECRET_KEY); only to recognise and refuse them
    xpub: bytes  # extended public key version the node reads and writes in descriptors
    xprv: bytes  # extended private key version of the node (EXT_SECRET_KEY); embit wants it
    extended_keys: tuple[KeyVersion, ...]  # the extended public keys accepted from a merchant
    coin_type: int  # BIP 44/49/84/86 coin_type' (SLIP-0044)
    decimals: int = 8
    p2sh_decode_only: bytes | None = None  # an older P2SH prefix the node still reads, never writes
    script_types: tuple[ScriptType, ...] = SCRIPT_TYPES  # the scripts the node has descriptors for

    def key_version(self, version: bytes) -> KeyVersion | None:
        """The accepted extended public key with these version bytes, or None."""
        for known in self.extended_keys:
            if known.version == version:
                return known
        return None


# Extended public key versions (BIP 32, BIP 49, BIP 84, SLIP-0132).
_XPUB: Final = KeyVersion("xpub", bytes.fromhex("0488b21e"), None)
_YPUB: Final = KeyVersion("ypub", bytes.fromhex("049d7cb2"), "sh-wpkh")
_ZPUB: Final = KeyVersion("zpub", bytes.fromhex("04b24746"), "wpkh")
_TPUB: Final = KeyVersion("tpub", bytes.fromhex("043587cf"), None)
_UPUB: Final = KeyVersion("upub", bytes.fromhex("044a5262"), "sh-wpkh")
_VPUB: Final = KeyVersion("vpub", bytes.fromhex("045f1cf6"), "wpkh")
_LTUB: Final = KeyVersion("Ltub", bytes.fromhex("019da462"), None)  # SLIP-0132 "P2PKH or P2SH"
_MTUB: Final = KeyVersion("Mtub", bytes.fromhex("01b26ef6"), "sh-wpkh")  # SLIP-0132
_TTUB: Final = KeyVersion("ttub", bytes.fromhex("0436f6e1"), None)  # SLIP-0132 Litecoin testnet

# Litecoin Core 0.21 (v0.21.2.1 checked) has no tr() descriptors: its getdescriptorinfo answers
# "tr(...) is not a valid descriptor function", so its node could not watch taproot addresses.
_LITECOIN_SCRIPTS: Final[tuple[ScriptType, ...]] = ("wpkh", "sh-wpkh", "pkh")

_XPRV: Final = bytes.fromhex("0488ade4")
_TPRV: Final = bytes.fromhex("04358394")


def _bitcoin_test(name: str, chain: str, hrp: str) -> Network:
    # Bitcoin Core CTestNetParams / SigNetParams / CRegTestParams: PUBKEY_ADDRESS 111, SCRIPT_ADDRESS
    # 196, SECRET_KEY 239, EXT_PUBLIC_KEY 0x043587CF, EXT_SECRET_KEY 0x04358394.
    return Network(
        name=name,
        coin="BTC",
        uri_scheme="bitcoin",
        chain=chain,
        bech32_hrp=hrp,
        p2pkh=bytes([111]),
        p2sh=bytes([196]),
        wif=bytes([239]),
        xpub=_TPUB.version,
        xprv=_TPRV,
        extended_keys=(_TPUB, _UPUB, _VPUB),
        coin_type=1,
    )


def _litecoin_test(name: str, chain: str, hrp: str) -> Network:
    # Litecoin Core 0.21 CTestNetParams / CRegTestParams: PUBKEY_ADDRESS 111, SCRIPT_ADDRESS 196,
    # SCRIPT_ADDRESS2 58 (what key_io.cpp encodes P2SH with: "Q..."), SECRET_KEY 239,
    # EXT_PUBLIC_KEY 0x043587CF (tpub, not ttub), EXT_SECRET_KEY 0x04358394.
    return Network(
        name=name,
        coin="LTC",
        uri_scheme="litecoin",
        chain=chain,
        bech32_hrp=hrp,
        p2pkh=bytes([111]),
        p2sh=bytes([58]),
        p2sh_decode_only=bytes([196]),
        wif=bytes([239]),
        xpub=_TPUB.version,
        xprv=_TPRV,
        extended_keys=(_TPUB, _TTUB, _UPUB, _VPUB),
        coin_type=1,
        script_types=_LITECOIN_SCRIPTS,
    )


NETWORKS: Final[dict[str, Network]] = {
    net.name: net
    for net in (
        # Bitcoin Core CMainParams: PUBKEY_ADDRESS 0, SCRIPT_ADDRESS 5, SECRET_KEY 128,
        # EXT_PUBLIC_KEY 0x0488B21E, EXT_SECRET_KEY 0x0488ADE4, bech32_hrp "bc".
        Network(
            name="bitcoin",
            coin="BTC",
            uri_scheme="bitcoin",
            chain="main",
            bech32_hrp="bc",
            p2pkh=bytes([0]),
            p2sh=bytes([5]),
            wif=bytes([128]),
            xpub=_XPUB.version,
            xprv=_XPRV,
            extended_keys=(_XPUB, _YPUB, _ZPUB),
            coin_type=0,
        ),
        _bitcoin_test("bitcoin-testnet", "test", "tb"),  # bech32_hrp "tb"
        _bitcoin_test("bitcoin-signet", "signet", "tb"),  # signet shares testnet's prefixes
        _bitcoin_test("bitcoin-regtest", "regtest", "bcrt"),  # bech32_hrp "bcrt"
        # Litecoin Core 0.21 CMainParams: PUBKEY_ADDRESS 48 ("L..."), SCRIPT_ADDRESS 5 (read only),
        # SCRIPT_ADDRESS2 50 ("M...", what the node encodes P2SH with), SECRET_KEY 176,
        # EXT_PUBLIC_KEY 0x0488B21E (Bitcoin's xpub: Litecoin Core never adopted Ltub),
        # EXT_SECRET_KEY 0x0488ADE4, bech32_hrp "ltc".
        Network(
            name="litecoin",
            coin="LTC",
            uri_scheme="litecoin",
            chain="main",
            bech32_hrp="ltc",
            p2pkh=bytes([48]),
            p2sh=bytes([50]),
            p2sh_decode_only=bytes([5]),
            wif=bytes([176]),
            xpub=_XPUB.version,
            xprv=_XPRV,
            extended_keys=(_XPUB, _LTUB, _YPUB, _MTUB, _ZPUB),
            coin_type=2,
            script_types=_LITECOIN_SCRIPTS,
        ),
        _litecoin_test("litecoin-testnet", "test", "tltc"),  # bech32_hrp "tltc"
        _litecoin_test("litecoin-regtest", "regtest", "rltc"),  # bech32_hrp "rltc"
    )
}
"""The known networks by name."""


def network(name: str) -> Network:
    """The network called `name`; ValueError naming the known ones otherwise."""
    try:
        return NETWORKS[name]
    except KeyError:
        known = ", ".join(NETWORKS)
        raise ValueError(f"unknown network {name!r}: the known networks are {known}") from None


def embit_network(net: Network) -> dict[str, Any]:
    """The network as the dict embit's functions take (the shape of ``embit.networks.NETWORKS``).

    embit reads ``p2pkh``, ``p2sh`` and ``bech32`` to encode addresses (``Script.address``), ``wif``
    for WIF keys and the ``xpub``/``xprv``-like entries to write and detect extended keys. The
    SLIP-0132 entries this network has no data for (the multisig Ypub/Zpub and the private
    yprv/zprv/...) are left out: Kassa handles neither private keys nor multisig.
    """
    result: dict[str, Any] = {
        "name": net.name,
        "wif": net.wif,
        "p2pkh": net.p2pkh,
        "p2sh": net.p2sh,
        "bech32": net.bech32_hrp,
        "xprv": net.xprv,
        "xpub": net.xpub,
        "bip32": net.coin_type,
    }
    for key in net.extended_keys:
        if key.script == "sh-wpkh":
            result.setdefault("ypub", key.version)
        elif key.script == "wpkh":
            result.setdefault("zpub", key.version)
    return result
