"""`GET /metrics`: Prometheus exposition, for the holder of `KASSA_METRICS_TOKEN` only."""

from __future__ import annotations

import hmac

from starlette.responses import Response

from kassa.api.errors import error_bytes
from kassa.metrics import CONTENT_TYPE, Metrics
from kassa.runtime import Runtime


async def metrics_response(runtime: Runtime, metrics: Metrics, authorization: str | None) -> Response:
    token = runtime.settings.metrics_token
    if token is None:  # off: as if there were no such path
        return Response(error_bytes(404, "not found", code="not_found"), 404, media_type="application/json")
    given = authorization or ""
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        body = error_bytes(
            401, "/metrics needs Authorization: Bearer <KASSA_METRICS_TOKEN>", code="unauthorized"
        )
        return Response(body, 401, media_type="application/json", headers={"WWW-Authenticate": "Bearer"})
    return Response(await metrics.render(runtime), media_type=CONTENT_TYPE)
