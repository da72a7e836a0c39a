"""The one error every front speaks: `{"error": {"type", "code", "message", "param"}}`."""

from __future__ import annotations

from typing import Any


class KassaError(Exception):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "code": self.code, "message": self.message, "param": self.param}}


class InvalidRequest(KassaError):
    code = "parameter_invalid"


class NotFound(KassaError):
    status = 404
    code = "resource_missing"


class Conflict(KassaError):
    status = 409
    code = "conflict"


class AuthenticationFailed(KassaError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(KassaError):
    status = 403
    type = "permission_error"
    code = "missing_scope"
