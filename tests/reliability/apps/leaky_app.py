"""A FastAPI service that hands secrets to every output an app has: for the secret-corpus test.

Each route puts the secrets it receives (the JSON body's `s` list, in order) where apps put them
by mistake: log messages, `extra=` containers, structlog keyword arguments, exception messages
and stack traces, connection strings, span attributes and events.
"""

from __future__ import annotations

import logging

import structlog
from fastapi import FastAPI, Request
from opentelemetry import trace

log = logging.getLogger("leaky")
slog = structlog.get_logger("leaky")
app = FastAPI()


def _connect(secret: str) -> None:
    raise ConnectionError(f"GET https://rates.example.org/v1?api_key={secret}&base=EUR failed")


@app.post("/leak")
async def leak(request: Request) -> dict[str, int]:
    body = await request.json()
    s = body["s"]
    log.info("payload received %s", body["form"])  # s[0]: a form body with password=
    log.info("headers", extra={"headers": dict(request.headers)})  # authorization, x-api-key, cookie
    log.warning("accounts", extra={"accounts": [{"user": "ann", "password": s[1]}]})
    log.warning("cluster", extra={"cfg": {"nodes": [{"name": "a", "secret": s[2]}], "pairs": ({"pwd": s[3]},)}})
    slog.warning("structlog kwargs", password=s[4], batch={"items": [{"api_key": s[5]}]})
    try:
        raise RuntimeError(f"database login failed: password={s[6]}")
    except RuntimeError:
        log.exception("login failed")
    try:
        try:
            _connect(s[7])
        except ConnectionError as err:
            raise ValueError("rates unavailable") from err
    except ValueError:
        log.exception("refresh failed")  # the secret is only in the chained trace
    log.error("db down: postgresql://app:%s@db.internal:5432/orders", s[8])
    log.warning("dsn", extra={"dsn": f"mysql://root:{s[9]}@localhost/shop"})
    log.info("upstream said Authorization: Basic %s", s[10])
    try:
        raise KeyError(f"secret={s[11]}")
    except KeyError:
        slog.exception("structlog exception")
    span = trace.get_current_span()
    span.set_attribute("db.password", s[12])
    span.set_attribute("db.statement", f"UPDATE users SET password='{s[13]}' WHERE id=1")
    span.add_event("token refreshed", {"auth_token": s[14]})
    span.record_exception(RuntimeError(f"token={s[15]} expired"))
    return {"leaked": len(s)}


@app.get("/fail")
async def fail(token: str) -> dict[str, str]:
    raise ValueError(f"token={token} rejected")  # unhandled: a 500 with the secret in the exception


@app.get("/oauth/callback")
async def callback(access_token: str, client_secret: str) -> dict[str, str]:
    return {"ok": "yes"}  # the secrets are in the query string only
