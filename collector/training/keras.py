"""A Keras callback that writes training progress as ``train`` points.

Tags ``run``, ``model``, ``host``. Every ``every_n_steps`` optimizer steps one point with

* ``step`` (the optimizer's iteration count), ``epoch``, ``step_time_s`` (mean over the steps
  since the previous point), ``lr`` (the current learning rate, schedules included);
* ``examples_per_s`` when the batch size is known (``batch_size=`` or a ``size``/``batch_size``
  entry in the batch logs; Keras 3 does not report it);
* every metric in the batch logs (``loss``, ``accuracy``, …) as Keras reports them (Keras 3 gives
  the running mean over the epoch so far).

At the end of each epoch one point with ``epoch``, ``step``, ``epoch_time_s``, the epoch's
training metrics as ``epoch_<name>`` and the validation metrics as Keras names them (``val_*``).

Non-finite values: line protocol cannot carry NaN or ±Inf floats. A metric that is not finite is
left out and recorded as the string field ``<name>_nonfinite`` = ``"nan"``, ``"inf"`` or
``"-inf"`` (e.g. ``loss_nonfinite="nan"``), so a diverging run is visible and queryable
(``loss_nonfinite IS NOT NULL``) without corrupting the ``loss`` series.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras

from tsdb.point import Point

log = logging.getLogger("mlpulse.training")


def metric_fields(logs: Mapping[str, Any] | None, prefix: str = "", skip: tuple[str, ...] = ("size", "batch")) -> dict:
    """Float fields from Keras logs; non-finite values become ``<name>_nonfinite`` strings."""
    out: dict[str, Any] = {}
    for key, value in (logs or {}).items():
        if key in skip:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[prefix + key] = v
        else:
            out[f"{prefix}{key}_nonfinite"] = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return out


def _scalar(x: Any) -> float:
    return float(keras.ops.convert_to_numpy(x))


class MetricsCallback(keras.callbacks.Callback):
    """``model.fit(..., callbacks=[MetricsCallback(sink, run="r1", model="resnet")])``."""

    def __init__(self, sink: Any, *, run: str, model: str, every_n_steps: int = 1, batch_size: int | None = None,
                 host: str | None = None, tags: Mapping[str, str] | None = None,
                 clock: Callable[[], int] = time.time_ns, perf: Callable[[], float] = time.perf_counter):
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.sink, self.every_n_steps, self.batch_size = sink, every_n_steps, batch_size
        self.tags = {**(tags or {}), "run": run, "model": model, "host": host or socket.gethostname()}
        self.clock, self.perf = clock, perf
        self._epoch, self._window_t0, self._window_step, self._epoch_t0 = 0, None, 0, 0.0

    def _step(self) -> int:
        return int(_scalar(self.model.optimizer.iterations))

    def _lr(self) -> float | None:
        try:
            return _scalar(self.model.optimizer.learning_rate)
        except Exception:  # an optimizer without a readable learning rate
            return None

    def on_train_begin(self, logs=None) -> None:
        self._window_step = self._step()
        self._window_t0 = self.perf()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch, self._epoch_t0 = epoch, self.perf()

    def on_train_batch_end(self, batch, logs=None) -> None:
        step = self._step()
        if step - self._window_step < self.every_n_steps:
            return
        now = self.perf()
        steps, elapsed = step - self._window_step, now - self._window_t0
        self._window_step, self._window_t0 = step, now
        self.sink.write(Point("train", self.tags, self._batch_fields(logs, step, steps, elapsed), self.clock()))

    def _batch_fields(self, logs, step: int, steps: int, elapsed: float) -> dict:
        fields: dict[str, Any] = {"step": step, "epoch": self._epoch, "step_time_s": elapsed / steps}
        size = self.batch_size or (logs or {}).get("size") or (logs or {}).get("batch_size")
        if size and elapsed > 0:
            fields["examples_per_s"] = float(size) * steps / elapsed
        lr = self._lr()
        if lr is not None and math.isfinite(lr):
            fields["lr"] = lr
        fields.update(metric_fields(logs))
        return fields

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k: v for k, v in logs.items() if k.startswith("val_")}
        fields = {"epoch": epoch, "step": self._step(), "epoch_time_s": self.perf() - self._epoch_t0}
        fields.update(metric_fields(train, prefix="epoch_"))
        fields.update(metric_fields(val))
        self.sink.write(Point("train", self.tags, fields, self.clock()))

    def on_train_end(self, logs=None) -> None:
        flush = getattr(self.sink, "flush", None)
        if callable(flush):
            flush()
