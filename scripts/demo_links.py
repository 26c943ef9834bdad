#!/usr/bin/env python3
"""Print links into the native stack's UIs and APIs for what the demo just sent, each
checked to answer with data first (scripts/demo runs this; standard library only).

    python3 scripts/demo_links.py --trace-id <32 hex> --request-id <X-Request-ID>
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from collections.abc import Callable

import stack

RED_QUERY = "sum by (job, http_route) (rate(http_server_request_duration_seconds_count[1m]))"


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            print(f"  (no data yet for {what} after {timeout:g}s)")
            return False
        time.sleep(1.0)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace-id", required=True)
    parser.add_argument("--request-id", required=True)
    args = parser.parse_args(argv)
    s = stack.Stack()  # the fixed ports of `scripts/backends up`
    trace_id, request_id = args.trace_id, args.request_id
    logsql = f"trace_id:={trace_id}"
    ok = True

    def prometheus_has_data() -> bool:
        status, body = stack.get_json(f"{s.prometheus_url}/api/v1/query", {"query": RED_QUERY})
        return status == 200 and isinstance(body, dict) and bool(body["data"]["result"])

    def logs_have_the_trace() -> bool:
        status, body = stack.get_json(f"{s.logs_url}/select/logsql/query", {"query": logsql})
        return status == 200 and bool(body)

    def jaeger_has_the_trace() -> bool:
        return stack.get_json(f"{s.traces_url}/api/v3/traces/{trace_id}")[0] == 200

    print("==> Prometheus: request rate per route (RED)")
    ok &= wait_for("the RED query", prometheus_has_data)
    # Debian's Prometheus build ships no web UI (its assets need npm): the query API answers.
    print(f"  {s.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': RED_QUERY})}")

    print(f"==> VictoriaLogs: every log line of trace {trace_id} (request {request_id}), both services")
    ok &= wait_for("the trace's log lines", logs_have_the_trace)
    # The UI opens on the last 5 minutes: widen its time range for older requests.
    print(f"  UI:  {s.logs_url}/select/vmui/#/?{urllib.parse.urlencode({'query': logsql})}")
    print(f"  API: {s.logs_url}/select/logsql/query?{urllib.parse.urlencode({'query': logsql})}")

    print("==> Jaeger: the same trace (query API; the Jaeger web UI is not part of the Go build)")
    ok &= wait_for("the trace", jaeger_has_the_trace)
    print(f"  {s.traces_url}/api/v3/traces/{trace_id}")
    search = urllib.parse.urlencode({"service": "orders", "tags": json.dumps({"request.id": request_id})})
    print(f"  {s.traces_url}/api/traces?{search}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
