"""`kassa worker --metrics-port`: the worker's /metrics (its watchers, the shared database figures) on
a port of its own, served by uvicorn in the worker's event loop. Bound to loopback by default; when
`KASSA_METRICS_TOKEN` is set, it is asked for here too."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kassa.api.metrics_route import metrics_response
from kassa.metrics import CONTENT_TYPE, Metrics
from kassa.runtime import Runtime


def metrics_app(runtime: Runtime, metrics: Metrics) -> Starlette:
    async def endpoint(request: Request) -> Response:
        if runtime.settings.metrics_token is None:  # the port is the protection
            return Response(await metrics.render(runtime), media_type=CONTENT_TYPE)
        return await metrics_response(runtime, metrics, request.headers.get("authorization"))

    return Starlette(routes=[Route("/metrics", endpoint)])


async def serve_metrics(runtime: Runtime, host: str, port: int) -> None:
    config = uvicorn.Config(
        metrics_app(runtime, Metrics()),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    # On SIGINT/SIGTERM it stops and raises the signal again, which stops the worker as before.
    await uvicorn.Server(config).serve()
