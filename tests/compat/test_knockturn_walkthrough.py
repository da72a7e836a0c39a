"""docs/compat/knockturnallee.md's walk-through, run as written: every ```sh block in order, with
real curl against a real Kassa server; `<!-- walkthrough: … -->` markers stand for what happens
off-screen (the customer's wallet writes its slate, blocks are mined)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.compat.conftest import KAShop
from tests.support.grin_stand_in import make_slate_v4
from tests.support.receiver import Receiver
from tests.support.server import ADMIN_TOKEN
from tests.support.walkthrough import DOCS, run_walkthrough, steps
from tests.support.watching import Watching

DOC = DOCS / "compat" / "knockturnallee.md"


def test_the_doc_has_a_walkthrough() -> None:
    kinds = [kind for kind, _ in steps(DOC)]
    assert kinds.count("sh") >= 8
    assert kinds.count("marker") == 2


def test_walkthrough_runs_as_written(
    ka_factory: Callable[..., KAShop], watching: Watching, tmp_path: Path
) -> None:
    shop = ka_factory(configure=False)
    receiver = Receiver().start()
    net = shop.net
    env = {
        "KASSA": shop.server.base_url,
        "ADMIN": ADMIN_TOKEN,
        "MERCHANT": shop.merchant_id,
        "KEY": shop.key,
        "WALLET_URL": net.wallet_url,
        "OWNER_API_URL": net.wallet_url,
        "OWNER_SECRET": net.api_secret or "",
        "WALLET_PASSWORD": net.wallet_password,
        "NODE_API_URL": net.node_url,
        "NODE_SECRET": net.node_api_secret or "",
        "CALLBACK_URL": f"{receiver.url}/shop",
    }
    slate_id = None

    def off_screen(marker: str) -> None:
        nonlocal slate_id
        words = marker.split()
        if words[0] == "write":  # write slate.json for <order>
            slate = make_slate_v4(shop.native(words[-1])["amount_due"])
            slate_id = slate["id"]
            (tmp_path / "slate.json").write_text(json.dumps(slate))
        elif words[0] == "mine":  # mine <order> <blocks>
            assert slate_id is not None
            net.broadcast(slate_id)
            net.mine(int(words[2]))
            shop.wait_status(words[1], "CONFIRMED", within=30)

    try:
        outputs = run_walkthrough(DOC, env, tmp_path, off_screen)
        text = "\n".join(outputs)
        assert '"status":"UNPAID"' in text
        assert '"grin_amount":200000000000' in text
        assert '"code":"amount_mismatch"' in text
        assert '"foreign_api_version":2' in text
        assert '"sta":"S2"' in text or '"sta": "S2"' in text
        assert '"status":"RECEIVED"' in text and '"status":"CONFIRMED"' in text
        # The merchant's backend heard of it, signed; the customer got an email.
        secret = shop.api.post("/api/v1/merchant/callback-secret").json()["secret"]
        receiver.secrets["/shop"] = [secret]
        shop.server.deliver()
        paid = [r for r in receiver.on("/shop") if r.body.get("type") == "order.paid"]
        assert paid and paid[0].body["data"]["order_id"] == "xyz"
        shop.server.send_emails()
        assert any(m.to == "user@domain.com" for m in shop.server.mailer.messages)
        assert shop.native("abc")["amount"] == 250
    finally:
        receiver.stop()
