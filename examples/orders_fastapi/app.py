"""Orders service (FastAPI): an ordinary app that knows nothing about otel-distro.

Run it unmodified under the distro:

    opentelemetry-instrument python app.py           # uvicorn on 127.0.0.1:$PORT (8001)
    opentelemetry-instrument uvicorn app:app --port 8001

Its own telemetry goes through the plain OpenTelemetry API only: a `price_order` span,
the `orders.created` and `cache.requests` counters, stdlib logging and (when installed)
structlog. The distro decides where all of it is exported.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections import OrderedDict
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from opentelemetry import metrics, trace
from pydantic import BaseModel, Field

try:
    import structlog
except ImportError:  # structlog is optional: GET /orders/{id} falls back to stdlib logging
    structlog = None

logger = logging.getLogger("orders")
tracer = trace.get_tracer("orders")
meter = metrics.get_meter("orders")

orders_created = meter.create_counter(
    "orders.created", unit="{order}", description="Orders placed, by outcome (order.status)."
)
cache_requests = meter.create_counter(
    "cache.requests", unit="{request}", description="Price-cache lookups, by cache.result (hit/miss)."
)

MAX_SLOW_SECONDS = 10.0
MAX_ORDERS = 10_000  # bounds memory under long traffic runs
DEMO_PASSWORD = "correct-horse"

_orders: OrderedDict[str, dict[str, Any]] = OrderedDict()
_order_ids = itertools.count(1001)
_price_cache: dict[str, tuple[float, float]] = {}  # sku -> (unit price, expires at)

app = FastAPI(title="orders", version="1.0.0")


class OrderIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1, le=1000)


class LoginIn(BaseModel):
    username: str
    password: str


class InventoryError(Exception):
    """The inventory service answered with an error or could not be reached."""

    def __init__(self, status: str, http_status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.http_status = http_status
        self.detail = detail


def inventory_url() -> str:
    """Base URL of the inventory service, read per call so tests can change it."""
    return os.environ.get("INVENTORY_URL", "http://127.0.0.1:8002").rstrip("/")


def cache_ttl() -> float:
    """Seconds a cached price stays valid; short so traffic shows misses as well as hits."""
    return float(os.environ.get("PRICE_CACHE_TTL", "5"))


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=inventory_url(), timeout=5.0)


def _inventory_failure(err: httpx.HTTPError) -> InventoryError:
    logger.warning("inventory unavailable: %s", err)
    return InventoryError("failed", 502, "inventory service unavailable")


async def unit_price(sku: str) -> float:
    """Price of one item: from the cache, else from GET /items/<sku> on the inventory service."""
    cached = _price_cache.get(sku)
    if cached is not None and cached[1] > time.monotonic():
        cache_requests.add(1, {"cache.result": "hit"})
        return cached[0]
    cache_requests.add(1, {"cache.result": "miss"})
    try:
        async with _client() as client:
            response = await client.get(f"/items/{sku}")
    except httpx.HTTPError as err:
        raise _inventory_failure(err) from err
    if response.status_code == 404:
        raise InventoryError("unknown_sku", 404, f"unknown sku {sku!r}")
    if response.status_code != 200:
        raise InventoryError("failed", 502, f"inventory answered {response.status_code}")
    price = float(response.json()["price"])
    _price_cache[sku] = (price, time.monotonic() + cache_ttl())
    return price


async def price_order(order: OrderIn) -> float:
    """Total price of an order, in a custom span so pricing shows up in the trace."""
    with tracer.start_as_current_span("price_order") as span:
        span.set_attribute("order.sku", order.sku)
        span.set_attribute("order.quantity", order.quantity)
        price = await unit_price(order.sku)
        total = round(price * order.quantity, 2)
        span.set_attribute("order.total", total)
        return total


async def reserve_stock(order: OrderIn) -> None:
    """Reserve the items with POST /reserve on the inventory service."""
    try:
        async with _client() as client:
            response = await client.post("/reserve", json={"sku": order.sku, "quantity": order.quantity})
    except httpx.HTTPError as err:
        raise _inventory_failure(err) from err
    if response.status_code == 409:
        raise InventoryError("out_of_stock", 409, f"not enough {order.sku!r} in stock")
    if response.status_code == 404:
        raise InventoryError("unknown_sku", 404, f"unknown sku {order.sku!r}")
    if response.status_code != 200:
        raise InventoryError("failed", 502, f"inventory answered {response.status_code}")


def bounded_delay(seconds: float) -> float:
    """Clamp a requested delay to [0, MAX_SLOW_SECONDS]; NaN becomes 0."""
    if not seconds >= 0.0:
        return 0.0
    return min(seconds, MAX_SLOW_SECONDS)


def store_order(order: OrderIn, total: float) -> dict[str, Any]:
    order_id = str(next(_order_ids))
    record = {
        "id": order_id,
        "sku": order.sku,
        "quantity": order.quantity,
        "total": total,
        "status": "created",
    }
    _orders[order_id] = record
    if len(_orders) > MAX_ORDERS:
        _orders.popitem(last=False)
    return record


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders", status_code=201)
async def create_order(order: OrderIn) -> dict[str, Any]:
    try:
        total = await price_order(order)
        await reserve_stock(order)
    except InventoryError as err:
        orders_created.add(1, {"order.status": err.status})
        raise HTTPException(status_code=err.http_status, detail=err.detail) from err
    record = store_order(order, total)
    orders_created.add(1, {"order.status": "created"})
    logger.info("order created", extra={"order_id": record["id"], "sku": order.sku, "total": total})
    return record


@app.get("/orders/{order_id}")
async def get_order(order_id: str) -> dict[str, Any]:
    order = _orders.get(order_id)
    if order is None:
        raise HTTPException(status_code=404, detail=f"order {order_id!r} not found")
    # Shows a structlog record (with bound fields) reaching the backend next to stdlib ones.
    if structlog is not None:
        structlog.get_logger("orders").bind(order_id=order_id).info("order fetched", sku=order["sku"])
    else:
        logger.info("order fetched", extra={"order_id": order_id})
    return order


@app.get("/orders/{order_id}/fail")
async def fail_order(order_id: str) -> dict[str, Any]:
    raise RuntimeError(f"failed to process order {order_id}")  # unhandled on purpose: a 500


@app.get("/boom")
async def boom() -> dict[str, Any]:
    raise RuntimeError("boom")  # unhandled on purpose: a 500


@app.get("/slow")
async def slow(seconds: float = 1.2) -> dict[str, float]:
    seconds = bounded_delay(seconds)
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.post("/login")
async def login(body: LoginIn) -> dict[str, Any]:
    # Logs the password on purpose: a sample record for testing that secrets are scrubbed.
    logger.info("login attempt", extra={"user": body.username, "password": body.password})
    if body.password != DEMO_PASSWORD:
        logger.warning("login failed", extra={"user": body.username})
        raise HTTPException(status_code=401, detail="invalid credentials")
    return {"user": body.username, "authenticated": True}


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8001")))


if __name__ == "__main__":
    main()
