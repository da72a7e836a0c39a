"""The Monero rail, end to end through Kassa's HTTP API against real monerod + monero-wallet-rpc.

Kassa's own server (with a static XMR/USD rate) runs on SQLite and on PostgreSQL; its watchers run
under the real `WatcherSupervisor`, started per test. The regtest network is the session-wide one
(tests/support/monero_fixtures.py): tests share the merchant's view-only wallet, so each uses its
own Kassa merchant (and its own subaddresses) and disables its rail when done.

The fast tests at the top need no Monero binaries: settings, the payment URI, and the watcher's
bookkeeping (cursor, drops, restarts) against a scripted wallet.
"""

from __future__ import annotations

import json
import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from typer.testing import CliRunner

import kassa.rails.monero as monero_package
from kassa.cli import app as cli_app
from kassa.rails.base import RailConfig, Sighting
from kassa.rails.monero.rail import MoneroRail, MoneroSettings, network_of, payment_uri
from kassa.rails.monero.rpc import ATOMIC_UNITS_PER_XMR, SubaddressIndex, Transfer
from kassa.rails.monero.watcher import (
    DROP_STRIKES,
    REORG_MARGIN,
    MoneroWatcher,
    effective_confirmations,
    parse_reference,
)
from kassa.services import orders as order_service
from tests.support.monero_regtest import MoneroRegtest
from tests.support.rail_shop import RailShop
from tests.support.server import KassaServer
from tests.support.watching import Watching, watch_known_rails_only

XMR = ATOMIC_UNITS_PER_XMR
RATES = {"primary": "static", "static": {"XMR/USD": "150"}}
DUE_10_USD = 66_666_666_667  # 10.00 USD at 150 USD/XMR, in piconero, rounded up
NOTIFY_SCRIPT = Path(monero_package.__file__).parent / "kassa-notify.sh"


# ================================================================================== fast, no regtest


def test_payment_uri_is_exact_and_encoded() -> None:
    addr = "8" + "A" * 94
    assert payment_uri(addr, DUE_10_USD, "Order ord_1") == (
        f"monero:{addr}?tx_amount=0.066666666667&tx_description=Order%20ord_1"
    )
    assert payment_uri(addr, 2 * XMR, "a&b=c") == f"monero:{addr}?tx_amount=2&tx_description=a%26b%3Dc"
    assert payment_uri(addr, 1, "x").split("&")[0].endswith("tx_amount=0.000000000001")
    assert network_of("4abc") == "mainnet" and network_of("8abc") == "mainnet"
    assert network_of("5abc") == "stagenet" and network_of("9abc") == "testnet"


@pytest.mark.parametrize(
    ("settings", "param", "words"),
    [
        ({}, "settings.wallet_rpc_url", "Field required"),
        ({"wallet_rpc_url": "ftp://127.0.0.1:1"}, "settings.wallet_rpc_url", "http"),
        ({"wallet_rpc_url": "http://u:p@127.0.0.1:1"}, "settings.wallet_rpc_url", "credentials"),
        ({"wallet_rpc_url": "not a url"}, "settings.wallet_rpc_url", "http"),
        ({"wallet_rpc_url": "http://h:1", "password": "x"}, "settings.password", "username"),
        ({"wallet_rpc_url": "http://h:1", "confirmations": 101}, "settings.confirmations", "100"),
        ({"wallet_rpc_url": "http://h:1", "confirmations": "3"}, "settings.confirmations", "integer"),
        ({"wallet_rpc_url": "http://h:1", "poll_interval": 0.01}, "settings.poll_interval", "0.2"),
        ({"wallet_rpc_url": "http://h:1", "account_index": -1}, "settings.account_index", "0"),
        ({"wallet_rpc_url": "http://h:1", "daemon_url": "h:1"}, "settings.daemon_url", "http"),
        ({"wallet_rpc_url": "http://h:1", "spend_key": "x"}, "settings.spend_key", "Extra"),
    ],
)
def test_bad_settings_are_refused_with_the_parameter(
    api: httpx.Client, settings: dict[str, Any], param: str, words: str
) -> None:
    response = api.put("/api/v1/payment-methods/monero", json=settings)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]


def test_secrets_are_masked_and_kept(
    api: httpx.Client, kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    settings = {
        "wallet_rpc_url": "http://127.0.0.1:18083/",
        "username": "kassa",
        "password": "s3cret-wallet-pass",
        "daemon_url": "http://127.0.0.1:18081",
        "confirmations": 10,
    }
    response = api.put("/api/v1/payment-methods/monero", json=settings)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["settings"]["password"] == "********"
    assert shown["settings"]["wallet_rpc_url"] == "http://127.0.0.1:18083"
    assert shown["settings"]["poll_interval"] == 2.0 and shown["settings"]["account_index"] == 0
    assert shown["secret_fields"] == ["daemon_password", "password", "spend_password"]
    listed = api.get("/api/v1/payment-methods").json()["data"]
    assert "s3cret-wallet-pass" not in json.dumps(listed)
    # Sending the mask back (or leaving the password out) keeps the stored password.
    response = api.put("/api/v1/payment-methods/monero", json={**shown["settings"], "poll_interval": 1})
    assert response.status_code == 200, response.text

    async def stored() -> dict[str, Any]:
        pk = (await kassa.runtime.merchants.get(merchant[0])).pk
        async with kassa.runtime.db.read() as conn:
            configs = await kassa.runtime.payment_methods.configs(conn, pk)
        (config,) = [c for c in configs if c.rail == "monero"]
        return config.settings

    decrypted = kassa.call(stored())
    assert decrypted["password"] == "s3cret-wallet-pass" and decrypted["poll_interval"] == 1.0


def test_check_reports_an_unreachable_wallet(api: httpx.Client) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    response = api.put("/api/v1/payment-methods/monero", json={"wallet_rpc_url": f"http://127.0.0.1:{port}"})
    assert response.status_code == 200, response.text
    check = api.post("/api/v1/payment-methods/monero/check").json()
    assert check["ok"] is False
    assert "unreachable" in check["details"]["reason"]
    assert check["details"]["wallet_rpc_url"] == f"http://127.0.0.1:{port}"


# ------------------------------------------------------------------ the watcher's bookkeeping, scripted

TXA, TXB, TXC = "a" * 64, "b" * 64, "c" * 64


def transfer(txid: str, minor: int, amount: int, height: int = 0, wallet_height: int = 100) -> Transfer:
    in_pool = height == 0
    return Transfer(
        txid=txid,
        amount=amount,
        amounts=(amount,),
        confirmations=0 if in_pool else wallet_height - height,
        height=height,
        subaddr_index=SubaddressIndex(0, minor),
        address=f"sub{minor}",
        unlock_time=0,
        double_spend_seen=False,
        in_pool=in_pool,
        timestamp=0,
        type="pool" if in_pool else "in",
        locked=True,
        fee=0,
        payment_id="",
    )


@dataclass
class ScriptedWallet:
    """Just what the watcher calls, answering from `transfers` (the pool and the chain)."""

    height: int = 100
    transfers: list[Transfer] = field(default_factory=list)
    address: str = "8primary"
    view_only: bool = True
    calls: list[str] = field(default_factory=list)
    min_heights: list[int | None] = field(default_factory=list)

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append("refresh")

    async def get_transfers(self, *, min_height: int | None = None, **kwargs: Any) -> list[Transfer]:
        self.min_heights.append(min_height)
        return [t for t in self.transfers if t.in_pool or t.height >= (min_height or 0)]

    async def get_height(self) -> int:
        return self.height

    async def get_transfer_by_txid(self, txid: str, account_index: int | None = None) -> list[Transfer]:
        self.calls.append(f"by_txid {txid[:4]}")
        return [t for t in self.transfers if t.txid == txid]

    async def get_address(self, *args: Any) -> Any:
        return type("A", (), {"address": self.address})()

    async def is_view_only(self) -> bool:
        return self.view_only

    def mine(self, n: int = 1) -> None:
        """Put every pool transfer into the next block and add n - 1 empty blocks."""
        self.transfers = [
            replace(t, in_pool=False, type="in", height=self.height) if t.in_pool else t
            for t in self.transfers
        ]
        self.height += n
        self.transfers = [
            t if t.in_pool else replace(t, confirmations=self.height - t.height) for t in self.transfers
        ]


@dataclass
class ScriptedCore:
    """The core's side: a payment is pending until it has `required` confirmations or is rejected."""

    required: int = 2
    known: set[str] = field(default_factory=lambda: {"sub1", "sub2", "sub3"})
    sightings: list[Sighting] = field(default_factory=list)
    payments: dict[str, Sighting] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    saves: int = 0

    async def report(self, sighting: Sighting) -> None:
        self.sightings.append(sighting)
        if sighting.destination not in self.known:
            return
        old = self.payments.get(sighting.reference)
        if old is not None and old.rejected:
            return
        self.payments[sighting.reference] = sighting

    async def pending_references(self) -> set[str]:
        return {ref for ref, s in self.payments.items() if not s.rejected and s.confirmations < self.required}

    async def load_state(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.state))

    async def save_state(self, state: dict[str, Any]) -> None:
        self.state = json.loads(json.dumps(state))
        self.saves += 1


def watcher() -> MoneroWatcher:
    config = RailConfig(1, "mch_x", "monero", {"wallet_rpc_url": "http://127.0.0.1:1"})
    return MoneroWatcher(config, MoneroSettings.model_validate(config.settings))


async def passes(w: MoneroWatcher, wallet: ScriptedWallet, core: ScriptedCore, n: int = 1) -> None:
    for _ in range(n):
        await w.run_pass(wallet, core)  # type: ignore[arg-type]


async def test_watcher_follows_pool_to_block_without_a_false_drop() -> None:
    wallet, core, w = ScriptedWallet(), ScriptedCore(), watcher()
    await w.start(wallet, core)  # type: ignore[arg-type]
    wallet.transfers = [transfer(TXA, 1, 5 * XMR), transfer(TXB, 0, XMR)]  # index 0: never an order's
    await passes(w, wallet, core)
    ref = f"{TXA}:0:1"
    assert [(s.reference, s.confirmations) for s in core.sightings] == [(ref, 0)]
    await passes(w, wallet, core, 3)  # nothing new: nothing reported again
    assert len(core.sightings) == 1
    wallet.mine()  # pool -> block between two passes: seen in exactly one list each time
    await passes(w, wallet, core, 3)
    wallet.mine()
    await passes(w, wallet, core, 3)
    assert [s.confirmations for s in core.sightings] == [0, 1, 2]
    assert not any(s.rejected for s in core.sightings)
    assert ref not in await core.pending_references()
    # Settled: the cursor moves up to REORG_MARGIN below the wallet height, and stays there.
    assert w.cursor == wallet.height - REORG_MARGIN
    assert core.state["cursor"] == w.cursor and core.state["seen"] == {}


async def test_watcher_pins_its_cursor_below_unsettled_payments() -> None:
    wallet, core, w = ScriptedWallet(height=500), ScriptedCore(required=50), watcher()
    await w.start(wallet, core)  # type: ignore[arg-type]
    wallet.transfers = [transfer(TXA, 1, XMR)]
    await passes(w, wallet, core)
    wallet.mine(30)
    await passes(w, wallet, core)
    assert w.cursor == 500 - REORG_MARGIN  # the payment's block, minus the margin
    assert core.state["seen"] == {f"{TXA}:0:1": ["sub1", XMR, 500]}
    wallet.mine(30)
    await passes(w, wallet, core)
    assert core.payments[f"{TXA}:0:1"].confirmations == 60
    await passes(w, wallet, core)
    assert w.cursor == wallet.height - REORG_MARGIN


async def test_watcher_reports_a_drop_only_after_two_fresh_passes() -> None:
    wallet, core, w = ScriptedWallet(), ScriptedCore(), watcher()
    await w.start(wallet, core)  # type: ignore[arg-type]
    tx = transfer(TXA, 1, XMR)
    wallet.transfers = [tx]
    await passes(w, wallet, core)
    wallet.transfers = []  # gone for one pass (a glitch), then back: not a drop
    await passes(w, wallet, core)
    wallet.transfers = [tx]
    await passes(w, wallet, core)
    wallet.transfers = []
    await passes(w, wallet, core)
    assert not any(s.rejected for s in core.sightings)
    wallet.transfers = []
    await passes(w, wallet, core, DROP_STRIKES - 1)
    rejected = [s for s in core.sightings if s.rejected]
    assert [(s.reference, s.destination, s.amount) for s in rejected] == [(f"{TXA}:0:1", "sub1", XMR)]
    assert "by_txid aaaa" in wallet.calls  # double-checked with the wallet before rejecting
    await passes(w, wallet, core, 3)
    assert len([s for s in core.sightings if s.rejected]) == 1
    assert core.state["seen"] == {}


async def test_watcher_restart_resumes_without_missing_or_rejecting() -> None:
    wallet, core = ScriptedWallet(height=1000), ScriptedCore(required=3)
    first = watcher()
    await first.start(wallet, core)  # type: ignore[arg-type]
    wallet.transfers = [transfer(TXA, 1, XMR)]
    await passes(first, wallet, core)
    wallet.mine(1)
    await passes(first, wallet, core)
    # Kassa stops. Meanwhile: TXA confirms further, TXB arrives and is mined, TXC waits in the pool.
    wallet.transfers.append(transfer(TXB, 2, 2 * XMR))
    wallet.mine(40)
    wallet.transfers.append(transfer(TXC, 3, 3 * XMR))
    saved = dict(core.state)
    assert saved["cursor"] == 1000 - REORG_MARGIN
    second = watcher()
    await second.start(wallet, core)  # type: ignore[arg-type]
    assert second.cursor == saved["cursor"]
    await passes(second, wallet, core, 2)
    assert wallet.min_heights[-2] == saved["cursor"]
    latest = {ref: s for ref, s in core.payments.items()}
    assert latest[f"{TXA}:0:1"].confirmations == 41
    assert latest[f"{TXB}:0:2"].confirmations == 40 and latest[f"{TXB}:0:2"].amount == 2 * XMR
    assert latest[f"{TXC}:0:3"].confirmations == 0
    assert not any(s.rejected for s in core.sightings)


async def test_watcher_does_not_reject_what_another_wallet_showed() -> None:
    wallet, core, w = ScriptedWallet(), ScriptedCore(), watcher()
    await w.start(wallet, core)  # type: ignore[arg-type]
    wallet.transfers = [transfer(TXA, 1, XMR)]
    await passes(w, wallet, core)
    # The merchant points Kassa at another wallet: the old payment is not in it.
    other = ScriptedWallet(address="8another")
    restarted = watcher()
    await restarted.start(other, core)  # type: ignore[arg-type]
    assert restarted.cursor == 0 and restarted.seen == {}
    await passes(restarted, other, core, 4)
    assert not any(s.rejected for s in core.sightings)
    # ... and a wallet swapped under a running watcher stops it instead of rejecting.
    wallet.transfers = []
    await passes(w, wallet, core)
    wallet.address = "8swapped"
    with pytest.raises(RuntimeError, match="changed"):
        await passes(w, wallet, core)
    assert not any(s.rejected for s in core.sightings)


async def test_watcher_leaves_another_accounts_payments_alone() -> None:
    wallet, core, w = ScriptedWallet(), ScriptedCore(), watcher()
    await w.start(wallet, core)  # type: ignore[arg-type]
    wallet.transfers = [transfer(TXA, 1, XMR)]
    await passes(w, wallet, core)
    # The merchant moves to account 1 while the payment is pending: it is not in account 1.
    config = RailConfig(1, "mch_x", "monero", {"wallet_rpc_url": "http://127.0.0.1:1", "account_index": 1})
    moved = MoneroWatcher(config, MoneroSettings.model_validate(config.settings))
    await moved.start(wallet, core)  # type: ignore[arg-type]
    wallet.transfers = []
    await passes(moved, wallet, core, 4)
    assert not any(s.rejected for s in core.sightings)
    assert "by_txid aaaa" not in wallet.calls


def test_reference_and_confirmation_rules() -> None:
    assert parse_reference(f"{TXA}:0:7") == (TXA, 0, 7)
    assert parse_reference("pay_123") is None and parse_reference(f"{TXA}:x:1") is None
    locked = replace(transfer(TXA, 1, XMR, height=90), unlock_time=10**6, locked=True)
    assert effective_confirmations(locked) == 0  # time-locked money never makes an order final
    assert effective_confirmations(replace(locked, locked=False)) == 10


# ================================================================================== regtest, end to end


@pytest.fixture(scope="module")
def xkassa(kassa: KassaServer) -> Iterator[KassaServer]:
    """A Kassa server on the same database and key as `kassa`, with an XMR/USD rate of 150."""
    server = watch_known_rails_only(kassa.sibling(rates=RATES)).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Shop(RailShop):
    """One Kassa merchant with the Monero rail, as its backend sees it."""

    net: MoneroRegtest = field(kw_only=True)
    method: ClassVar[str] = "XMR"

    def configure(self, **settings: Any) -> dict[str, Any]:
        assert self.net.merchant_rpc_login is not None
        user, password = self.net.merchant_rpc_login
        body = {
            "wallet_rpc_url": self.net.merchant_wallet_url,
            "username": user,
            "password": password,
            "daemon_url": self.net.daemon_url,
            "poll_interval": 0.25,
            **settings,
        }
        response = self.api.put("/api/v1/payment-methods/monero", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def shop_factory(xkassa: KassaServer, monero_regtest: MoneroRegtest) -> Iterator[Callable[..., Shop]]:
    """Makes merchants (each with its own API client); disables their Monero rail afterwards so the
    watchers of later tests leave them alone."""
    shops: list[Shop] = []

    def make(**merchant_settings: Any) -> Shop:
        merchant_id, key = xkassa.new_merchant("Monero Shop", **merchant_settings)
        client = httpx.Client(
            base_url=xkassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        shop = Shop(xkassa, merchant_id, client, net=monero_regtest)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.api.delete("/api/v1/payment-methods/monero")
        shop.api.close()


@pytest.fixture
def shop(shop_factory: Callable[..., Shop]) -> Shop:
    shop = shop_factory(default_confirmations=2)
    shop.configure()
    return shop


@pytest.fixture
def watching(xkassa: KassaServer) -> Iterator[Watching]:
    watch = Watching(xkassa).start()
    try:
        yield watch
    finally:
        watch.stop()


@pytest.mark.slow
def test_pay_seen_within_2s_then_paid_at_the_required_confirmations(
    shop: Shop, watching: Watching, monero_regtest: MoneroRegtest
) -> None:
    order = shop.order(description="Two pies")
    assert order["confirmations"] == 2  # the merchant's default
    assert order["amount_due"] == DUE_10_USD and order["payment_currency"] == "XMR"
    (quote,) = order["payment_methods"]
    address = quote["address"]
    assert quote["rate"] == "150" and address.startswith("8")  # a (regtest = mainnet) subaddress
    assert quote["payment_uri"] == (
        f"monero:{address}?tx_amount=0.066666666667&tx_description=Order%20{order['id']}"
    )
    page = httpx.get(order["checkout_url"]).text  # the customer's page: URI and QR code
    assert address in page and "<svg" in page

    txid = monero_regtest.pay(address, DUE_10_USD)
    processing, seen_after = shop.wait(order["id"], "processing", lambda o: o["status"] == "processing")
    assert seen_after < 2.0, f"processing {seen_after:.2f} s after the transfer"
    (payment,) = processing["payments"]
    assert payment["reference"] == f"{txid}:0:{_minor(monero_regtest, address)}"
    assert payment["amount"] == DUE_10_USD and payment["confirmations"] == 0
    assert payment["status"] == "pending" and processing["timer_paused"] is True

    monero_regtest.mine(1)
    one, _ = shop.wait(order["id"], "1 conf", lambda o: o["payments"][0]["confirmations"] == 1)
    assert one["status"] == "processing" and one["amount_confirmed"] == 0
    monero_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["exception"] is None and paid["amount_confirmed"] == DUE_10_USD
    assert paid["payments"][0]["status"] == "confirmed"
    events = shop.events(order["id"])
    assert events[:2] == ["order.created", "payment.received"]
    assert "order.processing" in events and events[-1] == "order.paid"
    assert events.count("payment.received") == 1  # reported many times, recorded once


def _minor(net: MoneroRegtest, address: str) -> int:
    wallet = net.wallet_server("merchant").rpc
    return int(wallet.call("get_address_index", {"address": address})["index"]["minor"])


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(order_service, "_default_confirmations"),
    reason="needs the core change that makes the rail's `confirmations` the orders' default",
)
def test_the_rails_confirmations_are_the_default(shop_factory: Callable[..., Shop]) -> None:
    shop = shop_factory(default_confirmations=1)
    shop.configure(confirmations=4)
    assert shop.order()["confirmations"] == 4
    assert shop.order(confirmations=2)["confirmations"] == 2  # the order's own number wins
    assert shop.order(payment_methods=None)["confirmations"] == 4  # XMR or test: the strictest


@pytest.mark.slow
def test_two_payments_add_up(shop: Shop, watching: Watching, monero_regtest: MoneroRegtest) -> None:
    order = shop.order(confirmations=1)
    address = order["payment_methods"][0]["address"]
    first = 40_000_000_000
    monero_regtest.pay(address, first)
    partial, _ = shop.wait(order["id"], "partly paid", lambda o: o["amount_received"] == first)
    assert partial["status"] == "open" and partial["payments"][0]["status"] == "pending"
    monero_regtest.pay(address, DUE_10_USD - first)
    processing = shop.wait_status(order["id"], "processing")
    assert processing["amount_received"] == DUE_10_USD and len(processing["payments"]) == 2
    monero_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["exception"] is None and paid["amount_confirmed"] == DUE_10_USD


@pytest.mark.slow
def test_too_little_by_expiry_is_expired_underpaid(
    shop: Shop, watching: Watching, xkassa: KassaServer, monero_regtest: MoneroRegtest
) -> None:
    order = shop.order(expires_in=120)
    monero_regtest.pay(order["payment_methods"][0]["address"], DUE_10_USD // 2)
    seen, _ = shop.wait(order["id"], "partly paid", lambda o: o["amount_received"] > 0)
    assert seen["status"] == "open"
    xkassa.clock.advance(121)
    xkassa.tick()
    expired = shop.get(order["id"])
    assert (expired["status"], expired["exception"]) == ("expired", "underpaid")
    assert expired["amount_received"] == DUE_10_USD // 2


@pytest.mark.slow
def test_too_much_is_paid_overpaid_after_choosing_xmr(
    shop_factory: Callable[..., Shop], watching: Watching, monero_regtest: MoneroRegtest
) -> None:
    shop = shop_factory()  # the test rail too: the customer chooses, then gets an address
    shop.configure()
    order = shop.order(payment_methods=None, confirmations=1)
    assert {m["method"] for m in order["payment_methods"]} == {"XMR", "test"}
    assert all(m["address"] is None for m in order["payment_methods"])
    chosen = shop.api.post(f"/api/v1/orders/{order['id']}/method", json={"method": "XMR"})
    assert chosen.status_code == 200, chosen.text
    (xmr,) = [m for m in chosen.json()["payment_methods"] if m["method"] == "XMR"]
    monero_regtest.pay(xmr["address"], DUE_10_USD + XMR // 10)
    shop.wait_status(order["id"], "processing")
    monero_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid", exception="overpaid")
    assert paid["amount_received"] == DUE_10_USD + XMR // 10


@pytest.mark.slow
def test_late_payments_per_merchant_policy(
    shop_factory: Callable[..., Shop], watching: Watching, xkassa: KassaServer, monero_regtest: MoneroRegtest
) -> None:
    accepting = shop_factory(late_payment_policy="accept", default_confirmations=1)
    refunding = shop_factory(late_payment_policy="refund", default_confirmations=1)
    for shop in (accepting, refunding):
        shop.configure()
    late_ok = accepting.order(expires_in=60)
    late_back = refunding.order(expires_in=60)
    xkassa.clock.advance(61)
    xkassa.tick()
    for shop, order in ((accepting, late_ok), (refunding, late_back)):
        assert shop.get(order["id"])["status"] == "expired"
    # One transaction pays both orders (two outputs to two subaddresses: two transfers).
    monero_regtest.transfer(
        [
            (late_ok["payment_methods"][0]["address"], DUE_10_USD),
            (late_back["payment_methods"][0]["address"], DUE_10_USD),
        ]
    )
    accepting.wait_status(late_ok["id"], "processing")
    refunded, _ = refunding.wait(late_back["id"], "seen", lambda o: bool(o["payments"]))
    assert refunded["status"] == "expired" and refunded["amount_received"] == 0  # not counted
    monero_regtest.mine(1)
    paid = accepting.wait_status(late_ok["id"], "paid", exception="paid_late")
    assert paid["late"] is True
    refunded, _ = refunding.wait(
        late_back["id"], "confirmed", lambda o: o["payments"][0]["status"] == "confirmed"
    )
    assert refunded["status"] == "expired"  # refund policy: the money is due back
    assert refunded["payments"][0]["late"] is True


@pytest.mark.slow
def test_a_payment_dropped_from_the_pool_reopens_the_order(
    shop: Shop, watching: Watching, monero_regtest: MoneroRegtest
) -> None:
    order = shop.order()
    txid = monero_regtest.pay(order["payment_methods"][0]["address"], DUE_10_USD)
    shop.wait_status(order["id"], "processing")
    monero_regtest.flush_txpool([txid])  # as if monerod evicted it
    assert txid not in monero_regtest.pool_txids()
    reopened = shop.wait_status(order["id"], "open")
    assert reopened["payments"][0]["status"] == "rejected"
    assert reopened["amount_received"] == 0 and reopened["timer_paused"] is False
    events = shop.events(order["id"])
    assert "payment.rejected" in events and events[-1] == "order.reopened"


@pytest.mark.slow
def test_restart_between_payment_and_confirmation(
    shop: Shop, watching: Watching, xkassa: KassaServer, monero_regtest: MoneroRegtest
) -> None:
    """Kassa stops after seeing a payment; meanwhile it confirms and a second order is paid and
    mined. A new Kassa process (own runtime, worker included) resumes from the saved cursor."""
    seen_first = shop.order(confirmations=3)
    while_down = shop.order(confirmations=3)
    monero_regtest.pay(seen_first["payment_methods"][0]["address"], DUE_10_USD)
    shop.wait_status(seen_first["id"], "processing")
    time.sleep(0.6)  # a few passes: the cursor is saved
    watching.stop()  # Kassa is down from here
    monero_regtest.mine(2)
    monero_regtest.pay(while_down["payment_methods"][0]["address"], DUE_10_USD)
    monero_regtest.mine(REORG_MARGIN + 5)  # both deeper than the margin below the old wallet height
    assert shop.get(seen_first["id"])["payments"][0]["confirmations"] == 0
    assert shop.get(while_down["id"])["status"] == "open"

    restarted = watch_known_rails_only(xkassa.sibling(run_worker=True, rates=RATES)).start()
    try:
        for order in (seen_first, while_down):
            paid = shop.wait_status(order["id"], "paid", within=15)
            (payment,) = paid["payments"]
            assert paid["amount_received"] == DUE_10_USD and payment["confirmations"] >= 3
            assert shop.events(order["id"]).count("payment.received") == 1
    finally:
        shop.api.delete("/api/v1/payment-methods/monero")  # before the worker stops with it
        restarted.stop()


@pytest.mark.slow
def test_check_healthy_view_only_and_unhealthy_hot_or_wrong_password(
    shop_factory: Callable[..., Shop],
    monero_regtest: MoneroRegtest,
    xkassa: KassaServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = shop_factory()
    shop.configure()
    check = shop.api.post("/api/v1/payment-methods/monero/check").json()
    assert check["ok"] is True, check
    details = check["details"]
    assert details["view_only"] is True and details["network"] == "mainnet"
    assert details["address"] == monero_regtest.merchant_address
    assert abs(details["daemon_height"] - details["wallet_height"]) <= 10
    assert "reason" not in details and "password" not in json.dumps(details)

    # `kassa rails check --merchant ID`, the operator's command, on the same database.
    monkeypatch.setenv("KASSA_DATABASE_URL", str(xkassa.settings.database_url))
    monkeypatch.setenv("KASSA_SECRET_KEY_FILE", str(xkassa.settings.secret_key_file))
    monkeypatch.delenv("KASSA_CONFIG", raising=False)
    result = CliRunner().invoke(cli_app, ["rails", "check", "--merchant", shop.merchant_id, "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["rail"]: row for row in json.loads(result.output)}
    assert rows["monero"]["ok"] is True and rows["monero"]["details"]["view_only"] is True

    assert monero_regtest.merchant_rpc_login is not None
    shop.configure(password="wrong")
    check = shop.api.post("/api/v1/payment-methods/monero/check").json()
    assert check["ok"] is False and "authentication failed" in check["details"]["reason"]

    # The payer's wallet can spend: Kassa must refuse to call that healthy.
    shop.configure(wallet_rpc_url=monero_regtest.payer_wallet_url, username=None, password=None)
    check = shop.api.post("/api/v1/payment-methods/monero/check").json()
    assert check["ok"] is False and check["details"]["view_only"] is False
    assert "NOT view-only" in check["details"]["reason"]
    result = CliRunner().invoke(cli_app, ["rails", "check", "--merchant", shop.merchant_id])
    assert result.exit_code == 1 and "FAIL" in result.output


@dataclass
class NotifyWallet:
    """A second merchant wallet-rpc (view-only, fresh keys) started with --tx-notify running the
    shipped kassa-notify script; `env_file` says which Kassa and API key it calls."""

    url: str
    login: tuple[str, str]
    address: str
    env_file: Path
    log: Path

    def point_at(self, shop: Shop) -> None:
        key = str(shop.api.headers["Authorization"]).removeprefix("Bearer ")
        self.env_file.write_text(f"KASSA_URL={shop.server.base_url}\nKASSA_API_KEY={key}\n")
        self.env_file.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.fixture(scope="module")
def notify_wallet(monero_regtest: MoneroRegtest, tmp_path_factory: pytest.TempPathFactory) -> NotifyWallet:
    tmp = tmp_path_factory.mktemp("notify")
    env_file, log, wrapper = tmp / "notify.env", tmp / "notified.log", tmp / "kassa-notify"
    wrapper.write_text(f'#!/bin/sh\necho "$2" >> {log}\nexec {NOTIFY_SCRIPT} "$@"\n')
    wrapper.chmod(0o700)
    login = ("notify", "notify-pass")
    server, keys = monero_regtest.start_view_only_wallet_rpc(
        f"merchant-notify-{time.monotonic_ns()}",
        login=login,
        extra_args=["--tx-notify", f"{wrapper} {env_file} %s"],
    )
    return NotifyWallet(server.url, login, keys.address, env_file, log)


@pytest.mark.slow
def test_tx_notify_wakes_the_watcher(
    shop_factory: Callable[..., Shop],
    watching: Watching,
    monero_regtest: MoneroRegtest,
    notify_wallet: NotifyWallet,
) -> None:
    """monero-wallet-rpc --tx-notify runs the shipped kassa-notify script, which wakes the watcher:
    with a 60 s poll interval, the payment still shows within seconds."""
    shop = shop_factory(default_confirmations=1)
    notify_wallet.point_at(shop)
    shop.configure(
        wallet_rpc_url=notify_wallet.url,
        username=notify_wallet.login[0],
        password=notify_wallet.login[1],
        poll_interval=60,
        auto_refresh_period=1,  # the wallet refreshes itself every second: tx-notify fires promptly
    )
    order = shop.order()
    time.sleep(0.5)  # the watcher's first pass (and its auto_refresh call) are done
    txid = monero_regtest.pay(order["payment_methods"][0]["address"], DUE_10_USD)
    _, after = shop.wait(order["id"], "processing", lambda o: o["status"] == "processing", within=8)
    assert txid in notify_wallet.log.read_text()
    assert after < 4.0, f"{after:.2f} s"  # the poll interval alone would take up to 60 s
    monero_regtest.mine(1)
    shop.wait_status(order["id"], "paid", within=8)


def test_rail_is_registered_and_describes_itself() -> None:
    from kassa.rails.registry import get_rail

    rail = get_rail("monero")
    assert isinstance(rail, MoneroRail)
    assert rail.secret_fields == {"password", "daemon_password", "spend_password"} and rail.test is False
    config = RailConfig(1, "mch_x", "monero", {"wallet_rpc_url": "http://127.0.0.1:1"})
    assert rail.can_send is True and rail.spends(config) is False  # view-only: the merchant sends
    custodial = RailConfig(
        1, "mch_x", "monero", {**config.settings, "spend_wallet_rpc_url": "http://127.0.0.1:2"}
    )
    assert rail.spends(custodial) is True
    assert [(m.method, m.currency) for m in rail.methods(config)] == [("XMR", "XMR")]
    assert rail.watcher(config) is not None
