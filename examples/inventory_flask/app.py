"""Inventory service (Flask): an ordinary app that knows nothing about otel-distro.

Run it unmodified under the distro:

    opentelemetry-instrument python app.py                    # dev server on 127.0.0.1:$PORT (8002)
    opentelemetry-instrument gunicorn app:app -b 127.0.0.1:8002

Its own telemetry goes through the plain OpenTelemetry API only: a `reserve_stock` span,
the `inventory.reservations` counter and stdlib logging. The distro decides where all of
it is exported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from flask import Flask, jsonify, request
from opentelemetry import metrics, trace

logger = logging.getLogger("inventory")
tracer = trace.get_tracer("inventory")
meter = metrics.get_meter("inventory")

reservations = meter.create_counter(
    "inventory.reservations",
    unit="{reservation}",
    description="Stock reservations, by outcome (reservation.result).",
)

MAX_SLOW_SECONDS = 10.0

# SKU-LIMITED runs out after a few orders, so traffic shows 409s as well as successes.
_items: dict[str, dict[str, Any]] = {
    "SKU-APPLE": {"name": "Apple", "price": 0.5, "stock": 100_000},
    "SKU-BREAD": {"name": "Bread", "price": 2.25, "stock": 100_000},
    "SKU-COFFEE": {"name": "Coffee beans", "price": 11.9, "stock": 100_000},
    "SKU-LIMITED": {"name": "Limited edition mug", "price": 24.0, "stock": 3},
}
_lock = threading.Lock()  # the dev server and gunicorn may serve requests on several threads

app = Flask(__name__)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def bounded_delay(seconds: float) -> float:
    """Clamp a requested delay to [0, MAX_SLOW_SECONDS]; NaN becomes 0."""
    if not seconds >= 0.0:
        return 0.0
    return min(seconds, MAX_SLOW_SECONDS)


def _item_view(sku: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"sku": sku, "name": item["name"], "price": item["price"], "stock": item["stock"]}


def reserve(sku: str, quantity: int) -> tuple[str, int]:
    """Take `quantity` items of `sku` out of stock; returns (result, remaining stock)."""
    with tracer.start_as_current_span("reserve_stock") as span:
        span.set_attribute("inventory.sku", sku)
        span.set_attribute("inventory.quantity", quantity)
        with _lock:
            item = _items.get(sku)
            if item is None:
                result, remaining = "unknown_sku", 0
            elif item["stock"] < quantity:
                result, remaining = "out_of_stock", item["stock"]
            else:
                item["stock"] -= quantity
                result, remaining = "reserved", item["stock"]
        span.set_attribute("reservation.result", result)
        span.set_attribute("inventory.remaining", remaining)
    reservations.add(1, {"reservation.result": result})
    return result, remaining


def _parse_reservation(body: Any) -> tuple[str, int] | None:
    if not isinstance(body, dict):
        return None
    sku, quantity = body.get("sku"), body.get("quantity", 1)
    if not isinstance(sku, str) or not isinstance(quantity, int) or isinstance(quantity, bool):
        return None
    return (sku, quantity) if quantity >= 1 else None


@app.get("/health")
def health() -> Any:
    return jsonify(status="ok")


@app.get("/items/<sku>")
def get_item(sku: str) -> Any:
    with _lock:
        item = _items.get(sku)
        view = _item_view(sku, item) if item is not None else None
    if view is None:
        logger.info("unknown sku looked up", extra={"sku": sku})
        return jsonify(error=f"unknown sku {sku!r}"), 404
    logger.info("item looked up", extra={"sku": sku, "stock": view["stock"]})
    return jsonify(view)


@app.post("/reserve")
def post_reserve() -> Any:
    parsed = _parse_reservation(request.get_json(silent=True))
    if parsed is None:
        return jsonify(error='expected JSON {"sku": str, "quantity": int >= 1}'), 400
    sku, quantity = parsed
    result, remaining = reserve(sku, quantity)
    if result == "unknown_sku":
        return jsonify(error=f"unknown sku {sku!r}"), 404
    if result == "out_of_stock":
        logger.warning("out of stock", extra={"sku": sku, "requested": quantity, "available": remaining})
        return jsonify(error="out of stock", sku=sku, available=remaining), 409
    logger.info("stock reserved", extra={"sku": sku, "quantity": quantity, "remaining": remaining})
    return jsonify(sku=sku, reserved=quantity, remaining=remaining)


@app.get("/boom")
def boom() -> Any:
    raise RuntimeError("boom")  # unhandled on purpose: a 500


@app.get("/slow")
def slow() -> Any:
    seconds = bounded_delay(request.args.get("seconds", 1.2, type=float))
    time.sleep(seconds)
    return jsonify(slept=seconds)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # FLASK_DEBUG=1 turns on the debugger and the reloader (which re-executes this process).
    app.run(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8002")),
        debug=_flag("FLASK_DEBUG"),
    )


if __name__ == "__main__":
    main()
