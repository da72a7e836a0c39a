"""The currency registry: every currency Kassa knows, with the exponent of its smallest unit.

Fiat exponents are ISO 4217's, except TWD, which NewebPay (and Taiwanese practice) settles in whole
dollars, so Kassa uses 0 (DESIGN.md). Coins use their chain's smallest unit (satoshi, piconero, wei, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    exponent: int
    crypto: bool = False
    name: str = ""


class UnknownCurrency(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown currency {code!r}")
        self.code = code


# Active ISO 4217 codes. Exponent 2 unless listed in _ISO_EXPONENTS.
_ISO_CODES = [
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BHD",
    "BIF",
    "BMD",
    "BND",
    "BOB",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHF",
    "CLF",
    "CLP",
    "CNY",
    "COP",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DJF",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GNF",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IQD",
    "IRR",
    "ISK",
    "JMD",
    "JOD",
    "JPY",
    "KES",
    "KGS",
    "KHR",
    "KMF",
    "KPW",
    "KRW",
    "KWD",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "LYD",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "OMR",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "PYG",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "RWF",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TND",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "UGX",
    "USD",
    "UYU",
    "UYW",
    "UZS",
    "VES",
    "VND",
    "VUV",
    "WST",
    "XAF",
    "XCD",
    "XOF",
    "XPF",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
]

_ISO_EXPONENTS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
    "TWD": 0,  # Kassa-wide: NewebPay and local practice use whole dollars (DESIGN.md).
}

_COINS = (
    Currency("BTC", 8, True, "Bitcoin"),
    Currency("LTC", 8, True, "Litecoin"),
    Currency("XMR", 12, True, "Monero"),
    Currency("ETH", 18, True, "Ether"),
    Currency("GRIN", 9, True, "Grin"),
    Currency("USDC", 6, True, "USD Coin"),
    Currency("USDT", 6, True, "Tether USD"),
)


def _build() -> MappingProxyType[str, Currency]:
    table = {code: Currency(code, _ISO_EXPONENTS.get(code, 2)) for code in _ISO_CODES}
    table.update({c.code: c for c in _COINS})
    return MappingProxyType(table)


CURRENCIES = _build()


def get_currency(code: str) -> Currency:
    """Look a currency up by code (case-insensitive); raise UnknownCurrency otherwise."""
    try:
        return CURRENCIES[code.upper()]
    except (KeyError, AttributeError):
        raise UnknownCurrency(str(code)) from None
