"""The customer's language (kassa.i18n): complete catalogues, the order in which a language is
chosen, and amounts and times as each locale writes them (no server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.numbers import get_decimal_symbol, get_group_symbol

from kassa import i18n
from kassa.domain.money import MAX_AMOUNT, Money
from kassa.i18n import LANGUAGES, SOURCE, language, match, negotiate, preferred

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "src" / "kassa" / "locale"
TRANSLATED = [code for code in LANGUAGES if code != SOURCE]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
TAG = re.compile(r"<[^>]+>")
NBSP, NNBSP = "\u00a0", "\u202f"


def extracted() -> set[str]:
    """Every msgid in the sources, found as `pybabel extract -F babel.cfg` finds them."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = extract_from_dir(str(ROOT), method_map, options_map)
    ids = {message if isinstance(message, str) else message[0] for _, _, message, _, _ in found}
    assert len(ids) > 100, "extraction found too little: is babel.cfg right?"
    return ids


@pytest.fixture(scope="module")
def msgids() -> set[str]:
    return extracted()


def catalogue(code: str) -> Catalog:
    with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=code)


def test_the_template_is_current(msgids: set[str]) -> None:
    with (LOCALE_DIR / "messages.pot").open("rb") as pot:
        template = {m.id for m in read_po(pot) if m.id}
    assert template == msgids, "run pybabel extract (docs/i18n.md)"


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_message_is_translated(code: str, msgids: set[str]) -> None:
    messages = {m.id: m for m in catalogue(code) if m.id}
    problems = []
    for msgid in sorted(msgids):
        message = messages.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r}")
            continue
        text = message.string if isinstance(message.string, str) else " ".join(message.string)
        if not text.strip() or message.fuzzy:
            problems.append(f"untranslated or fuzzy: {msgid!r}")
        elif sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(msgid)):
            problems.append(f"placeholders differ: {msgid!r} -> {text!r}")
        elif sorted(TAG.findall(text)) != sorted(TAG.findall(msgid)):
            problems.append(f"markup differs: {msgid!r} -> {text!r}")
        elif text == msgid and re.search(r"[A-Za-z]", PLACEHOLDER.sub("", msgid)):
            problems.append(f"left in English: {msgid!r}")
    assert not problems, f"{code}: " + "\n".join(problems)


@pytest.mark.parametrize("code", TRANSLATED)
def test_catalogues_compile_in_memory(code: str) -> None:
    """From the .po itself: no .mo file, no build step."""
    lang = language(code)
    assert lang.gettext("Copy address") != "Copy address"
    assert lang.gettext("Pay %(amount)s on the payment page", amount="X").count("X") == 1


# --- choosing the language -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("de", "de"),
        ("de-CH", "de"),
        ("fr_CA", "fr"),
        ("es-419", "es"),
        ("pt", "pt_BR"),
        ("pt-PT", "pt_BR"),
        ("pt-BR", "pt_BR"),
        ("zh", "zh_Hans"),
        ("zh-CN", "zh_Hans"),
        ("zh-Hans-SG", "zh_Hans"),
        ("zh-TW", "zh_Hant"),
        ("zh-HK", "zh_Hant"),
        ("zh-Hant", "zh_Hant"),
        ("ja-JP", "ja"),
        ("RU", "ru"),
        ("en-US", "en"),
        ("nl", None),
        ("x-klingon", None),
        ("*", None),
        ("", None),
        (None, None),
        ("de" * 40, None),
    ],
)
def test_a_tag_matches_one_of_the_languages(tag: str | None, code: str | None) -> None:
    assert match(tag) == code


def test_accept_language_is_ranked_by_quality() -> None:
    assert preferred("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5") == ["fr-CH", "fr", "en", "de"]
    assert preferred("de;q=0.5, ja, nl;q=0") == ["ja", "de"]
    assert preferred("ru;q=oops, es") == ["es"]
    assert preferred(None) == preferred("") == []


def test_negotiation_order_picker_then_order_then_browser_then_english() -> None:
    header = "fr-CH, fr;q=0.9, de;q=0.5"
    assert negotiate("ja", "de", header).code == "ja"  # the picker wins
    assert negotiate("nope", "de", header).code == "de"  # an unknown pick is ignored
    assert negotiate(None, "zh-TW", header).code == "zh_Hant"  # then the order's locale
    assert negotiate(None, "nl", header).code == "fr"  # one Kassa lacks: the browser's
    assert negotiate(None, None, "nl, de;q=0.5").code == "de"  # first one Kassa has
    assert negotiate(None, None, "nl").code == "en"
    assert negotiate().code == SOURCE


# --- amounts and times -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "amount", "currency", "shown"),
    [
        ("de", 123450, "EUR", f"1.234,50{NBSP}€"),
        ("fr", 123450, "EUR", f"1{NNBSP}234,50{NBSP}€"),  # narrow no-break space between thousands
        ("en", 123450, "EUR", "€1,234.50"),
        ("es", 123450, "EUR", f"1.234,50{NBSP}€"),
        ("pt_BR", 2500, "USD", f"US${NBSP}25,00"),
        ("ru", 123450, "RUB", f"1{NBSP}234,50{NBSP}₽"),
        ("ja", 1500, "JPY", "￥1,500"),  # no decimals
        ("zh_Hans", 1500, "JPY", "JP¥1,500"),
        ("zh_Hant", 150000, "TWD", "$150,000"),  # Kassa's TWD has no decimals (NewebPay)
        ("en", 150000, "TWD", "NT$150,000"),
        ("en", 1234, "KWD", f"KWD{NBSP}1.234"),  # three decimals; a letter symbol keeps its space
        ("de", 150_000_000, "XMR", f"0,00015{NBSP}XMR"),  # coins: the number, then the code
        ("fr", 123_456_789, "BTC", f"1,23456789{NBSP}BTC"),  # BTC keeps all 8 decimals
        ("ja", 10**18 + 1, "ETH", f"1.000000000000000001{NBSP}ETH"),
    ],
)
def test_amounts_in_each_locale(code: str, amount: int, currency: str, shown: str) -> None:
    assert language(code).money(amount, currency) == shown


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_largest_wei_amount_is_exact_in_every_language(code: str) -> None:
    wei = MAX_AMOUNT - 1  # 2**256 - 1 wei, the largest amount Kassa stores
    shown = language(code).money(wei, "ETH")
    number, code_part = shown.rsplit(NBSP, 1)
    locale = language(code).locale
    plain = number.replace(get_group_symbol(locale), "").replace(get_decimal_symbol(locale), ".")
    assert code_part == "ETH"
    assert plain == Money(wei, "ETH").to_decimal_string()  # every one of the 78 digits


def test_times_are_written_in_the_locale_in_utc() -> None:
    moment = datetime(2025, 3, 1, 14, 30, 5, tzinfo=UTC)
    assert language("de").datetime(moment) == "1. März 2025, 14:30:05 UTC"
    assert language("ja").datetime(moment) == "2025年3月1日 14:30:05 UTC"
    assert language("en").datetime(moment) == f"March 1, 2025, 2:30:05{NNBSP}PM UTC"
    with pytest.raises(ValueError, match="timezone-aware"):
        language("de").datetime(datetime(2025, 3, 1))


def test_language_names_and_tags() -> None:
    assert [language(c).tag for c in LANGUAGES] == [
        "en",
        "de",
        "fr",
        "es",
        "pt-BR",
        "zh-Hans",
        "ja",
        "ru",
        "zh-Hant",
    ]
    assert language("de").name == "Deutsch" and language("zh_Hant").name == "中文 (繁體)"
    with pytest.raises(KeyError):
        language("nl")
    assert i18n.ENGLISH is language(SOURCE)
