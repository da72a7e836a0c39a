"""Watch-only keys of the Bitcoin-family rail: parsing, derivation, descriptors, key ids, refusals.

Expected values come from the BIPs' test vectors (BIP 84, BIP 49, BIP 86; SLIP-0132 for the mainnet
BIP 44/49 accounts), all from the mnemonic "abandon abandon ... about", and, for Litecoin, from a
litecoind v0.21.2.1 (main, test and regtest chains, no peers): its ``deriveaddresses`` for the
addresses and its ``getdescriptorinfo`` for the canonical descriptors and checksums, checked once by
hand and written here as fixed strings. No node runs in these tests.
"""

from __future__ import annotations

import dataclasses

import pytest
from embit import base58
from embit.bip32 import HDKey
from embit.descriptor import Descriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from kassa.rails.bitcoin.keys import MAX_INDEX, AddressKey, parse_key
from kassa.rails.bitcoin.networks import NETWORKS, SCRIPT_TYPES, Network, embit_network, network

BITCOIN = network("bitcoin")
TESTNET = network("bitcoin-testnet")
REGTEST = network("bitcoin-regtest")
LITECOIN = network("litecoin")
LITECOIN_REGTEST = network("litecoin-regtest")

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
MASTER_FINGERPRINT = "73c5da0a"  # of MNEMONIC's master key (BIP 32 fingerprint)

# BIP 84: account m/84'/0'/0'.
BIP84_ZPUB = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"
BIP84_ZPRV = "zprvAdG4iTXWBoARxkkzNpNh8r6Qag3irQB8PzEMkAFeTRXxHpbF9z4QgEvBRmfvqWvGp42t42nvgGpNgYSJA9iefm1yYNZKEm7z6qUWCroSQnE"
BIP84_RECEIVE = ["bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"]
BIP84_CHANGE_0 = "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el"
BIP84_WIF_0 = "KyZpNDKnfs94vbrwhJneDi77V6jF64PWPF8x5cdJb8ifgg2DUc9d"
BIP84_PUBKEY_0 = "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c"
# The same account key in xpub version bytes (as the node writes it).
BIP84_XPUB = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V"

# BIP 49 (testnet): account m/49'/1'/0'.
BIP49_UPUB = "upub5EFU65HtV5TeiSHmZZm7FUffBGy8UKeqp7vw43jYbvZPpoVsgU93oac7Wk3u6moKegAEWtGNF8DehrnHtv21XXEMYRUocHqguyjknFHYfgY"
BIP49_UPRV = "uprv91G7gZkzehuMVxDJTYE6tLivdF8e4rvzSu1LFfKw3b2Qx1Aj8vpoFnHdfUZ3hmi9jsvPifmZ24RTN2KhwB8BfMLTVqaBReibyaFFcTP1s9n"
BIP49_RECEIVE_0 = "2Mww8dCYPUpKHofjgcXcBCEGmniw9CoaiD2"
# SLIP-0132 test vectors (mainnet): m/49'/0'/0' and m/44'/0'/0'.
SLIP132_YPUB = "ypub6Ww3ibxVfGzLrAH1PNcjyAWenMTbbAosGNB6VvmSEgytSER9azLDWCxoJwW7Ke7icmizBMXrzBx9979FfaHxHcrArf3zbeJJJUZPf663zsP"
SLIP132_YPUB_RECEIVE_0 = "37VucYSaXLCAsxYyAPfbSi9eh4iEcbShgf"
BIP44_XPUB = "xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSoekkudhUd9yLb6qx39T9nMdj"
BIP44_XPRV = "xprv9xpXFhFpqdQK3TmytPBqXtGSwS3DLjojFhTGht8gwAAii8py5X6pxeBnQ6ehJiyJ6nDjWGJfZ95WxByFXVkDxHXrqu53WCRGypk2ttuqncb"
BIP44_RECEIVE_0 = "1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA"

# BIP 86: account m/86'/0'/0'.
BIP86_XPUB = "xpub6BgBgsespWvERF3LHQu6CnqdvfEvtMcQjYrcRzx53QJjSxarj2afYWcLteoGVky7D3UKDP9QyrLprQ3VCECoY49yfdDEHGCtMMj92pReUsQ"
BIP86_RECEIVE = [
    "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr",
    "bc1p4qhjn9zdvkux4e44uhx8tc55attvtyu358kutcqkudyccelu0was9fqzwh",
]
BIP86_CHANGE_0 = "bc1p3qkhfews2uk44qtvauqyr2ttdsw7svhkl9nkm9s9c3x4ax5h60wqwruhk7"

# Litecoin test chains: accounts m/84'/1'/0', m/49'/1'/0', m/44'/1'/0' of MNEMONIC as tpubs; addresses
# and descriptors as litecoind v0.21.2.1 answered them (deriveaddresses, getdescriptorinfo).
LTC_TEST_WPKH = "tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M"
LTC_TEST_SH_WPKH = "tpubDD7tXK8KeQ3YY83yWq755fHY2JW8Ha8Q765tknUM5rSvjPcGWfUppDFMpQ1ScziKfW3ZNtZvAD7M3u7bSs7HofjTD3KP3YxPK7X6hwV8Rk2"
LTC_TEST_PKH = "tpubDC5FSnBiZDMmhiuCmWAYsLwgLYrrT9rAqvTySfuCCrgsWz8wxMXUS9Tb9iVMvcRbvFcAHGkMD5Kx8koh4GquNGNTfohfk7pgjhaPCdXpoba"
# Litecoin main: accounts m/84'/2'/0', m/49'/2'/0', m/44'/2'/0' (coin type 2) in the node's xpub bytes.
LTC_MAIN_WPKH = "xpub6CjGURuDpczf6uNrCCwfhVizn5J3hsWcvZ2m6GAdmAjZnoWJPrx6TFPjGSftc2o5fvox6ubQjSXmjjaHZjwYMH7SGFpHHb9Jg24zBf66mbE"
LTC_MAIN_SH_WPKH = "xpub6BimUhwogkaPLu45SjGYfraR1vvNPuU8JJ6hgMxYsxriXmt9LSkfgssKAy9zxQyVepKnd4sHKoktDavq9TAePK9s7Z233qBHLVRnWzLxU2W"
LTC_MAIN_PKH = "xpub6BnJJjq783EdyBeQPA9P9ao9DTS3fUqyKG5NJDcrCiwwxEkesGoHN94LZRGE7rz1jgcvmmp8j55BNx573KFq1WBwKiemzkdfNKffKx6Mvku"

NODE_CONFIRMED = [
    # (network, key, script, canonical descriptor from getdescriptorinfo, deriveaddresses [0, 2])
    (
        "litecoin-regtest",
        LTC_TEST_WPKH,
        "wpkh",
        f"wpkh({LTC_TEST_WPKH}/0/*)#gt9he67w",
        [
            "rltc1q6rz28mcfaxtmd6v789l9rrlrusdprr9puuzgkg",
            "rltc1qd7spv5q28348xl4myc8zmh983w5jx32cwn4h9f",
            "rltc1qxdyjf6h5d6qxap4n2dap97q4j5ps6ua8vmutcu",
        ],
    ),
    (
        "litecoin-regtest",
        LTC_TEST_SH_WPKH,
        "sh-wpkh",
        f"sh(wpkh({LTC_TEST_SH_WPKH}/0/*))#mc9ncp93",
        [
            "QRHtkDQdVvNNwrVjEdeCGviCw7Ny3SNNiA",
            "QYSXC5cNwxCApsQkHaePqL2v3oNQftuzPX",
            "Qch5wi1hLzy6eWyiCaLq8uZfULKnxc7HnY",
        ],
    ),
    (
        "litecoin-regtest",
        LTC_TEST_PKH,
        "pkh",
        f"pkh({LTC_TEST_PKH}/0/*)#ljwm9te0",
        [
            "mkpZhYtJu2r87Js3pDiWJDmPte2NRZ8bJV",
            "mzpbWabUQm1w8ijuJnAof5eiSTep27deVH",
            "mnTkxhNkgx7TsZrEdRcPti564yQTzynGJp",
        ],
    ),
    (
        "litecoin-testnet",
        LTC_TEST_WPKH,
        "wpkh",
        f"wpkh({LTC_TEST_WPKH}/0/*)#gt9he67w",
        [
            "tltc1q6rz28mcfaxtmd6v789l9rrlrusdprr9pesrjxk",
            "tltc1qd7spv5q28348xl4myc8zmh983w5jx32ctl5d4h",
            "tltc1qxdyjf6h5d6qxap4n2dap97q4j5ps6ua8fha3gz",
        ],
    ),
    (
        "litecoin",
        LTC_MAIN_WPKH,
        "wpkh",
        f"wpkh({LTC_MAIN_WPKH}/0/*)#6qvva7uq",
        [
            "ltc1qjmxnz78nmc8nq77wuxh25n2es7rzm5c2rkk4wh",
            "ltc1qwlezpr3890hcp6vva9twqh27mr6edadreqvhnn",
            "ltc1qc6aucuznvhh9uvux246x24vf9y9ncfk729m92s",
        ],
    ),
    (
        "litecoin",
        LTC_MAIN_SH_WPKH,
        "sh-wpkh",
        f"sh(wpkh({LTC_MAIN_SH_WPKH}/0/*))#qezau9ca",
        [
            "M7wtsL7wSHDBJVMWWhtQfTMSYYkyooAAXM",
            "M92zAbFXY2J7NJXdFpJTe3a5PrsyZQhKZK",
            "MJfELhwt9S6Sr9hadHGsnTELZzFUVjMrFc",
        ],
    ),
    (
        "litecoin",
        LTC_MAIN_PKH,
        "pkh",
        f"pkh({LTC_MAIN_PKH}/0/*)#d0fpcn3l",
        [
            "LUWPbpM43E2p7ZSh8cyTBEkvpHmr3cB8Ez",
            "Ldatw8ZjgMGNUo5HMN6RgCrjmh7q494Si3",
            "LX4YojYdeBk3TtUcryCcgAqYxjicKfK7AD",
        ],
    ),
]

# getdescriptorinfo's answers for descriptors given with an origin written with 'h' markers.
NODE_CONFIRMED_ORIGINS = [
    (
        f"wpkh([{MASTER_FINGERPRINT}/84h/1h/0h]{LTC_TEST_WPKH}/0/*)",
        f"wpkh([73c5da0a/84'/1'/0']{LTC_TEST_WPKH}/0/*)#2ag6nxcd",
    ),
    (
        f"sh(wpkh([{MASTER_FINGERPRINT}/49h/1h/0h]{LTC_TEST_SH_WPKH}/0/*))",
        f"sh(wpkh([73c5da0a/49'/1'/0']{LTC_TEST_SH_WPKH}/0/*))#jpfa90p7",
    ),
    (
        f"pkh([{MASTER_FINGERPRINT}/44h/1h/0h]{LTC_TEST_PKH}/0/*)",
        f"pkh([73c5da0a/44'/1'/0']{LTC_TEST_PKH}/0/*)#sq4mwcyd",
    ),
]


def reversion(text: str, version_hex: str) -> str:
    """The same extended key under other version bytes (e.g. an xpub written as an Ltub)."""
    return str(base58.encode_check(bytes.fromhex(version_hex) + base58.decode_check(text)[4:]))


def embit_addresses(key: AddressKey, indexes: list[int]) -> list[str]:
    """Addresses through embit's own descriptor path (parse, derive from the account, encode)."""
    descriptor = Descriptor.from_string(key.descriptor())
    params = embit_network(key.network)
    return [str(descriptor.derive(index).address(params)) for index in indexes]


# --- BIP test vectors --------------------------------------------------------------------------


def test_bip84_zpub_derives_native_segwit_receive_addresses() -> None:
    key = parse_key(BIP84_ZPUB, BITCOIN)
    assert key.script == "wpkh"
    assert key.network is BITCOIN
    assert key.address(0) == BIP84_RECEIVE[0]
    assert key.address(1) == BIP84_RECEIVE[1]
    assert key.addresses(0, 2) == BIP84_RECEIVE
    assert key.xpub == BIP84_XPUB
    assert key.path == (0,)
    assert key.origin is None


def test_bip84_change_chain_through_a_descriptor() -> None:
    key = parse_key(f"wpkh({BIP84_XPUB}/1/*)", BITCOIN)
    assert key.address(0) == BIP84_CHANGE_0
    assert key.path == (1,)


def test_bip84_plain_xpub_defaults_to_wpkh() -> None:
    assert parse_key(BIP84_XPUB, BITCOIN).addresses(0, 2) == BIP84_RECEIVE


def test_bip49_upub_derives_nested_segwit_on_testnet() -> None:
    key = parse_key(BIP49_UPUB, TESTNET)
    assert key.script == "sh-wpkh"
    assert key.address(0) == BIP49_RECEIVE_0


def test_ypub_derives_p2sh_addresses_on_mainnet() -> None:
    key = parse_key(SLIP132_YPUB, BITCOIN)
    assert key.script == "sh-wpkh"
    assert key.address(0) == SLIP132_YPUB_RECEIVE_0
    assert key.address(0).startswith("3")
    assert key.descriptor().startswith("sh(wpkh(xpub")


def test_bip44_xpub_with_pkh() -> None:
    key = parse_key(BIP44_XPUB, BITCOIN, "pkh")
    assert key.address(0) == BIP44_RECEIVE_0
    assert parse_key(f"pkh({BIP44_XPUB}/0/*)", BITCOIN).address(0) == BIP44_RECEIVE_0


def test_bip86_taproot() -> None:
    key = parse_key(BIP86_XPUB, BITCOIN, "tr")
    assert key.script == "tr"
    assert key.addresses(0, 2) == BIP86_RECEIVE
    assert parse_key(f"tr({BIP86_XPUB}/1/*)", BITCOIN).address(0) == BIP86_CHANGE_0
    assert key.descriptor().startswith(f"tr({BIP86_XPUB}/0/*)#")


# --- Litecoin, checked against litecoind ---------------------------------------------------------


@pytest.mark.parametrize(("net", "xpub", "script", "descriptor", "addresses"), NODE_CONFIRMED)
def test_litecoin_matches_litecoind(
    net: str, xpub: str, script: str, descriptor: str, addresses: list[str]
) -> None:
    key = parse_key(xpub, network(net), script)
    assert key.descriptor() == descriptor  # byte for byte what getdescriptorinfo answers
    assert key.addresses(0, 3) == addresses  # what deriveaddresses answers
    # The node's descriptor reads back to the same key.
    again = parse_key(descriptor, network(net))
    assert again == key
    assert again.key_id == key.key_id


@pytest.mark.parametrize(("given", "canonical"), NODE_CONFIRMED_ORIGINS)
def test_origins_are_kept_and_written_as_the_node_writes_them(given: str, canonical: str) -> None:
    key = parse_key(given, LITECOIN_REGTEST)
    assert key.descriptor() == canonical
    assert key.origin is not None
    assert key.origin.startswith("73c5da0a/")
    # An origin changes nothing about the addresses, so not the key id either.
    bare = parse_key(canonical.replace(f"[{key.origin}]", "").split("#")[0], LITECOIN_REGTEST)
    assert bare.origin is None
    assert bare.key_id == key.key_id
    assert bare.addresses(0, 3) == key.addresses(0, 3)


def test_litecoin_regtest_addresses_start_with_rltc1() -> None:
    key = parse_key(LTC_TEST_WPKH, LITECOIN_REGTEST)
    assert all(address.startswith("rltc1") for address in key.addresses(0, 20))


def test_litecoin_slip132_versions_are_read_and_written_as_the_node_wants() -> None:
    ltub = reversion(LTC_MAIN_WPKH, "019da462")
    assert ltub.startswith("Ltub")
    key = parse_key(ltub, LITECOIN)  # plain: the script is asked for, wpkh by default
    assert key.script == "wpkh"
    assert key.xpub == LTC_MAIN_WPKH
    assert key.address(0) == "ltc1qjmxnz78nmc8nq77wuxh25n2es7rzm5c2rkk4wh"

    mtub = reversion(LTC_MAIN_SH_WPKH, "01b26ef6")
    assert mtub.startswith("Mtub")
    key = parse_key(mtub, LITECOIN)
    assert key.script == "sh-wpkh"
    assert key.address(0) == "M7wtsL7wSHDBJVMWWhtQfTMSYYkyooAAXM"
    assert key.descriptor() == f"sh(wpkh({LTC_MAIN_SH_WPKH}/0/*))#qezau9ca"

    ttub = reversion(LTC_TEST_WPKH, "0436f6e1")
    assert ttub.startswith("ttub")
    key = parse_key(ttub, LITECOIN_REGTEST)
    assert key.address(0) == "rltc1q6rz28mcfaxtmd6v789l9rrlrusdprr9puuzgkg"
    assert key.descriptor() == f"wpkh({LTC_TEST_WPKH}/0/*)#gt9he67w"  # the node refuses ttub

    zpub = reversion(LTC_MAIN_WPKH, "04b24746")  # Trezor's Litecoin native segwit key
    assert parse_key(zpub, LITECOIN).key_id == parse_key(LTC_MAIN_WPKH, LITECOIN).key_id


def test_litecoin_refuses_taproot_its_node_cannot_watch() -> None:
    with pytest.raises(ValueError, match="tr addresses are not available on litecoin-regtest"):
        parse_key(LTC_TEST_WPKH, LITECOIN_REGTEST, "tr")
    with pytest.raises(ValueError, match="not available on litecoin"):
        parse_key(f"tr({LTC_MAIN_WPKH}/0/*)", LITECOIN)


# --- descriptors and key ids ---------------------------------------------------------------------


def test_zpub_and_equivalent_descriptors_share_one_key_id() -> None:
    zpub = parse_key(BIP84_ZPUB, BITCOIN)
    chain_xpub = HDKey.from_base58(BIP84_XPUB).child(0).to_base58()  # the receive chain's own key
    spellings = [
        BIP84_XPUB,
        f"wpkh({BIP84_XPUB}/0/*)",
        zpub.descriptor(),
        f"wpkh([{MASTER_FINGERPRINT}/84'/0'/0']{BIP84_XPUB}/0/*)",
        f"wpkh([{MASTER_FINGERPRINT.upper()}/84h/0H/0h]{BIP84_XPUB}/0/*)",
        f"  wpkh({BIP84_XPUB}/0/*)\n",
        f"wpkh({chain_xpub}/*)",
    ]
    for text in spellings:
        key = parse_key(text, BITCOIN)
        assert key.key_id == zpub.key_id, text
        assert key.addresses(0, 2) == BIP84_RECEIVE, text
    assert len(zpub.key_id) == 64
    int(zpub.key_id, 16)


def test_key_id_differs_when_the_addresses_do() -> None:
    receive = parse_key(BIP84_ZPUB, BITCOIN)
    ids = {
        receive.key_id,
        parse_key(f"wpkh({BIP84_XPUB}/1/*)", BITCOIN).key_id,  # change chain
        parse_key(BIP84_XPUB, BITCOIN, "pkh").key_id,  # another script
        parse_key(BIP84_XPUB, BITCOIN, "tr").key_id,
        parse_key(BIP84_XPUB, BITCOIN, "sh-wpkh").key_id,
        parse_key(BIP84_ZPUB, LITECOIN).key_id,  # another network
        parse_key(BIP86_XPUB, BITCOIN).key_id,  # another key
    }
    assert len(ids) == 7


def test_descriptor_is_canonical_and_checksummed() -> None:
    key = parse_key(BIP84_ZPUB, BITCOIN)
    assert key.descriptor() == f"wpkh({BIP84_XPUB}/0/*)#kj7aqcx6"
    assert parse_key(key.descriptor(), BITCOIN) == key  # with its checksum, it reads back
    regtest = parse_key(BIP49_UPUB, REGTEST)
    assert regtest.descriptor().startswith("sh(wpkh(tpub")
    assert regtest.address(0).startswith("2")
    assert parse_key(LTC_TEST_WPKH, REGTEST).address(0).startswith("bcrt1q")


def test_address_key_is_frozen_and_public_only() -> None:
    key = parse_key(BIP84_ZPUB, BITCOIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.script = "pkh"  # type: ignore[misc]
    assert (
        repr(key)
        == f"AddressKey(network='bitcoin', script='wpkh', xpub='{BIP84_XPUB}', path=(0,), origin=None)"
    )
    assert not HDKey.from_base58(key.xpub).is_private
    with pytest.raises(ValueError, match="extended public key"):
        AddressKey(BITCOIN, "wpkh", BIP44_XPRV)


# --- indexes ------------------------------------------------------------------------------------


def test_index_range() -> None:
    key = parse_key(BIP84_ZPUB, BITCOIN)
    assert key.addresses(5, 0) == []
    assert key.address(MAX_INDEX) == key.addresses(MAX_INDEX, 1)[0]
    assert MAX_INDEX == 2**31 - 1
    for bad in (-1, 2**31, 2**32):
        with pytest.raises(ValueError, match="address indexes run from 0"):
            key.address(bad)
    with pytest.raises(ValueError, match="out of range"):
        key.addresses(MAX_INDEX - 1, 3)
    with pytest.raises(ValueError, match="count"):
        key.addresses(0, -1)
    with pytest.raises(ValueError, match="whole number"):
        key.address(True)
    with pytest.raises(ValueError, match="whole number"):
        key.address(1.0)  # type: ignore[arg-type]


KEYS = {
    "wpkh": parse_key(BIP84_ZPUB, BITCOIN),
    "sh-wpkh": parse_key(SLIP132_YPUB, BITCOIN),
    "tr": parse_key(BIP86_XPUB, BITCOIN, "tr"),
    "pkh": parse_key(BIP44_XPUB, BITCOIN, "pkh"),
    "ltc-wpkh": parse_key(LTC_TEST_WPKH, LITECOIN_REGTEST),
    "ltc-sh-wpkh": parse_key(LTC_MAIN_SH_WPKH, LITECOIN, "sh-wpkh"),
}


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(KEYS)),
    start=st.one_of(st.integers(0, 50), st.integers(0, MAX_INDEX - 9), st.just(MAX_INDEX - 9)),
    count=st.integers(0, 10),
)
def test_addresses_equal_one_address_at_a_time(name: str, start: int, count: int) -> None:
    key = KEYS[name]
    batch = key.addresses(start, count)
    assert batch == [key.address(index) for index in range(start, start + count)]
    # and embit's own path (descriptor parsed, derived from the account key, bech32 self-checked)
    sample = [index for index in (start, start + count - 1) if count]
    assert [batch[index - start] for index in sample] == embit_addresses(key, sample)


@pytest.mark.parametrize("name", sorted(KEYS))
def test_fast_path_matches_embit_on_every_script(name: str) -> None:
    key = KEYS[name]
    indexes = [0, 1, 2, 1000, MAX_INDEX]
    assert [key.address(index) for index in indexes] == embit_addresses(key, indexes)


# --- refusals -----------------------------------------------------------------------------------


PRIVATE = [
    (BIP44_XPRV, BITCOIN),
    (BIP84_ZPRV, BITCOIN),
    (BIP49_UPRV, TESTNET),
    (BIP84_WIF_0, BITCOIN),
    (f"wpkh({BIP44_XPRV}/0/*)", BITCOIN),
    (f"wpkh([{MASTER_FINGERPRINT}/84h/0h/0h]{BIP84_ZPRV}/0/*)#aaaaaaaa", BITCOIN),  # bad checksum too
    (f"wpkh({BIP44_XPRV}/84h/0h/0h/0/*)", BITCOIN),  # hardened steps too
    (f"tr({BIP44_XPRV}/0/*')", BITCOIN),
    (f"wpkh({BIP84_WIF_0})", BITCOIN),
]


@pytest.mark.parametrize(("text", "net"), PRIVATE)
def test_private_keys_are_refused_without_being_repeated(text: str, net: Network) -> None:
    with pytest.raises(ValueError, match="only needs the PUBLIC key") as refused:
        parse_key(text, net)
    message = str(refused.value)
    for secret in (BIP44_XPRV, BIP84_ZPRV, BIP49_UPRV, BIP84_WIF_0):
        assert secret not in message
        assert secret[4:20] not in message
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None or refused.value.__suppress_context__


def test_seed_phrase_is_refused() -> None:
    with pytest.raises(ValueError, match="seed phrase") as refused:
        parse_key(MNEMONIC, BITCOIN)
    assert "abandon" not in str(refused.value)


WRONG_NETWORK = [
    (BIP49_UPUB, BITCOIN, "upub… key is for bitcoin-testnet"),
    (LTC_TEST_WPKH, BITCOIN, "tpub… key is for bitcoin-testnet, bitcoin-signet, bitcoin-regtest"),
    (BIP84_ZPUB, REGTEST, "zpub… key is for bitcoin, litecoin, but this is set up for bitcoin-regtest"),
    (BIP84_XPUB, LITECOIN_REGTEST, "set up for litecoin-regtest"),
    (reversion(LTC_MAIN_WPKH, "019da462"), BITCOIN, "Ltub… key is for litecoin,"),
    (f"wpkh({LTC_TEST_WPKH}/0/*)", BITCOIN, "tpub… key is for"),
]


@pytest.mark.parametrize(("text", "net", "message"), WRONG_NETWORK)
def test_keys_of_another_network_are_refused(text: str, net: Network, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_key(text, net)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"wpkh({BIP84_XPUB}/0/*)#kj7aqcx7", "checksum does not match"),
        (f"wpkh({BIP84_XPUB}/1/*)#kj7aqcx6", "checksum does not match"),
        (f"wpkh({BIP84_XPUB}/0/*)#kj7aqc", "must be 8 characters"),
        (f"wpkh({BIP84_XPUB}/0/0)", "not ranged"),
        (f"wpkh({BIP84_XPUB})", "not ranged"),
        (f"wpkh({BIP84_XPUB}/0/*')", "hardened wildcard"),
        (f"wpkh({BIP84_XPUB}/0/*h)", "hardened wildcard"),
        (f"wpkh({BIP84_XPUB}/0h/*)", "hardened step /0h"),
        (f"wpkh({BIP84_XPUB}/*/0)", "must be the last step"),
        (f"wpkh({BIP84_XPUB}/<0;1>/*)", "multipath"),
        (f"wpkh({BIP84_XPUB}/0/x)", "not a child index"),
        (f"wpkh({BIP84_XPUB}/{2**31}/*)", "not a child index"),
        (f"wsh(multi(1,{BIP84_XPUB}/0/*,{BIP44_XPUB}/0/*))", "multisig"),
        (f"sh(multi(1,{BIP84_XPUB}/0/*,{BIP44_XPUB}/0/*))", "multisig"),
        (f"sh(wsh(sortedmulti(1,{BIP84_XPUB}/0/*,{BIP44_XPUB}/0/*)))", "multisig"),
        (f"multi(1,{BIP84_XPUB}/0/*,{BIP44_XPUB}/0/*)", "multisig"),
        (f"tr({BIP86_XPUB}/0/*,pk({BIP44_XPUB}/0/*))", "script paths are not supported"),
        (f"wpkh({BIP84_XPUB}/0/*,{BIP44_XPUB}/0/*)", "exactly one key"),
        (f"sh(pkh({BIP44_XPUB}/0/*))", "only around one key's wpkh"),
        (f"combo({BIP44_XPUB}/0/*)", "combo\\(\\) descriptors are not supported"),
        (f"addr({BIP84_RECEIVE[0]})", "addr\\(\\) descriptors are not supported"),
        (f"wpkh({BIP84_PUBKEY_0})", "single public key"),
        (f"wpkh([7xc5da0a/84h]{BIP84_XPUB}/0/*)", "key origin must be"),
        (f"wpkh([{MASTER_FINGERPRINT}/{2**31}h]{BIP84_XPUB}/0/*)", "out of range"),
        (f"WPKH({BIP84_XPUB}/0/*)", "not an output descriptor Kassa understands"),
        ("wpkh(", "not an output descriptor Kassa understands"),
        ("wpkh()", "no key"),
        (BIP84_PUBKEY_0, "single raw key"),
        (BIP84_RECEIVE[0], "that is an address"),
        (BIP44_RECEIVE_0, "that is an address"),
        ("garbage", "not an extended public key"),
        (BIP84_ZPUB[:-1] + "t", "copied whole"),
        (BIP84_ZPUB[:60], "copied whole"),
        ("xpub0OIl", "not an extended public key"),
        ("", "no key given"),
        ("   \n", "no key given"),
        ("x" * 5000, "too long"),
    ],
)
def test_unusable_input_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_key(text, BITCOIN)


@pytest.mark.parametrize(
    ("text", "script", "message"),
    [
        (BIP84_ZPUB, "pkh", "a zpub key derives wpkh addresses, but script 'pkh'"),
        (SLIP132_YPUB, "wpkh", "a ypub key derives sh-wpkh addresses"),
        (f"wpkh({BIP84_XPUB}/0/*)", "tr", "the descriptor derives wpkh addresses, but script 'tr'"),
        (BIP84_XPUB, "p2wpkh", "unknown script type 'p2wpkh'"),
    ],
)
def test_script_conflicts_are_refused(text: str, script: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_key(text, BITCOIN, script)


def test_a_zpub_inside_a_descriptor_must_agree_with_it() -> None:
    assert parse_key(f"wpkh({BIP84_ZPUB}/0/*)", BITCOIN).key_id == parse_key(BIP84_ZPUB, BITCOIN).key_id
    with pytest.raises(ValueError, match="a zpub key derives wpkh addresses, but the descriptor is for pkh"):
        parse_key(f"pkh({BIP84_ZPUB}/0/*)", BITCOIN)


def test_a_damaged_key_is_refused() -> None:
    data = base58.decode_check(BIP84_XPUB)
    broken = str(base58.encode_check(data[:45] + b"\x02" + b"\x00" * 32))  # not a point on the curve
    with pytest.raises(ValueError, match="damaged"):
        parse_key(broken, BITCOIN)


# --- networks ------------------------------------------------------------------------------------


def test_network_registry() -> None:
    assert set(NETWORKS) == {
        "bitcoin",
        "bitcoin-testnet",
        "bitcoin-signet",
        "bitcoin-regtest",
        "litecoin",
        "litecoin-testnet",
        "litecoin-regtest",
    }
    assert {net.chain for net in NETWORKS.values()} == {"main", "test", "signet", "regtest"}
    assert network("litecoin").coin == "LTC"
    assert network("litecoin").uri_scheme == "litecoin"
    assert network("bitcoin-signet").bech32_hrp == "tb"
    assert all(net.decimals == 8 for net in NETWORKS.values())
    with pytest.raises(ValueError, match="unknown network 'dogecoin': the known networks are bitcoin, "):
        network("dogecoin")


def test_embit_network_has_embits_keys_for_addresses() -> None:
    from embit.networks import NETWORKS as EMBIT_NETWORKS

    for net in NETWORKS.values():
        params = embit_network(net)
        assert set(params) <= set(EMBIT_NETWORKS["main"])
        assert {"name", "wif", "p2pkh", "p2sh", "bech32", "xpub", "xprv", "bip32"} <= set(params)
    # Bitcoin's values are embit's own.
    for name, embit_name in (
        ("bitcoin", "main"),
        ("bitcoin-testnet", "test"),
        ("bitcoin-regtest", "regtest"),
    ):
        params = embit_network(network(name))
        for field in ("wif", "p2pkh", "p2sh", "bech32", "xpub", "xprv", "ypub", "zpub"):
            assert params[field] == EMBIT_NETWORKS[embit_name][field], (name, field)


def test_every_script_type_parses_on_every_network_that_has_it() -> None:
    for net in NETWORKS.values():
        xpub = reversion(BIP84_XPUB, net.xpub.hex())
        for script in SCRIPT_TYPES:
            if script in net.script_types:
                assert parse_key(xpub, net, script).address(0)
            else:
                with pytest.raises(ValueError, match="not available"):
                    parse_key(xpub, net, script)
