"""Run checks concurrently, each bounded by its timeout.

Sync checks run on a daemon thread of their own. A check that is still running from an
earlier probe is waited on rather than started again, so a hung dependency costs one thread,
not one per probe, and readiness recovers as soon as that call returns. Async checks run on
the server's event loop and are cancelled at their timeout; from sync code (Flask) they run
on their own thread's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from otel_distro.health._errors import describe
from otel_distro.health._registry import Check, registered
from otel_distro.scrub import Scrubber
from otel_distro.settings import Settings, get_settings

__all__ = ["CheckResult", "Policy", "policy", "run_checks", "run_checks_async"]

PASS, FAIL, TIMEOUT = "pass", "fail", "timeout"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: `status` is `pass`, `fail` or `timeout`."""

    name: str
    status: str
    latency_ms: float
    error_type: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == PASS

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "latency_ms": self.latency_ms}
        if self.error_type is not None:
            body["error"] = {"type": self.error_type, "message": self.error or ""}
        return body


@dataclass(frozen=True)
class Policy:
    """What running checks takes from the settings."""

    timeout: float  # seconds, for checks registered without their own
    scrubber: Scrubber  # for error messages, which leave the process


@functools.cache  # one per settings: the scrubber's patterns compile once (about 1 ms), not on every probe
def policy(settings: Settings) -> Policy:
    # Scrubbed even when OTEL_DISTRO_SCRUB=false: this text leaves the process over HTTP.
    return Policy(settings.health_check_timeout, Scrubber(settings.scrub_keys))


def _policy(settings: Settings | None) -> Policy:
    # run_checks() is public: an app calling it has no settings to hand, so the process's are used.
    return policy(settings if settings is not None else get_settings())


_in_flight: dict[str, concurrent.futures.Future[Any]] = {}
_in_flight_lock = threading.Lock()


def _timeout(check: Check, rules: Policy) -> float:
    return check.timeout if check.timeout is not None else rules.timeout


def _is_async(check: Check) -> bool:
    return inspect.iscoroutinefunction(check.fn)


def _call(check: Check) -> Any:
    value = check.fn()
    if inspect.isawaitable(value):  # an async check called from a thread

        async def wait() -> Any:
            return await value

        value = asyncio.run(wait())
    return value


def _run_on_thread(check: Check, future: concurrent.futures.Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(_call(check))
    except BaseException as err:  # handed to whoever waits; never lost on this thread
        future.set_exception(err)


def _start(check: Check) -> concurrent.futures.Future[Any]:
    """The check's running call: the one still going from an earlier probe, or a new one."""
    with _in_flight_lock:
        future = _in_flight.get(check.name)
        if future is not None and not future.done():
            return future
        future = concurrent.futures.Future()
        _in_flight[check.name] = future
    name = f"otel-distro-health-{check.name}"
    threading.Thread(target=_run_on_thread, args=(check, future), name=name, daemon=True).start()
    return future


def _result(
    check: Check, rules: Policy, started: float, value: Any = None, error: BaseException | None = None
) -> CheckResult:
    latency = round((time.perf_counter() - started) * 1000, 1)
    if error is not None:
        kind, message = describe(error, rules.scrubber)
        return CheckResult(check.name, FAIL, latency, kind, message)
    if value is False:
        return CheckResult(check.name, FAIL, latency, "CheckFailed", "the check returned False")
    return CheckResult(check.name, PASS, latency)


def _timed_out(check: Check, rules: Policy, started: float) -> CheckResult:
    latency = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(check.name, TIMEOUT, latency, "Timeout", f"no answer within {_timeout(check, rules):g}s")


def _outcome(
    check: Check, rules: Policy, started: float, done: concurrent.futures.Future[Any] | asyncio.Future[Any]
) -> CheckResult:
    if done.cancelled():
        return _timed_out(check, rules, started)
    error = done.exception()
    if error is not None:
        return _result(check, rules, started, error=error)
    return _result(check, rules, started, done.result())


def run_checks(checks: Iterable[Check] | None = None, *, settings: Settings | None = None) -> list[CheckResult]:
    """Run the registered checks concurrently from sync code (threads); blocks at most the
    longest timeout."""
    rules = _policy(settings)
    todo = list(registered() if checks is None else checks)
    started = time.perf_counter()
    futures = [(check, _start(check)) for check in todo]
    results = []
    for check, future in futures:
        remaining = started + _timeout(check, rules) - time.perf_counter()
        concurrent.futures.wait([future], timeout=max(remaining, 0))
        done = future.done()
        results.append(_outcome(check, rules, started, future) if done else _timed_out(check, rules, started))
    return results


async def _run_one(check: Check, rules: Policy) -> CheckResult:
    started = time.perf_counter()
    task: asyncio.Future[Any]
    is_async = _is_async(check)
    if is_async:
        task = asyncio.ensure_future(check.fn())
    else:
        # Never cancelled: the thread's call may be shared with other probes.
        task = asyncio.wrap_future(_start(check))
        task.add_done_callback(_retrieve)
    done, _ = await asyncio.wait({task}, timeout=_timeout(check, rules))
    if not done:
        if is_async:
            task.cancel()  # a thread keeps running and is reused by the next probe
        return _timed_out(check, rules, started)
    return _outcome(check, rules, started, task)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Marks a late failure as seen, so asyncio does not log it as never retrieved.
    if not future.cancelled():
        future.exception()


async def run_checks_async(
    checks: Iterable[Check] | None = None, *, settings: Settings | None = None
) -> list[CheckResult]:
    """Run the registered checks concurrently on the running event loop."""
    rules = _policy(settings)
    todo = list(registered() if checks is None else checks)
    return list(await asyncio.gather(*(_run_one(check, rules) for check in todo)))
