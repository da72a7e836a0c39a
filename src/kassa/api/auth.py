"""Bearer API keys with scopes. Foreign ids answer 404 elsewhere: scoping is by merchant in every query."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kassa.errors import AuthenticationFailed, PermissionDenied
from kassa.runtime import Runtime
from kassa.services.api_keys import ADMIN_SCOPE, Principal

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ksk_…`.")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def authorize(runtime: Runtime, credentials: str | None, scope: str) -> Principal:
    """The principal behind a bearer key, if it holds `scope` (merchant scopes need a merchant's key)."""
    if not credentials:
        raise AuthenticationFailed(
            "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    principal = await runtime.keys.authenticate(credentials)
    if scope == ADMIN_SCOPE:
        principal.require(ADMIN_SCOPE)
    elif principal.merchant_pk is None:
        raise PermissionDenied(
            "an admin credential manages merchants; use a merchant's API key here", code="admin_key"
        )
    else:
        principal.require(scope)
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        return await authorize(runtime_of(request), credentials.credentials if credentials else None, scope)

    return dependency


def merchant_pk(principal: Principal) -> int:
    assert principal.merchant_pk is not None
    return principal.merchant_pk
