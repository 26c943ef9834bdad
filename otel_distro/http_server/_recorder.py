"""Metric recording for the per-request instruments, without the SDK's per-call layers.

`Histogram.record` / `UpDownCounter.add` build a `Measurement` (re-validating every attribute),
then every reader's storage hashes the attribute set to find its aggregation: about 10-14 µs
per call here, and a request makes three to five calls. Our attribute sets repeat (method,
route, status, ...), so after the SDK has handled a set once, we keep the aggregations it
created for that set and hand them the measurement directly (about 4 µs). The exemplar
filter, the aggregations and what gets exported are the SDK's own; only the look-ups are
skipped. Anything unusual (a non-finite or negative value, a disabled meter, a reader added
or removed, an SDK without these internals) takes the SDK's public path.
"""

from __future__ import annotations

import math
from time import time_ns
from typing import Any

from opentelemetry.context import Context, get_current
from opentelemetry.util.types import Attributes

__all__ = ["Recorder"]

_MAX_CACHED_SETS = 1024


class Recorder:
    """`record(value, attributes, context)` into one SDK histogram or up-down counter.

    Only for attribute values of type str and int, as the HTTP semconv sets are: the cache
    key is the attribute items, which would not tell `True` from `1`.
    """

    def __init__(self, instrument: Any, negative_allowed: bool) -> None:
        self._instrument = instrument
        self._public = instrument.add if negative_allowed else instrument.record
        self._negative_allowed = negative_allowed
        self._consumer = getattr(instrument, "_measurement_consumer", None)
        self._storages: object = None
        self._aggregations: dict[tuple[tuple[str, Any], ...], list[Any]] = {}
        try:
            from opentelemetry.sdk.metrics._internal.measurement import Measurement

            self._filter = self._consumer._sdk_config.exemplar_filter  # type: ignore[union-attr]
            self._measurement: Any = Measurement
        except (AttributeError, ImportError):
            self._consumer = None

    def record(self, value: float, attributes: Attributes, context: Context | None = None) -> None:
        if not context:  # as the SDK does: no (or an empty) context means the current one
            context = get_current()
        consumer = self._consumer
        if (
            consumer is None
            or not attributes
            or not math.isfinite(value)
            or (value < 0 and not self._negative_allowed)
            or not self._instrument._is_enabled()
        ):
            self._public(value, attributes, context)
            return
        key = tuple(attributes.items())
        aggregations = self._aggregations.get(key)
        if aggregations is None or consumer._reader_storages is not self._storages:
            self._public(value, attributes, context)
            self._learn(key, attributes)
            return
        measurement = object.__new__(self._measurement)
        now = time_ns()
        # The frozen dataclass's own fields, as `Measurement.__init__` sets them.
        setattr_ = object.__setattr__
        setattr_(measurement, "value", value)
        setattr_(measurement, "time_unix_nano", now)
        setattr_(measurement, "instrument", self._instrument)
        setattr_(measurement, "context", context)
        setattr_(measurement, "attributes", attributes)
        sample = self._filter.should_sample(value, now, attributes, context)
        for aggregation in aggregations:
            aggregation.aggregate(measurement, sample)

    def _learn(self, key: tuple[tuple[str, Any], ...], attributes: Attributes) -> None:
        """Remember the aggregations the SDK just used for this attribute set."""
        if attributes is None or any(type(v) not in (str, int) for v in attributes.values()):
            return
        try:
            from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

            storages = self._consumer._reader_storages  # type: ignore[union-attr]
            found = []
            for storage in storages.values():
                for match in storage._get_or_init_view_instrument_match(self._instrument):
                    keys = match._view._attribute_keys
                    kept = attributes if keys is None else {k: v for k, v in attributes.items() if k in keys}
                    found.append(match._attributes_aggregation[_hash_attributes(kept)])
        except (AttributeError, KeyError, ImportError):
            self._consumer = None  # an SDK whose internals differ: the public path from now on
            return
        if storages is not self._storages:
            self._aggregations.clear()
            self._storages = storages
        if len(self._aggregations) >= _MAX_CACHED_SETS:
            self._aggregations.clear()
        self._aggregations[key] = found
