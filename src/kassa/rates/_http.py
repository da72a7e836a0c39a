"""One GET returning parsed JSON, every failure turned into RateUnavailable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import NoReturn

import httpx

from kassa.rates.base import Pair, RateUnavailable, parse_rate_value

DEFAULT_TIMEOUT = 10.0


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    params: Mapping[str, str],
    *,
    seconds: float,
    source: str,
    pairs: Sequence[Pair],
) -> object:
    """GET `url` and parse its JSON body; JSON numbers with a fraction become Decimal, never float.

    `seconds` bounds the whole exchange (httpx's own timeout bounds each phase only).
    """
    try:
        async with asyncio.timeout(seconds):
            response = await client.get(url, params=params, timeout=seconds)
    except (TimeoutError, httpx.TimeoutException):
        raise RateUnavailable(pairs, source, f"no answer within {seconds:g} s from {url}") from None
    except httpx.HTTPError as exc:
        raise RateUnavailable(pairs, source, f"request to {url} failed: {exc!r}") from None
    if not response.is_success:
        snippet = " ".join(response.text[:200].split())
        raise RateUnavailable(pairs, source, f"HTTP {response.status_code} from {url}: {snippet!r}")
    try:
        return json.loads(response.content, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RateUnavailable(pairs, source, f"malformed JSON from {url}: {exc}") from None


def positive_decimal(raw: object) -> Decimal | None:
    """A JSON price as a positive finite Decimal, or None when it is anything else."""
    try:
        return parse_rate_value(raw)
    except ValueError:
        return None
