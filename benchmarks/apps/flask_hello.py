"""Flask service for the benchmark: a hello route and a realistic `POST /order`.

`/hello` logs one INFO line. The app configures its own console logging (as most services
do), so every variant prints the same application line; `/hello-structlog` logs the same
event through structlog. `/order` validates the JSON body with pydantic, queries SQLite,
calls a local HTTP stub with requests and logs two lines (see `order.py`).

`BENCH_IMPORT_OPENTELEMETRY=true` imports the OpenTelemetry API (FastAPI does so itself),
which ddtrace waits for before it sets up its OTLP logs.
"""

from __future__ import annotations

import logging
import os
import sys

import pydantic
import requests
import structlog
from flask import Flask, request
from order import STUB_URL, Order, answer, lookup, stub_params

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s %(message)s")
log = logging.getLogger("bench")
slog = structlog.get_logger("bench")

if os.environ.get("BENCH_IMPORT_OPENTELEMETRY") == "true":
    import opentelemetry.trace  # noqa: F401 - ddtrace sets its OTLP logs up on this import (run.py)

app = Flask(__name__)
_session = requests.Session()


@app.get("/hello")
def hello() -> dict[str, str]:
    log.info("said hello", extra={"greeting": "world"})
    return {"hello": "world"}


@app.get("/hello-structlog")
def hello_structlog() -> dict[str, str]:
    slog.info("said hello", greeting="world")
    return {"hello": "world"}


@app.post("/order")
def order() -> tuple[dict[str, object], int]:
    try:
        body = Order.model_validate_json(request.get_data())
    except pydantic.ValidationError as exc:
        return {"detail": exc.errors(include_url=False, include_context=False)}, 422
    log.info("order received", extra={"customer_id": body.customer_id, "items": len(body.items)})
    found = lookup(body)
    response = _session.get(f"{STUB_URL}/pricing", params=stub_params(body, found), timeout=5)
    response.raise_for_status()
    result = answer(body, found, response.json())
    log.info("order priced", extra={"customer_id": body.customer_id, "total_cents": result["total_cents"]})
    return result, 200
