"""The ASGI application: API, checkout pages, health, and (by default) the worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Request, Response

from kassa import __version__
from kassa.api import errors
from kassa.api.fast_create import FastOrderCreate
from kassa.api.metrics_route import metrics_response
from kassa.api.middleware import BodyGuardMiddleware, IdempotencyMiddleware, RequestLogMiddleware
from kassa.api.rate_limits import RateLimitMiddleware
from kassa.api.routes_gateways import router as gateways_router
from kassa.api.routes_ledger import router as ledger_router
from kassa.api.routes_merchants import router as merchants_router
from kassa.api.routes_orders import json_response
from kassa.api.routes_orders import router as orders_router
from kassa.api.routes_payment_methods import router as payment_methods_router
from kassa.api.routes_payouts import router as payouts_router
from kassa.api.routes_refunds import router as refunds_router
from kassa.api.routes_test import router as test_router
from kassa.api.routes_webhooks import router as webhooks_router
from kassa.api.schemas import Health
from kassa.checkout.refund_routes import router as refund_page_router
from kassa.checkout.routes import router as checkout_router
from kassa.compat.greenfield.routes import router as greenfield_router
from kassa.compat.knockturn import router as knockturn_router
from kassa.compat.librepay import router as librepay_router
from kassa.compat.servebase.routes import router as servebase_router
from kassa.compat.taler import router as taler_router
from kassa.dashboard.auth import PATH as DASHBOARD_PATH
from kassa.dashboard.pages import install as install_dashboard
from kassa.dashboard.routes_auth import router as dashboard_auth_router
from kassa.dashboard.routes_orders import router as dashboard_orders_router
from kassa.dashboard.routes_settings import router as dashboard_settings_router
from kassa.db.migrate import head_revisions
from kassa.metrics import Metrics
from kassa.runtime import Runtime, change_feed
from kassa.worker.runner import run_all

log = logging.getLogger("kassa")

DESCRIPTION = """Kassa's native API. Authenticate with `Authorization: Bearer <API key>`.
Amounts are integers in the currency's minor units. Every POST accepts an `Idempotency-Key`.
Errors have one shape: `{"error": {"type", "code", "message", "param"}}`."""


def create_app(runtime: Runtime, *, run_worker: bool = True, freeze_heap: bool = False) -> FastAPI:
    """`freeze_heap`: for a server process of its own (`kassa serve`), not for an app inside tests."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        feed = change_feed(runtime)
        feed.start()
        if freeze_heap:
            # What exists now (modules, the app, pools) lives as long as the process: leave it out of
            # every later collection, or each full collection walks it all and stalls every request
            # in flight (p99 93 ms -> 27.5 ms in bench/create_orders, docs/benchmarks.md).
            gc.collect()
            gc.freeze()
        worker_task = None
        if run_worker:
            worker_task = asyncio.create_task(run_all(runtime), name="kassa-worker")
        try:
            yield
        finally:
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await feed.stop()
            await runtime.close()

    app = FastAPI(
        title="Kassa",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    metrics = app.state.metrics = Metrics()
    errors.install(app)

    # The dashboard behind one prefix test, first: FastAPI tries routes in order, so a dashboard page
    # behind the API would be tested against every API route (0.3 ms a page), and the dashboard's
    # routes in front of the API would cost every API request as much again.
    dashboard = APIRouter()
    for router in (dashboard_auth_router, dashboard_orders_router, dashboard_settings_router):
        dashboard.include_router(router)
    app.mount(DASHBOARD_PATH, dashboard)

    api = APIRouter(prefix="/api/v1")
    api.include_router(orders_router)
    api.include_router(merchants_router)
    api.include_router(test_router)
    api.include_router(webhooks_router)
    api.include_router(payment_methods_router)
    api.include_router(ledger_router)
    api.include_router(refunds_router)
    api.include_router(payouts_router)
    app.include_router(api)
    app.include_router(greenfield_router)  # BTCPay's paths under /api/v1 (stores, invoices, server)
    app.include_router(gateways_router)
    app.include_router(servebase_router)  # before the checkout's /pay/{order_id} routes
    app.include_router(checkout_router)
    app.include_router(refund_page_router)
    app.include_router(knockturn_router)
    app.include_router(librepay_router)
    app.include_router(taler_router)
    install_dashboard(app, runtime)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="The process is up")
    async def healthz() -> Response:
        return json_response({"status": "ok", "details": {"version": __version__}})

    @app.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": Health}},
        tags=["health"],
        summary="The database is reachable",
    )
    async def readyz(request: Request) -> Response:
        try:
            revisions = await asyncio.wait_for(runtime.db.revisions(), 5)
        except Exception as exc:
            return json_response({"status": "unavailable", "details": {"database": type(exc).__name__}}, 503)
        if revisions != head_revisions():
            details = {
                "database": "ok",
                "migrations": f"at {sorted(revisions)}, not {sorted(head_revisions())}",
            }
            return json_response({"status": "unavailable", "details": details}, 503)
        return json_response(
            {
                "status": "ready",
                "details": {"database": "ok", "migrations": "current", "watchers": runtime.watcher_health},
            }
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(authorization: Annotated[str | None, Header()] = None) -> Response:
        return await metrics_response(runtime, metrics, authorization)

    app.add_middleware(FastOrderCreate, runtime=runtime)  # innermost: see api/fast_create.py
    app.add_middleware(IdempotencyMiddleware, runtime=runtime)
    app.add_middleware(BodyGuardMiddleware, max_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, settings=runtime.settings)
    app.add_middleware(RequestLogMiddleware, enabled=runtime.settings.access_log, metrics=metrics)
    return app
