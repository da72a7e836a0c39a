"""The Bitcoin-family rail, end to end through Kassa's HTTP API against a real litecoind in regtest.

Bitcoin Core is not installable here; Litecoin Core 0.21 is a fork of Bitcoin Core 0.21 with the
same wallet RPC, so the rail runs as `litecoin` on network `litecoin-regtest` (its parameters are
data, kassa/rails/bitcoin/networks.py). Kassa's server (static LTC/USD rate) runs on SQLite and on
PostgreSQL with the real WatcherSupervisor; each test is its own merchant with its own key (a fresh
seed) and its own watch-only wallet on the shared node.
"""

from __future__ import annotations

import json
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from embit import bip32
from embit.networks import NETWORKS as EMBIT_NETWORKS

import kassa.rails.monero as monero_package
from kassa.rails.bitcoin.keys import parse_key
from kassa.rails.bitcoin.networks import network
from kassa.rails.bitcoin.rail import payment_uri
from tests.support.litecoin_regtest import LitecoinRegtest
from tests.support.rail_shop import RailShop
from tests.support.server import KassaServer
from tests.support.watching import Watching, watch_known_rails_only

RATES = {"primary": "static", "static": {"LTC/USD": "100"}}
DUE = 10_000_000  # 10.00 USD at 100 USD/LTC, in litoshi
ZPUB_BIP84 = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"


def fresh_tpub() -> str:
    """A new account key m/84h/1h/0h as a regtest wpkh descriptor with its origin."""
    root = bip32.HDKey.from_seed(secrets.token_bytes(32), version=EMBIT_NETWORKS["regtest"]["xprv"])
    account = root.derive("m/84h/1h/0h").to_public()
    return f"wpkh([{root.my_fingerprint.hex()}/84h/1h/0h]{account.to_string()}/0/*)"


# ================================================================================== fast, no node


def test_payment_uri_is_bip21_with_an_exact_amount() -> None:
    btc = network("bitcoin")
    addr = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert payment_uri(btc, addr, 150_000, "ord_1") == f"bitcoin:{addr}?amount=0.0015&label=ord_1"
    assert payment_uri(btc, addr, 1, "a b").endswith("amount=0.00000001&label=a%20b")
    assert payment_uri(btc, addr, 2_100_000_000_000_000, "x").split("?")[1].startswith("amount=21000000&")
    ltc = network("litecoin")
    assert payment_uri(ltc, "ltc1qexample", 10**8, "o").startswith("litecoin:ltc1qexample?amount=1&")


@pytest.mark.parametrize(
    ("settings", "param", "words"),
    [
        ({"node_url": "http://127.0.0.1:1"}, "settings.xpub", "Field required"),
        ({"xpub": ZPUB_BIP84}, "settings.node_url", "Field required"),
        ({"xpub": ZPUB_BIP84, "node_url": "ftp://h:1"}, "settings.node_url", "http"),
        (
            {"xpub": ZPUB_BIP84, "node_url": "http://h:1", "network": "dogecoin"},
            "settings.network",
            "bitcoin",
        ),
        ({"xpub": "not a key", "node_url": "http://h:1"}, "settings.xpub", "extended public key"),
        (
            {
                "xpub": "xprv9s21ZrQH143K3GJpoapnV8SFfukcVBSfeCficPSGfubmSFDxo1kuHnLisriDvSnRRuL2Qrg5ggqHKNVpxR86QEC8w35uxmGoggxtQTPvfUu",
                "node_url": "http://h:1",
            },
            "settings",
            "PUBLIC",
        ),
        (
            {"xpub": ZPUB_BIP84, "node_url": "http://h:1", "network": "bitcoin-regtest"},
            "settings.xpub",
            "set up for",
        ),
        (
            {"xpub": ZPUB_BIP84, "node_url": "http://h:1", "node_password": "x"},
            "settings.node_password",
            "user",
        ),
        ({"xpub": ZPUB_BIP84, "node_url": "http://h:1", "gap_limit": 0}, "settings.gap_limit", "1"),
        ({"xpub": ZPUB_BIP84, "node_url": "http://h:1", "wallet": "a/b"}, "settings.wallet", "pattern"),
    ],
)
def test_bad_settings_are_refused_with_the_parameter(
    api: httpx.Client, settings: dict[str, Any], param: str, words: str
) -> None:
    response = api.put("/api/v1/payment-methods/bitcoin", json=settings)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"].startswith(param), error
    assert words in error["message"], error


def test_the_node_password_is_masked_and_a_zpub_gives_bip84_addresses(
    api: httpx.Client, kassa: KassaServer
) -> None:
    body = {
        "xpub": ZPUB_BIP84,
        "node_url": "http://127.0.0.1:8332",
        "node_username": "kassa",
        "node_password": "s3cret-node-pass",
    }
    response = api.put("/api/v1/payment-methods/bitcoin", json=body)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["settings"]["node_password"] == "********"
    assert shown["settings"]["network"] == "bitcoin" and shown["settings"]["gap_limit"] == 20
    assert "s3cret-node-pass" not in json.dumps(api.get("/api/v1/payment-methods").json())
    # No node needed to hand out an address: the core derives it (BIP84's first receive address).
    order = {"amount": 150_000, "currency": "BTC", "payment_methods": ["BTC"]}
    response = api.post("/api/v1/orders", json=order)
    assert response.status_code == 201, response.text
    (quote,) = response.json()["payment_methods"]
    assert quote["address"].startswith("bc1q")  # an index of BIP84's key; the suite shares the key
    assert quote["payment_uri"] == f"bitcoin:{quote['address']}?amount=0.0015&label={response.json()['id']}"
    api.delete("/api/v1/payment-methods/bitcoin")


# ================================================================================== regtest, end to end


@pytest.fixture(scope="module")
def lkassa(kassa: KassaServer) -> Iterator[KassaServer]:
    """A Kassa server on the same database and key as `kassa`, with an LTC/USD rate of 100."""
    server = watch_known_rails_only(kassa.sibling(rates=RATES)).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Shop(RailShop):
    """One Kassa merchant with the litecoin rail, as its backend sees it."""

    node: LitecoinRegtest = field(kw_only=True)
    xpub: str = field(default="", kw_only=True)
    wallet: str = field(default="", kw_only=True)
    method: ClassVar[str] = "LTC"

    def configure(self, **settings: Any) -> dict[str, Any]:
        self.xpub = self.xpub or fresh_tpub()
        self.wallet = self.wallet or f"kassa-{self.merchant_id[-10:]}"
        body = {
            "network": "litecoin-regtest",
            "xpub": self.xpub,
            "node_url": self.node.rpc_url,
            "node_username": self.node.rpc_user,
            "node_password": self.node.rpc_password,
            "wallet": self.wallet,
            "poll_interval": 0.25,
            **settings,
        }
        response = self.api.put("/api/v1/payment-methods/litecoin", json=body)
        assert response.status_code == 200, response.text
        self.ready()
        return dict(response.json())

    def ready(self, within: float = 20.0) -> None:
        """Wait until the watcher has imported the key into its wallet: a payment that is in the
        mempool before its address is imported is only seen once it is mined."""
        key = parse_key(self.xpub, network("litecoin-regtest"))
        deadline = time.monotonic() + within
        while self.wallet not in self.node.call("listwallets") or not self.node.call(
            "getaddressinfo", key.address(0), wallet=self.wallet
        ).get("iswatchonly"):
            assert time.monotonic() < deadline, f"wallet {self.wallet} never imported the key"
            time.sleep(0.1)

    def check(self) -> dict[str, Any]:
        response = self.api.post("/api/v1/payment-methods/litecoin/check")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def shop_factory(lkassa: KassaServer, litecoin_regtest: LitecoinRegtest) -> Iterator[Callable[..., Shop]]:
    shops: list[Shop] = []

    def make(**merchant_settings: Any) -> Shop:
        merchant_id, key = lkassa.new_merchant("Litecoin Shop", **merchant_settings)
        client = httpx.Client(
            base_url=lkassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        shop = Shop(lkassa, merchant_id, client, node=litecoin_regtest)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.api.delete("/api/v1/payment-methods/litecoin")
        shop.api.close()


@pytest.fixture
def shop(shop_factory: Callable[..., Shop], watching: Watching) -> Shop:
    shop = shop_factory(default_confirmations=2)
    shop.configure()
    return shop


@pytest.fixture
def watching(lkassa: KassaServer) -> Iterator[Watching]:
    watch = Watching(lkassa).start()
    try:
        yield watch
    finally:
        watch.stop()


def _address(order: dict[str, Any]) -> str:
    address = order["payment_methods"][0]["address"]
    assert isinstance(address, str) and address.startswith("rltc1q"), address
    return address


@pytest.mark.slow
def test_paid_in_full_at_0_conf_is_processing_then_paid_at_the_confirmations(
    shop: Shop, watching: Watching, litecoin_regtest: LitecoinRegtest
) -> None:
    order = shop.order(description="Two pies")
    assert order["confirmations"] == 2 and order["amount_due"] == DUE
    (quote,) = order["payment_methods"]
    address = _address(order)
    assert quote["payment_uri"] == f"litecoin:{address}?amount=0.1&label={order['id']}"
    page = httpx.get(order["checkout_url"]).text  # the customer's page: URI and QR code
    assert address in page and "<svg" in page and "0.10000000" in page

    txid = litecoin_regtest.pay(address, DUE)
    processing, seen_after = shop.wait(order["id"], "processing", lambda o: o["status"] == "processing")
    assert seen_after < 3.0, f"processing {seen_after:.2f} s after the transaction"
    (payment,) = processing["payments"]
    assert payment["reference"].startswith(f"{txid}:") and payment["amount"] == DUE
    assert payment["confirmations"] == 0 and payment["replaceable"] is True

    litecoin_regtest.mine(1)
    one, _ = shop.wait(order["id"], "1 conf", lambda o: o["payments"][0]["confirmations"] == 1)
    assert one["status"] == "processing" and one["payments"][0]["replaceable"] is False
    litecoin_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["exception"] is None and paid["amount_confirmed"] == DUE
    events = shop.events(order["id"])
    assert events[:2] == ["order.created", "payment.received"] and events[-1] == "order.paid"
    assert events.count("payment.received") == 1  # reported many times, recorded once


@pytest.mark.slow
def test_partial_then_complete_in_two_transactions(
    shop: Shop, watching: Watching, litecoin_regtest: LitecoinRegtest
) -> None:
    order = shop.order(confirmations=1)
    address = _address(order)
    litecoin_regtest.pay(address, 4_000_000)
    partial, _ = shop.wait(order["id"], "partly paid", lambda o: o["amount_received"] == 4_000_000)
    assert partial["status"] == "open"
    litecoin_regtest.pay(address, DUE - 4_000_000)
    processing = shop.wait_status(order["id"], "processing")
    assert processing["amount_received"] == DUE and len(processing["payments"]) == 2
    litecoin_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["exception"] is None and paid["amount_confirmed"] == DUE


@pytest.mark.slow
def test_one_transaction_paying_two_orders_counts_each_output_once(
    shop: Shop, watching: Watching, litecoin_regtest: LitecoinRegtest
) -> None:
    first, second = shop.order(confirmations=1), shop.order(confirmations=1)
    txid = litecoin_regtest.pay_many({_address(first): DUE, _address(second): DUE + 1})
    litecoin_regtest.mine(1)
    a = shop.wait_status(first["id"], "paid")
    b = shop.wait_status(second["id"], "paid", exception="overpaid")
    refs = {a["payments"][0]["reference"], b["payments"][0]["reference"]}
    assert len(refs) == 2 and all(r.startswith(f"{txid}:") for r in refs)
    assert b["amount_received"] == DUE + 1


@pytest.mark.slow
def test_too_little_by_expiry_is_expired_underpaid(
    shop: Shop, watching: Watching, lkassa: KassaServer, litecoin_regtest: LitecoinRegtest
) -> None:
    order = shop.order(expires_in=120)
    litecoin_regtest.pay(_address(order), DUE // 2)
    seen, _ = shop.wait(order["id"], "partly paid", lambda o: o["amount_received"] > 0)
    assert seen["status"] == "open"
    lkassa.clock.advance(121)
    lkassa.tick()
    expired = shop.get(order["id"])
    assert (expired["status"], expired["exception"]) == ("expired", "underpaid")


@pytest.mark.slow
def test_too_much_is_paid_overpaid(shop: Shop, watching: Watching, litecoin_regtest: LitecoinRegtest) -> None:
    order = shop.order(confirmations=1)
    litecoin_regtest.pay(_address(order), DUE + 5_000_000)
    shop.wait_status(order["id"], "processing")
    litecoin_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid", exception="overpaid")
    assert paid["amount_received"] == DUE + 5_000_000


@pytest.mark.slow
def test_a_late_payment_is_paid_late_when_the_merchant_accepts_them(
    shop_factory: Callable[..., Shop],
    watching: Watching,
    lkassa: KassaServer,
    litecoin_regtest: LitecoinRegtest,
) -> None:
    shop = shop_factory(late_payment_policy="accept", default_confirmations=1)
    shop.configure()
    order = shop.order(expires_in=60)
    lkassa.clock.advance(61)
    lkassa.tick()
    assert shop.get(order["id"])["status"] == "expired"
    litecoin_regtest.pay(_address(order), DUE)
    shop.wait_status(order["id"], "processing")
    litecoin_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid", exception="paid_late")
    assert paid["late"] is True and paid["payments"][0]["late"] is True


@pytest.mark.slow
def test_a_payment_replaced_by_rbf_to_elsewhere_never_pays_the_order(
    shop: Shop, watching: Watching, litecoin_regtest: LitecoinRegtest
) -> None:
    order = shop.order()
    txid = litecoin_regtest.pay(_address(order), DUE, replaceable=True)
    processing = shop.wait_status(order["id"], "processing")
    assert processing["payments"][0]["replaceable"] is True
    elsewhere = litecoin_regtest.call("getnewaddress", wallet="payer")
    replacement = litecoin_regtest.replace(txid, elsewhere)
    assert replacement != txid
    reopened = shop.wait_status(order["id"], "open")
    assert reopened["payments"][0]["status"] == "rejected" and reopened["amount_received"] == 0
    litecoin_regtest.mine(3)
    time.sleep(1.0)  # several passes: the replacement is mined, the original conflicted
    after = shop.get(order["id"])
    assert after["status"] == "open" and after["amount_confirmed"] == 0
    assert [p["status"] for p in after["payments"]] == ["rejected"]
    events = shop.events(order["id"])
    assert "payment.rejected" in events and "order.paid" not in events


@pytest.mark.slow
def test_a_reorg_that_double_spends_a_confirmed_payment_takes_it_back(
    shop_factory: Callable[..., Shop], watching: Watching, litecoin_regtest: LitecoinRegtest
) -> None:
    shop = shop_factory(default_confirmations=1)
    shop.configure()
    order = shop.order()
    txid = litecoin_regtest.pay(_address(order), DUE)
    litecoin_regtest.mine(1)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["payments"][0]["status"] == "confirmed"
    elsewhere = litecoin_regtest.call("getnewaddress", wallet="payer")
    litecoin_regtest.mine_conflicting(txid, elsewhere)  # invalidateblock + a longer branch
    undone, _ = shop.wait(order["id"], "taken back", lambda o: o["payments"][0]["status"] == "rejected")
    assert undone["status"] != "paid" and undone["amount_confirmed"] == 0
    assert "payment.rejected" in shop.events(order["id"])
    balances = shop.api.get("/api/v1/balances").json()["data"]
    assert all(b["available"] == 0 for b in balances if b["currency"] == "LTC")


@pytest.mark.slow
def test_restart_between_payment_and_confirmation(
    shop: Shop, watching: Watching, lkassa: KassaServer, litecoin_regtest: LitecoinRegtest
) -> None:
    """Kassa stops after seeing a payment; meanwhile it confirms and a second order is paid and
    mined. A new Kassa process resumes from the saved cursor."""
    seen_first = shop.order(confirmations=3)
    while_down = shop.order(confirmations=3)
    litecoin_regtest.pay(_address(seen_first), DUE)
    shop.wait_status(seen_first["id"], "processing")
    time.sleep(0.8)  # a few passes: the cursor is saved
    watching.stop()  # Kassa is down from here
    litecoin_regtest.mine(2)
    litecoin_regtest.pay(_address(while_down), DUE)
    litecoin_regtest.mine(10)
    assert shop.get(while_down["id"])["status"] == "open"

    restarted = watch_known_rails_only(lkassa.sibling(run_worker=True, rates=RATES)).start()
    try:
        for order in (seen_first, while_down):
            paid = shop.wait_status(order["id"], "paid", within=20)
            assert paid["amount_received"] == DUE and paid["payments"][0]["confirmations"] >= 3
            assert shop.events(order["id"]).count("payment.received") == 1
    finally:
        shop.api.delete("/api/v1/payment-methods/litecoin")
        restarted.stop()


@pytest.mark.slow
def test_check_covers_node_wallet_imports_and_the_gap_limit(
    shop_factory: Callable[..., Shop], watching: Watching, litecoin_regtest: LitecoinRegtest
) -> None:
    shop = shop_factory()
    shop.configure(gap_limit=3, lookahead=10)
    orders = [shop.order() for _ in range(5)]
    deadline = time.monotonic() + 15
    while True:  # the watcher imports the addresses handed out
        health = shop.check()
        if "does not watch" not in health["details"].get("reason", "") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    details = health["details"]
    assert details["chain"] == "regtest" and details["wallet_loaded"] is True
    assert details["wallet_private_keys"] is False
    assert details["addresses"]["next_index"] == 5 and details["addresses"]["gap"] == 5
    assert health["ok"] is False and "gap limit of 3" in details["reason"]
    assert "does not watch" not in details["reason"]
    litecoin_regtest.pay(_address(orders[-1]), DUE)
    shop.wait(orders[-1]["id"], "seen", lambda o: bool(o["payments"]))
    healthy = shop.check()
    assert healthy["details"]["addresses"]["last_paid_index"] == 4
    assert healthy["ok"] is True, healthy


NOTIFY_SCRIPT = Path(monero_package.__file__).parent / "kassa-notify.sh"


@pytest.fixture(scope="module")
def notify_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LitecoinRegtest, Path, Path]]:
    """A second litecoind whose walletnotify runs the shipped kassa-notify script (through a wrapper
    that logs the txid); the env file says which Kassa, key and rail it wakes."""
    tmp = tmp_path_factory.mktemp("walletnotify")
    env_file, log, wrapper = tmp / "notify.env", tmp / "notified.log", tmp / "kassa-notify"
    wrapper.write_text(f'#!/bin/sh\necho "$2" >> {log}\nexec {NOTIFY_SCRIPT} "$@"\n')
    wrapper.chmod(0o700)
    with LitecoinRegtest(extra_conf=[f"walletnotify={wrapper} {env_file} %s"]) as node:
        yield node, env_file, log


@pytest.mark.slow
def test_walletnotify_wakes_the_watcher(
    shop_factory: Callable[..., Shop], watching: Watching, notify_node: tuple[LitecoinRegtest, Path, Path]
) -> None:
    """bitcoind's walletnotify runs kassa-notify with KASSA_RAIL=litecoin: with a 60 s poll
    interval, the payment still shows within seconds."""
    node, env_file, log = notify_node
    shop = shop_factory(default_confirmations=1)
    shop.node = node
    key = str(shop.api.headers["Authorization"]).removeprefix("Bearer ")
    env_file.write_text(f"KASSA_URL={shop.server.base_url}\nKASSA_API_KEY={key}\nKASSA_RAIL=litecoin\n")
    env_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    shop.configure(poll_interval=60)
    order = shop.order()
    time.sleep(0.3)  # the watcher is idle in its 60 s wait
    txid = node.pay(_address(order), DUE)
    _, after = shop.wait(order["id"], "processing", lambda o: o["status"] == "processing", within=10)
    assert txid in log.read_text()
    assert after < 4.0, f"{after:.2f} s"  # the poll interval alone would take up to 60 s
