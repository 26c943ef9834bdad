#!/usr/bin/env python3
"""Drive the example services with a mix of normal, cross-service, error and slow requests.

Standard library only, so it runs anywhere Python does:

    python examples/traffic.py --orders-url http://127.0.0.1:8001 \\
        --inventory-url http://127.0.0.1:8002 --duration 30 --rate 5

It stops by itself after --duration seconds or --count requests, whichever comes first,
then prints how many requests of each kind got each status. Exit status 1 means no
request got any HTTP answer at all (the services are probably not running).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

MAX_DURATION = 3600.0
MAX_RATE = 200.0
MAX_COUNT = 100_000
SKUS = ("SKU-APPLE", "SKU-BREAD", "SKU-COFFEE")


@dataclass
class Response:
    status: int | str  # an HTTP status, or the name of the error when there was no answer
    body: object = None


@dataclass
class Traffic:
    orders_url: str
    inventory_url: str
    timeout: float
    rng: random.Random
    order_ids: list[str] = field(default_factory=list)
    results: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, method: str, url: str, payload: object = None) -> Response:
        """One HTTP request; an X-Request-ID on about half of them to exercise both paths."""
        headers = {"Accept": "application/json", "User-Agent": "otel-distro-examples-traffic"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if self.rng.random() < 0.5:
            headers["X-Request-ID"] = f"traffic-{uuid.uuid4().hex[:16]}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return Response(resp.status, _json(resp.read()))
        except urllib.error.HTTPError as err:
            return Response(err.code, _json(err.read()))
        except (OSError, ValueError) as err:  # refused, reset, timed out: no HTTP answer
            return Response(type(err).__name__)

    # --- scenarios: each does one request -----------------------------------------------------

    def create_order(self) -> Response:
        payload = {"sku": self.rng.choice(SKUS), "quantity": self.rng.randint(1, 3)}
        resp = self.request("POST", f"{self.orders_url}/orders", payload)
        if resp.status == 201 and isinstance(resp.body, dict):
            with self.lock:
                self.order_ids.append(str(resp.body["id"]))
        return resp

    def order_out_of_stock(self) -> Response:
        # SKU-LIMITED starts with 3 in stock: 5 never fits, and single ones soon run out.
        payload = {"sku": "SKU-LIMITED", "quantity": self.rng.choice((1, 5))}
        return self.request("POST", f"{self.orders_url}/orders", payload)

    def order_unknown_sku(self) -> Response:
        return self.request("POST", f"{self.orders_url}/orders", {"sku": "SKU-NOPE", "quantity": 1})

    def get_order(self) -> Response:
        with self.lock:
            order_id = self.rng.choice(self.order_ids) if self.order_ids else "1001"
        return self.request("GET", f"{self.orders_url}/orders/{order_id}")

    def get_missing_order(self) -> Response:
        return self.request("GET", f"{self.orders_url}/orders/999999")

    def fail_order(self) -> Response:
        return self.request("GET", f"{self.orders_url}/orders/{self.rng.randint(1001, 1100)}/fail")

    def orders_boom(self) -> Response:
        return self.request("GET", f"{self.orders_url}/boom")

    def orders_slow(self) -> Response:
        return self.request("GET", f"{self.orders_url}/slow?seconds={self.rng.uniform(0.5, 1.5):.2f}")

    def login(self) -> Response:
        password = self.rng.choice(["correct-horse", "wrong-password"])
        return self.request("POST", f"{self.orders_url}/login", {"username": "alice", "password": password})

    def orders_health(self) -> Response:
        return self.request("GET", f"{self.orders_url}/health")

    def get_item(self) -> Response:
        return self.request("GET", f"{self.inventory_url}/items/{self.rng.choice((*SKUS, 'SKU-NOPE'))}")

    def reserve(self) -> Response:
        payload = {"sku": self.rng.choice(SKUS), "quantity": 1}
        return self.request("POST", f"{self.inventory_url}/reserve", payload)

    def inventory_boom(self) -> Response:
        return self.request("GET", f"{self.inventory_url}/boom")

    def inventory_slow(self) -> Response:
        return self.request("GET", f"{self.inventory_url}/slow?seconds={self.rng.uniform(0.5, 1.5):.2f}")

    def inventory_health(self) -> Response:
        return self.request("GET", f"{self.inventory_url}/health")

    def scenarios(self) -> dict[str, tuple[Callable[[], Response], int]]:
        """Scenario name -> (request, weight): mostly normal traffic, some errors and slow calls."""
        return {
            "create_order": (self.create_order, 30),
            "get_order": (self.get_order, 20),
            "get_item": (self.get_item, 12),
            "reserve": (self.reserve, 5),
            "order_out_of_stock": (self.order_out_of_stock, 4),
            "order_unknown_sku": (self.order_unknown_sku, 2),
            "get_missing_order": (self.get_missing_order, 3),
            "login": (self.login, 4),
            "fail_order": (self.fail_order, 3),
            "orders_boom": (self.orders_boom, 2),
            "inventory_boom": (self.inventory_boom, 2),
            "orders_slow": (self.orders_slow, 3),
            "inventory_slow": (self.inventory_slow, 3),
            "orders_health": (self.orders_health, 4),
            "inventory_health": (self.inventory_health, 3),
        }

    def run_one(self, name: str, call: Callable[[], Response]) -> None:
        status = call().status
        with self.lock:
            self.results[(name, status)] += 1


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _bounded(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders-url", default="http://127.0.0.1:8001")
    parser.add_argument("--inventory-url", default="http://127.0.0.1:8002")
    parser.add_argument("--duration", type=float, default=30.0, help=f"seconds, at most {MAX_DURATION:g}")
    parser.add_argument("--rate", type=float, default=5.0, help=f"requests per second, at most {MAX_RATE:g}")
    parser.add_argument("--count", type=int, default=None, help="stop after this many requests")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--seed", type=int, default=None, help="make the request mix repeatable")
    args = parser.parse_args(argv)
    args.duration = _bounded(args.duration, 0.0, MAX_DURATION)
    args.rate = _bounded(args.rate, 0.1, MAX_RATE)
    planned = int(args.duration * args.rate) + 1
    args.count = int(_bounded(args.count if args.count is not None else planned, 0, MAX_COUNT))
    args.concurrency = int(_bounded(args.concurrency, 1, 64))
    return args


def drive(traffic: Traffic, duration: float, rate: float, count: int, concurrency: int) -> int:
    """Send requests at `rate` per second until `duration` or `count` is reached; returns how many."""
    scenarios = traffic.scenarios()
    names = list(scenarios)
    weights = [weight for _, weight in scenarios.values()]
    deadline = time.monotonic() + duration
    sent = 0
    # Threads keep a slow or hanging request from holding back the rate of the others.
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = []
        next_at = time.monotonic()
        while sent < count and next_at < deadline:
            time.sleep(max(0.0, next_at - time.monotonic()))
            name = traffic.rng.choices(names, weights)[0]
            futures.append(pool.submit(traffic.run_one, name, scenarios[name][0]))
            sent += 1
            next_at += 1.0 / rate
        wait(futures)
    return sent


def summary(results: Counter[tuple[str, int | str]]) -> str:
    by_scenario: dict[str, Counter[int | str]] = {}
    for (name, status), n in results.items():
        by_scenario.setdefault(name, Counter())[status] += n
    totals: Counter[int | str] = Counter()
    for statuses in by_scenario.values():
        totals.update(statuses)
    lines = [f"{'scenario':<20} statuses"]
    for name in sorted(by_scenario):
        lines.append(f"{name:<20} {_statuses(by_scenario[name])}")
    lines.append(f"{'total':<20} {_statuses(totals)}  ({sum(totals.values())} requests)")
    return "\n".join(lines)


def _statuses(counts: Counter[int | str]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items(), key=lambda kv: str(kv[0])))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    traffic = Traffic(
        orders_url=args.orders_url.rstrip("/"),
        inventory_url=args.inventory_url.rstrip("/"),
        timeout=args.timeout,
        rng=random.Random(args.seed),
    )
    print(
        f"sending up to {args.count} requests at {args.rate:g}/s for at most {args.duration:g}s "
        f"to {traffic.orders_url} and {traffic.inventory_url}",
        flush=True,
    )
    started = time.monotonic()
    sent = drive(traffic, args.duration, args.rate, args.count, args.concurrency)
    print(f"sent {sent} requests in {time.monotonic() - started:.1f}s")
    print(summary(traffic.results))
    answered = sum(n for (_, status), n in traffic.results.items() if isinstance(status, int))
    return 0 if answered or sent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
