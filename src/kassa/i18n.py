"""The customer's language: gettext catalogues through Babel, choosing a language for a request or an
email, and amounts and times in that language's locale.

English is the source language. The others are `kassa/locale/<code>/LC_MESSAGES/messages.po`, compiled
in memory the first time they are used (no .mo files, no build step). docs/i18n.md tells how to add one.
"""

from __future__ import annotations

import copy
import decimal
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from gettext import NullTranslations
from importlib.resources import files
from io import BytesIO

import jinja2
from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import NumberPattern, format_decimal, get_currency_symbol, parse_pattern
from babel.support import Translations

from kassa.domain.money import MAX_DIGITS, Money

__all__ = [
    "ENGLISH",
    "LANGUAGES",
    "N_",
    "SOURCE",
    "Language",
    "install",
    "language",
    "match",
    "negotiate",
    "preferred",
]

SOURCE = "en"
LANGUAGES = (SOURCE, "de", "fr", "es", "pt_BR", "zh_Hans", "ja", "ru", "zh_Hant")
"""The languages Kassa speaks, as Babel locale identifiers (the catalogue folders' names)."""

_ALIASES = {"pt": "pt_BR", "zh": "zh_Hans"}  # a bare language goes to the variant Kassa has
_BY_LOWER = {code.lower(): code for code in LANGUAGES}
_MAX_RANGES = 20  # of an Accept-Language header; the rest is ignored
_PRECISION = 4 * MAX_DIGITS  # Decimal context for Babel's rounding steps: 2**256 wei stays exact


def N_(message: str) -> str:
    """Mark a message for extraction (pybabel finds `N_`); it is translated where it is shown."""
    return message


@dataclass(frozen=True, slots=True, eq=False)
class Language:
    """One of LANGUAGES: its catalogue and its locale's ways with numbers and dates."""

    code: str
    locale: Locale
    translations: NullTranslations

    @property
    def tag(self) -> str:
        """BCP 47, for `lang` attributes and gateways: `de`, `pt-BR`, `zh-Hant`."""
        return self.code.replace("_", "-")

    @property
    def name(self) -> str:
        """The language's name in itself: `Deutsch`, `Français`, `中文 (繁體)`."""
        name = self.locale.get_display_name() or self.code
        return name[:1].upper() + name[1:]

    def gettext(self, message: str, **values: object) -> str:
        """The translation of `message`, with `%(name)s` placeholders filled from `values`."""
        text = self.translations.gettext(message)
        return text % values if values else text

    def money(self, amount: int, currency: str) -> str:
        """Minor units in this locale, exactly: `1.234,50 €` (de), `￥1,500` (ja). Coins are not
        ISO 4217 currencies: their number in the locale's digits, then the code (`1,5 XMR`)."""
        money = Money(amount, currency)
        text = money.display_number()
        places = len(text.partition(".")[2])
        if money.spec.crypto:
            number = self._apply(self.locale.decimal_formats[None], text, places)
            return f"{number}\N{NO-BREAK SPACE}{money.currency}"
        formatted = self._apply(self.locale.currency_formats["standard"], text, places, money.currency)
        return _currency_spacing(formatted, get_currency_symbol(money.currency, self.locale))

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def datetime(self, value: datetime) -> str:
        """A moment in UTC, long form with the zone: `1. März 2025, 14:30:05 UTC` (de)."""
        if value.tzinfo is None:
            raise ValueError("times must be timezone-aware")
        return format_datetime(value, "long", tzinfo=UTC, locale=self.locale)

    def _apply(
        self, pattern: str | NumberPattern, text: str, places: int, currency: str | None = None
    ) -> str:
        """Babel's number pattern with exactly `places` decimals (Kassa's, not CLDR's: TWD has 0),
        in a Decimal context wide enough that nothing is rounded."""
        number = copy.copy(parse_pattern(pattern))
        number.frac_prec = (places, places)
        with decimal.localcontext(prec=_PRECISION):
            formatted: str = number.apply(
                decimal.Decimal(text), self.locale, currency=currency, currency_digits=False
            )
        return formatted


def _currency_spacing(text: str, symbol: str) -> str:
    """CLDR's currencySpacing, which Babel does not apply: a symbol made of letters (a bare ISO
    code such as `KWD`) gets a no-break space from the digits it touches (`KWD\xa0123.456`)."""
    if text.startswith(symbol) and symbol[-1:].isalpha() and text[len(symbol) : len(symbol) + 1].isdigit():
        return f"{symbol}\N{NO-BREAK SPACE}{text[len(symbol) :]}"
    if text.endswith(symbol) and symbol[:1].isalpha() and text[-len(symbol) - 1 : -len(symbol)].isdigit():
        return f"{text[: -len(symbol)]}\N{NO-BREAK SPACE}{symbol}"
    return text


def _translations(code: str) -> NullTranslations:
    if code == SOURCE:
        return NullTranslations()
    source = files("kassa").joinpath("locale", code, "LC_MESSAGES", "messages.po")
    with source.open("rb") as po:
        catalog = read_po(po, locale=code, domain="messages")
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled, domain="messages")


@cache
def language(code: str) -> Language:
    """One of LANGUAGES (KeyError for any other), its catalogue compiled on first use."""
    if code not in LANGUAGES:
        raise KeyError(code)
    return Language(code, Locale.parse(code), _translations(code))


ENGLISH = language(SOURCE)


@lru_cache(maxsize=1024)
def match(tag: str | None) -> str | None:
    """The language of LANGUAGES for a BCP 47 tag or locale name, or None: `de-CH` -> `de`,
    `zh-TW` -> `zh_Hant` (Babel fills in the script), `zh` -> `zh_Hans`, `pt-PT` -> `pt_BR`."""
    if not tag or len(tag) > 50:
        return None
    try:
        locale = Locale.parse(tag.strip().replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    wanted = [str(locale), f"{locale.language}_{locale.script}" if locale.script else "", locale.language]
    found = negotiate_locale([w for w in wanted if w], LANGUAGES, aliases=_ALIASES)
    return _BY_LOWER.get(found.lower()) if found else None


def preferred(accept_language: str | None) -> list[str]:
    """The tags of an `Accept-Language` header, most wanted first (`*` and `q=0` left out)."""
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "").split(",")[:_MAX_RANGES]):
        tag, _, params = item.partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        if tag.strip() not in ("", "*") and quality > 0:
            ranked.append((-quality, index, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(
    picked: str | None = None, order_locale: str | None = None, accept_language: str | None = None
) -> Language:
    """The language to speak: the picker's choice, else the order's locale, else the browser's
    `Accept-Language`, else English."""
    for tag in (picked, order_locale, *preferred(accept_language)):
        code = match(tag)
        if code is not None:
            return language(code)
    return ENGLISH


def install(env: jinja2.Environment, lang: Language) -> jinja2.Environment:
    """Make `env` speak `lang`: Jinja's i18n extension with newstyle gettext
    (`_("Pay %(amount)s", amount=x)`, escaped in HTML), `{% trans %}` blocks trimmed, and `lang`
    (this Language) for the templates."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(lang.translations, newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = lang
    return env
