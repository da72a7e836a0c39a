"""The rail contract every payment rail implements (docs/rails.md explains it for third parties).

A rail is found by name through the `kassa.rails` entry-point group. It validates its own settings,
names the payment methods it offers, gives each order a destination, and (for chain rails) watches
for payments and reports what it sees through a `Reporter`. A proxy rail (Grin) also forwards what a
payer submits (a slate) to the merchant's wallet: `read_submission` says what the payload offers,
the core checks it against the order, then `submit` forwards it. Rails that take no submissions
raise `SubmissionUnsupported` from both. A gateway rail (a card gateway such as NewebPay) sends the
payer's browser to the gateway's own page with a signed form (`payment_form`) and learns the outcome
from the gateway's push to Kassa (`notified`, which verifies it before anything is read). Rails
without a gateway page raise `GatewayUnsupported` from both. A rail never changes an order: the core
turns its observations and notices into transitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class RailSettings(BaseModel):
    """Base of every rail's settings model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class PayoutSettings(RailSettings):
    """Settings of a rail whose wallet can pay the merchant out (docs/payouts.md)."""

    payout_address: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    """Where payouts go unless a payout names another; the rail checks it when it is saved."""
    payout_minimum: Annotated[StrictInt, Field(ge=0, lt=2**256)] = 0
    """The smallest payout, in minor units: automatic payouts wait until the balance reaches it."""


@dataclass(frozen=True, slots=True)
class RailConfig:
    """One merchant's configuration of one rail, secrets decrypted (never log it)."""

    merchant_pk: int
    merchant_id: str
    rail: str
    settings: dict[str, Any]

    def __repr__(self) -> str:
        return f"RailConfig(merchant={self.merchant_id!r}, rail={self.rail!r})"


@dataclass(frozen=True, slots=True)
class MethodSpec:
    method: str  # what the customer picks, e.g. "XMR"
    currency: str | None  # what they pay in; None: the order's own currency (the test rail)


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    order_id: str
    amount: int  # in the order currency's minor units
    currency: str
    expires_at: datetime
    merchant_order_id: str | None = None
    base_url: str = ""  # where Kassa is reachable, for rails that give the payer a Kassa URL


@dataclass(frozen=True, slots=True)
class Quote:
    method: str
    currency: str  # the currency the customer pays in
    amount: int  # due, in that currency's minor units (rounded up)
    rate: Decimal  # order currency units per one unit of `currency`
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Destination:
    address: str | None = None
    payment_uri: str | None = None
    note: str | None = None  # one line for the payer next to the address (the chain to pay on)


@dataclass(slots=True)
class Sighting:
    """One transfer a watcher saw: to which destination, how much, how deep. (Not frozen: a
    watcher builds one per transfer and pass, and a frozen dataclass costs three times as much.)"""

    destination: str | None  # None: known by its reference (a payment or submission seen before)
    reference: str  # unique per transfer and output, stable from pool to block (idempotency key)
    amount: int  # in the method currency's minor units
    confirmations: int
    rejected: bool = False  # left the pool, double-spent, or reorged out
    replaceable: bool = False  # unconfirmed and signalling it may be replaced (BIP 125 RBF)
    method: str | None = None  # what it pays, where one address takes several (ETH and tokens)


@dataclass(frozen=True, slots=True)
class Keychain:
    """How a rail that derives each order's address from the merchant's public key (an xpub)
    does it. The core allocates the index (atomically, never twice for one `key_id`, even across
    merchants sharing a key) and records it; the rail only derives and watches."""

    key_id: str  # stable id of the key, script and network (different spellings, same id)
    derive: Callable[[int], str]  # index -> address; pure, no I/O
    covers: Callable[[int], Awaitable[bool]]  # does the counterpart watch the address at this index?
    gap_limit: int | None = 20  # how far past the last paid address the merchant's wallet looks
    # (None: the merchant's wallet does not scan for addresses, e.g. EVM accounts are added by hand)
    recycle: bool = False  # hand out addresses of expired, never-paid orders again


@dataclass(frozen=True, slots=True)
class Offer:
    """What a payer's submitted payload offers, read before anything is forwarded."""

    reference: str  # stable id of the payload (a slate id): the payment's reference if accepted
    amount: int  # in the method currency's minor units


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    order_id: str
    amount: int  # due, in the method currency's minor units
    currency: str
    destination: str | None


@dataclass(frozen=True, slots=True)
class Submitted:
    answer: Any  # the counterpart's answer, handed to the payer as it is (e.g. the signed slate)
    sighting: Sighting  # what the core records: the payment, unconfirmed


@dataclass(frozen=True, slots=True)
class FormRequest:
    """What a gateway rail needs to build the payer's form to its page (built when it is used:
    gateways refuse stale forms)."""

    order_id: str
    destination: str  # the quote's destination: the gateway's order number for this payment
    amount: int  # due, in the method currency's minor units
    currency: str
    description: str | None
    email: str | None
    language: str | None  # a hint for the gateway page, e.g. "en" or "zh-tw"
    notify_url: str  # where the gateway POSTs its notification (Kassa's or a front's route)
    return_url: str  # where the gateway sends the payer back after paying (a POST)
    back_url: str | None = None  # a link back to the shop while paying


@dataclass(frozen=True, slots=True)
class PaymentForm:
    """The payer's browser sends `fields` to `url` with `method` (an auto-submitting form)."""

    url: str
    method: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class Notice:
    """A gateway's notification, verified by the rail: the outcome of the payment to `destination`."""

    destination: str  # the quote destination it is about (the order number given in the form)
    outcome: Literal["paid", "pending", "failed"]
    reference: str  # the payment's reference (stable across repeats of the same notification)
    amount: int | None  # charged, in the method currency's minor units; None: exactly what was due
    message: str = ""  # the gateway's words (a decline reason), for the merchant
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the gateway's trade number and type


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Money to send out (a refund, a payout): `reference` is Kassa's id of it, unique."""

    reference: str
    destination: str
    amount: int  # in the currency's minor units; the network's fee is taken from it
    currency: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """A transaction built and signed but not broadcast: Kassa records it before `relay`, and
    broadcasting the same transaction again never pays twice."""

    reference: str  # the transaction's id
    received: int  # what the destination gets
    network_fee: int  # the network's fee, taken from the amount (received + network_fee <= amount)
    blob: str  # what `relay` broadcasts (opaque to the core)
    final: bool = False  # final as soon as it is relayed (the test rail)


@dataclass(frozen=True, slots=True)
class Unsigned:
    """A transaction for the merchant's own wallet to sign (a manual payout)."""

    blob: str  # handed to the merchant as it is
    received: int
    network_fee: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What the wallet knows of a transaction Kassa sent: `unknown` (never broadcast, or forgotten),
    `pending` (in the pool or not deep enough), `confirmed` (final), `failed` (dropped, double-spent)."""

    state: Literal["unknown", "pending", "confirmed", "failed"]
    confirmations: int = 0


class SubmissionUnsupported(Exception):
    """This rail takes no submitted payments (only proxy rails do)."""


class PayloadInvalid(ValueError):
    """The payer's payload cannot be read; the message says why, for the payer."""


class SubmissionRefused(Exception):
    """The counterpart refused the payload; `answer` is what it said, for the payer."""

    def __init__(self, message: str, answer: Any = None) -> None:
        super().__init__(message)
        self.answer = answer


class GatewayUnsupported(Exception):
    """This rail has no gateway page and takes no pushed notifications (only gateway rails do)."""


class SendUnsupported(Exception):
    """This rail (or this configuration of it) cannot spend: the merchant sends the money by hand."""


class SendRefused(Exception):
    """The counterpart refused to send (not enough funds, a destination it rejects); final."""


class DestinationInvalid(ValueError):
    """A destination (a refund address) this rail cannot send to; the message says why."""


class NoticeInvalid(ValueError):
    """A pushed notification failed verification or cannot be read; the message names no secret."""


class CounterpartUnavailable(Exception):
    """The counterpart (the merchant's wallet, a gateway) could not be reached; a retry may work.
    The message names no secret."""


@dataclass(slots=True)
class RailHealth:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)


class Reporter(Protocol):
    """What a watcher may ask of the core."""

    async def report(self, sighting: Sighting) -> None: ...

    async def pending_references(self) -> set[str]:
        """References of this rail's payments that are not final yet (to notice drops)."""
        ...

    async def derived(self) -> int:
        """How many addresses the core derived from this configuration's key (the next index):
        a watcher whose node must know the addresses in advance imports at least these."""
        ...

    async def submitted_references(self) -> set[str]:
        """References of payloads submitted through this rail whose outcome Kassa never learnt
        (it stopped while the counterpart answered): report them if the counterpart has them."""
        ...

    async def load_state(self) -> dict[str, Any]: ...

    async def save_state(self, state: dict[str, Any]) -> None: ...


Wake = Callable[[float], Awaitable[bool]]
"""`await wake(seconds)` sleeps up to that long; it returns True early when a notification arrives
(e.g. monero-wallet-rpc's --tx-notify calling `POST /api/v1/payment-methods/{rail}/notify`)."""


class Watcher(Protocol):
    async def run(self, reporter: Reporter, wake: Wake) -> None:
        """Watch until cancelled, resuming from `reporter.load_state()`; raise to report trouble."""
        ...


class Rail(Protocol):
    name: ClassVar[str]
    test: ClassVar[bool]  # orders paid through it are test orders
    settings_model: ClassVar[type[RailSettings]]
    secret_fields: ClassVar[frozenset[str]]  # written, never read back through the API
    gateway_page: ClassVar[bool]  # the payer pays on the gateway's own page (`payment_form`)
    can_send: ClassVar[bool]  # refunds go to an address the customer gives, and Kassa may spend
    # (`spends(config)` says whether this configuration does); else the merchant refunds by hand

    def methods(self, config: RailConfig) -> list[MethodSpec]: ...

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        """A destination for this order's payment. With `address` (a quote was refreshed after
        the destination was allocated) keep that address and only describe it anew (the payment
        URI carries the new amount): money sent to the old URI must still reach this order."""
        ...

    def watcher(self, config: RailConfig) -> Watcher | None: ...

    def keychain(self, config: RailConfig) -> Keychain | None:
        """How this configuration derives addresses from a public key; None when the rail (or the
        counterpart's wallet) gives addresses itself. No I/O."""
        ...

    async def check(self, config: RailConfig) -> RailHealth: ...

    def read_submission(self, config: RailConfig, payload: Any) -> Offer:
        """What a payer's payload offers (PayloadInvalid when it cannot be read); no I/O."""
        ...

    async def submit(self, config: RailConfig, request: SubmitRequest, payload: Any) -> Submitted:
        """Forward the payload to the counterpart; SubmissionRefused or CounterpartUnavailable."""
        ...

    def payment_form(self, config: RailConfig, request: FormRequest) -> PaymentForm:
        """The signed form that opens the gateway's page for this payment; no I/O."""
        ...

    def spends(self, config: RailConfig) -> bool:
        """Whether Kassa can send money with this configuration (a spend-capable wallet); no I/O."""
        ...

    async def check_destination(self, config: RailConfig, destination: str) -> str:
        """The destination as this rail writes it, or DestinationInvalid (network, checksum, form);
        CounterpartUnavailable when the rail needs its wallet to tell."""
        ...

    async def prepare_send(self, config: RailConfig, request: SendRequest) -> Prepared:
        """Build and sign the transaction without broadcasting it: SendUnsupported (send by hand),
        SendRefused (not enough funds, an amount that does not cover the network fee),
        CounterpartUnavailable."""
        ...

    async def relay(self, config: RailConfig, prepared: Prepared) -> None:
        """Broadcast a prepared transaction; again is harmless. SendRefused, CounterpartUnavailable."""
        ...

    async def outgoing(self, config: RailConfig, reference: str) -> Outgoing:
        """What the wallet knows of a transaction sent from it (CounterpartUnavailable)."""
        ...

    async def prepare_unsigned(self, config: RailConfig, request: SendRequest) -> Unsigned:
        """A transaction for the merchant to sign with their own wallet (a manual payout)."""
        ...

    async def submit_signed(self, config: RailConfig, unsigned: str, signed: str) -> Prepared:
        """Check that `signed` is `unsigned` signed, and broadcast it (DestinationInvalid when it is
        not; SendRefused, CounterpartUnavailable)."""
        ...

    def notified(self, config: RailConfig, body: dict[str, str]) -> Notice:
        """Verify and read a notification the gateway POSTed (form fields); NoticeInvalid when it
        fails verification. The core then checks it against the stored payment; no I/O."""
        ...


class NoSubmissions:
    """The submission half of the contract for rails that take none (every rail but proxies)."""

    def read_submission(self, config: RailConfig, payload: Any) -> Offer:
        raise SubmissionUnsupported(f"payment rail {config.rail!r} takes no submitted payments")

    async def submit(self, config: RailConfig, request: SubmitRequest, payload: Any) -> Submitted:
        raise SubmissionUnsupported(f"payment rail {config.rail!r} takes no submitted payments")


def keychain_of(rail: Rail, config: RailConfig) -> Keychain | None:
    """The rail's keychain; None too for a rail written before `keychain` joined the contract."""
    method = getattr(rail, "keychain", None)
    return method(config) if method is not None else None


class NoKeychain:
    """For rails whose addresses come from the counterpart (a wallet RPC) or that have none."""

    def keychain(self, config: RailConfig) -> Keychain | None:
        return None


class NoGateway:
    """The gateway half of the contract for rails without a gateway page (every rail but card
    gateways and the test rail)."""

    gateway_page: ClassVar[bool] = False

    def payment_form(self, config: RailConfig, request: FormRequest) -> PaymentForm:
        raise GatewayUnsupported(f"payment rail {config.rail!r} has no gateway page")

    def notified(self, config: RailConfig, body: dict[str, str]) -> Notice:
        raise GatewayUnsupported(f"payment rail {config.rail!r} takes no pushed notifications")


_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))


class NoSending:
    """The sending half of the contract for rails that cannot spend (view-only wallets, proxies,
    card gateways without a refund call here): the merchant sends and marks the refund sent."""

    can_send: ClassVar[bool] = False

    def spends(self, config: RailConfig) -> bool:
        return False

    async def check_destination(self, config: RailConfig, destination: str) -> str:
        value = destination.strip()
        if not 1 <= len(value) <= 500 or not set(value) <= _PRINTABLE:
            raise DestinationInvalid("a destination is 1 to 500 printable characters without spaces")
        return value

    async def prepare_send(self, config: RailConfig, request: SendRequest) -> Prepared:
        raise SendUnsupported(f"payment rail {config.rail!r} cannot send: send it and mark it sent")

    async def relay(self, config: RailConfig, prepared: Prepared) -> None:
        raise SendUnsupported(f"payment rail {config.rail!r} cannot send")

    async def outgoing(self, config: RailConfig, reference: str) -> Outgoing:
        return Outgoing("unknown")

    async def prepare_unsigned(self, config: RailConfig, request: SendRequest) -> Unsigned:
        raise SendUnsupported(f"payment rail {config.rail!r} cannot build a transaction to sign")

    async def submit_signed(self, config: RailConfig, unsigned: str, signed: str) -> Prepared:
        raise SendUnsupported(f"payment rail {config.rail!r} cannot build a transaction to sign")
