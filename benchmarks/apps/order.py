"""The realistic route's shared parts: the request model, the SQLite data and its query.

`POST /order` in both bench apps validates this JSON body with pydantic, looks the customer
and the items up in an in-memory SQLite database built at start-up, calls a local pricing
stub over HTTP (`BENCH_STUB_URL`, started by `run.py`) and logs two lines. The body wrk sends
is in `benchmarks/order.lua`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading

from pydantic import BaseModel, Field

STUB_URL = os.environ.get("BENCH_STUB_URL", "http://127.0.0.1:9").rstrip("/")

CUSTOMERS = 500
PRODUCTS = 2_000
PAST_ORDERS = 20_000


class Item(BaseModel):
    sku: str = Field(pattern=r"^[A-Z]{3}-\d{4}$")
    quantity: int = Field(ge=1, le=100)


class Address(BaseModel):
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postcode: str = Field(pattern=r"^[0-9A-Z -]{3,10}$")
    country: str = Field(pattern=r"^[A-Z]{2}$")


class Order(BaseModel):
    customer_id: int = Field(ge=1, le=CUSTOMERS)
    items: list[Item] = Field(min_length=1, max_length=20)
    shipping: Address
    coupon: str | None = Field(default=None, max_length=32)
    note: str | None = Field(default=None, max_length=500)


def _sku(n: int) -> str:
    return f"{'ABCDEFGHIJ'[n % 10]}{'KLMNOPQRST'[n // 10 % 10]}{'UVWXYZABCD'[n // 100 % 10]}-{n:04d}"


def open_db() -> sqlite3.Connection:
    """A deterministic in-memory database; `past_orders` has no index on purpose (a scan)."""
    rng = random.Random(14)
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, tier TEXT);
        CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, price_cents INTEGER, stock INTEGER);
        CREATE TABLE past_orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total_cents INTEGER);
        """
    )
    db.executemany(
        "INSERT INTO customers VALUES (?, ?, ?)",
        ((i, f"customer {i}", rng.choice(("basic", "silver", "gold"))) for i in range(1, CUSTOMERS + 1)),
    )
    db.executemany(
        "INSERT INTO products VALUES (?, ?, ?, ?)",
        ((_sku(i), f"product {i}", rng.randint(100, 50_000), rng.randint(0, 500)) for i in range(PRODUCTS)),
    )
    db.executemany(
        "INSERT INTO past_orders VALUES (?, ?, ?)",
        ((i, rng.randint(1, CUSTOMERS), rng.randint(100, 200_000)) for i in range(PAST_ORDERS)),
    )
    db.commit()
    return db


_db = open_db()
_lock = threading.Lock()  # one connection; gunicorn sync and the event loop never contend anyway


def lookup(order: Order) -> dict[str, object]:
    """One customer row, the customer's order history (a table scan) and the ordered items."""
    skus = [item.sku for item in order.items]
    with _lock:
        customer = _db.execute("SELECT name, tier FROM customers WHERE id = ?", (order.customer_id,)).fetchone()
        count, spent = _db.execute(
            "SELECT COUNT(*), COALESCE(SUM(total_cents), 0) FROM past_orders WHERE customer_id = ?",
            (order.customer_id,),
        ).fetchone()
        rows = _db.execute(
            f"SELECT sku, price_cents, stock FROM products WHERE sku IN ({','.join('?' * len(skus))})", skus
        ).fetchall()
    prices = {sku: (price, stock) for sku, price, stock in rows}
    missing = [sku for sku in skus if sku not in prices]
    subtotal = sum(prices[item.sku][0] * item.quantity for item in order.items if item.sku in prices)
    return {
        "customer": customer[0] if customer else None,
        "tier": customer[1] if customer else "basic",
        "past_orders": count,
        "lifetime_cents": spent,
        "subtotal_cents": subtotal,
        "missing": missing,
    }


def stub_params(order: Order, found: dict[str, object]) -> dict[str, str]:
    return {"tier": str(found["tier"]), "country": order.shipping.country, "subtotal": str(found["subtotal_cents"])}


def answer(order: Order, found: dict[str, object], pricing: dict[str, object]) -> dict[str, object]:
    discount = int(pricing.get("discount_pct", 0))
    subtotal = int(found["subtotal_cents"])  # type: ignore[call-overload]
    total = subtotal - subtotal * discount // 100 + int(pricing.get("shipping_cents", 0))
    return {
        "customer_id": order.customer_id,
        "items": len(order.items),
        "missing": found["missing"],
        "subtotal_cents": subtotal,
        "discount_pct": discount,
        "total_cents": total,
    }
