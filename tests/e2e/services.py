"""The two example services, unmodified under `opentelemetry-instrument`, sending to the
native stack: inventory (Flask) under `gunicorn -w 2`, orders (FastAPI) under uvicorn
calling it. One place for the e2e modules that drive them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.harness import EXAMPLES, App, app_env, free_port, launch, stop_app

from .conftest import stack

__all__ = ["example_services"]


@contextlib.contextmanager
def example_services(
    backends: stack.Stack, logs: Path, inventory: str, orders: str, **extra: str
) -> Iterator[tuple[App, App]]:
    """Yields (inventory, orders) with the given service names and extra environment;
    stopping them on exit flushes what their SDKs still hold."""
    inventory_port, orders_port = free_port(), free_port()
    endpoint = backends.otlp_http_url
    inventory_app = launch(
        ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{inventory_port}", "app:app"],
        app_env(inventory, endpoint, **extra),
        EXAMPLES / "inventory_flask",
        inventory_port,
        logs / "inventory.log",
    )
    try:
        orders_app = launch(
            ["uvicorn", "app:app", "--port", str(orders_port)],
            app_env(orders, endpoint, INVENTORY_URL=inventory_app.url, **extra),
            EXAMPLES / "orders_fastapi",
            orders_port,
            logs / "orders.log",
        )
        try:
            yield inventory_app, orders_app
        finally:
            stop_app(orders_app)
    finally:
        stop_app(inventory_app)
