"""Pages in the checkout's look for the fronts: their own templates first, then the checkout's
(its base.html and message.html), rendered with the checkout's stylesheet and headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from kassa.api.auth import runtime_of
from kassa.checkout.assets import asset_url
from kassa.checkout.security import page_headers


def environment(package: str) -> jinja2.Environment:
    """Templates of `package` (its `templates` folder), falling back to the checkout's."""
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(package, "templates"), jinja2.PackageLoader("kassa.checkout", "templates")]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(
    request: Request, env: jinja2.Environment, template: str, status: int, **context: Any
) -> Response:
    prefix = urlsplit(runtime_of(request).settings.base_url).path.rstrip("/")
    urls = {"css": prefix + asset_url("checkout.css")}
    body = env.get_template(template).render(urls=urls, **context)
    return HTMLResponse(body, status_code=status, headers=page_headers())
