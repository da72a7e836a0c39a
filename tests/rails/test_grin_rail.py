"""The grin rail's own rules: settings, destinations, what the watcher reports, the health check."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kassa.rails.base import PayloadInvalid, Quote, QuoteRequest, RailConfig
from kassa.rails.grin.rail import GrinRail
from kassa.rails.grin.rpc import TxLogEntry
from kassa.rails.grin.watcher import sighting_of
from tests.support.grin_stand_in import GrinStandIn, make_slate_v4


def config(net: GrinStandIn | None = None, **settings: Any) -> RailConfig:
    base = {
        "wallet_url": net.wallet_url if net else "http://127.0.0.1:9",
        "owner_api_url": net.wallet_url if net else "http://127.0.0.1:9",
        "owner_api_secret": net.api_secret if net else "x",
        "wallet_password": net.wallet_password if net else "x",
        "node_api_url": net.node_url if net else "http://127.0.0.1:9",
        "node_api_secret": net.node_api_secret if net else "x",
        "timeout": 2,
    }
    return RailConfig(1, "mch_a/b", "grin", {**base, **settings})


async def test_the_destination_is_the_order_url() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    request = QuoteRequest("ord_1", 1000, "USD", when, "shop order/1", "https://pay.example")
    quote = Quote("GRIN", "GRIN", 5, Decimal(1), when)
    dest = await GrinRail().prepare(config(), request, quote)
    assert dest.address == "https://pay.example/merchants/mch_a%2Fb/orders/shop%20order%2F1"
    assert dest.payment_uri == dest.address
    kept = await GrinRail().prepare(config(), request, quote, "https://old.example/merchants/m/orders/o")
    assert (
        kept.address == kept.payment_uri == "https://old.example/merchants/m/orders/o"
    )  # a refresh keeps it


def test_read_submission() -> None:
    slate = make_slate_v4(123)
    offer = GrinRail().read_submission(config(), slate)
    assert (offer.reference, offer.amount) == (slate["id"], 123)
    with pytest.raises(PayloadInvalid):
        GrinRail().read_submission(config(), {"ver": "4:2"})


def entry(**fields: Any) -> TxLogEntry:
    raw = {
        "id": 1,
        "tx_slate_id": "0436430c-2b02-624c-2032-570501212b00",
        "tx_type": "TxReceived",
        "confirmed": False,
        "amount_credited": "5",
        "amount_debited": "0",
        "fee": None,
        "kernel_excess": None,
        "kernel_lookup_min_height": None,
        "ttl_cutoff_height": None,
        "creation_ts": "2026-01-01T00:00:00Z",
        "confirmation_ts": None,
        "num_inputs": 0,
        "num_outputs": 1,
        "parent_key_id": "0200000000000000000000000000000000",
        "tx_hex": None,
        "stored_tx": None,
        "messages": None,
        "payment_proof": None,
        "reverted_after": None,
        **fields,
    }
    return TxLogEntry.from_json(raw)


class Node:
    def __init__(self, height: int | None) -> None:
        self.height = height

    async def get_kernel(
        self, excess: str, min_height: int | None = None, max_height: int | None = None
    ) -> int | None:
        return self.height


async def test_sightings_from_the_wallet_log() -> None:
    excess = "08" + "ab" * 32
    mined = await sighting_of(entry(kernel_excess=excess), 110, Node(101))  # type: ignore[arg-type]
    assert (mined.confirmations, mined.rejected, mined.amount, mined.destination) == (10, False, 5, None)
    waiting = await sighting_of(entry(kernel_excess=excess), 110, Node(None))  # type: ignore[arg-type]
    assert (waiting.confirmations, waiting.rejected) == (0, False)
    past_ttl = await sighting_of(entry(kernel_excess=excess, ttl_cutoff_height="100"), 110, Node(None))  # type: ignore[arg-type]
    assert past_ttl.rejected
    cancelled = await sighting_of(entry(tx_type="TxReceivedCancelled"), 110, Node(101))  # type: ignore[arg-type]
    assert cancelled.rejected


async def test_check_reports_a_healthy_wallet_and_an_unreachable_one() -> None:
    with GrinStandIn() as net:
        health = await GrinRail().check(config(net))
        assert health.ok, health.details
        assert health.details["slate_versions"] == ["V4", "V3"]
        assert health.details["wallet_lag"] == 0
        bad = await GrinRail().check(config(net, owner_api_secret="wrong"))
        assert not bad.ok
        assert "authentication failed" in bad.details["reason"]
        assert "wrong" not in str(bad.details)
    down = await GrinRail().check(config())
    assert not down.ok
    assert "unreachable" in down.details["reason"]
