"""The Grin rail: Kassa as a proxy in front of the merchant's Grin wallet (KnockturnAllee's model).

Grin has no addresses to watch: the payer's wallet and the receiver's wallet build the transaction
together. The payer sends its slate to the order's URL; Kassa checks it against the order and
forwards it to the merchant's wallet (Foreign API `receive_tx`), whose answer goes back to the payer,
who finalizes and posts the transaction. A watcher then follows the wallet's transaction log
(Owner API v3 `retrieve_txs`) and the transaction's kernel on the node (`get_kernel`) to count
confirmations. Kassa holds no Grin keys: the wallet does. docs/grin.md is the operator's guide.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, ClassVar, Final
from urllib.parse import quote as urlquote

from pydantic import Field, StrictInt

from kassa.rails.base import (
    CounterpartUnavailable,
    Destination,
    MethodSpec,
    NoGateway,
    NoKeychain,
    NoSending,
    Offer,
    PayloadInvalid,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
    Sighting,
    SubmissionRefused,
    SubmitRequest,
    Submitted,
    Watcher,
)
from kassa.rails.grin.rpc import (
    GrinAuthenticationError,
    GrinError,
    GrinForeignApi,
    GrinNodeApi,
    GrinOwnerApi,
    GrinRefused,
    GrinUnreachable,
)
from kassa.rails.grin.slate import SlateError, parse_slate
from kassa.rails.urls import RpcUrl

log = logging.getLogger("kassa.rails.grin")

CURRENCY: Final = "GRIN"
MAX_WALLET_LAG: Final = 5
"""Blocks the wallet's view may trail the node before `check` calls it unhealthy."""

Secret = Annotated[str, Field(min_length=1, max_length=256)]


class GrinSettings(RailSettings):
    """What a merchant configures (PUT /api/v1/payment-methods/grin). `owner_api_secret`,
    `wallet_password` and `node_api_secret` are secrets: stored encrypted, shown masked."""

    wallet_url: RpcUrl
    """The wallet's Foreign API listener (`grin-wallet listen`), e.g. http://127.0.0.1:3415."""
    owner_api_url: RpcUrl
    """The wallet's Owner API (`grin-wallet owner_api`), e.g. http://127.0.0.1:3420."""
    owner_api_secret: Secret | None = None
    """The wallet's `.owner_api_secret` (HTTP Basic, user `grin`); none if the API has no secret."""
    wallet_password: Annotated[str, Field(max_length=256)] = ""
    wallet_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    node_api_url: RpcUrl
    """The node's API (its Foreign API at /v2/foreign), e.g. http://127.0.0.1:3413."""
    node_api_secret: Secret | None = None
    """The node's `.foreign_api_secret` (HTTP Basic, user `grin`); none if it has no secret."""
    confirmations: Annotated[StrictInt, Field(ge=0, le=10_000)] | None = None
    """Confirmations this merchant wants for Grin payments; orders may ask for their own."""
    poll_interval: Annotated[float, Field(ge=0.2, le=300)] = 10.0
    timeout: Annotated[float, Field(ge=1, le=120)] = 30.0
    """Seconds to wait for the wallet or the node to answer."""


def settings_of(config: RailConfig) -> GrinSettings:
    return GrinSettings.model_validate(config.settings)


def foreign_api(settings: GrinSettings) -> GrinForeignApi:
    return GrinForeignApi(settings.wallet_url, timeout=settings.timeout)


def owner_api(settings: GrinSettings) -> GrinOwnerApi:
    return GrinOwnerApi(
        settings.owner_api_url,
        api_secret=settings.owner_api_secret,
        wallet_password=settings.wallet_password,
        wallet_name=settings.wallet_name,
        timeout=settings.timeout,
    )


def node_api(settings: GrinSettings) -> GrinNodeApi:
    return GrinNodeApi(settings.node_api_url, api_secret=settings.node_api_secret, timeout=settings.timeout)


def order_url(base_url: str, merchant_id: str, order_ref: str) -> str:
    """The order's page, which is also where the payer's wallet sends its slate."""
    return f"{base_url}/merchants/{urlquote(merchant_id, safe='')}/orders/{urlquote(order_ref, safe='')}"


def describe_error(exc: GrinError) -> str:
    """A short, actionable reason (the clients put no secret in their messages)."""
    if isinstance(exc, GrinAuthenticationError):
        return f"authentication failed: check the API secret and the wallet password ({exc})"
    if isinstance(exc, GrinUnreachable):
        return f"unreachable: {exc.reason} ({exc.url})"
    return str(exc)


class GrinRail(NoGateway, NoSending, NoKeychain):
    name: ClassVar[str] = "grin"
    test: ClassVar[bool] = False
    settings_model: ClassVar[type[RailSettings]] = GrinSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"owner_api_secret", "wallet_password", "node_api_secret"}
    )

    def methods(self, config: RailConfig) -> list[MethodSpec]:
        return [MethodSpec(CURRENCY, CURRENCY)]

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        """The order's URL: the payer's wallet sends its slate there (`grin-wallet send -d URL`)."""
        url = address or order_url(
            request.base_url, config.merchant_id, request.merchant_order_id or request.order_id
        )
        return Destination(address=url, payment_uri=url)

    def watcher(self, config: RailConfig) -> Watcher | None:
        from kassa.rails.grin.watcher import GrinWatcher

        return GrinWatcher(settings_of(config))

    def read_submission(self, config: RailConfig, payload: Any) -> Offer:
        try:
            slate = parse_slate(payload)
        except SlateError as exc:
            raise PayloadInvalid(str(exc)) from None
        return Offer(reference=slate.id, amount=slate.amount)

    async def submit(self, config: RailConfig, request: SubmitRequest, payload: Any) -> Submitted:
        """`receive_tx` on the merchant's wallet; its answer (the slate it signed) is the payer's."""
        slate = parse_slate(payload)
        settings = settings_of(config)
        try:
            async with foreign_api(settings) as wallet:
                answer = await wallet.receive_tx(payload)
        except GrinRefused as exc:
            raise SubmissionRefused(str(exc), exc.detail) from None
        except GrinError as exc:
            log.warning("grin: merchant %s: receive_tx failed: %s", config.merchant_id, exc)
            raise CounterpartUnavailable(describe_error(exc)) from None
        try:
            signed = parse_slate(answer)
        except SlateError as exc:
            raise CounterpartUnavailable(f"the wallet answered with an unreadable slate: {exc}") from None
        # A V4 answer (S2) carries no amount: the wallet keeps only its own signature and output.
        same = signed.id == slate.id and (
            signed.state == "S2" if slate.version == 4 else signed.amount == slate.amount
        )
        if not same:
            raise CounterpartUnavailable("the wallet answered with a different slate")
        return Submitted(
            answer=answer,
            sighting=Sighting(
                destination=request.destination, reference=slate.id, amount=slate.amount, confirmations=0
            ),
        )

    async def check(self, config: RailConfig) -> RailHealth:
        """Wallet listener, owner API and node reachable; the wallet's view of the chain current."""
        settings = settings_of(config)
        details: dict[str, Any] = {
            "wallet_url": settings.wallet_url,
            "owner_api_url": settings.owner_api_url,
            "node_api_url": settings.node_api_url,
        }
        problems: list[str] = []
        try:
            async with foreign_api(settings) as wallet:
                version = await wallet.check_version()
            details["foreign_api_version"] = version.get("foreign_api_version")
            details["slate_versions"] = version.get("supported_slate_versions")
        except GrinError as exc:
            problems.append(f"wallet listener: {describe_error(exc)}")
        try:
            async with owner_api(settings) as owner:
                details["wallet_height"] = await owner.node_height()
        except GrinError as exc:
            problems.append(f"owner API: {describe_error(exc)}")
        try:
            async with node_api(settings) as node:
                details["node_height"] = await node.get_tip()
        except GrinError as exc:
            problems.append(f"node: {describe_error(exc)}")
        if "wallet_height" in details and "node_height" in details:
            lag = details["node_height"] - details["wallet_height"]
            details["wallet_lag"] = lag
            if lag > MAX_WALLET_LAG:
                problems.append(f"the wallet is {lag} blocks behind the node (is it on another node?)")
        if problems:
            details["reason"] = "; ".join(problems)
        return RailHealth(ok=not problems, details=details)
