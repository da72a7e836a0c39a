"""Money out of a real Monero wallet (monerod regtest + monero-wallet-rpc), through Kassa's API on
SQLite and PostgreSQL: a refund of an underpaid order arrives in the payer's wallet, a daily payout
batches three orders into one transaction that arrives in the merchant's own wallet, a payout whose
worker is SIGKILLed right after it broadcast is not paid twice, and a payout the merchant signs with
their own full wallet. Custodial mode: Kassa's spend wallet holds the same keys as the view-only one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_ledger_api import ledger_ok
from tests.rails import test_monero_rail
from tests.rails.test_monero_rail import DUE_10_USD, Shop
from tests.support.monero_regtest import MoneroRegtest, WalletRpcServer
from tests.support.server import KassaServer
from tests.support.watching import Watching

pytestmark = pytest.mark.slow
xkassa = test_monero_rail.xkassa  # the Monero tests' server, merchants and watchers
shop_factory = test_monero_rail.shop_factory
watching = test_monero_rail.watching
UNLOCK = 11  # blocks after which a received output can be spent


@pytest.fixture(scope="module")
def spend_wallet(monero_regtest: MoneroRegtest) -> WalletRpcServer:
    return monero_regtest.start_spend_wallet_rpc(f"kassa-spend-{os.getpid()}-{time.monotonic_ns()}")


@pytest.fixture(scope="module")
def cold_wallet(monero_regtest: MoneroRegtest) -> tuple[WalletRpcServer, str]:
    """The merchant's own wallet, elsewhere: where payouts go (view-only suffices to see them)."""
    server, keys = monero_regtest.start_view_only_wallet_rpc(f"cold-{os.getpid()}-{time.monotonic_ns()}")
    return server, keys.address


@pytest.fixture
def custodial(
    shop_factory: Callable[..., Shop],
    spend_wallet: WalletRpcServer,
) -> Callable[..., Shop]:
    def make(payout_address: str | None = None, **merchant_settings: Any) -> Shop:
        shop = shop_factory(default_confirmations=2, **merchant_settings)
        shop.configure(spend_wallet_rpc_url=spend_wallet.url, payout_address=payout_address)
        return shop

    return make


def received_by(wallet: WalletRpcServer, txid: str) -> int:
    """What `wallet` received in transaction `txid` (0 when it has not seen it)."""
    wallet.rpc.call("refresh", timeout=120)
    try:
        found = wallet.rpc.call("get_transfer_by_txid", {"txid": txid})
    except Exception:
        return 0
    entries = found.get("transfers") or [found["transfer"]]
    return sum(int(e["amount"]) for e in entries if e["type"] in ("in", "pool"))


def incoming_txids(wallet: WalletRpcServer) -> list[str]:
    wallet.rpc.call("refresh", timeout=120)
    found = wallet.rpc.call("get_transfers", {"in": True, "pool": True})
    return sorted({e["txid"] for e in found.get("in", []) + found.get("pool", [])})


def paid(shop: Shop, net: MoneroRegtest, amount: int = 1000) -> dict[str, Any]:
    order = shop.order(amount=amount)
    net.pay(order["payment_methods"][0]["address"], order["amount_due"])
    shop.wait(order["id"], "seen", lambda o: o["amount_received"] > 0)
    net.mine(2)
    return shop.wait_status(order["id"], "paid")


def balance(shop: Shop) -> dict[str, int]:
    for entry in shop.api.get("/api/v1/balances").json()["data"]:
        if entry["currency"] == "XMR":
            return dict(entry["accounts"])
    return {}


def test_a_refund_of_an_underpaid_order_arrives_in_the_payers_wallet(
    custodial: Callable[..., Shop],
    watching: Watching,
    xkassa: KassaServer,
    monero_regtest: MoneroRegtest,
) -> None:
    shop = custodial(refund_policy="automatic")
    order = shop.order(expires_in=120)
    half = DUE_10_USD // 2
    monero_regtest.pay(order["payment_methods"][0]["address"], half)
    shop.wait(order["id"], "seen", lambda o: o["amount_received"] > 0)
    monero_regtest.mine(UNLOCK)
    shop.wait(order["id"], "confirmed", lambda o: o["amount_confirmed"] == half)
    xkassa.clock.advance(121)
    xkassa.tick()
    assert (shop.get(order["id"])["status"], shop.get(order["id"])["exception"]) == ("expired", "underpaid")
    (refund,) = shop.api.get(f"/api/v1/orders/{order['id']}/refunds").json()["data"]
    assert (refund["status"], refund["origin"], refund["amount"]) == (
        "pending_destination",
        "underpaid",
        half,
    )
    link = refund["destination_url"]
    with httpx.Client(timeout=60) as browser:
        wrong = browser.post(link, data={"destination": monero_regtest.payer_address[:-1] + "x"})
        assert wrong.status_code == 400 and "not a valid Monero address" in wrong.text
        testnet = "9" + monero_regtest.payer_address[1:]
        assert browser.post(link, data={"destination": testnet}).status_code == 400
        given = browser.post(link, data={"destination": monero_regtest.payer_address})
        assert given.status_code == 200, given.text
    sent = shop.api.get(f"/api/v1/refunds/{refund['id']}").json()
    assert sent["status"] == "sent", sent["failure"]
    assert sent["received"] + sent["network_fee"] == half and 0 < sent["network_fee"] < half // 10
    txid = sent["reference"]
    assert txid in monero_regtest.pool_txids()
    assert received_by(monero_regtest.wallet_server("payer"), txid) == sent["received"]
    monero_regtest.mine(10)
    xkassa.tick()
    confirmed = shop.api.get(f"/api/v1/refunds/{refund['id']}").json()
    assert confirmed["status"] == "confirmed" and confirmed["confirmed_at"]
    assert shop.get(order["id"])["amount_refunded"] == half
    assert "refund.confirmed" in shop.events(order["id"])
    accounts = balance(shop)
    assert accounts["network_fees"] == sent["network_fee"] and accounts["refunds_payable"] == 0
    ledger_ok(xkassa)


def test_a_daily_payout_batches_three_orders_into_one_transaction(
    custodial: Callable[..., Shop],
    watching: Watching,
    xkassa: KassaServer,
    monero_regtest: MoneroRegtest,
    cold_wallet: tuple[WalletRpcServer, str],
) -> None:
    cold, address = cold_wallet
    shop = custodial(payout_address=address)
    before = incoming_txids(cold)
    orders = [paid(shop, monero_regtest, amount) for amount in (1000, 2000, 3000)]
    total = sum(o["amount_confirmed"] for o in orders)
    monero_regtest.mine(UNLOCK)
    hour = xkassa.clock.now().hour
    assert (
        shop.api.patch(
            "/api/v1/merchant", json={"withdrawal_policy": "daily", "payout_hour": hour}
        ).status_code
        == 200
    )
    assert xkassa.call(xkassa.runtime.payouts.run_due()) >= 1
    xkassa.call(xkassa.runtime.payouts.run_due())  # the same day: nothing more
    (payout,) = shop.api.get("/api/v1/payouts").json()["data"]
    assert (payout["origin"], payout["amount"], payout["status"]) == ("daily", total, "sent"), payout[
        "failure"
    ]
    assert payout["received"] + payout["network_fee"] == total
    after = incoming_txids(cold)
    assert [t for t in after if t not in before] == [payout["reference"]]  # one transaction
    assert received_by(cold, payout["reference"]) == payout["received"]
    monero_regtest.mine(10)
    xkassa.tick()
    done = shop.api.get(f"/api/v1/payouts/{payout['id']}").json()
    assert done["status"] == "confirmed"
    accounts = balance(shop)
    assert (accounts["balance"], accounts["paid_out"], accounts["network_fees"]) == (
        0,
        payout["received"],
        payout["network_fee"],
    )
    shop.api.patch("/api/v1/merchant", json={"withdrawal_policy": "manual"})
    ledger_ok(xkassa)


def test_a_worker_killed_after_broadcasting_a_payout_does_not_pay_twice(
    custodial: Callable[..., Shop],
    watching: Watching,
    xkassa: KassaServer,
    monero_regtest: MoneroRegtest,
    cold_wallet: tuple[WalletRpcServer, str],
) -> None:
    cold, address = cold_wallet
    shop = custodial(payout_address=address)
    order = paid(shop, monero_regtest, 1500)
    monero_regtest.mine(UNLOCK)
    before = incoming_txids(cold)
    assert shop.api.patch("/api/v1/merchant", json={"withdrawal_policy": "immediate"}).status_code == 200
    settings = xkassa.settings
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": str(settings.database_url),
        "KASSA_SECRET_KEY_FILE": str(settings.secret_key_file),
        "KASSA_CRASH_AT": "relayed:monero",
        "KASSA_LOG_LEVEL": "warning",
    }
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("kassa")), "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    output = ""
    if worker.stdout is not None:
        output = worker.stdout.read().decode()
        worker.stdout.close()
    assert worker.returncode == -9, output  # SIGKILLed at the crash point, nothing recorded after
    (payout,) = shop.api.get("/api/v1/payouts").json()["data"]
    assert (payout["status"], payout["origin"], payout["amount"]) == (
        "sending",
        "immediate",
        order["amount_confirmed"],
    )
    txid = payout["reference"]
    assert txid in monero_regtest.pool_txids()  # it went out before the crash
    xkassa.clock.advance(60)
    assert xkassa.call(xkassa.runtime.payouts.resume()) >= 1
    resumed = shop.api.get(f"/api/v1/payouts/{payout['id']}").json()
    assert (resumed["status"], resumed["reference"]) == ("sent", txid)
    monero_regtest.mine(10)
    xkassa.tick()
    assert shop.api.get(f"/api/v1/payouts/{payout['id']}").json()["status"] == "confirmed"
    new = [t for t in incoming_txids(cold) if t not in before]
    assert new == [txid]  # paid once
    assert received_by(cold, txid) == resumed["received"]
    shop.api.patch("/api/v1/merchant", json={"withdrawal_policy": "manual"})
    ledger_ok(xkassa)


def test_a_payout_signed_by_the_merchants_own_full_wallet(
    shop_factory: Callable[..., Shop],
    watching: Watching,
    xkassa: KassaServer,
    monero_regtest: MoneroRegtest,
    spend_wallet: WalletRpcServer,
    cold_wallet: tuple[WalletRpcServer, str],
) -> None:
    """No spend wallet on the gateway: the view-only wallet builds the transaction, the merchant's
    full wallet (here the spend wallet, standing for the merchant's offline one) signs it."""
    cold, address = cold_wallet
    shop = shop_factory(default_confirmations=2)
    shop.configure()
    order = paid(shop, monero_regtest, 2500)
    monero_regtest.mine(UNLOCK)
    # The view-only wallet cannot tell which of its outputs the full wallet spent: the merchant
    # imports the full wallet's key images first (docs/payouts.md, "Signing a payout yourself").
    spend_wallet.rpc.call("refresh", timeout=120)
    images = spend_wallet.rpc.call("export_key_images", {"all": True})["signed_key_images"]
    view = monero_regtest.wallet_server("merchant").rpc
    view.call("import_key_images", {"signed_key_images": images}, timeout=120)
    refused = shop.api.post("/api/v1/payouts", json={"rail": "monero", "destination": address})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "rail_cannot_send"
    bad = shop.api.post(
        "/api/v1/payouts", json={"rail": "monero", "destination": address[:-2] + "zz", "unsigned": True}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "destination"
    made = shop.api.post(
        "/api/v1/payouts",
        json={
            "rail": "monero",
            "destination": address,
            "unsigned": True,
            "amount": order["amount_confirmed"],
        },
    )
    assert made.status_code == 201, made.text
    payout = made.json()
    assert payout["status"] == "awaiting_signature" and payout["unsigned_tx"]
    assert payout["received"] + payout["network_fee"] == order["amount_confirmed"]
    signed = spend_wallet.rpc.call("sign_transfer", {"unsigned_txset": payout["unsigned_tx"]}, timeout=120)
    forged = shop.api.post(f"/api/v1/payouts/{payout['id']}/signed", json={"signed_tx": "zz-not-hex"})
    assert forged.status_code == 400 and forged.json()["error"]["param"] == "signed_tx"
    done = shop.api.post(f"/api/v1/payouts/{payout['id']}/signed", json={"signed_tx": signed["signed_txset"]})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "sent" and done.json()["reference"] == signed["tx_hash_list"][0]
    assert received_by(cold, done.json()["reference"]) == payout["received"]
    ledger_ok(xkassa)


def test_check_says_whether_the_spend_wallet_can_pay(
    custodial: Callable[..., Shop],
    monero_regtest: MoneroRegtest,
    cold_wallet: tuple[WalletRpcServer, str],
) -> None:
    shop = custodial()
    check = shop.api.post("/api/v1/payment-methods/monero/check").json()
    assert check["ok"] is True, check
    assert check["details"]["spend_unlocked_balance"] >= 0 and check["details"]["view_only"] is True
    cold, _address = cold_wallet  # another wallet, and a view-only one: it can pay nothing
    shop.configure(spend_wallet_rpc_url=cold.url)
    wrong = shop.api.post("/api/v1/payment-methods/monero/check").json()
    assert wrong["ok"] is False and "view-only" in wrong["details"]["reason"]
    unreachable = shop.configure(spend_wallet_rpc_url="http://127.0.0.1:9")
    assert unreachable["settings"]["spend_wallet_rpc_url"] == "http://127.0.0.1:9"
    down = shop.api.post("/api/v1/payment-methods/monero/check").json()
    assert down["ok"] is False and "spend wallet" in down["details"]["reason"]
    bad = shop.api.put(
        "/api/v1/payment-methods/monero",
        json={
            "wallet_rpc_url": monero_regtest.merchant_wallet_url,
            "username": "kassa",
            "spend_password": "x",
        },
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "settings.spend_password"
