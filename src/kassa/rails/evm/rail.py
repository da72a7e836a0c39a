"""The EVM rail: ETH and ERC-20 tokens to an address per order derived from the merchant's xpub.

The merchant gives the extended public key of their account (m/44'/60'/0'); Kassa derives the
address of each order at m/44'/60'/0'/0/i (the core allocates the index and records it, for a later
sweep: :mod:`kassa.services.addresses`) and never holds a key. One address takes every method of
the order's chain(s); a sighting names its method, so a token transfer never counts as ETH.

Chains are configured by chain id with their RPC URL(s), a confirmations default and the tokens
accepted there (contract, symbol, decimals: the symbol must be a Kassa currency with exactly those
decimals, and the watcher and `check` read the contract to confirm both). The watcher
(:mod:`kassa.rails.evm.watcher`) follows blocks over HTTP. docs/evm.md is the operator's guide.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Final

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from kassa.domain.currencies import UnknownCurrency, get_currency
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
from kassa.rails.evm.keys import EvmKey, parse_evm_key
from kassa.rails.evm.rpc import EvmError, EvmRpc
from kassa.rails.evm.uri import native_uri, token_uri
from kassa.rails.urls import RpcUrl

log = logging.getLogger("kassa.rails.evm")

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
NATIVE_DECIMALS: Final = 18


class TokenSettings(RailSettings):
    address: str
    """The token contract's address (0x + 40 hex digits)."""
    symbol: Annotated[str, Field(min_length=2, max_length=10)]
    """A currency Kassa knows (USDC, USDT, ...): orders are priced and shown in it."""
    decimals: Annotated[StrictInt, Field(ge=0, le=36)]
    """The contract's decimals; must be the currency's too (checked against the contract)."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS.fullmatch(value):
            raise ValueError("must be a contract address: 0x and 40 hex digits")
        return value.lower()

    @field_validator("symbol")
    @classmethod
    def _known(cls, value: str) -> str:
        return _coin(value.upper())

    @model_validator(mode="after")
    def _decimals_match(self) -> TokenSettings:
        exponent = get_currency(self.symbol).exponent
        if self.decimals != exponent:
            raise ValueError(
                f"{self.symbol} has {exponent} decimals in Kassa; a {self.decimals}-decimal token cannot "
                f"be taken as {self.symbol}"
            )
        return self


class ChainSettings(RailSettings):
    chain_id: Annotated[StrictInt, Field(ge=1, lt=2**53)]
    name: Annotated[str, Field(min_length=1, max_length=40)]
    """Shown to the customer next to the amount: the chain they must pay on (e.g. "Ethereum")."""
    rpc_urls: Annotated[list[RpcUrl], Field(min_length=1, max_length=5)]
    """The node(s) to read; the next one is tried when one fails."""
    confirmations: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    native: Annotated[str, Field(min_length=2, max_length=10)] | None = "ETH"
    """The chain's own coin when it is accepted (an 18-decimal Kassa currency), or null."""
    tokens: Annotated[list[TokenSettings], Field(default_factory=list, max_length=20)]

    @field_validator("native")
    @classmethod
    def _native_known(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = _coin(value.upper())
        if get_currency(code).exponent != NATIVE_DECIMALS:
            raise ValueError(f"a native coin has {NATIVE_DECIMALS} decimals; {code} has not")
        return code

    @model_validator(mode="after")
    def _something_accepted(self) -> ChainSettings:
        if self.native is None and not self.tokens:
            raise ValueError("accepts nothing: set native (e.g. ETH) or list tokens")
        symbols = [t.symbol for t in self.tokens] + ([self.native] if self.native else [])
        if len(set(symbols)) != len(symbols):
            raise ValueError("each coin at most once per chain")
        return self


class EvmSettings(RailSettings):
    """What a merchant configures (PUT /api/v1/payment-methods/evm)."""

    xpub: Annotated[str, Field(min_length=4, max_length=2000)]
    """The account's extended public key (m/44'/60'/0'); never a private key."""
    chains: Annotated[list[ChainSettings], Field(min_length=1, max_length=10)]
    confirmations: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    """The default for chains that set none."""
    poll_interval: Annotated[float, Field(ge=0.2, le=300)] = 4.0
    exchange_warning: StrictBool = False
    """Warn customers on the payment page not to pay from an exchange account (exchanges often
    send from contracts or in batches, which a watcher may not see as a plain transfer)."""

    @field_validator("xpub")
    @classmethod
    def _key_reads(cls, value: str) -> str:
        _parsed(value.strip())  # ValueError: what is wrong
        return value.strip()

    @field_validator("chains")
    @classmethod
    def _unique_chains(cls, value: list[ChainSettings]) -> list[ChainSettings]:
        ids = [c.chain_id for c in value]
        if len(set(ids)) != len(ids):
            raise ValueError("each chain_id at most once")
        return value


def _coin(code: str) -> str:
    try:
        currency = get_currency(code)
    except UnknownCurrency:
        raise ValueError(f"{code} is not a currency Kassa knows") from None
    if not currency.crypto:
        raise ValueError(f"{code} is not a coin")
    return currency.code


class Offer:
    """What one method of the configuration is: a chain, and its native coin or a token."""

    __slots__ = ("chain", "currency", "method", "token")

    def __init__(self, method: str, chain: ChainSettings, currency: str, token: TokenSettings | None) -> None:
        self.method, self.chain, self.currency, self.token = method, chain, currency, token


def offers(settings: EvmSettings) -> dict[str, Offer]:
    """Method id -> what it is. A coin offered on one chain only is named by its symbol ("ETH",
    "USDC"); offered on several, by symbol@chain_id ("USDC@137")."""
    pairs: list[tuple[str, ChainSettings, TokenSettings | None]] = []
    for chain in settings.chains:
        if chain.native:
            pairs.append((chain.native, chain, None))
        pairs.extend((token.symbol, chain, token) for token in chain.tokens)
    count: dict[str, int] = {}
    for symbol, _, _ in pairs:
        count[symbol] = count.get(symbol, 0) + 1
    result = {}
    for symbol, chain, token in pairs:
        method = symbol if count[symbol] == 1 else f"{symbol}@{chain.chain_id}"
        result[method] = Offer(method, chain, symbol, token)
    return result


def settings_of(config: RailConfig) -> EvmSettings:
    return EvmSettings.model_validate(config.settings)


def key_of(settings: EvmSettings) -> EvmKey:
    return _parsed(settings.xpub)


@lru_cache(maxsize=256)
def _parsed(text: str) -> EvmKey:
    """Parsing a key takes ~0.5 ms, and an order reads the settings several times: once per key."""
    return parse_evm_key(text)


def describe_error(exc: EvmError) -> str:
    return str(exc)


class EvmRail(NoSubmissions, NoGateway, NoSending):
    name: ClassVar[str] = "evm"
    test: ClassVar[bool] = False
    settings_model: ClassVar[type[RailSettings]] = EvmSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def methods(self, config: RailConfig) -> list[MethodSpec]:
        return [MethodSpec(o.method, o.currency) for o in offers(settings_of(config)).values()]

    def keychain(self, config: RailConfig) -> Keychain:
        key = key_of(settings_of(config))

        async def covers(index: int) -> bool:  # the watcher derives what it watches: nothing to import
            return True

        # No gap limit: an EVM wallet shows the accounts one adds, it does not scan ahead for them.
        return Keychain(key_id=key.key_id, derive=key.address, covers=covers, gap_limit=None)

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        """The address the core allocated, with an EIP-681 URI for this method's chain and coin."""
        if address is None:
            raise ValueError("the EVM rail's addresses are allocated by the core")
        settings = settings_of(config)
        offer = offers(settings).get(quote.method)
        if offer is None or offer.currency != quote.currency:
            raise ValueError(f"the EVM rail does not offer {quote.method} in {quote.currency}")
        chain_id = offer.chain.chain_id
        if offer.token is None:
            uri = native_uri(address, quote.amount, chain_id)
        else:
            uri = token_uri(offer.token.address, address, quote.amount, chain_id)
        note = f"Send {offer.currency} on {offer.chain.name} (chain id {chain_id}) only: "
        note += "sent on another chain, it does not reach this order."
        if settings.exchange_warning:
            note += " Do not pay from an exchange account: send from a wallet you control."
        return Destination(address=address, payment_uri=uri, note=note)

    def watcher(self, config: RailConfig) -> Watcher | None:
        from kassa.rails.evm.watcher import EvmWatcher

        settings = settings_of(config)
        return EvmWatcher(config, settings, key_of(settings))

    async def check(self, config: RailConfig) -> RailHealth:
        """Each chain: a node answers, with the configured chain id, and each token contract reports
        the configured symbol and decimals."""
        settings = settings_of(config)
        problems: list[str] = []
        chains: list[dict[str, Any]] = []
        for chain in settings.chains:
            entry: dict[str, Any] = {"chain_id": chain.chain_id, "name": chain.name}
            chains.append(entry)
            try:
                async with EvmRpc(chain.rpc_urls[0]) as node:
                    entry["node_chain_id"] = await node.eth_chainId()
                    entry["block"] = await node.eth_blockNumber()
                    problems.extend(await check_tokens(node, chain))
            except EvmError as exc:
                problems.append(f"{chain.name}: {describe_error(exc)}")
                continue
            if entry["node_chain_id"] != chain.chain_id:
                problems.append(
                    f"{chain.name}: the node at {chain.rpc_urls[0]} is on chain {entry['node_chain_id']}, "
                    f"not {chain.chain_id}"
                )
        details: dict[str, Any] = {"chains": chains}
        if problems:
            details["reason"] = "; ".join(problems)
        return RailHealth(ok=not problems, details=details)


async def check_tokens(node: EvmRpc, chain: ChainSettings) -> list[str]:
    """What is wrong with the chain's configured tokens, read from their contracts."""
    problems = []
    for token in chain.tokens:
        try:
            decimals = await node.erc20_decimals(token.address)
            symbol = await node.erc20_symbol(token.address)
        except EvmError as exc:
            problems.append(f"{chain.name}: token {token.symbol} at {token.address}: {exc}")
            continue
        if decimals != token.decimals:
            problems.append(
                f"{chain.name}: the contract at {token.address} has {decimals} decimals, not {token.decimals}"
            )
        if symbol.upper() != token.symbol:
            problems.append(
                f"{chain.name}: the contract at {token.address} is {symbol!r}, not {token.symbol}"
            )
    return problems
