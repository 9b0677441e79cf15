"""HTTP ingest: `POST /api/v1/telemetry` (contract), same payloads as MQTT, or a CSV.

Authenticated with a carrier API key (``Authorization: Bearer cck_…`` or ``X-API-Key``).
One request is one message: it is stored whole or refused whole, and a refusal is both
answered (4xx naming the reading and field) and recorded in ``rejected_messages``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core.clock import SystemClock
from ingest import metrics
from ingest.credentials import ApiKey, authenticate_api_key
from ingest.parser import RANGES
from ingest.service import BatchResult, IncomingMessage, record_rejection, store_batch

router = APIRouter(tags=["telemetry"])
MAX_BODY_BYTES = 5 * 1024 * 1024
_clock = SystemClock()
_CSV_NUMBERS = (*RANGES, "seq")


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def carrier_key(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ApiKey:
    token = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if not token:
        raise HTTPException(
            401,
            "a carrier API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with request.app.state.pool.connection() as conn:
        key = authenticate_api_key(conn, token, _clock.now())
    if key is None:
        raise HTTPException(
            401, "the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    return key


def csv_to_payload(text: str) -> bytes:
    """A CSV export (header with device_id, ts, temp_c and optional protocol fields) as the
    equivalent JSON batch; a malformed row raises ValueError naming row and column."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = {"device_id", "ts", "temp_c"} - set(header)
    if missing:
        raise ValueError(f"CSV header lacks {', '.join(sorted(missing))}")
    readings: list[dict[str, Any]] = []
    device_id: str | None = None
    for line, row in enumerate(reader, start=2):
        if device_id is None:
            device_id = row["device_id"]
        elif row["device_id"] != device_id:
            raise ValueError(
                f"row {line}: device_id {row['device_id']!r} differs from "
                f"{device_id!r}; upload one logger per file"
            )
        reading: dict[str, Any] = {"ts": row["ts"]}
        for column in _CSV_NUMBERS:
            value = (row.get(column) or "").strip()
            if column not in header:
                continue
            if value == "":
                reading[column] = None
                continue
            try:
                reading[column] = int(value) if column == "seq" else float(value)
            except ValueError as exc:
                raise ValueError(f"row {line}, column {column}: {value!r} is not a number") from exc
        if row.get("status"):
            reading["status"] = row["status"]
        readings.append(reading)
    if device_id is None:
        raise ValueError("CSV has a header but no rows")
    return json.dumps({"device_id": device_id, "readings": readings}).encode()


# Database work runs in the thread pool so the event loop keeps serving other requests.
def _store(pool: Any, message: IncomingMessage, topic_prefix: str) -> BatchResult:
    with pool.connection() as conn:
        return store_batch(conn, [message], topic_prefix)


def _record(pool: Any, message: IncomingMessage, reason: str) -> None:
    with pool.connection() as conn:
        record_rejection(conn, message, None, reason)


@router.post("/api/v1/telemetry", summary="Upload readings (JSON single/batch, or CSV)")
async def post_telemetry(
    request: Request, key: Annotated[ApiKey, Depends(carrier_key)]
) -> JSONResponse:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _problem(413, "payload too large", f"at most {MAX_BODY_BYTES} bytes per request")
    received_at = _clock.now()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    pool = request.app.state.pool
    settings = request.app.state.settings
    metrics.RECEIVED.inc()
    message = IncomingMessage(
        topic=None, payload=body, received_at=received_at, source="http", carrier=key.carrier
    )
    if content_type == "text/csv":
        try:
            message = IncomingMessage(
                topic=None,
                payload=csv_to_payload(body.decode("utf-8")),
                received_at=received_at,
                source="http",
                carrier=key.carrier,
            )
        except (ValueError, UnicodeDecodeError) as exc:
            reason = f"CSV: {exc}"
            await run_in_threadpool(_record, pool, message, reason)
            metrics.REJECTED.labels(reason="malformed").inc()
            return _problem(422, "telemetry refused", reason)
    elif content_type not in ("application/json", ""):
        return _problem(415, "unsupported content type", "send application/json or text/csv")

    started = time.monotonic()
    result = await run_in_threadpool(_store, pool, message, settings.topic_prefix)
    metrics.observe(result, time.monotonic() - started, received_at, _clock.now())
    if result.rejections:
        return _problem(422, "telemetry refused", result.rejections[0][1])
    return JSONResponse(
        {"stored": result.stored, "duplicates": result.duplicates, "conflicts": result.conflicts}
    )
