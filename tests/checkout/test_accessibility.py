"""The checkout pages in real Chromium: axe-core's rules (no serious or critical violation) on an open
order with its payment method, the paid, expired and refund pages; usable at 320 px wide; the
language picker without JavaScript; the script's words in the page's language.

Screenshots (each language at 320 px and at desktop width) and axe's reports go to
test-artifacts/checkout/ (or $KASSA_TEST_ARTIFACTS/checkout/); the path is printed when the module starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from kassa.i18n import LANGUAGES, language
from tests.checkout.conftest import MakeOrder, OpenPage
from tests.conftest import CHROMIUM
from tests.support.axe_core import SEVERE, axe_violations
from tests.support.server import KassaServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"),
]

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 320, "height": 640}
CART = [
    {"name": "Hand-thrown espresso cup, speckled glaze", "price": 1250, "quantity": 2},
    {"name": "Beans 250 g", "price": 899},
]


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = Path(os.environ.get("KASSA_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "checkout"
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ncheckout screenshots and axe reports: {folder}")
    return folder


def check_axe(page: Page, folder: Path, name: str) -> None:
    """No serious or critical violation; everything axe found is written to `<name>.axe.txt`."""
    found = axe_violations(page)
    (folder / f"{name}.axe.txt").write_text("\n".join(map(str, found)) or "no violations\n", encoding="utf-8")
    severe = [v for v in found if v.impact in SEVERE]
    assert not severe, f"{name}:\n" + "\n".join(map(str, severe))


def check_narrow(page: Page, *selectors: str) -> None:
    """At 320 px: nothing scrolls sideways, and each element is visible and inside the width."""
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    for selector in selectors:
        element = page.locator(selector).first
        expect(element).to_be_visible()
        box = element.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector


def paid_order(api: httpx.Client, make_order: MakeOrder, **fields: Any) -> dict[str, Any]:
    order = make_order(**fields)
    assert api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 2500}).status_code == 201
    assert api.post("/api/v1/test/blocks", json={"count": 1}).status_code == 200
    return order


@pytest.mark.parametrize("code", LANGUAGES)
def test_open_order_passes_axe_and_fits_320px(
    code: str, open_page: OpenPage, make_order: MakeOrder, artifacts: Path
) -> None:
    lang = language(code)
    order = make_order(cart=CART, description="Order #1042", cancel_url="https://shop.example/cart")
    page, errors = open_page(viewport=DESKTOP)
    page.goto(f"{order['checkout_url']}?lang={code}")
    expect(page.locator("html")).to_have_attribute("lang", lang.tag)
    copy = page.get_by_role("button", name=lang.gettext("Copy address"))
    expect(copy).to_be_visible()  # shown by the script
    page.screenshot(path=artifacts / f"open-{code}-desktop.png", full_page=True)
    check_axe(page, artifacts, f"open-{code}")

    check_narrow(page, ".head__amount", "#pay-amount", ".qr-code", "#address", "[data-copy]", "#test-full")
    page.screenshot(path=artifacts / f"open-{code}-320.png", full_page=True)
    copy.click()
    expect(page.get_by_text(lang.gettext("Address copied."))).to_be_visible()  # the script's words
    assert errors == []


def _paid(api: httpx.Client, kassa: KassaServer, make_order: MakeOrder) -> tuple[str, tuple[str, ...]]:
    order = paid_order(api, make_order, success_url="https://shop.example/thanks")
    return order["checkout_url"], (".head__amount", ".receipt .strong", ".receipt .button")


def _expired(api: httpx.Client, kassa: KassaServer, make_order: MakeOrder) -> tuple[str, tuple[str, ...]]:
    order = make_order(expires_in=60, cancel_url="https://shop.example/cart")
    kassa.clock.advance(61)
    assert kassa.tick() >= 1
    return order["checkout_url"], (".head__amount", ".closed .button")


def _refund(api: httpx.Client, kassa: KassaServer, make_order: MakeOrder) -> tuple[str, tuple[str, ...]]:
    order = paid_order(api, make_order)
    asked = api.post(f"/api/v1/orders/{order['id']}/refunds", json={"amount": 700})
    assert asked.status_code == 201, asked.text
    return asked.json()["destination_url"], (".head__amount", "#destination", "#refund-send")


STATES: dict[str, Callable[[httpx.Client, KassaServer, MakeOrder], tuple[str, tuple[str, ...]]]] = {
    "paid": _paid,
    "expired": _expired,
    "refund": _refund,
}


@pytest.mark.parametrize("code", ["en", "fr", "zh_Hant"])
@pytest.mark.parametrize("state", list(STATES))
def test_paid_expired_and_refund_pages_pass_axe(
    state: str,
    code: str,
    open_page: OpenPage,
    kassa: KassaServer,
    api: httpx.Client,
    make_order: MakeOrder,
    artifacts: Path,
) -> None:
    url, visible = STATES[state](api, kassa, make_order)
    page, errors = open_page(viewport=DESKTOP)
    page.goto(f"{url}?lang={code}")
    expect(page.locator("html")).to_have_attribute("lang", language(code).tag)
    check_axe(page, artifacts, f"{state}-{code}")
    check_narrow(page, *visible)
    page.screenshot(path=artifacts / f"{state}-{code}-320.png", full_page=True)
    assert errors == []


def test_the_picker_works_without_javascript(open_page: OpenPage, make_order: MakeOrder) -> None:
    order = make_order()
    page, _ = open_page(java_script_enabled=False, viewport=PHONE)
    page.goto(order["checkout_url"])
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_label("Language").select_option("de")
    page.get_by_role("button", name="Change").click()
    expect(page.locator("html")).to_have_attribute("lang", "de")
    assert page.url.endswith("?lang=de")
    german = language("de")
    page.get_by_role(
        "button", name=german.gettext("Pay in full (%(amount)s)", amount=german.money(2500, "USD"))
    ).click()
    expect(page.locator("#status-title")).to_have_text(german.gettext("Payment seen"))  # still German
    assert page.url.endswith("?lang=de")


def test_the_browsers_language_is_used_and_the_script_speaks_it(
    open_page: OpenPage, api: httpx.Client, make_order: MakeOrder
) -> None:
    order = make_order()
    japanese = language("ja")
    page, errors = open_page(locale="ja-JP")  # sends Accept-Language: ja-JP
    page.goto(order["checkout_url"])
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    assert api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 2500}).status_code == 201
    expect(page.locator("#status-title")).to_have_text(japanese.gettext("Payment seen"))  # live update
    expect(page.locator(".panel")).to_contain_text(japanese.gettext("Timer paused: payment seen"))
    assert errors == []
