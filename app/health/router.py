"""Readiness: whether the database answers."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.db import SessionDep

router = APIRouter(prefix="/health", tags=["Health"])
logger = logging.getLogger(__name__)


class Readiness(BaseModel):
    database_status: bool


@router.get(
    "/ready",
    operation_id="get_health_ready",
    summary="Is the service ready?",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database cannot be reached."}},
)
async def ready(request: Request, session: SessionDep) -> Readiness | JSONResponse:
    """Public. `200 {"database_status": true}`, or `503` when the database can't be reached."""
    settings = request.app.state.settings
    try:
        async with asyncio.timeout(settings.db_connect_timeout + 1):
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means "not ready"
        logger.warning("readiness check failed: %s", type(exc).__name__)
        return JSONResponse({"database_status": False}, status_code=503)
    return Readiness(database_status=True)
