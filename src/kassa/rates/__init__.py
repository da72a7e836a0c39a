"""Exchange rates: where prices in one currency come from when an order is paid in another."""

from kassa.rates.base import Pair, Rate, RateSource, RateUnavailable
from kassa.rates.cache import RateCache
from kassa.rates.coingecko import CoinGeckoRateSource
from kassa.rates.combined import CombinedRateSource
from kassa.rates.conversion import convert_minor
from kassa.rates.factory import build_rate_source
from kassa.rates.kraken import KrakenRateSource
from kassa.rates.static import StaticRateSource

__all__ = [
    "CoinGeckoRateSource",
    "CombinedRateSource",
    "KrakenRateSource",
    "Pair",
    "Rate",
    "RateCache",
    "RateSource",
    "RateUnavailable",
    "StaticRateSource",
    "build_rate_source",
    "convert_minor",
]
