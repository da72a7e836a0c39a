"""The checkout pages and the customer's emails in the customer's language, through the real server
(SQLite and PostgreSQL): each language's own words, the order in which the language is chosen
(picker > order locale > Accept-Language > English), the picker kept by links and forms."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from kassa.i18n import LANGUAGES, language
from tests.checkout.conftest import MakeOrder, post_form
from tests.support.server import KassaServer


def lang_of(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)">', page)
    assert found, page[:200]
    return found.group(1)


def said(code: str, msgid: str, **values: str) -> str:
    """A message as the page writes it: translated, filled, HTML-escaped."""
    return html.escape(language(code).gettext(msgid, **values), quote=False)


@pytest.mark.parametrize("code", LANGUAGES)
def test_each_language_renders_its_own_words(code: str, make_order: MakeOrder, shopper: httpx.Client) -> None:
    order = make_order(amount=123450, currency="EUR")
    page = shopper.get(f"/pay/{order['id']}", params={"lang": code}).text
    lang = language(code)
    assert lang_of(page) == lang.tag
    amount = lang.money(123450, "EUR")
    for msgid, values in [
        ("Waiting for your payment", {}),
        ("Send exactly %(amount)s to the address below.", {"amount": amount}),
        ("Copy address", {}),
        ("Scan with your wallet", {}),
        ("Language", {}),
    ]:
        assert said(code, msgid, **values) in page, msgid
    assert f'<option value="{code}" lang="{lang.tag}" selected>' in page
    if code != "en":
        assert "Waiting for your payment" not in page and "Copy address" not in page
    status = shopper.get(f"/pay/{order['id']}/status", params={"lang": code}).json()
    assert (status["title"], status["amount_display"]) == (lang.gettext("Waiting for your payment"), amount)


def test_the_order_locale_is_used_unless_the_customer_picks(
    make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order(locale="de-AT")
    url = f"/pay/{order['id']}"
    french_browser = {"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.5"}
    assert lang_of(shopper.get(url, headers=french_browser).text) == "de"  # the order's locale
    assert lang_of(shopper.get(url, params={"lang": "ja"}, headers=french_browser).text) == "ja"
    assert lang_of(shopper.get(url, params={"lang": "nl"}, headers=french_browser).text) == "de"

    plain = make_order()  # no locale: the browser's, else English
    url = f"/pay/{plain['id']}"
    assert lang_of(shopper.get(url, headers=french_browser).text) == "fr"
    assert lang_of(shopper.get(url, headers={"Accept-Language": "nl, zh-TW;q=0.8"}).text) == "zh-Hant"
    assert lang_of(shopper.get(url, headers={"Accept-Language": "nl"}).text) == "en"
    assert lang_of(shopper.get(url).text) == "en"


def test_greenfield_default_language_reaches_the_page(kassa: KassaServer, shopper: httpx.Client) -> None:
    store, key = kassa.new_merchant()
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"token {key}"}) as greenfield:
        invoice = greenfield.post(
            f"/api/v1/stores/{store}/invoices",
            json={"amount": "1500", "currency": "TWD", "checkout": {"defaultLanguage": "zh-TW"}},
        )
    assert invoice.status_code == 200, invoice.text
    page = shopper.get(f"/pay/{invoice.json()['id']}").text
    assert lang_of(page) == "zh-Hant"
    assert said("zh_Hant", "Waiting for your payment") in page


def test_a_picked_language_is_kept_by_links_and_forms(
    kassa: KassaServer, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order(cancel_url="https://shop.example/cart")
    base = f"/pay/{order['id']}"
    page = shopper.get(base, params={"lang": "ru"}).text
    for target in ("cancel", "test"):
        assert f'action="{base}/{target}?lang=ru"' in page
    assert f'<form method="get" action="{base}" class="language">' in page  # the picker itself
    assert (
        f'data-panel-url="{base}/panel?lang=ru"' in page
        and f'data-status-url="{base}/status?lang=ru"' in page
    )
    assert said("ru", "Payment details") in shopper.get(f"{base}/panel", params={"lang": "ru"}).text

    paid = post_form(shopper, kassa, f"{base}/test?lang=ru", {"action": "part"})
    assert (paid.status_code, paid.headers["location"]) == (303, f"{base}?lang=ru")
    refused = post_form(shopper, kassa, f"{base}/test?lang=ru", {"action": "bogus"})
    assert refused.headers["location"] == f"{base}?lang=ru&notice=bad_form"
    again = shopper.get(refused.headers["location"]).text
    assert said("ru", "That form could not be read. Please try again.") in again

    unpicked = shopper.get(base, headers={"Accept-Language": "ja"}).text  # negotiated, not picked
    assert lang_of(unpicked) == "ja" and f'action="{base}/cancel"' in unpicked


def test_messages_and_notices_follow_the_browser(shopper: httpx.Client) -> None:
    missing = shopper.get("/pay/ord_doesnotexist", headers={"Accept-Language": "es"})
    assert missing.status_code == 404 and lang_of(missing.text) == "es"
    assert said("es", "Order not found") in missing.text


def test_the_customer_emails_speak_the_orders_language(kassa: KassaServer, api: httpx.Client) -> None:
    order = api.post(
        "/api/v1/orders",
        json={"amount": 123450, "currency": "EUR", "email": "kunde@example.de", "locale": "de-DE"},
    ).json()
    assert api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 123450}).status_code == 201
    assert api.post("/api/v1/test/blocks", json={"count": 1}).status_code == 200
    kassa.send_emails()
    mails = {m.kind: m for m in kassa.mailer.messages if m.to == "kunde@example.de"}
    created, receipt = mails["customer_order_created"], mails["customer_order_paid"]
    assert (
        created.subject
        == "[TEST — kein echtes Geld] Ihre Bestellung bei Test Shop: 1.234,50 € zu zahlen"  # one line, spaces
    )
    assert '<html lang="de">' in created.html and "Zur Zahlungsseite" in created.html
    assert "Zu zahlender Betrag: 1.234,50\u00a0€" in created.text
    assert receipt.subject.endswith("Beleg von Test Shop: 1.234,50 € bezahlt")
    assert "Vielen Dank, Ihre Zahlung an Test Shop ist eingegangen." in receipt.text
    assert re.search(r"Datum: \d{1,2}\. \w+ \d{4}, \d\d:\d\d:\d\d UTC", receipt.text), receipt.text

    english = api.post(
        "/api/v1/orders", json={"amount": 500, "currency": "EUR", "email": "buyer@example.com"}
    ).json()
    kassa.send_emails()
    (mail,) = [m for m in kassa.mailer.messages if m.to == "buyer@example.com" and english["id"] in m.text]
    assert mail.subject.endswith("Your order at Test Shop: €5.00 to pay")


def test_the_refund_page_and_email_speak_the_orders_language(
    kassa: KassaServer, api: httpx.Client, shopper: httpx.Client
) -> None:
    order = api.post(
        "/api/v1/orders",
        json={"amount": 2000, "currency": "USD", "email": "cliente@example.es", "locale": "es"},
    ).json()
    api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 2000})
    api.post("/api/v1/test/blocks", json={"count": 1})
    asked = api.post(f"/api/v1/orders/{order['id']}/refunds", json={"amount": 700}).json()
    kassa.send_emails()
    (mail,) = [
        m
        for m in kassa.mailer.messages
        if m.to == "cliente@example.es" and m.kind == "customer_refund_address"
    ]
    assert "Un reembolso de 7,00 US$ de Test Shop: ¿adónde lo enviamos?" in mail.subject

    link = asked["destination_url"]
    page = shopper.get(link).text
    assert lang_of(page) == "es" and said("es", "Send my refund here") in page
    picked = shopper.get(link, params={"lang": "pt_BR"}).text
    assert lang_of(picked) == "pt-BR" and "?lang=pt_BR" in picked  # the form posts back in Portuguese
    empty = shopper.post(link, params={"lang": "pt_BR"}, data={"destination": " "})
    assert (
        empty.status_code == 400 and said("pt_BR", "Enter the address to send the refund to.") in empty.text
    )
