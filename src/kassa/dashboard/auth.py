"""The dashboard's cookies and forms: who is signed in, and whether a form was sent by our own page.

- The session cookie holds the session's random token, signed (itsdangerous) so a forged cookie is
  refused before any lookup; the database keeps only its digest (services/users.py). HttpOnly,
  SameSite=Strict, Secure when Kassa's base URL is https, scoped to /dashboard.
- CSRF: every form carries a token derived from the session token by HMAC (the synchronizer pattern
  without storage); the sign-in form, sent before any session exists, carries the value of a signed
  pre-session cookie instead (double submit). Forms also pass the same-origin check of the checkout
  (Origin / Sec-Fetch-Site).
- Between the password and the TOTP code, a signed, short-lived "half signed-in" value names the user.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from kassa.checkout.security import same_origin_post

SESSION_COOKIE = "kassa_dashboard"
PRESESSION_COOKIE = "kassa_dashboard_csrf"
PATH = "/dashboard"
CODE_STEP_SECONDS = 300  # time to type the TOTP code after the password


class CsrfRefused(Exception):
    """A form that did not come from our own page (or came from a page of another session)."""


@dataclass(frozen=True, slots=True)
class DashboardKeys:
    """Signing keys derived from the server secret, one per purpose."""

    session: URLSafeSerializer
    pending: URLSafeTimedSerializer
    csrf_key: bytes
    secure: bool

    @classmethod
    def from_secret(cls, server_secret: str, base_url: str) -> DashboardKeys:
        def derive(purpose: str) -> bytes:
            return hmac.new(
                server_secret.encode(), f"kassa dashboard {purpose}".encode(), hashlib.sha256
            ).digest()

        return cls(
            session=URLSafeSerializer(derive("session"), salt="session"),
            pending=URLSafeTimedSerializer(derive("pending"), salt="pending"),
            csrf_key=derive("csrf"),
            secure=base_url.startswith("https://"),
        )

    # ----- the session cookie -------------------------------------------------------------------------

    def session_token(self, request: Request) -> str | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            token = self.session.loads(raw)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None

    def set_session(self, response: Response, token: str, max_age: int) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.session.dumps(token),
            max_age=max_age,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=PATH, httponly=True, samesite="strict", secure=self.secure
        )

    # ----- CSRF --------------------------------------------------------------------------------------

    def csrf_for_session(self, token: str) -> str:
        return hmac.new(self.csrf_key, token.encode(), hashlib.sha256).hexdigest()

    def presession(self, request: Request) -> str | None:
        raw = request.cookies.get(PRESESSION_COOKIE)
        if not raw:
            return None
        try:
            value = self.session.loads(raw, salt="presession")
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def set_presession(self, response: Response, value: str) -> None:
        response.set_cookie(
            PRESESSION_COOKIE,
            self.session.dumps(value, salt="presession"),
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )

    def check_form(self, request: Request, base_url: str, given: object, expected: str | None) -> None:
        """CsrfRefused unless the form came from our page: same origin, and its token is `expected`."""
        if not same_origin_post(request.headers, request.url.scheme, base_url):
            raise CsrfRefused("this form was sent from another site")
        if expected is None or not isinstance(given, str) or not hmac.compare_digest(given, expected):
            raise CsrfRefused("this form has expired; reload the page and try again")

    # ----- between password and code -----------------------------------------------------------------

    def pending_for(self, user_pk: int) -> str:
        return self.pending.dumps(user_pk)

    def pending_user(self, value: str) -> int | None:
        try:
            user_pk = self.pending.loads(value, max_age=CODE_STEP_SECONDS)
        except BadSignature:
            return None
        return user_pk if isinstance(user_pk, int) else None
