"""The Monero rail: a fresh subaddress per order from the merchant's view-only monero-wallet-rpc.

Kassa never holds a spend key: the merchant runs monero-wallet-rpc with a view-only wallet (address
plus private view key) and gives Kassa its URL. For each order Kassa asks that wallet for a new
subaddress labelled with the order id; a watcher (:mod:`kassa.rails.monero.watcher`) follows the
wallet's incoming transfers and reports them to the core. docs/monero.md is the operator's guide.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, ClassVar, Final
from urllib.parse import quote as urlquote

from pydantic import Field, StrictInt, ValidationInfo, field_validator

from kassa.domain.money import Money
from kassa.errors import KassaError
from kassa.rails.base import (
    Destination,
    MethodSpec,
    NoGateway,
    NoKeychain,
    NoSubmissions,
    Outgoing,
    PayoutSettings,
    Prepared,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
    SendRequest,
    SendUnsupported,
    Unsigned,
    Watcher,
)
from kassa.rails.monero.rpc import (
    WALLET_RPC_ERROR_CODE_NOT_OPEN,
    MoneroAuthenticationError,
    MoneroDaemonRpc,
    MoneroError,
    MoneroRpcError,
    MoneroUnreachable,
    MoneroWalletRpc,
)
from kassa.rails.urls import RpcUrl

log = logging.getLogger("kassa.rails.monero")

CURRENCY: Final = "XMR"
MAX_WALLET_LAG: Final = 10
"""Blocks the wallet may trail the daemon before `check` calls it unhealthy (~20 min on mainnet)."""

_NETWORKS: Final = {"4": "mainnet", "8": "mainnet", "9": "testnet", "A": "testnet", "B": "testnet"}
_NETWORKS_STAGENET: Final = {"5": "stagenet", "7": "stagenet"}


Login = Annotated[str, Field(min_length=1, max_length=256)]


class MoneroSettings(PayoutSettings):
    """What a merchant configures (PUT /api/v1/payment-methods/monero); `password` and
    `daemon_password` are secrets: stored encrypted, shown masked."""

    wallet_rpc_url: RpcUrl
    """monero-wallet-rpc's base URL (a trailing /json_rpc is accepted), with a view-only wallet open."""
    username: Login | None = None
    """The user of monero-wallet-rpc's --rpc-login (HTTP digest auth); none for --disable-rpc-login."""
    password: Annotated[str, Field(max_length=256)] | None = None
    confirmations: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    """Confirmations this merchant wants for Monero payments (see docs/monero.md, "Confirmations")."""
    daemon_url: RpcUrl | None = None
    """monerod's RPC URL; optional, lets `check` compare the wallet's height with the daemon's."""
    daemon_username: Login | None = None
    daemon_password: Annotated[str, Field(max_length=256)] | None = None
    poll_interval: Annotated[float, Field(ge=0.2, le=300)] = 2.0
    """Seconds between the watcher's passes when nothing wakes it earlier."""
    account_index: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] = 0
    """The wallet account whose subaddresses receive the payments."""
    auto_refresh_period: Annotated[StrictInt, Field(ge=1, le=3600)] | None = None
    """If set, the watcher asks monero-wallet-rpc to refresh itself every N s (for --tx-notify)."""
    spend_wallet_rpc_url: RpcUrl | None = None
    """Custodial mode: a monero-wallet-rpc with the SAME wallet, spend key included, from which Kassa
    sends refunds and payouts (docs/payouts.md). Without it the merchant sends by hand, or signs."""
    spend_username: Login | None = None
    spend_password: Annotated[str, Field(max_length=256)] | None = None

    @field_validator("password")
    @classmethod
    def _password_needs_user(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("username") is None:
            raise ValueError("a password needs a username (monero-wallet-rpc --rpc-login user:password)")
        return value

    @field_validator("daemon_password")
    @classmethod
    def _daemon_password_needs_user(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("daemon_username") is None:
            raise ValueError("a daemon_password needs a daemon_username")
        return value

    @field_validator("spend_password")
    @classmethod
    def _spend_password_needs_user(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("spend_username") is None:
            raise ValueError("a spend_password needs a spend_username")
        return value

    @field_validator("username", "daemon_username", "spend_username")
    @classmethod
    def _no_colon(cls, value: str | None) -> str | None:
        if value is not None and ":" in value:
            raise ValueError("must not contain ':'")
        return value


def settings_of(config: RailConfig) -> MoneroSettings:
    return MoneroSettings.model_validate(config.settings)


def wallet_client(settings: MoneroSettings, timeout: float = 10.0) -> MoneroWalletRpc:
    return MoneroWalletRpc(settings.wallet_rpc_url, settings.username, settings.password, timeout=timeout)


def spend_client(settings: MoneroSettings, timeout: float = 60.0) -> MoneroWalletRpc:
    """The spend-capable wallet (SendUnsupported without one): building a transaction takes seconds."""
    if settings.spend_wallet_rpc_url is None:
        raise SendUnsupported("no spend_wallet_rpc_url: Kassa cannot spend from this Monero wallet")
    return MoneroWalletRpc(
        settings.spend_wallet_rpc_url, settings.spend_username, settings.spend_password, timeout=timeout
    )


def daemon_client(settings: MoneroSettings) -> MoneroDaemonRpc | None:
    if settings.daemon_url is None:
        return None
    return MoneroDaemonRpc(
        settings.daemon_url, username=settings.daemon_username, password=settings.daemon_password
    )


def payment_uri(address: str, amount: int, description: str) -> str:
    """`monero:<address>?tx_amount=<XMR>&tx_description=<text>` (the Monero URI scheme); the
    amount is exact, trailing zeros trimmed."""
    text = Money(amount, CURRENCY).to_decimal_string()
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"monero:{address}?tx_amount={text}&tx_description={urlquote(description, safe='')}"


def network_of(address: str) -> str:
    """The network a standard address or subaddress belongs to, from its first character."""
    first = address[:1]
    return _NETWORKS.get(first) or _NETWORKS_STAGENET.get(first) or "unknown"


def describe_error(exc: MoneroError) -> str:
    """A short, actionable reason for an RPC failure (no secrets: the RPC errors carry none)."""
    if isinstance(exc, MoneroAuthenticationError):
        return f"authentication failed: check username and password (--rpc-login) ({exc})"
    if isinstance(exc, MoneroUnreachable):
        return f"unreachable: {exc.reason} ({exc.url})"
    if isinstance(exc, MoneroRpcError) and exc.code == WALLET_RPC_ERROR_CODE_NOT_OPEN:
        return "monero-wallet-rpc has no wallet open: start it with --wallet-file, or open_wallet"
    return str(exc)


class MoneroRailUnavailable(KassaError):
    status = 503
    type = "api_error"
    code = "rail_unavailable"


class MoneroRail(NoSubmissions, NoGateway, NoKeychain):
    name: ClassVar[str] = "monero"
    test: ClassVar[bool] = False
    settings_model: ClassVar[type[RailSettings]] = MoneroSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password", "daemon_password", "spend_password"})
    can_send: ClassVar[bool] = True  # refunds go to the payer's address; Kassa sends with a spend wallet

    def spends(self, config: RailConfig) -> bool:
        return settings_of(config).spend_wallet_rpc_url is not None

    async def check_destination(self, config: RailConfig, destination: str) -> str:
        from kassa.rails.monero import spending

        return await spending.check_destination(settings_of(config), destination)

    async def prepare_send(self, config: RailConfig, request: SendRequest) -> Prepared:
        from kassa.rails.monero import spending

        return await spending.prepare_send(settings_of(config), request)

    async def relay(self, config: RailConfig, prepared: Prepared) -> None:
        from kassa.rails.monero import spending

        await spending.relay(settings_of(config), prepared)

    async def outgoing(self, config: RailConfig, reference: str) -> Outgoing:
        from kassa.rails.monero import spending

        return await spending.outgoing(settings_of(config), reference)

    async def prepare_unsigned(self, config: RailConfig, request: SendRequest) -> Unsigned:
        from kassa.rails.monero import spending

        return await spending.prepare_unsigned(settings_of(config), request)

    async def submit_signed(self, config: RailConfig, unsigned: str, signed: str) -> Prepared:
        from kassa.rails.monero import spending

        return await spending.submit_signed(settings_of(config), unsigned, signed)

    def methods(self, config: RailConfig) -> list[MethodSpec]:
        return [MethodSpec(CURRENCY, CURRENCY)]

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        """A new subaddress of the configured account, labelled with the order id (or, for a
        refreshed quote, the order's existing subaddress with a new payment URI)."""
        if quote.currency != CURRENCY:
            raise ValueError(f"the Monero rail cannot take payment in {quote.currency}")
        if address is not None:
            return Destination(
                address=address, payment_uri=payment_uri(address, quote.amount, f"Order {request.order_id}")
            )
        settings = settings_of(config)
        try:
            async with wallet_client(settings) as wallet:
                sub = await wallet.create_address(request.order_id, settings.account_index)
        except MoneroError as exc:
            log.warning("monero: merchant %s: create_address failed: %s", config.merchant_id, exc)
            raise MoneroRailUnavailable(
                f"the merchant's Monero wallet cannot give an address right now: {describe_error(exc)}",
                param="payment_methods",
            ) from None
        return Destination(
            address=sub.address,
            payment_uri=payment_uri(sub.address, quote.amount, f"Order {request.order_id}"),
        )

    def watcher(self, config: RailConfig) -> Watcher | None:
        from kassa.rails.monero.watcher import MoneroWatcher

        return MoneroWatcher(config, settings_of(config))

    async def check(self, config: RailConfig) -> RailHealth:
        """Reachable? Which heights? View-only? ok=False with `reason` when anything is wrong."""
        settings = settings_of(config)
        details: dict[str, Any] = {
            "wallet_rpc_url": settings.wallet_rpc_url,
            "account_index": settings.account_index,
        }
        problems: list[str] = []
        try:
            async with wallet_client(settings) as wallet:
                version = await wallet.get_version()
                details["wallet_rpc_version"] = f"{version.major}.{version.minor}"
                details["wallet_height"] = await wallet.get_height()
                account = await wallet.get_address(settings.account_index, [0])
                details["address"] = account.address
                details["network"] = network_of(account.address)
                details["view_only"] = await wallet.is_view_only()
        except MoneroError as exc:
            problems.append(f"wallet: {describe_error(exc)}")
        if details.get("view_only") is False:
            log.warning(
                "monero: merchant %s: the wallet at %s holds its SPEND KEY. Kassa only needs a "
                "view-only wallet; a hot wallet on the gateway puts the funds at risk",
                config.merchant_id,
                settings.wallet_rpc_url,
            )
            problems.append(
                "the wallet is NOT view-only: it holds the spend key, so anyone who reaches this "
                "wallet RPC can move the funds. Give Kassa a view-only wallet (see docs/monero.md)"
            )
        if settings.spend_wallet_rpc_url is not None:
            problems.extend(await _check_spend_wallet(settings, details))
        daemon = daemon_client(settings)
        if daemon is not None:
            details["daemon_url"] = settings.daemon_url
            try:
                async with daemon:
                    info = await daemon.get_info()
            except MoneroError as exc:
                problems.append(f"daemon: {describe_error(exc)}")
            else:
                details["daemon_height"] = info.height
                details["daemon_synchronized"] = info.synchronized
                details["daemon_nettype"] = info.nettype
                if "wallet_height" in details:
                    lag = info.height - details["wallet_height"]
                    details["wallet_lag"] = lag
                    if lag > MAX_WALLET_LAG:
                        problems.append(
                            f"the wallet is {lag} blocks behind the daemon (still syncing, or its "
                            "monero-wallet-rpc is connected to another daemon)"
                        )
                if not info.synchronized and info.target_height > info.height:
                    problems.append(f"the daemon is syncing ({info.height} of {info.target_height})")
        if problems:
            details["reason"] = "; ".join(problems)
        return RailHealth(ok=not problems, details=details)


async def _check_spend_wallet(settings: MoneroSettings, details: dict[str, Any]) -> list[str]:
    """Custodial mode: the spend wallet must be the same wallet as the view-only one, and spend."""
    details["spend_wallet_rpc_url"] = settings.spend_wallet_rpc_url
    try:
        async with spend_client(settings, timeout=10) as wallet:
            address = (await wallet.get_address(settings.account_index, [0])).address
            view_only = await wallet.is_view_only()
            balance = await wallet.get_balance(settings.account_index)
    except MoneroError as exc:
        return [f"spend wallet: {describe_error(exc)}"]
    details["spend_unlocked_balance"] = balance.unlocked_balance
    if view_only:
        return ["the spend wallet is view-only: it cannot send refunds or payouts"]
    if "address" in details and address != details["address"]:
        return ["the spend wallet is another wallet than the view-only one (their addresses differ)"]
    return []
