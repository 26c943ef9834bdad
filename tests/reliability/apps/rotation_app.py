"""A Flask service logging numbered stdlib and structlog lines: for the log-rotation test.

It logs once at import, so under `gunicorn --preload` the master writes to the log file
(opening it and its lock) before it forks the workers.
"""

from __future__ import annotations

import logging

import structlog
from flask import Flask

log = logging.getLogger("rotation")
log.warning("imported", extra={"seq": -1})
slog = structlog.get_logger("rotation")
app = Flask(__name__)
PAD = "p" * 200  # lines of ~500 bytes: the file rotates every two lines


@app.get("/log/<int:seq>")
def line(seq: int) -> str:
    log.info("stdlib line", extra={"seq": seq, "pad": PAD})
    slog.info("structlog line", seq=seq, pad=PAD)
    return "ok"
