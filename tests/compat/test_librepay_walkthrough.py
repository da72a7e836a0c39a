"""docs/compat/librepay.md's walk-through, run as written with real curl against a real Kassa server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.compat.conftest import KAShop
from tests.support.walkthrough import DOCS, run_walkthrough, steps

DOC = DOCS / "compat" / "librepay.md"


def test_walkthrough_runs_as_written(ka_factory: Callable[..., KAShop], tmp_path: Path) -> None:
    shop = ka_factory()  # takes GRIN and the test rail's coin
    assert len([kind for kind, _ in steps(DOC) if kind == "sh"]) == 5
    created, chosen, paid, events, refused = run_walkthrough(
        DOC, {"KASSA": shop.server.base_url, "KEY": shop.key}, tmp_path
    )
    invoice = json.loads(created)
    assert invoice["methods"] == [{"coin": "GRIN", "price": 2}, {"coin": "test", "price": 0.1}]
    assert '"receiveAddress":"test:' + invoice["selector"] in chosen
    assert paid.split() == ['"status":"processing"', '"status":"paid"']
    assert events.startswith("event: status\n")
    assert json.loads(events.split("data: ", 1)[1].splitlines()[0])["status"] == "paid"
    assert json.loads(refused)["error"]["param"] == "cart[0].price"
    assert shop.native(invoice["selector"])["status"] == "paid"
