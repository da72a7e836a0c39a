"""The page's one stylesheet and one script, served under content-hashed names (cached for a year)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
SOURCES = ("checkout.css", "checkout.js")


@dataclass(frozen=True, slots=True)
class Asset:
    name: str  # e.g. checkout.3f2a9c1b0d4e.css
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for source in SOURCES:
        body = files("kassa.checkout").joinpath("static", source).read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:12]
        stem, dot, ext = source.rpartition(".")
        found[source] = Asset(f"{stem}.{digest}{dot}{ext}", body, _TYPES[dot + ext], f'"{digest}"')
    return found


ASSETS = _load()
BY_NAME = {asset.name: asset for asset in ASSETS.values()}


def asset_url(source: str) -> str:
    return f"/pay/static/{ASSETS[source].name}"
