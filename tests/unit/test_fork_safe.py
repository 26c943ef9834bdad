"""Locks our background threads take are free in a forked child (pre-fork servers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)

from otel_distro import _sdk_compat
from otel_distro._fork_safe import ForkSafeLock


def _in_child(body: Callable[[], bool], timeout: float = 5.0) -> int:
    """Runs `body` in a forked child; its exit status: 0 passed, 1 failed, 2 hung past `timeout`."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            done = threading.Event()
            result: list[bool] = []

            def run() -> None:
                result.append(body())
                done.set()

            threading.Thread(target=run, daemon=True).start()
            os._exit(0 if done.wait(timeout) and result == [True] else (1 if result else 2))
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _held_during_fork(lock: Any, body: Callable[[], bool]) -> int:
    """Another thread holds `lock` while this one forks (a master's export thread, mid-check)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    try:
        return _in_child(body)
    finally:
        release.set()
        holder.join(5)


class TestForkSafeLock:
    def test_a_lock_held_by_another_thread_at_fork_is_free_in_the_child(self) -> None:
        lock = ForkSafeLock()
        assert _held_during_fork(lock, lambda: lock.acquire(timeout=2)) == 0

    def test_a_plain_lock_is_not(self) -> None:
        # The hazard itself, so the test above cannot pass for the wrong reason.
        lock = threading.Lock()
        assert _held_during_fork(lock, lambda: lock.acquire(timeout=1)) == 1

    def test_works_as_a_lock(self) -> None:
        lock = ForkSafeLock()
        with lock:
            assert lock.locked()
            assert not lock.acquire(blocking=False)
        assert not lock.locked()


class TestSdkCompatAcrossFork:
    def test_a_path_check_in_progress_at_fork_does_not_hang_the_child(self) -> None:
        path = _sdk_compat.FastPath.SPAN_RAW_ATTRIBUTES
        known = _sdk_compat._state.pop(path, None)
        try:
            # The child checks the path itself while the parent's check still holds the lock.
            assert _held_during_fork(_sdk_compat._lock, lambda: _sdk_compat.enabled(path)) == 0
        finally:
            if known is not None:
                _sdk_compat._state[path] = known


class _GatedExporter(MetricExporter):
    """Its first export in the parent waits at a gate (a master's export in flight at fork)."""

    def __init__(self) -> None:
        super().__init__()
        self.parent = os.getpid()
        self.entered, self.gate = threading.Event(), threading.Event()
        self.exports = 0

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports += 1
        if os.getpid() == self.parent and not self.gate.is_set():
            self.entered.set()
            self.gate.wait(10)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _forked_mid_export(renew: bool) -> int:
    """The child's status when it exports after a fork taken while the parent's reader exported."""
    exporter = _GatedExporter()
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    if renew:
        _sdk_compat.renew_metric_locks_after_fork(provider)
    counter = provider.get_meter("fork").create_counter("requests")
    counter.add(1)
    exporting = threading.Thread(target=reader.collect)
    exporting.start()
    assert exporter.entered.wait(5)

    def child() -> bool:
        before = exporter.exports
        counter.add(1, {"worker": "new series"})
        reader.collect(timeout_millis=2_000)
        return exporter.exports == before + 1

    try:
        return _in_child(child, timeout=3)
    finally:
        exporter.gate.set()
        exporting.join(5)
        provider.shutdown(timeout_millis=1_000)


class TestMetricLocksAcrossFork:
    def test_a_worker_forked_during_an_export_exports_and_records(self) -> None:
        assert _forked_mid_export(renew=True) == 0

    def test_without_renewal_that_worker_never_exports(self) -> None:
        # The SDK's own behaviour, so the test above cannot pass for the wrong reason.
        assert _forked_mid_export(renew=False) == 2

    def test_locks_held_during_a_collection_are_free_in_the_child(self) -> None:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        meter = provider.get_meter("fork")
        histogram = meter.create_histogram("duration")
        histogram.record(1.0, {"route": "/a"})
        consumer = provider._measurement_consumer
        [storage] = consumer._reader_storages.values()
        [match] = storage._instrument_view_instrument_matches[histogram]
        [aggregation] = match._attributes_aggregation.values()
        held = [consumer._lock, storage._lock, match._lock, aggregation._lock]
        if getattr(aggregation, "_reservoir", None) is not None:
            held.append(aggregation._reservoir._lock)

        def child() -> bool:
            assert _sdk_compat.renew_metric_locks(provider)
            histogram.record(2.0, {"route": "/a"})  # the series' own lock
            meter.create_counter("new").add(1)  # a new instrument: the storage's lock
            data = reader.get_metrics_data()  # the consumer's lock
            return data is not None

        # Held by a thread of the parent (its reader, mid-collection) while it forks.
        assert _held_during_fork(_Locks(held), child) == 0
        # The SDK alone: recording the held series hangs (2), so the check above cannot pass for the wrong reason.
        assert _held_during_fork(_Locks(held), lambda: bool(histogram.record(2.0, {"route": "/a"})) or True) == 2


class _Locks:
    """Several locks taken and released together, for _held_during_fork."""

    def __init__(self, locks: list[Any]) -> None:
        self.locks = locks

    def __enter__(self) -> None:
        for lock in self.locks:
            lock.acquire()

    def __exit__(self, *exc: object) -> None:
        for lock in reversed(self.locks):
            lock.release()


class TestOurExportLocksAcrossFork:
    def test_a_post_in_flight_at_fork_does_not_block_the_childs(self) -> None:
        from otel_distro.otlp_http import _PlainHTTPTransport
        from tests.harness import free_port

        port = free_port()  # nothing listens: the child's POST fails fast, if it gets to try
        transport = _PlainHTTPTransport("127.0.0.1", port)

        def post() -> bool:
            result = transport.request("POST", f"http://127.0.0.1:{port}/v1/metrics", data=b"", timeout=1)
            return result.error is not None

        # The parent's export thread holds the lock across its POST.
        assert _held_during_fork(transport._lock, post) == 0

    def test_the_exporter_states_lock_is_free_in_the_child(self) -> None:
        from otel_distro import exporters

        assert _held_during_fork(exporters._states_lock, lambda: isinstance(exporters.pipeline_state(), list)) == 0


# A process whose idna codec import is in progress on another thread (the master's first
# export connection) when it forks; the child then needs the codec (its first connection).
_IDNA_FORK = """
import importlib._bootstrap, os, signal, sys, threading
if sys.argv[1] == "distro":
    import otel_distro._fork_safe
holding, release = threading.Event(), threading.Event()

def importing():
    with importlib._bootstrap._ModuleLockManager("encodings.idna"):
        holding.set()
        release.wait(10)

threading.Thread(target=importing, daemon=True).start()
holding.wait(5)
pid = os.fork()
if pid == 0:  # on its main thread, as a worker would; a hang ends at the alarm (SIGALRM)
    signal.alarm(3)
    try:
        "xn--bcher-kva.example".encode("ascii").decode("idna")
    except LookupError:  # "unknown encoding: idna", the other way it goes wrong
        os._exit(1)
    os._exit(0)
release.set()
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


class TestCodecImportAcrossFork:
    def test_the_idna_codec_is_loaded_before_any_export_thread(self) -> None:
        result = subprocess.run([sys.executable, "-c", _IDNA_FORK, "distro"], timeout=30, capture_output=True)
        assert result.returncode == 0, result.stderr.decode()

    def test_without_it_the_child_cannot_use_the_codec(self) -> None:
        # The hazard itself (a hang ended by the alarm, or LookupError), so the test above means something.
        result = subprocess.run([sys.executable, "-c", _IDNA_FORK, "nothing"], timeout=30, capture_output=True)
        assert result.returncode != 0


class TestRuntimeMetricsAcrossFork:
    def test_a_worker_reads_its_own_process_not_the_masters(self) -> None:
        from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

        instrumentor = SystemMetricsInstrumentor(config={"process.memory.usage": None})
        instrumentor.instrument(meter_provider=MeterProvider(shutdown_on_exit=False))
        try:
            _sdk_compat.follow_forks(instrumentor)
            master = os.getpid()
            assert instrumentor._proc.pid == master
            # Without follow_forks the child's `_proc` is still the master's (contrib reads it once).
            assert _in_child(lambda: instrumentor._proc.pid == os.getpid() != master) == 0
        finally:
            instrumentor.uninstrument()
