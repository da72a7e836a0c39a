"""Turn every failure into the one error shape, with the offending `param`."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kassa.errors import KassaError

log = logging.getLogger("kassa.api")


def error_response(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str = "invalid_request",
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"type": type, "code": code, "message": message, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_bytes(
    status: int, message: str, *, code: str, param: str | None = None, type: str = "invalid_request_error"
) -> bytes:
    return json.dumps({"error": {"type": type, "code": code, "message": message, "param": param}}).encode()


def _param(loc: Sequence[Any]) -> str | None:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts.pop(0)
        if where == "header" and parts:
            return str(parts[0])
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or None


def _validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "value_error"}
    kind = first.get("type", "")
    if kind == "json_invalid":
        return error_response(400, "the request body is not valid JSON", code="body_invalid")
    param = _param(first.get("loc", ()))
    msg = str(first.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if kind == "missing":
        return error_response(400, f"{param} is required", code="parameter_missing", param=param)
    if kind == "extra_forbidden":
        return error_response(400, f"unknown field {param}", code="parameter_unknown", param=param)
    if param is None and kind in ("dict_type", "model_type", "model_attributes_type"):
        return error_response(400, "the request body must be a JSON object", code="body_invalid")
    return error_response(400, f"{param}: {msg}" if param else msg, code="parameter_invalid", param=param)


def kassa_error_response(exc: KassaError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


def _kassa(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KassaError)
    return kassa_error_response(exc)


def _http(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
    }
    message = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
        exc.status_code, str(exc.detail)
    )
    return error_response(
        exc.status_code,
        message,
        code=codes.get(exc.status_code, "http_error"),
        headers=dict(exc.headers) if exc.headers else None,
    )


def _unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal error; it has been logged", type="api_error", code="internal_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(KassaError, _kassa)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
