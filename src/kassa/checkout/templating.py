"""Pages in the checkout's look: Jinja environments that speak one of Kassa's languages (the
checkout's templates, and the fronts' own before them), rendered with the checkout's stylesheet
and headers."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from kassa import i18n
from kassa.api.auth import runtime_of
from kassa.checkout.assets import asset_url
from kassa.checkout.security import page_headers


@cache
def environment(package: str, language: str = i18n.SOURCE) -> jinja2.Environment:
    """Templates of `package` (its `templates` folder), falling back to the checkout's, in `language`
    (one of i18n.LANGUAGES); `lang` and `languages` are there for every template."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(package, "templates"), jinja2.PackageLoader("kassa.checkout", "templates")]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["languages"] = tuple(i18n.language(code) for code in i18n.LANGUAGES)
    return i18n.install(env, i18n.language(language))


def base_path(request: Request) -> str:
    """The path Kassa is served under (from the base URL: `https://x.example/kassa` -> `/kassa`)."""
    return urlsplit(runtime_of(request).settings.base_url).path.rstrip("/")


def render_page(
    request: Request, env: jinja2.Environment, template: str, status: int, **context: Any
) -> Response:
    urls = {"css": base_path(request) + asset_url("checkout.css"), **context.pop("urls", {})}
    body = env.get_template(template).render(urls=urls, **context)
    return HTMLResponse(body, status_code=status, headers=page_headers())
