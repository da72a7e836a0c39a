"""Settings types shared by rails that talk to a counterpart's RPC endpoint."""

from __future__ import annotations

from typing import Annotated

import httpx
from pydantic import AfterValidator, Field


def _rpc_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:18083")
    if not url.host:
        raise ValueError("must name a host, e.g. http://127.0.0.1:18083")
    if url.userinfo:
        raise ValueError("must not carry credentials: give them as username and password")
    if url.query or url.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/")


RpcUrl = Annotated[str, Field(max_length=2000), AfterValidator(_rpc_url)]
"""An http(s) base URL of an RPC endpoint: a host, no credentials, query or fragment."""
