"""A package's stylesheets and scripts, served under content-hashed names (cached for a year)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str  # e.g. checkout.3f2a9c1b0d4e.css
    body: bytes
    media_type: str
    etag: str


class AssetSet:
    """The files `sources` of `package`'s `static` folder, served under `url_prefix`."""

    def __init__(self, package: str, sources: tuple[str, ...], url_prefix: str) -> None:
        self.url_prefix = url_prefix
        self.assets: dict[str, Asset] = {}
        for source in sources:
            body = files(package).joinpath("static", source).read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            stem, dot, ext = source.rpartition(".")
            self.assets[source] = Asset(f"{stem}.{digest}{dot}{ext}", body, _TYPES[dot + ext], f'"{digest}"')
        self.by_name = {asset.name: asset for asset in self.assets.values()}

    def url(self, source: str) -> str:
        return f"{self.url_prefix}/{self.assets[source].name}"

    def response(self, request: Request, name: str) -> Response:
        asset = self.by_name.get(name)
        if asset is None:
            return Response(
                "not found", 404, media_type="text/plain", headers={"X-Content-Type-Options": "nosniff"}
            )
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "ETag": asset.etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)
