"""Signing in (password, then a TOTP code when the user has one), signing out, and the user's account."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request, Response

from kassa.api.auth import runtime_of
from kassa.dashboard.auth import PATH
from kassa.dashboard.pages import (
    ASSETS,
    PageRoute,
    checked_form,
    keys_of,
    redirect,
    render,
    safe_next,
    signed_in,
)
from kassa.errors import KassaError
from kassa.services.users import SignedIn, UserService

router = APIRouter(include_in_schema=False, route_class=PageRoute)  # mounted at PATH (api/app.py)


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _login_form(
    request: Request, status: int = 200, error: str | None = None, next_path: str = ""
) -> Response:
    keys = keys_of(request)
    value = keys.presession(request) or secrets.token_urlsafe(24)
    response = render(request, "login.html", status, csrf=value, error=error, next=next_path)
    keys.set_presession(response, value)
    return response


@router.get("/static/{name}")
async def static_asset(request: Request, name: str) -> Response:
    return ASSETS.response(request, name)


@router.get("/")  # "/dashboard" comes here too, by the app's trailing-slash redirect
async def home() -> Response:
    return redirect(PATH + "/orders")


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _login_form(request, next_path=safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    keys = keys_of(request)
    form = await request.form()
    keys.check_form(request, runtime.settings.base_url, form.get("csrf"), keys.presession(request))
    email, password = str(form.get("email") or ""), str(form.get("password") or "")
    next_path = safe_next(form.get("next"))
    try:
        user_pk = await runtime.users.check_password(email, password, _address(request))
    except KassaError as exc:
        return _login_form(request, exc.status, exc.message, next_path)
    if await runtime.users.needs_code(user_pk):
        return render(
            request,
            "code.html",
            csrf=str(form.get("csrf")),
            pending=keys.pending_for(user_pk),
            next=next_path,
            error=None,
        )
    return await _start(request, runtime.users, user_pk, next_path)


@router.post("/login/code")
async def login_code(request: Request) -> Response:
    runtime = runtime_of(request)
    keys = keys_of(request)
    form = await request.form()
    keys.check_form(request, runtime.settings.base_url, form.get("csrf"), keys.presession(request))
    next_path = safe_next(form.get("next"))
    user_pk = keys.pending_user(str(form.get("pending") or ""))
    if user_pk is None:
        return _login_form(request, 400, "That took too long; sign in again.", next_path)
    try:
        await runtime.users.check_code(user_pk, str(form.get("code") or ""), _address(request))
    except KassaError as exc:
        return render(
            request,
            "code.html",
            exc.status,
            csrf=str(form.get("csrf")),
            pending=keys.pending_for(user_pk),
            next=next_path,
            error=exc.message,
        )
    return await _start(request, runtime.users, user_pk, next_path)


async def _start(request: Request, users: UserService, user_pk: int, next_path: str) -> Response:
    token = await users.start_session(user_pk)
    response = redirect(next_path)
    keys_of(request).set_session(response, token, int(users.session_lifetime.total_seconds()))
    return response


@router.post("/logout")
async def logout(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request)
    await runtime_of(request).users.end_session(request.state.session_token)
    response = redirect(PATH + "/login")
    keys_of(request).clear_session(response)
    return response


@router.get("/account")
async def account(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    users = runtime_of(request).users
    secret = None if user.totp else users.new_totp_secret()
    uri = users.totp_uri(secret, user.email) if secret else None
    return render(request, "account.html", user=user, totp_secret=secret, totp_uri=uri)


@router.post("/account/password")
async def change_password(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    await runtime_of(request).users.change_password(
        user, str(form.get("password") or ""), str(form.get("new_password") or "")
    )
    return redirect(PATH + "/account", "password-changed")


@router.post("/account/totp")
async def enable_totp(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    await runtime_of(request).users.enable_totp(
        user, str(form.get("secret") or ""), str(form.get("code") or "")
    )
    return redirect(PATH + "/account", "totp-on")


@router.post("/account/totp/off")
async def disable_totp(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    await runtime_of(request).users.disable_totp(user, str(form.get("password") or ""))
    return redirect(PATH + "/account", "totp-off")
