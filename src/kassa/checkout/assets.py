"""The page's one stylesheet and one script, served under content-hashed names (cached for a year)."""

from __future__ import annotations

from kassa.static_assets import AssetSet

ASSETS = AssetSet("kassa.checkout", ("checkout.css", "checkout.js"), "/pay/static")


def asset_url(source: str) -> str:
    return ASSETS.url(source)
