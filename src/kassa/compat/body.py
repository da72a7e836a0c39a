"""Reading a front's JSON request body, the same way for every front; each answers the fault in
its own protocol's shape."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


class BodyInvalid(ValueError):
    """The body is not JSON Kassa takes; the message says why, for the caller."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def loads(raw: bytes, *, exact: bool = True) -> Any:
    """The body as JSON. `exact`: non-integer numbers become exact Decimals (prices), else floats
    (a payload forwarded as it came). NUL (PostgreSQL cannot store it), NaN/Infinity, bad UTF-8
    and nesting too deep to read are BodyInvalid, never an error of the server."""
    if b"\\u0000" in raw or b"\x00" in raw:
        raise BodyInvalid("text must not contain NUL characters (\\u0000)")
    try:
        return json.loads(raw, parse_float=Decimal if exact else float, parse_constant=_refuse_constant)
    except RecursionError:
        raise BodyInvalid("the request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BodyInvalid(f"the request body is not valid JSON: {exc}") from None
