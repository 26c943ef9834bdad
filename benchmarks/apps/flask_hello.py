"""Flask hello service for the benchmark: one route, one INFO log line per request.

The app configures its own console logging (as most services do), so every variant prints
the same application line; `/hello-structlog` logs the same event through structlog.
"""

from __future__ import annotations

import logging
import sys

import structlog
from flask import Flask

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s %(message)s")
log = logging.getLogger("bench")
slog = structlog.get_logger("bench")

app = Flask(__name__)


@app.get("/hello")
def hello() -> dict[str, str]:
    log.info("said hello", extra={"greeting": "world"})
    return {"hello": "world"}


@app.get("/hello-structlog")
def hello_structlog() -> dict[str, str]:
    slog.info("said hello", greeting="world")
    return {"hello": "world"}
