"""The Bitcoin rail: on-chain payments to addresses derived from the merchant's watch-only key.

The merchant gives an extended public key (xpub/ypub/zpub, tpub/upub/vpub) or an output descriptor
and the network; Kassa derives a fresh address per order (the core allocates the index, see
:mod:`kassa.services.addresses`) and never holds a key. A Bitcoin Core–compatible node watches the
chain: the watcher (:mod:`kassa.rails.bitcoin.watcher`) keeps a watch-only wallet on it holding the
key's descriptor, imported ahead of the addresses handed out, and reads ``listsinceblock``.

Network parameters are data (:mod:`kassa.rails.bitcoin.networks`), so Litecoin and other Bitcoin
Core forks work by configuration; the ``litecoin`` rail is the same rail under its own name, so a
merchant can take both coins. docs/bitcoin.md is the operator's guide.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Final, Literal
from urllib.parse import quote as urlquote

from pydantic import Field, StrictBool, StrictInt, ValidationInfo, field_validator

from kassa.domain.money import Money
from kassa.rails.base import (
    Destination,
    Keychain,
    MethodSpec,
    NoGateway,
    NoSending,
    NoSubmissions,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
    Watcher,
)
from kassa.rails.bitcoin.keys import AddressKey, parse_key
from kassa.rails.bitcoin.networks import NETWORKS, Network, network
from kassa.rails.bitcoin.rpc import BitcoinAuthenticationError, BitcoinError, BitcoinRpc, BitcoinUnreachable
from kassa.rails.urls import RpcUrl

log = logging.getLogger("kassa.rails.bitcoin")

MAX_HEADER_LAG: Final = 2
"""Blocks the node's validated chain may trail the headers it knows before `check` calls it syncing."""

Login = Annotated[str, Field(min_length=1, max_length=256)]
WalletName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]


class BitcoinSettings(RailSettings):
    """What a merchant configures (PUT /api/v1/payment-methods/bitcoin); `node_password` is a
    secret: stored encrypted, shown masked."""

    network: str = "bitcoin"
    """A network by name: bitcoin, bitcoin-testnet, bitcoin-signet, bitcoin-regtest, litecoin, ..."""
    script: Literal["wpkh", "sh-wpkh", "tr", "pkh"] | None = None
    """The address type for a plain xpub/tpub (default wpkh, native segwit); ypub/zpub imply theirs."""
    xpub: Annotated[str, Field(min_length=4, max_length=2000)]
    """The account's extended public key (xpub, ypub, zpub; tpub, upub, vpub) or an output
    descriptor such as ``wpkh([fingerprint/84h/0h/0h]xpub.../0/*)``; never a private key."""
    node_url: RpcUrl
    """The node's RPC URL, e.g. http://127.0.0.1:8332 (Bitcoin Core ≥ 0.21 or a fork)."""
    node_username: Login | None = None
    """rpcuser (or the user of an rpcauth line); none for a cookie-less open node."""
    node_password: Annotated[str, Field(max_length=256)] | None = None
    wallet: WalletName = "kassa"
    """The watch-only wallet on the node that holds this key's descriptor; created when missing."""
    confirmations: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    """Confirmations this merchant wants for payments on this rail (see docs/bitcoin.md)."""
    poll_interval: Annotated[float, Field(ge=0.2, le=300)] = 5.0
    """Seconds between the watcher's passes when no walletnotify/blocknotify wakes it earlier."""
    gap_limit: Annotated[StrictInt, Field(ge=1, le=100_000)] = 20
    """The gap limit of the merchant's own wallet: `rails check` warns when Kassa goes past it."""
    recycle_addresses: StrictBool = False
    """Give an address whose order expired without any payment (monitoring window over) to a later
    order, so the merchant's wallet has fewer unused addresses to look past."""
    lookahead: Annotated[StrictInt, Field(ge=10, le=10_000)] = 200
    """Addresses imported into the node's wallet ahead of those handed out."""

    @field_validator("network")
    @classmethod
    def _known_network(cls, value: str) -> str:
        network(value)  # ValueError naming the known networks
        return value

    @field_validator("node_password")
    @classmethod
    def _password_needs_user(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("node_username") is None:
            raise ValueError("a node_password needs a node_username (the node's rpcuser)")
        return value

    @field_validator("node_username")
    @classmethod
    def _no_colon(cls, value: str | None) -> str | None:
        if value is not None and ":" in value:
            raise ValueError("must not contain ':'")
        return value

    @field_validator("xpub")
    @classmethod
    def _key_reads(cls, value: str, info: ValidationInfo) -> str:
        name = info.data.get("network")
        if name in NETWORKS:  # else the network's own error says what is wrong
            _parsed(value.strip(), name, info.data.get("script"))  # ValueError: what is wrong
        return value


@lru_cache(maxsize=256)
def _parsed(text: str, network_name: str, script: str | None) -> AddressKey:
    return parse_key(text, network(network_name), script)


def key_of(settings: BitcoinSettings) -> AddressKey:
    return _parsed(settings.xpub.strip(), settings.network, settings.script)


def settings_of(config: RailConfig) -> BitcoinSettings:
    return BitcoinSettings.model_validate(config.settings)


def node_client(settings: BitcoinSettings, *, wallet: bool = True, timeout: float = 10.0) -> BitcoinRpc:
    return BitcoinRpc(
        settings.node_url,
        settings.node_username,
        settings.node_password,
        wallet=settings.wallet if wallet else None,
        timeout=timeout,
    )


def payment_uri(net: Network, address: str, amount: int, label: str) -> str:
    """BIP 21: ``bitcoin:<address>?amount=<coins>&label=<text>``, the amount exact (8 decimals,
    trailing zeros trimmed)."""
    text = Money(amount, net.coin).to_decimal_string()
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{net.uri_scheme}:{address}?amount={text}&label={urlquote(label, safe='')}"


def describe_error(exc: BitcoinError) -> str:
    """A short, actionable reason for an RPC failure (no secrets: the RPC errors carry none)."""
    if isinstance(exc, BitcoinAuthenticationError):
        return f"authentication failed: check node_username and node_password (rpcuser/rpcauth) ({exc})"
    if isinstance(exc, BitcoinUnreachable):
        return f"unreachable: {exc.reason} ({exc.url})"
    return str(exc)


class BitcoinRail(NoSubmissions, NoGateway, NoSending):
    name: ClassVar[str] = "bitcoin"
    test: ClassVar[bool] = False
    settings_model: ClassVar[type[RailSettings]] = BitcoinSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"node_password"})

    def methods(self, config: RailConfig) -> list[MethodSpec]:
        coin = network(settings_of(config).network).coin
        return [MethodSpec(coin, coin)]

    def keychain(self, config: RailConfig) -> Keychain:
        settings = settings_of(config)
        key = key_of(settings)

        async def covers(index: int) -> bool:
            async with node_client(settings) as node:
                info = await node.getaddressinfo(key.address(index))
            return info.ismine or info.iswatchonly

        return Keychain(
            key_id=key.key_id,
            derive=key.address,
            covers=covers,
            gap_limit=settings.gap_limit,
            recycle=settings.recycle_addresses,
        )

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        """The address the core allocated (derived from the key), described by a BIP 21 URI."""
        settings = settings_of(config)
        net = network(settings.network)
        if quote.currency != net.coin:
            raise ValueError(f"the {self.name} rail on {net.name} cannot take payment in {quote.currency}")
        if address is None:  # the core always allocates first (`keychain`)
            raise ValueError("the Bitcoin rail's addresses are allocated by the core")
        return Destination(
            address=address, payment_uri=payment_uri(net, address, quote.amount, request.order_id)
        )

    def watcher(self, config: RailConfig) -> Watcher | None:
        from kassa.rails.bitcoin.watcher import BitcoinWatcher

        settings = settings_of(config)
        return BitcoinWatcher(config, settings, key_of(settings))

    async def check(self, config: RailConfig) -> RailHealth:
        """Node reachable, on the configured chain and synced; the wallet loaded and watch-only.
        (The core adds whether the node watches every address handed out.)"""
        settings = settings_of(config)
        net = network(settings.network)
        key = key_of(settings)
        details: dict[str, Any] = {
            "node_url": settings.node_url,
            "network": net.name,
            "wallet": settings.wallet,
            "descriptor": key.descriptor(),
        }
        problems: list[str] = []
        try:
            async with node_client(settings, wallet=False) as node:
                info = await node.getblockchaininfo()
                details.update(chain=info.chain, blocks=info.blocks, headers=info.headers)
                details["node_version"] = (await node.getnetworkinfo()).subversion
                loaded = await node.listwallets()
            if info.chain != net.chain:
                problems.append(
                    f"the node runs chain {info.chain!r}, but network {net.name} is {net.chain!r}"
                )
            if info.initialblockdownload or info.headers - info.blocks > MAX_HEADER_LAG:
                problems.append(f"the node is syncing ({info.blocks} of {info.headers} blocks)")
            details["wallet_loaded"] = settings.wallet in loaded
            if settings.wallet in loaded:
                async with node_client(settings) as wallet:
                    winfo = await wallet.getwalletinfo()
                details["wallet_private_keys"] = winfo.private_keys_enabled
                if winfo.private_keys_enabled:
                    problems.append(
                        f"wallet {settings.wallet!r} can hold private keys: give Kassa its own "
                        "watch-only wallet (created with disable_private_keys)"
                    )
            else:
                problems.append(f"wallet {settings.wallet!r} is not loaded (the watcher creates or loads it)")
        except BitcoinError as exc:
            problems.append(f"node: {describe_error(exc)}")
        if problems:
            details["reason"] = "; ".join(problems)
        return RailHealth(ok=not problems, details=details)


class LitecoinSettings(BitcoinSettings):
    network: str = "litecoin"


class LitecoinRail(BitcoinRail):
    """The same rail under its own name, so one merchant can take BTC and LTC side by side."""

    name: ClassVar[str] = "litecoin"
    settings_model: ClassVar[type[RailSettings]] = LitecoinSettings
