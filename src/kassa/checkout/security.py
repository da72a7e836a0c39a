"""Response headers and the cross-site check for the checkout page's forms."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def origin_of(url: str | None) -> str | None:
    """`https://shop.example/thanks?x=1` -> `https://shop.example`; None for anything odd."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    origin = f"{parts.scheme.lower()}://{parts.netloc.rsplit('@', 1)[-1].lower()}"
    return origin if _ORIGIN.match(origin) else None


def csp(form_targets: Iterable[str | None] = ()) -> str:
    """Same-origin only: no inline script, no third-party origin. Forms may also land on the
    merchant's origin (the cancel form redirects to `cancel_url`, and Chrome checks redirects)."""
    extra = sorted({o for o in (origin_of(u) for u in form_targets) if o})
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action " + " ".join(["'self'", *extra]),
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def page_headers(form_targets: Iterable[str | None] = ()) -> dict[str, str]:
    """Headers for every checkout answer (HTML, JSON and redirects)."""
    return {
        "Content-Security-Policy": csp(form_targets),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def same_origin_post(headers: Mapping[str, str], scheme: str, base_url: str) -> bool:
    """Whether a form POST comes from the checkout page itself (CSRF check).

    The order id in the URL is the capability, so this only has to stop other sites from
    submitting forms: `Sec-Fetch-Site` must not say cross-site, and an `Origin`, when sent, must
    be Kassa's (its base URL or the Host the request came to). Pages sent with
    `Referrer-Policy: no-referrer` make browsers send `Origin: null` on their POSTs; that is
    accepted only together with `Sec-Fetch-Site: same-origin`."""
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser, or an old one: nothing to check against
    if origin == "null":
        return site is not None and site.lower() == "same-origin"
    allowed = {origin_of(base_url)}
    host = headers.get("host")
    if host:
        allowed.add(origin_of(f"{scheme}://{host}"))
    return origin_of(origin) in allowed - {None}
