"""Watch-only keys of the EVM rail (parsing, derivation, key ids, refusals), EIP-55 and EIP-681 URIs.

Expected values come from the mnemonic "abandon abandon ... about" (no passphrase): its first
address at m/44'/60'/0'/0/0, 0x9858EfFD232B4033E47d90003D41EC34EcaEda94, is the one MetaMask and
Hardhat show for it. Every address and extended key below was derived twice, from the seed, with
embit (``bip39.mnemonic_to_seed``, ``HDKey.from_seed``) and with bip-utils 2.12.3
(``Bip44.FromSeed(..., Bip44Coins.ETHEREUM)``, which derives and checksums on its own code: its
Keccak from pycryptodome, its curve from coincurve) and both agreed; they are written here as fixed
strings. The tests also derive the first addresses from the PRIVATE keys with embit, a path that
shares nothing with the public derivation under test. EIP-55 vectors are the EIP's own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect

import pytest
from embit import bip39
from embit.bip32 import HDKey
from embit.descriptor.checksum import add_checksum
from embit.util import secp256k1
from hypothesis import given, settings
from hypothesis import strategies as st

from kassa.rails.evm import keys as evm_keys
from kassa.rails.evm.keys import MAX_INDEX, EvmKey, checksum_address, keccak256, parse_evm_key
from kassa.rails.evm.uri import MAX_UINT256, native_uri, token_uri

KEYS_SOURCE = inspect.getsource(evm_keys)

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
FINGERPRINT = "73c5da0a"  # of MNEMONIC's master key

# m/44'/60'/0' (account) and m/44'/60'/0'/0 (its receiving chain)
ACCOUNT_XPUB = "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3yZdUsT8ddYM3PwnATt"
ACCOUNT_XPRV = "xprv9zDSoJv1aBcjX6sNgEpE2J9K6MV2MUnXuqXsFgzVn3zY2aHyupaFQdYCtdCbNMkvcTdx9FeN49sgXw6mjrhrFLRSzJVnRYPfSCCgjeg4GxY"
CHAIN_XPUB = "xpub6EF8jXqFeFEW5bwMU7RpQtHkzE4KJxcqJtvkCjJumzW8CPpacXkb92ek4WzLQXjL93HycJwTPUAcuNxCqFPKKU5m5Z2Vq4nCyh5CyPeBFFr"
ADDRESSES = [
    "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
    "0xb6716976A3ebe8D39aCEB04372f22Ff8e6802D7A",
]
ADDRESS_19 = "0x5096eEe90Aa1b783AF381669938C688F02bb43D8"
ADDRESS_LAST = "0x8848bfC75a28756B521b09afDC120BdDddC7d7c9"  # index 2**31 - 1
KEY_ID = "14d1a0314b95016e40a95091388338e23ae6e6fa6b8ea81de7aa7529ae7a3fb1"
# m/44'/60'/1' (MetaMask's second account is m/44'/60'/0'/0/1; Ledger Live's is this one's /0/0)
ACCOUNT_1_XPUB = "xpub6DCoCpSuQZB2k9PnGSMK9tinTK8kx3hcv7F4BWwhs5N2wnwGiLg17r9J7j2JcYP9gkip3sC87J1F99YxeBHGuFMg6ejA8qQEKSuzzaKvqBR"
ACCOUNT_1_ADDRESS_0 = "0x78839F6054d7ed13918bAe0473BA31b1Ca9D7265"
# keys of MNEMONIC at other places
CHANGE_XPUB = "xpub6EF8jXqFeFEW7126UztebWcuL9Kdadq9KUN5a8R7ZB8SufVcQZmoqUNa6gTGVkLYnVLssAZ4XtywXUHV3CER3CBp2F4eqg3zsqEBRgeWWrM"
COIN_XPUB = "xpub6AmukNpN4yyPLhoxodeZnq8jGbGmwqLveeym8dLD4p8RVCpNjLfkcLvgWH9kQjSgLwFQBQDHn7297uNnCC8QHHZiCZV3DnDAxPi4GrczKnr"
ADDRESS_0_XPUB = "xpub6H6LG2We64bdwqNF7gNkUJ5EvDibiT2gbs77oonbawV86XE3eMxZf9czGQ9CPdSzsdsHLnLEjiJJEDnFMAyLrWATesaVbTYeggBXMHaFKLg"
MASTER_XPUB = "xpub661MyMwAqRbcFkPHucMnrGNzDwb6teAX1RbKQmqtEF8kK3Z7LZ59qafCjB9eCRLiTVG3uxBxgKvRgbubRhqSKXnGGb1aoaqLrpMBDrVxga8"
BITCOIN_ACCOUNT_XPUB = "xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSoekkudhUd9yLb6qx39T9nMdj"
# the ETH account key in other version bytes
ACCOUNT_TPUB = "tpubDDaRj4Gb7q8V1P8hETLKbMRQyWRAkL1Sph3mQdTFgJHQefHqXajb6sXWyvKfEQo46xJYKA29vMhEUsBgf7QpEYL17aJwAQ7NDb8koR13eMV"
ACCOUNT_ZPUB = "zpub6rsKp9njhvFzSBL5SyvUocH3zKcQeBVP7HVucsBt6QHH1aFaxgDdCZAxnJA3hj9f8L1FCXhQJaaHZFvChePbwaEunexUeh67B5fdpWEscjP"
# the private key of m/44'/60'/0'/0/0, raw and WIF
PRIVATE_KEY_0 = "1ab42cc412b618bdea3a599e3c9bae199ebf030895b039e9db1e30dafb12b727"
WIF_0 = "Kx7cta1dWuThLtD7cSvCCya6VN645cBB4HFSdPuLVq6fEA1nVCFL"

ROOT = HDKey.from_seed(bip39.mnemonic_to_seed(MNEMONIC))


def address_from_private_key(secret: bytes) -> str:
    """Keccak-256 of the uncompressed public key, last 20 bytes, EIP-55: from embit's private key."""
    point = secp256k1.ec_pubkey_create(secret)
    uncompressed = secp256k1.ec_pubkey_serialize(point, secp256k1.EC_UNCOMPRESSED)
    return checksum_address("0x" + keccak256(uncompressed[1:])[-20:].hex())


# --- the standard vector ------------------------------------------------------------------------


def test_vectors_from_the_seed() -> None:
    assert ROOT.my_fingerprint.hex() == FINGERPRINT
    assert ROOT.derive("m/44h/60h/0h").to_public().to_base58() == ACCOUNT_XPUB
    assert ROOT.derive("m/44h/60h/0h").to_base58() == ACCOUNT_XPRV
    assert ROOT.derive("m/44h/60h/0h/0").to_public().to_base58() == CHAIN_XPUB
    assert ROOT.derive("m/44h/60h/1h").to_public().to_base58() == ACCOUNT_1_XPUB
    assert ROOT.derive("m/44h/60h/0h/0/0").key.serialize().hex() == PRIVATE_KEY_0
    for index, expected in enumerate(ADDRESSES):
        secret = ROOT.derive(f"m/44h/60h/0h/0/{index}").key.serialize()
        assert address_from_private_key(secret) == expected
    assert address_from_private_key(ROOT.derive("m/44h/60h/0h/0/19").key.serialize()) == ADDRESS_19
    assert address_from_private_key(ROOT.derive("m/44h/60h/1h/0/0").key.serialize()) == ACCOUNT_1_ADDRESS_0


def test_account_key_derives_the_receiving_chain() -> None:
    key = parse_evm_key(ACCOUNT_XPUB)
    assert (key.xpub, key.level, key.account, key.origin) == (ACCOUNT_XPUB, "account", 0, None)
    assert key.address(0) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    assert key.addresses(0, 3) == ADDRESSES
    assert key.address(19) == ADDRESS_19
    assert key.address(MAX_INDEX) == ADDRESS_LAST
    assert key.chain_path == "m/44'/60'/0'/0"
    assert key.path(0) == "m/44'/60'/0'/0/0"
    assert key.path(MAX_INDEX) == "m/44'/60'/0'/0/2147483647"


def test_chain_key_gives_the_same_addresses_and_id() -> None:
    account, chain = parse_evm_key(ACCOUNT_XPUB), parse_evm_key(CHAIN_XPUB)
    assert (chain.level, chain.account) == ("chain", 0)
    assert chain.addresses(0, 3) == ADDRESSES
    assert chain.address(MAX_INDEX) == ADDRESS_LAST
    assert chain.key_id == account.key_id == KEY_ID
    assert chain.path(7) == account.path(7) == "m/44'/60'/0'/0/7"


def test_key_id_is_the_bare_chain_key() -> None:
    chain = ROOT.derive("m/44h/60h/0h/0").to_public()
    bare = HDKey(chain.key, chain.chain_code).to_base58()  # depth, fingerprint, child number zeroed
    assert hashlib.sha256(f"evm\n{bare}".encode()).hexdigest() == KEY_ID
    assert len({parse_evm_key(ACCOUNT_XPUB).key_id, parse_evm_key(ACCOUNT_1_XPUB).key_id}) == 2


@pytest.mark.parametrize(
    ("text", "level", "origin"),
    [
        (f"{ACCOUNT_XPUB}/0/*", "account", None),
        (f"[{FINGERPRINT}/44h/60h/0h]{ACCOUNT_XPUB}/0/*", "account", "73c5da0a/44'/60'/0'"),
        (f"[73C5DA0A/44'/60'/0']{ACCOUNT_XPUB}", "account", "73c5da0a/44'/60'/0'"),
        (f"[{FINGERPRINT}/44H/60H/0H]{ACCOUNT_XPUB}/0/*", "account", "73c5da0a/44'/60'/0'"),
        (f"{CHAIN_XPUB}/*", "chain", None),
        (f"[{FINGERPRINT}/44h/60h/0h/0]{CHAIN_XPUB}/*", "chain", "73c5da0a/44'/60'/0'/0"),
        (f"  {ACCOUNT_XPUB}\n", "account", None),
    ],
)
def test_descriptor_like_spellings(text: str, level: str, origin: str | None) -> None:
    key = parse_evm_key(text)
    assert (key.level, key.origin, key.account) == (level, origin, 0)
    assert key.key_id == KEY_ID
    assert key.addresses(0, 3) == ADDRESSES


def test_checksum_after_the_key_expression() -> None:
    body = f"[{FINGERPRINT}/44h/60h/0h]{ACCOUNT_XPUB}/0/*"
    with_checksum = add_checksum(body)
    assert parse_evm_key(with_checksum).key_id == KEY_ID
    wrong = with_checksum[:-1] + ("q" if with_checksum[-1] != "q" else "p")
    with pytest.raises(ValueError, match="checksum does not match"):
        parse_evm_key(wrong)
    with pytest.raises(ValueError, match="8 characters"):
        parse_evm_key(body + "#abc")


def test_second_account_has_its_own_path() -> None:
    key = parse_evm_key(ACCOUNT_1_XPUB)
    assert (key.level, key.account) == ("account", 1)
    assert key.address(0) == ACCOUNT_1_ADDRESS_0
    assert key.path(0) == "m/44'/60'/1'/0/0"
    # a chain key does not say its account: the origin does
    chain_1 = ROOT.derive("m/44h/60h/1h/0").to_public().to_base58()
    assert parse_evm_key(chain_1).path(0) == "m/44'/60'/0'/0/0"  # assumed 0 without origin
    from_origin = parse_evm_key(f"[{FINGERPRINT}/44h/60h/1h/0]{chain_1}/*")
    assert (from_origin.account, from_origin.path(3)) == (1, "m/44'/60'/1'/0/3")
    assert from_origin.address(0) == ACCOUNT_1_ADDRESS_0
    assert from_origin.key_id == key.key_id


def test_constructor_checks_what_it_is_given() -> None:
    assert EvmKey(ACCOUNT_XPUB).addresses(0, 3) == ADDRESSES
    assert EvmKey(CHAIN_XPUB, "chain").key_id == KEY_ID
    with pytest.raises(ValueError, match="depth 3"):
        EvmKey(CHAIN_XPUB, "account")
    with pytest.raises(ValueError, match="account 1'"):
        EvmKey(ACCOUNT_XPUB, "account", 1)
    with pytest.raises(ValueError, match="extended public key"):
        EvmKey(ACCOUNT_XPRV)
    with pytest.raises(ValueError, match="'account' or 'chain'"):
        EvmKey(ACCOUNT_XPUB, "change")  # type: ignore[arg-type]
    key = parse_evm_key(ACCOUNT_XPUB)
    assert dataclasses.replace(key) == key
    assert "EvmKey(xpub='xpub6DCo" in repr(key)


def test_index_range() -> None:
    key = parse_evm_key(ACCOUNT_XPUB)
    assert key.addresses(0, 0) == []
    assert key.addresses(MAX_INDEX, 1) == [ADDRESS_LAST]
    for bad in (-1, MAX_INDEX + 1, True, 1.0):
        with pytest.raises(ValueError, match="index"):
            key.address(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="index"):
            key.path(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"2147483647 \.\.\. 2147483648 is out of range"):
        key.addresses(MAX_INDEX, 2)
    with pytest.raises(ValueError, match="count"):
        key.addresses(0, -1)


@settings(max_examples=60, deadline=None)
@given(
    start=st.one_of(st.integers(0, 50), st.integers(0, MAX_INDEX - 7), st.just(MAX_INDEX - 7)),
    count=st.integers(0, 8),
    chain=st.booleans(),
)
def test_addresses_equal_one_address_at_a_time(start: int, count: int, chain: bool) -> None:
    key = parse_evm_key(CHAIN_XPUB if chain else ACCOUNT_XPUB)
    batch = key.addresses(start, count)
    assert batch == [key.address(index) for index in range(start, start + count)]
    # and embit's own public derivation (a second BIP 32 library) for the first and last of them
    embit_chain = HDKey.from_base58(CHAIN_XPUB)
    for index in {start, start + count - 1} if count else ():
        point = embit_chain.child(index).key.sec()
        raw = secp256k1.ec_pubkey_serialize(secp256k1.ec_pubkey_parse(point), secp256k1.EC_UNCOMPRESSED)
        assert batch[index - start] == checksum_address("0x" + keccak256(raw[1:])[-20:].hex())


# --- refusals -----------------------------------------------------------------------------------


def refused(text: str, match: str) -> str:
    with pytest.raises(ValueError, match=match) as caught:
        parse_evm_key(text)
    message = str(caught.value)
    stripped = text.strip()
    if stripped:
        assert stripped not in message
    for start in range(0, len(stripped) - 11, 6):  # nor any 12-character piece of it
        assert stripped[start : start + 12] not in message
    return message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (ACCOUNT_XPRV, "extended PRIVATE key"),
        (f"[{FINGERPRINT}/44h/60h/0h]{ACCOUNT_XPRV}/0/*", "extended PRIVATE key"),
        (ACCOUNT_XPRV[:-1] + ("a" if ACCOUNT_XPRV[-1] != "a" else "b"), "PRIVATE key"),
        (ROOT.to_base58(), "extended PRIVATE key"),
        (PRIVATE_KEY_0, "raw PRIVATE key"),
        ("0x" + PRIVATE_KEY_0, "raw PRIVATE key"),
        (WIF_0, r"private key \(WIF\)"),
        (MNEMONIC, "seed phrase"),
        (" ".join([MNEMONIC] * 2), "seed phrase"),
    ],
)
def test_private_keys_and_seeds_are_refused(text: str, match: str) -> None:
    message = refused(text, match)
    assert "PUBLIC key" in message
    assert "exposed" in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (MASTER_XPUB, r"master \(root\) public key, m \(depth 0\). Kassa needs .*m/44'/60'/0' \(depth 3\)"),
        (COIN_XPUB, r"coin level, m/44'/60' \(depth 2\)"),
        (ADDRESS_0_XPUB, r"single address's key, like m/44'/60'/0'/0/0.*\(depth 5\)"),
        (ROOT.derive("m/44h").to_public().to_base58(), r"purpose level, m/44' \(depth 1\)"),
        (ROOT.derive("m/44h/60h/0h/0/0/0").to_public().to_base58(), r"wrong depth \(depth 6\)"),
        (CHANGE_XPUB, r"CHANGE chain's key \(m/44'/60'/0'/1\)"),
        (ROOT.derive("m/44h/60h/0h/0h").to_public().to_base58(), "not a receiving chain key"),
        (ROOT.derive("m/44h/60h/0").to_public().to_base58(), "not an account key"),
    ],
)
def test_keys_at_other_depths_are_refused_naming_the_path(text: str, match: str) -> None:
    assert "m/44'/60'/0'" in refused(text, match)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no key given"),
        ("   ", "no key given"),
        ("hello", "not an extended public key"),
        ("xpub123", "not an extended public key"),
        (ACCOUNT_XPUB[:-1] + ("a" if ACCOUNT_XPUB[-1] != "a" else "b"), "copied whole"),
        (ACCOUNT_XPUB[:50], "copied whole"),
        ("x" * 1001, "too long"),
        ("one two three", "without spaces"),
        (ADDRESSES[0], "Ethereum address"),
        (ADDRESSES[0].lower()[2:], "Ethereum address"),
        ("02" + "ab" * 32, "single raw public key"),
        ("1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA", "Bitcoin-style address"),
        (f"wpkh({ACCOUNT_XPUB}/0/*)", "output descriptor"),
        (ACCOUNT_ZPUB, r"zpub \(Bitcoin, BIP 84\)"),
        (ACCOUNT_TPUB, r"tpub \(Bitcoin test networks\)"),
        (f"{ACCOUNT_XPUB}/1/*", "change chain"),
        (f"{ACCOUNT_XPUB}/*", "path is /0/"),
        (f"{ACCOUNT_XPUB}/0/0", "path is /0/"),
        (f"{ACCOUNT_XPUB}/0h/*", "hardened step"),
        (f"{ACCOUNT_XPUB}/0/*'", "hardened step"),
        (f"{CHAIN_XPUB}/0/*", r"path is /\*"),
        (f"[{FINGERPRINT}/44h/0h/0h]{BITCOIN_ACCOUNT_XPUB}", "coin type is not 60'"),
        (f"[{FINGERPRINT}/84h/60h/0h]{ACCOUNT_XPUB}", "44'"),
        (f"[{FINGERPRINT}/44h/60h]{ACCOUNT_XPUB}", "has 2 steps but the key is at depth 3"),
        (f"[{FINGERPRINT}/44h/60h/1h]{ACCOUNT_XPUB}", "does not match the key"),
        (f"[{FINGERPRINT}/44h/60h/0h/1]{CHAIN_XPUB}", "does not match the key"),
        (f"[{FINGERPRINT}/44h/60h/0]{ROOT.derive('m/44h/60h/0').to_public().to_base58()}", "not an account"),
        (f"[{FINGERPRINT}/44h/60h/2147483648h]{ACCOUNT_XPUB}", "out of range"),
        (f"[xyz/44h/60h/0h]{ACCOUNT_XPUB}", "key origin must be"),
    ],
)
def test_unusable_input_is_refused_with_a_reason(text: str, match: str) -> None:
    refused(text, match)


def test_refuses_what_is_not_text() -> None:
    with pytest.raises(ValueError, match="must be text"):
        parse_evm_key(b"xpub")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet="xpub[]/0146h'*#()abcdefABCDEF"),
        st.builds(
            lambda before, after: before + ACCOUNT_XPUB + after, st.text(max_size=24), st.text(max_size=24)
        ),
    )
)
def test_any_text_parses_or_is_refused_with_a_value_error(text: str) -> None:
    try:
        key_id, message = parse_evm_key(text).key_id, ""
    except ValueError as refusal:
        key_id, message = KEY_ID, str(refusal)
    assert key_id == KEY_ID  # only spellings of the one key in the text parse
    # The refusal never echoes the text, unless the text is the refusal's own wording (Hypothesis
    # draws strings from the module's source, e.g. "match" from "does not match").
    stripped = text.strip()
    assert len(stripped) < 5 or stripped not in message or stripped in KEYS_SOURCE


def test_bitcoin_account_xpub_is_only_caught_by_its_origin() -> None:
    # an xpub does not record its coin type: m/44'/0'/0' parses (valid addresses, not the Ethereum
    # wallet's); the docs tell the merchant to compare address 0 with the wallet's first address
    key = parse_evm_key(BITCOIN_ACCOUNT_XPUB)
    assert key.address(0) not in ADDRESSES
    refused(f"[{FINGERPRINT}/44h/0h/0h]{BITCOIN_ACCOUNT_XPUB}/0/*", "coin type")


# --- EIP-55 -------------------------------------------------------------------------------------

EIP55_VECTORS = [  # the EIP's test cases: all caps, all lower, normal
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_VECTORS + ADDRESSES)
def test_eip55_round_trip(address: str) -> None:
    assert checksum_address(address) == address
    assert checksum_address(address.lower()) == address
    assert checksum_address("0x" + address[2:].upper()) == address


def test_eip55_refuses_a_wrong_mix_of_cases() -> None:
    address = ADDRESSES[0]
    flipped = address[:6] + address[6].swapcase() + address[7:]  # 'E' -> 'e' of 0x9858E...
    assert flipped.startswith("0x9858efFD")
    with pytest.raises(ValueError, match="EIP-55 checksum"):
        checksum_address(flipped)
    for bad in ("0x1234", "9858EfFD232B4033E47d90003D41EC34EcaEda94", "0x" + "g" * 40, 12):
        with pytest.raises(ValueError, match="0x followed by 40 hex digits"):
            checksum_address(bad)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(min_size=20, max_size=20))
def test_eip55_is_a_case_mapping(raw: bytes) -> None:
    checksummed = checksum_address("0x" + raw.hex())
    assert checksummed.lower() == "0x" + raw.hex()
    assert checksum_address(checksummed) == checksummed
    assert checksum_address(checksummed.upper().replace("0X", "0x")) == checksummed


# --- EIP-681 ------------------------------------------------------------------------------------

USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"  # USDC on Ethereum mainnet


def test_native_uris_have_exact_integer_amounts() -> None:
    to = ADDRESSES[0]
    assert native_uri(to, 1, 1) == f"ethereum:{to}@1?value=1"
    assert native_uri(to.lower(), 10**18, 1) == f"ethereum:{to}@1?value=1000000000000000000"
    assert native_uri(to, MAX_UINT256, 11155111) == (
        f"ethereum:{to}@11155111"
        "?value=115792089237316195423570985008687907853269984665640564039457584007913129639935"
    )
    assert MAX_UINT256 == 2**256 - 1


def test_token_uris_call_transfer() -> None:
    assert token_uri(USDC.lower(), ADDRESSES[1], 2_500_000, 1) == (
        "ethereum:0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48@1/transfer"
        "?address=0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0&uint256=2500000"
    )
    assert token_uri(USDC, ADDRESSES[2], MAX_UINT256, 137).endswith(f"&uint256={MAX_UINT256}")
    assert token_uri(USDC, ADDRESSES[2], 1, 137).startswith(f"ethereum:{USDC}@137/transfer?address=")


@pytest.mark.parametrize("amount", [0, -1, 2**256, 1e18, True, "1000"])
def test_uri_amounts_are_positive_ints(amount: object) -> None:
    with pytest.raises(ValueError, match="amount"):
        native_uri(ADDRESSES[0], amount, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount"):
        token_uri(USDC, ADDRESSES[0], amount, 1)  # type: ignore[arg-type]


def test_uri_refusals() -> None:
    for chain_id in (0, -1, True, "1"):
        with pytest.raises(ValueError, match="chain id"):
            native_uri(ADDRESSES[0], 1, chain_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="EIP-55"):
        native_uri(ADDRESSES[0].replace("E", "e", 1), 1, 1)
    with pytest.raises(ValueError, match="0x followed by 40"):
        native_uri("vitalik.eth", 1, 1)
    with pytest.raises(ValueError, match="token contract itself"):
        token_uri(USDC, USDC.lower(), 1, 1)
