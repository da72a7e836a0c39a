"""What every dashboard page needs: the signed-in user, CSRF-checked forms, rendering, redirects."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.datastructures import FormData

from kassa.api.auth import runtime_of
from kassa.checkout.security import page_headers
from kassa.dashboard.auth import PATH, CsrfRefused, DashboardKeys
from kassa.domain.money import Money
from kassa.errors import KassaError
from kassa.runtime import Runtime
from kassa.services.users import SignedIn
from kassa.static_assets import AssetSet

_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """Jinja's `row.name` tries the attribute before the item, so on the dicts the services return every
    lookup first raises and catches an AttributeError (half the orders page's rendering time). A plain
    dict has no attributes but its class's, so asking for the item first when `dict` has no such
    attribute gives the same answer without the exception."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


env = _Environment(
    loader=jinja2.PackageLoader("kassa.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship in the package: no stat() of each file on every page
)
ASSETS = AssetSet("kassa.dashboard", ("dashboard.css", "dashboard.js"), PATH + "/static")
env.globals["assets"] = ASSETS


def money(amount: int | str, currency: str) -> str:
    """Minor units as the currency shows them; ledger accounts may be below zero."""
    value = int(amount)
    return ("-" if value < 0 else "") + Money(abs(value), currency).display()


env.globals["money"] = money

# Fixed texts for "it worked" notices after a redirect (never text from the query string).
NOTICES = {
    "canceled": "The order was canceled.",
    "refunded": "The refund was created.",
    "redelivered": "The event was queued for delivery again.",
    "test-sent": "A test event was queued for this endpoint.",
    "endpoint-added": "The endpoint was added.",
    "endpoint-deleted": "The endpoint was deleted.",
    "key-revoked": "The key was revoked.",
    "method-saved": "The payment method was saved.",
    "method-disabled": "The payment method was disabled.",
    "settings-saved": "Your settings were saved.",
    "payout-made": "The payout was made; it shows below.",
    "password-changed": "Your password was changed; your other sessions were signed out.",
    "totp-on": "Two-factor sign-in is on.",
    "totp-off": "Two-factor sign-in is off.",
}


class SignInRequired(Exception):
    """No live session: the page answers with the sign-in form's address."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def keys_of(request: Request) -> DashboardKeys:
    keys: DashboardKeys = request.app.state.dashboard_keys
    return keys


async def signed_in(request: Request) -> SignedIn:
    """The page's user (a FastAPI dependency); SignInRequired without a live session."""
    token = keys_of(request).session_token(request)
    user = await runtime_of(request).users.session(token) if token else None
    if user is None:
        raise SignInRequired(request.url.path)
    request.state.user, request.state.session_token = user, token
    return user


async def checked_form(request: Request) -> FormData:
    """The posted form of a signed-in page, after the CSRF check."""
    form = await request.form()
    keys = keys_of(request)
    token: str | None = getattr(request.state, "session_token", None)
    expected = keys.csrf_for_session(token) if token else None
    keys.check_form(request, runtime_of(request).settings.base_url, form.get("csrf"), expected)
    return form


def safe_next(value: object) -> str:
    """Where to go after signing in: only a dashboard path (never another site)."""
    if isinstance(value, str) and value.startswith(PATH + "/") and not value.startswith("//"):
        parts = urlsplit(value)
        if not parts.scheme and not parts.netloc:
            return value
    return PATH + "/orders"


def render(
    request: Request, template: str, status: int = 200, *, user: SignedIn | None = None, **context: Any
) -> Response:
    runtime = runtime_of(request)
    token: str | None = getattr(request.state, "session_token", None)
    csrf = keys_of(request).csrf_for_session(token) if token else context.pop("csrf", "")
    notice = NOTICES.get(request.query_params.get("done", ""))
    prefix = urlsplit(runtime.settings.base_url).path.rstrip("/")
    body = env.get_template(template).render(
        user=user, csrf=csrf, notice=notice, prefix=prefix, path=request.url.path, **context
    )
    return HTMLResponse(body, status_code=status, headers=page_headers())


def redirect(path: str, done: str | None = None, params: Mapping[str, str] | None = None) -> Response:
    query = [f"done={quote(done)}"] if done else []
    query += [f"{quote(k)}={quote(v)}" for k, v in (params or {}).items()]
    target = path + ("?" + "&".join(query) if query else "")
    return RedirectResponse(target, status_code=303, headers=page_headers())


def error_page(request: Request, exc: KassaError) -> Response:
    user = getattr(request.state, "user", None)
    return render(request, "message.html", exc.status, user=user, title="Not done", text=exc.message)


class PageRoute(APIRoute):
    """A dashboard route: a refusal from the services (KassaError) becomes a page saying why, with the
    error's status, instead of the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except KassaError as exc:
                return error_page(request, exc)

        return handle


def install(app: FastAPI, runtime: Runtime) -> None:
    app.state.dashboard_keys = DashboardKeys.from_secret(
        runtime.settings.resolved_secret_key(), runtime.settings.base_url
    )

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return redirect(PATH + "/login", params={"next": exc.next_path})

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        user = getattr(request.state, "user", None)
        return render(request, "message.html", 403, user=user, title="Refused", text=str(exc))
