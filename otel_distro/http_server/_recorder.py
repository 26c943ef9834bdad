"""Metric recording for the per-request instruments, without the SDK's per-call layers.

`Histogram.record` / `UpDownCounter.add` build a `Measurement` (re-validating every attribute),
then every reader's storage hashes the attribute set to find its aggregation: about 10-14 µs
per call here, and a request makes three to five calls. Our attribute sets repeat (method,
route, status, ...), so after the SDK has handled a set once, we keep the aggregations it
created for that set and hand them the measurement directly (about 4 µs). The exemplar
filter, the aggregations and what gets exported are the SDK's own; only the look-ups are
skipped. Anything unusual (a non-finite or negative value, a disabled meter, a reader added
or removed, an SDK without these internals) takes the SDK's public path. The internals
themselves are in `otel_distro._sdk_compat` (fast path `METRIC_RECORD`).
"""

from __future__ import annotations

import math
from typing import Any

from opentelemetry.context import Context, get_current
from opentelemetry.util.types import Attributes

from otel_distro import _sdk_compat

__all__ = ["Recorder"]

_MAX_CACHED_SETS = 1024


class Recorder:
    """`record(value, attributes, context)` into one SDK histogram or up-down counter.

    Only for attribute values of type str and int, as the HTTP semconv sets are: the cache
    key is the attribute items, which would not tell `True` from `1`. The SDK internals used
    are in `otel_distro._sdk_compat` (fast path `METRIC_RECORD`).
    """

    def __init__(self, instrument: Any, negative_allowed: bool) -> None:
        self._instrument = instrument
        self._public = instrument.add if negative_allowed else instrument.record
        self._negative_allowed = negative_allowed
        self._internals = _sdk_compat.instrument_internals(instrument)
        self._storages: object = None
        self._aggregations: dict[tuple[tuple[str, Any], ...], list[Any]] = {}

    def record(self, value: float, attributes: Attributes, context: Context | None = None) -> None:
        if not context:  # as the SDK does: no (or an empty) context means the current one
            context = get_current()
        internals = self._internals
        if (
            internals is None
            or not attributes
            or not math.isfinite(value)
            or (value < 0 and not self._negative_allowed)
            or not internals.is_enabled()
        ):
            self._public(value, attributes, context)
            return
        key = tuple(attributes.items())  # one tuple: no per-reader hashing or sorting of the set
        aggregations = self._aggregations.get(key)
        # Straight into the SDK's aggregations: no Measurement validation, no storage look-ups (~10 µs -> ~4 µs).
        if aggregations is None or not internals.record(self._storages, aggregations, value, attributes, context):
            self._public(value, attributes, context)  # a new set, or a reader added or removed: learn (again)
            self._learn(key, attributes)

    def _learn(self, key: tuple[tuple[str, Any], ...], attributes: Attributes) -> None:
        """Remember the aggregations the SDK just used for this attribute set."""
        if attributes is None or any(type(v) not in (str, int) for v in attributes.values()):
            return
        internals = self._internals
        learnt = internals.aggregations(attributes) if internals is not None else None
        if learnt is None:
            if not _sdk_compat.enabled(_sdk_compat.FastPath.METRIC_RECORD):
                self._internals = None  # internals changed: the public path from now on
            return
        storages, found = learnt
        if storages is not self._storages:
            self._aggregations.clear()
            self._storages = storages
        if len(self._aggregations) >= _MAX_CACHED_SETS:
            self._aggregations.clear()
        self._aggregations[key] = found
