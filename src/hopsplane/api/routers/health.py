"""Liveness, readiness and metrics. Anonymous by design: they reveal no data."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from hopsplane.api.errors import error_responses
from hopsplane.db.engine import Database
from hopsplane.errors import Unavailable

router = APIRouter(tags=["operations"])


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
    """The process can serve: the database answers (through the async engine)."""
    db: Database = request.app.state.database
    try:
        async with db.async_transaction() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JSONResponse(
            Unavailable(f"database unreachable: {type(exc).__name__}").to_dict(),
            status_code=503,
        )
    return JSONResponse(Readiness(status="ok", database="ok").model_dump())


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
