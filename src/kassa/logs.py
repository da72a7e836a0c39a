"""Logging setup: text or JSON lines (`KASSA_LOG_FORMAT`), each carrying the id of the request it
belongs to (`request_id`, "-" outside requests; set by api/middleware.py)."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str] = ContextVar("kassa_request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request's id (a filter on the handler, so records of
    every logger, ours and libraries', get it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def make_handler(fmt: Literal["text", "json"], stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing `fmt` lines to `stream` (stderr by default)."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        names = {"asctime": "time", "levelname": "level", "name": "logger"}
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields=names))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(
    level: str = "info", fmt: Literal["text", "json"] = "text", stream: IO[str] | None = None
) -> None:
    logging.basicConfig(level=level.upper(), handlers=[make_handler(fmt, stream)], force=True)
    # httpx logs full URLs at INFO; they may carry credentials of rail endpoints.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # aiosqlite logs every statement with its bound values at DEBUG: customers' data, sealed secrets.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
