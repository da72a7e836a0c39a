"""ASGI entry point for uvicorn (`kassa.asgi:create`, a factory): settings come from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from kassa.api.app import create_app
from kassa.config import load_settings
from kassa.logs import configure_logging
from kassa.runtime import build_runtime


def create() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(build_runtime(settings), run_worker=settings.run_worker, freeze_heap=True)
