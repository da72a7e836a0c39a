"""The EVM rail, end to end through Kassa's HTTP API against a real Hardhat 2 node.

Kassa's server (static ETH/USD and USDC/USD rates) runs on SQLite and on PostgreSQL with the real
WatcherSupervisor; each test is its own merchant with its own key (a fresh seed). The test token is
tests/support/evm/TestToken.sol (symbol USDC, 6 decimals), deployed once per module.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import pytest
from embit.bip32 import HDKey

from kassa.rails.evm.keys import parse_evm_key
from kassa.rails.evm.watcher import match_blocks
from tests.support.hardhat_node import HardhatNode
from tests.support.rail_shop import RailShop
from tests.support.server import KassaServer
from tests.support.watching import Watching, watch_known_rails_only

RATES = {"primary": "static", "static": {"ETH/USD": "2000", "USDC/USD": "1"}}
DUE_WEI = 5 * 10**15  # 10.00 USD at 2,000 USD/ETH
DUE_USDC = 10_000_000  # 10.00 USD in USDC's 6 decimals
CHAIN = 31337


def fresh_xpub() -> str:
    """A new account key m/44'/60'/0' (xpub), as a wallet exports it."""
    return str(HDKey.from_seed(secrets.token_bytes(32)).derive("m/44h/60h/0h").to_public().to_string())


# ================================================================================== fast, no node


@pytest.mark.parametrize(
    ("settings", "param", "words"),
    [
        ({"xpub": "not a key"}, "settings.xpub", "extended public key"),
        ({"chains": []}, "settings.chains", "at least 1"),
        (
            {"chains": [{"chain_id": 1, "name": "Ethereum", "rpc_urls": ["ftp://x"]}]},
            "settings.chains",
            "http",
        ),
        (
            {"chains": [{"chain_id": 1, "name": "E", "rpc_urls": ["http://h:1"], "native": None}]},
            "settings.chains",
            "accepts nothing",
        ),
        (
            {
                "chains": [
                    {
                        "chain_id": 1,
                        "name": "E",
                        "rpc_urls": ["http://h:1"],
                        "tokens": [{"address": "0x" + "ab" * 20, "symbol": "USDC", "decimals": 18}],
                    }
                ]
            },
            "settings.chains",
            "6 decimals",
        ),
        (
            {
                "chains": [
                    {
                        "chain_id": 1,
                        "name": "E",
                        "rpc_urls": ["http://h:1"],
                        "tokens": [{"address": "0x12", "symbol": "USDC", "decimals": 6}],
                    }
                ]
            },
            "settings.chains",
            "contract address",
        ),
        (
            {
                "chains": [
                    {"chain_id": 1, "name": "E", "rpc_urls": ["http://h:1"]},
                    {"chain_id": 1, "name": "F", "rpc_urls": ["http://h:2"]},
                ]
            },
            "settings.chains",
            "at most once",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_parameter(
    api: httpx.Client, settings: dict[str, Any], param: str, words: str
) -> None:
    chain = {"chain_id": 1, "name": "Ethereum", "rpc_urls": ["http://127.0.0.1:1"]}
    body = {"xpub": fresh_xpub(), "chains": [chain], **settings}
    response = api.put("/api/v1/payment-methods/evm", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"].startswith(param), error
    assert words in error["message"], error


def test_method_names_quotes_and_eip681_uris_without_a_node(api: httpx.Client, kassa: KassaServer) -> None:
    xpub = fresh_xpub()
    token = "0x" + "cd" * 20
    body = {
        "xpub": xpub,
        "chains": [
            {
                "chain_id": 1,
                "name": "Ethereum",
                "rpc_urls": ["http://127.0.0.1:1"],
                "tokens": [{"address": token, "symbol": "USDC", "decimals": 6}],
            },
            {
                "chain_id": 137,
                "name": "Polygon",
                "rpc_urls": ["http://127.0.0.1:2"],
                "native": None,
                "tokens": [{"address": "0x" + "ef" * 20, "symbol": "USDC", "decimals": 6}],
            },
        ],
    }
    response = api.put("/api/v1/payment-methods/evm", json=body)
    assert response.status_code == 200, response.text
    order = api.post(
        "/api/v1/orders",
        json={"amount": 10_000_000_000_000_000, "currency": "ETH", "payment_methods": ["ETH"]},
    )
    assert order.status_code == 201, order.text
    (quote,) = order.json()["payment_methods"]
    first = parse_evm_key(xpub).address(0)
    assert quote["address"] == first  # the core derived index 0 (EIP-55)
    assert quote["payment_uri"] == f"ethereum:{first}@1?value=10000000000000000"
    order = api.post(
        "/api/v1/orders", json={"amount": 2500, "currency": "USDC", "payment_methods": ["USDC@137"]}
    )
    assert order.status_code == 201, order.text
    (quote,) = order.json()["payment_methods"]
    assert quote["address"] == parse_evm_key(xpub).address(1)
    assert quote["payment_uri"].startswith("ethereum:0x") and "@137/transfer?address=" in quote["payment_uri"]
    assert quote["payment_uri"].endswith("&uint256=2500")
    api.delete("/api/v1/payment-methods/evm")


def test_matching_a_block_is_by_address_and_method() -> None:
    from kassa.rails.evm.rpc import TRANSFER_TOPIC, Block, Log, Tx

    watched = {"0x" + "11" * 20: "0x" + "11" * 20}
    txs = (
        Tx("0x" + "aa" * 32, "0x" + "99" * 20, "0x" + "11" * 20, 7, "0x", 0, 5, "0x" + "bb" * 32, 0),
        Tx("0x" + "ab" * 32, "0x" + "99" * 20, "0x" + "22" * 20, 9, "0x", 1, 5, "0x" + "bb" * 32, 1),
    )
    block = Block(5, "0x" + "bb" * 32, "0x" + "cc" * 32, 0, txs, tuple(t.hash for t in txs))
    topic = "0x" + "00" * 12 + "11" * 20
    logs = [
        Log(
            "0x" + "dd" * 20,
            (TRANSFER_TOPIC, "0x" + "00" * 32, topic),
            "0x" + f"{2**200:064x}",
            5,
            "0x" + "bb" * 32,
            "0x" + "ac" * 32,
            2,
            0,
            False,
        ),
        Log(
            "0x" + "ee" * 20,
            (TRANSFER_TOPIC, "0x" + "00" * 32, topic),
            "0x" + f"{3:064x}",
            5,
            "0x" + "bb" * 32,
            "0x" + "ac" * 32,
            2,
            1,
            False,
        ),  # not an accepted token
    ]
    found = match_blocks([block], logs, 1, watched, "ETH", {"0x" + "dd" * 20: "USDC"})
    assert {ref: (f.amount, f.method) for ref, f in found.items()} == {
        f"1:{'0x' + 'aa' * 32}": (7, "ETH"),
        f"1:{'0x' + 'ac' * 32}:t0": (2**200, "USDC"),
    }


# ================================================================================== Hardhat, end to end


@pytest.fixture(scope="module")
def ekassa(kassa: KassaServer) -> Iterator[KassaServer]:
    server = watch_known_rails_only(kassa.sibling(rates=RATES)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(hardhat_node: HardhatNode) -> str:
    return hardhat_node.deploy_token("Test USD Coin", "USDC", 6)


@dataclass
class Shop(RailShop):
    node: HardhatNode = field(kw_only=True)
    token: str = field(kw_only=True)
    xpub: str = field(default_factory=fresh_xpub, kw_only=True)
    method: ClassVar[str] = "ETH"

    def configure(self, **settings: Any) -> dict[str, Any]:
        chain = {
            "chain_id": CHAIN,
            "name": "Hardhat",
            "rpc_urls": [self.node.url],
            "tokens": [{"address": self.token, "symbol": "USDC", "decimals": 6}],
        }
        body = {"xpub": self.xpub, "chains": [chain], "poll_interval": 0.25, **settings}
        response = self.api.put("/api/v1/payment-methods/evm", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def shop_factory(ekassa: KassaServer, hardhat_node: HardhatNode, token: str) -> Iterator[Callable[..., Shop]]:
    shops: list[Shop] = []

    def make(**merchant_settings: Any) -> Shop:
        merchant_id, key = ekassa.new_merchant("EVM Shop", **merchant_settings)
        client = httpx.Client(
            base_url=ekassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        shop = Shop(ekassa, merchant_id, client, node=hardhat_node, token=token)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.api.delete("/api/v1/payment-methods/evm")
        shop.api.close()


@pytest.fixture
def shop(shop_factory: Callable[..., Shop], watching: Watching) -> Shop:
    shop = shop_factory(default_confirmations=2)
    shop.configure()
    return shop


@pytest.fixture
def watching(ekassa: KassaServer, hardhat_node: HardhatNode) -> Iterator[Watching]:
    hardhat_node.automine(True)
    watch = Watching(ekassa).start()
    try:
        yield watch
    finally:
        watch.stop()
        hardhat_node.automine(True)


def _address(order: dict[str, Any]) -> str:
    address = order["payment_methods"][0]["address"]
    assert isinstance(address, str) and address.startswith("0x") and len(address) == 42
    return address


@pytest.mark.slow
def test_eth_paid_in_full_then_confirmed(shop: Shop, watching: Watching, hardhat_node: HardhatNode) -> None:
    order = shop.order()
    assert order["amount_due"] == DUE_WEI and order["confirmations"] == 2
    (quote,) = order["payment_methods"]
    assert quote["payment_uri"] == f"ethereum:{_address(order)}@{CHAIN}?value={DUE_WEI}"
    assert quote["note"] == (
        "Send ETH on Hardhat (chain id 31337) only: sent on another chain, it does not reach this order."
    )
    page = httpx.get(order["checkout_url"]).text
    assert _address(order) in page and "<svg" in page and "on Hardhat (chain id 31337) only" in page
    assert "exchange" not in page
    txhash = hardhat_node.send_eth(_address(order), DUE_WEI)  # mined at once: 1 confirmation
    processing = shop.wait_status(order["id"], "processing")
    (payment,) = processing["payments"]
    assert payment["reference"] == f"{CHAIN}:{txhash}" and payment["amount"] == DUE_WEI
    hardhat_node.mine(1)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["exception"] is None and paid["amount_confirmed"] == DUE_WEI
    assert shop.events(order["id"]).count("payment.received") == 1


@pytest.mark.slow
def test_token_paid_in_full(shop: Shop, watching: Watching, hardhat_node: HardhatNode, token: str) -> None:
    shop.configure(exchange_warning=True)
    order = shop.order(payment_methods=["USDC"], confirmations=1)
    assert "Do not pay from an exchange account" in httpx.get(order["checkout_url"]).text
    assert order["amount_due"] == DUE_USDC and order["payment_currency"] == "USDC"
    address = _address(order)
    assert order["payment_methods"][0]["payment_uri"] == (
        f"ethereum:{_checksum(token)}@{CHAIN}/transfer?address={address}&uint256={DUE_USDC}"
    )
    payer = hardhat_node.accounts[3]
    hardhat_node.mint(token, payer, 10**12)
    hardhat_node.send_token(token, address, DUE_USDC, sender=payer)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["amount_confirmed"] == DUE_USDC and paid["payments"][0]["amount"] == DUE_USDC


def _checksum(address: str) -> str:
    from kassa.rails.evm.keys import checksum_address

    return checksum_address(address)


@pytest.mark.slow
def test_partial_then_complete_and_overpaid(
    shop: Shop, watching: Watching, hardhat_node: HardhatNode
) -> None:
    order = shop.order(confirmations=1)
    hardhat_node.send_eth(_address(order), DUE_WEI // 4)
    partial, _ = shop.wait(order["id"], "partly paid", lambda o: o["amount_received"] == DUE_WEI // 4)
    assert partial["status"] == "open"
    hardhat_node.send_eth(_address(order), DUE_WEI)  # 3/4 was due: 1/4 too much
    paid = shop.wait_status(order["id"], "paid", exception="overpaid")
    assert paid["amount_received"] == DUE_WEI + DUE_WEI // 4 and len(paid["payments"]) == 2


@pytest.mark.slow
def test_a_late_payment_is_paid_late(
    shop_factory: Callable[..., Shop], watching: Watching, ekassa: KassaServer, hardhat_node: HardhatNode
) -> None:
    shop = shop_factory(late_payment_policy="accept", default_confirmations=1)
    shop.configure()
    order = shop.order(expires_in=60)
    ekassa.clock.advance(61)
    ekassa.tick()
    assert shop.get(order["id"])["status"] == "expired"
    hardhat_node.send_eth(_address(order), DUE_WEI)
    paid = shop.wait_status(order["id"], "paid", exception="paid_late")
    assert paid["late"] is True


@pytest.mark.slow
def test_pending_while_automine_is_off_then_mined_to_the_confirmations(
    shop: Shop, watching: Watching, hardhat_node: HardhatNode, token: str
) -> None:
    eth_order = shop.order(confirmations=3)
    usdc_order = shop.order(payment_methods=["USDC"], confirmations=3)
    payer = hardhat_node.accounts[4]
    hardhat_node.mint(token, payer, 10**12)
    hardhat_node.automine(False)
    hardhat_node.send_eth(_address(eth_order), DUE_WEI)
    hardhat_node.send_token(token, _address(usdc_order), DUE_USDC, sender=payer)
    pending = shop.wait_status(eth_order["id"], "processing")  # seen in the pending block
    assert pending["payments"][0]["confirmations"] == 0
    assert shop.get(usdc_order["id"])["status"] == "open"  # tokens count once mined
    hardhat_node.mine(1)  # both in one block, matched in one pass
    one, _ = shop.wait(eth_order["id"], "1 conf", lambda o: o["payments"][0]["confirmations"] == 1)
    assert one["status"] == "processing"
    shop.wait_status(usdc_order["id"], "processing")
    hardhat_node.mine(2)
    for order in (eth_order, usdc_order):
        paid = shop.wait_status(order["id"], "paid")
        assert paid["payments"][0]["confirmations"] >= 3


@pytest.mark.slow
def test_a_reorg_that_removes_a_counted_payment_unpays_the_order(
    shop: Shop, watching: Watching, hardhat_node: HardhatNode
) -> None:
    order = shop.order(confirmations=1)
    snapshot = hardhat_node.snapshot()
    hardhat_node.send_eth(_address(order), DUE_WEI)
    hardhat_node.mine(1)
    paid = shop.wait_status(order["id"], "paid")
    assert paid["amount_confirmed"] == DUE_WEI
    hardhat_node.revert(snapshot)  # the blocks with the payment are gone
    hardhat_node.mine(3)  # a longer chain without it
    undone, _ = shop.wait(order["id"], "taken back", lambda o: o["payments"][0]["status"] == "rejected")
    assert undone["status"] != "paid" and undone["amount_confirmed"] == 0
    assert "payment.rejected" in shop.events(order["id"])


@pytest.mark.slow
def test_restart_mid_way(
    shop: Shop, watching: Watching, ekassa: KassaServer, hardhat_node: HardhatNode
) -> None:
    seen_first = shop.order(confirmations=3)
    while_down = shop.order(confirmations=3)
    hardhat_node.send_eth(_address(seen_first), DUE_WEI)
    shop.wait_status(seen_first["id"], "processing")
    time.sleep(0.6)  # the state is saved
    watching.stop()
    hardhat_node.send_eth(_address(while_down), DUE_WEI)
    hardhat_node.mine(4)
    assert shop.get(while_down["id"])["status"] == "open"
    restarted = watch_known_rails_only(ekassa.sibling(run_worker=True, rates=RATES)).start()
    try:
        for order in (seen_first, while_down):
            paid = shop.wait_status(order["id"], "paid", within=20)
            assert shop.events(order["id"]).count("payment.received") == 1
            assert paid["amount_received"] == DUE_WEI
    finally:
        shop.api.delete("/api/v1/payment-methods/evm")
        restarted.stop()


@pytest.mark.slow
def test_a_token_sent_to_an_eth_order_does_not_count_as_eth(
    shop: Shop, watching: Watching, hardhat_node: HardhatNode, token: str
) -> None:
    order = shop.order(confirmations=1)
    payer = hardhat_node.accounts[5]
    hardhat_node.mint(token, payer, 10**18)
    hardhat_node.send_token(token, _address(order), DUE_WEI, sender=payer)  # a huge USDC amount
    hardhat_node.mine(2)
    time.sleep(1.0)  # several passes
    assert shop.get(order["id"])["amount_received"] == 0
    hardhat_node.send_eth(_address(order), DUE_WEI)
    assert shop.wait_status(order["id"], "paid")["amount_received"] == DUE_WEI


@pytest.mark.slow
def test_check_reads_the_chain_and_the_token(shop: Shop, watching: Watching) -> None:
    response = shop.api.post("/api/v1/payment-methods/evm/check")
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["ok"] is True, health
    (chain,) = health["details"]["chains"]
    assert chain["node_chain_id"] == CHAIN and chain["block"] >= 1
    assert health["details"]["addresses"]["gap_limit"] is None  # EVM wallets do not scan ahead
    shop.configure(chains=[{"chain_id": 1, "name": "Mainnet?", "rpc_urls": [shop.node.url]}])
    health = shop.api.post("/api/v1/payment-methods/evm/check").json()
    assert health["ok"] is False and "not 1" in health["details"]["reason"]
