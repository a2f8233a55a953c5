"""Liveness, readiness and metrics. Anonymous by design: they reveal no data."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from hopsplane.api.errors import error_responses
from hopsplane.api.serving import RETRY_AFTER_SHED, Admission
from hopsplane.db.engine import Database
from hopsplane.errors import Unavailable

router = APIRouter(tags=["operations"])

READINESS_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=error_responses(503))
async def readyz(request: Request) -> Response:
    """The process can take more work: it is not at its in-flight limit (nor refused a
    request in the last second), and the database answers within a short time (through a
    connection of its own, never one of the requests' pool)."""
    admission: Admission | None = getattr(request.app.state, "admission", None)
    if admission is not None and admission.saturated:
        return _not_ready(
            f"saturated: {admission.inflight} of {admission.limit} requests in flight"
        )
    db: Database = request.app.state.database
    try:
        with anyio.fail_after(READINESS_TIMEOUT_SECONDS):
            async with db.async_transaction() as session:
                await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means "not ready"
        return _not_ready(f"database unreachable: {type(exc).__name__}")
    return JSONResponse(Readiness(status="ok", database="ok").model_dump())


def _not_ready(detail: str) -> Response:
    return JSONResponse(
        Unavailable(detail).to_dict(),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SHED)},
    )


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
