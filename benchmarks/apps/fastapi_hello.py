"""FastAPI service for the benchmark: a hello route and a realistic `POST /order`.

`/hello` logs one INFO line. The app configures its own console logging (as most services
do), so every variant prints the same application line; `/hello-structlog` logs the same
event through structlog. `/order` validates a JSON body with pydantic, queries SQLite, calls
a local HTTP stub with httpx and logs two lines (see `order.py`).

`BENCH_FASTAPI_TELEMETRY` sets FastAPI's native OpenTelemetry telemetry: unset keeps
FastAPI's defaults (on, but idle until an SDK provider is configured), `no-operation-spans`
keeps the request spans and metrics without the per-operation spans, `off` turns it off.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from order import STUB_URL as _STUB_URL
from order import Order, answer, lookup, stub_params

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s %(message)s")
log = logging.getLogger("bench")
slog = structlog.get_logger("bench")

_TELEMETRY: dict[str, dict[str, Any]] = {
    "": {},
    "no-operation-spans": {"operation_spans": False},
    "off": {"tracing": False, "metrics": False, "logs": False},
}
app = FastAPI(telemetry=_TELEMETRY[os.environ.get("BENCH_FASTAPI_TELEMETRY", "")])  # type: ignore[arg-type]
_client = httpx.AsyncClient(base_url=_STUB_URL, timeout=5)


@app.get("/hello")
async def hello() -> dict[str, str]:
    log.info("said hello", extra={"greeting": "world"})
    return {"hello": "world"}


@app.get("/hello-structlog")
async def hello_structlog() -> dict[str, str]:
    slog.info("said hello", greeting="world")
    return {"hello": "world"}


@app.post("/order")
async def order(body: Order) -> dict[str, object]:
    log.info("order received", extra={"customer_id": body.customer_id, "items": len(body.items)})
    found = lookup(body)
    response = await _client.get("/pricing", params=stub_params(body, found))
    response.raise_for_status()
    result = answer(body, found, response.json())
    log.info("order priced", extra={"customer_id": body.customer_id, "total_cents": result["total_cents"]})
    return result
