"""The `payment` setting: @servebase/payment's configuration, as its seed gives it, in Kassa's file.

    [payment]
    gateway = "newebpay"          # or "dummy"
    merchant = "m_..."            # Kassa: the merchant whose orders these payments are
    [payment.gateways.newebpay]
    testing = true
    MerchantID = "MS12345678"
    hashkey = "..."               # 32 characters
    hashiv = "..."                # 16 characters
    ReturnURL = "https://pay.example.com/ext/pay/done"
    NotifyURL = "https://pay.example.com/extapi/pay/notify"

Kept free of Kassa's services: `kassa.config` imports it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kassa.rails.newebpay.rail import CURRENCY as NEWEBPAY_CURRENCY
from kassa.rails.newebpay.rail import HashIv, HashKey, MerchantId
from kassa.rails.urls import RpcUrl

HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)]


class DummyGateway(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewebPayGateway(BaseModel):
    """The seed's field names; they become the merchant's `newebpay` rail settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    testing: bool = False
    MerchantID: MerchantId
    hashkey: Annotated[HashKey, Field(repr=False)]
    hashiv: Annotated[HashIv, Field(repr=False)]
    ReturnURL: HttpsUrl | None = None  # default: <base_url>/ext/pay/done
    NotifyURL: HttpsUrl | None = None  # default: <base_url>/extapi/pay/notify
    Email: Annotated[str, Field(max_length=320)] | None = None  # accepted as in the seed; not sent
    gateway_url: RpcUrl | None = None  # Kassa: post the form here instead (a proxy; the tests' stand-in)


class Gateways(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dummy: DummyGateway | None = None
    newebpay: NewebPayGateway | None = None


class PaymentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gateway: Literal["dummy", "newebpay"]
    gateways: Gateways
    merchant: Annotated[str, Field(min_length=1, max_length=40)]
    """Kassa's merchant id whose orders these payments are."""
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "TWD"
    """What `amount` is in (NewebPay takes TWD only)."""
    sign: Literal["api_key", "open"] = "api_key"
    """Who may call /pay/sign: the shop's backend with a merchant API key (servebase's
    `perm.sign` hook, kept on the shop's side), or anyone (a shop whose own proxy checks)."""

    @model_validator(mode="after")
    def _gateway_configured(self) -> PaymentSettings:
        if getattr(self.gateways, self.gateway) is None:
            raise ValueError(f"gateway {self.gateway!r} has no entry under payment.gateways")
        if self.gateway == "newebpay" and self.currency != NEWEBPAY_CURRENCY:
            raise ValueError("NewebPay takes TWD only: leave payment.currency at TWD")
        return self
