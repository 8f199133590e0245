"""/metrics: the API's Prometheus metrics (observability.metrics.ApiMetrics). For the scraper inside the
deployment: route it to no public ingress (docs/operations.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from starter.deps import SettingsDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    body = await request.app.state.metrics.exposition(settings.effective_database_url)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
