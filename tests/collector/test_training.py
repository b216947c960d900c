"""The Keras callback with a real (tiny) ``model.fit``: per-step and per-epoch points, NaN loss
recorded as such, and the points arriving in a real ``mlpulse serve``."""

from __future__ import annotations

import numpy as np
import pytest

from collector.training.keras import metric_fields
from tests.support.servers import MlpulseServer
from tsdb.base import RangeQuery
from tsdb.point import validate

pytestmark = pytest.mark.slow


class ListSink:
    def __init__(self):
        self.points, self.flushes = [], 0

    def write(self, points):
        self.points += [points] if not isinstance(points, list) else points

    def flush(self):
        self.flushes += 1


def tiny_fit(callback, y_nan: bool = False, epochs: int = 2):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    if y_nan:
        y[:] = np.nan
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 4, 0.5)),
                  loss="mse", metrics=["mae"])
    model.fit(x, y, batch_size=16, epochs=epochs, validation_split=0.25, callbacks=[callback], verbose=0)


def test_metric_fields_nonfinite():
    assert metric_fields({"loss": float("nan"), "acc": 0.5, "x": float("-inf"), "size": 16}) == {
        "loss_nonfinite": "nan", "acc": 0.5, "x_nonfinite": "-inf"}


@pytest.mark.timeout(120)
def test_step_and_epoch_points_from_a_real_fit():
    from collector.training import MetricsCallback

    sink = ListSink()
    tiny_fit(MetricsCallback(sink, run="r1", model="tiny", every_n_steps=1, batch_size=16, host="h"))
    steps = [p for p in sink.points if "step_time_s" in p.fields]
    epochs = [p for p in sink.points if "epoch_time_s" in p.fields]
    assert [p.fields["step"] for p in steps] == list(range(1, 7))  # 48 training samples / 16 = 3 steps x 2 epochs
    assert [p.fields["epoch"] for p in steps] == [0, 0, 0, 1, 1, 1]
    first = steps[0].fields
    assert steps[0].tags == {"run": "r1", "model": "tiny", "host": "h"}
    assert {"loss", "mae", "lr", "examples_per_s"} <= set(first) and first["examples_per_s"] > 0
    assert steps[-1].fields["lr"] < first["lr"]  # the schedule decays: the current rate is read
    assert [p.fields["epoch"] for p in epochs] == [0, 1]
    assert {"val_loss", "val_mae", "epoch_loss", "epoch_mae"} <= set(epochs[0].fields)
    for p in sink.points:
        validate(p)
    assert sink.flushes == 1


@pytest.mark.timeout(120)
def test_every_n_steps_and_nan_loss():
    from collector.training import MetricsCallback

    sink = ListSink()
    tiny_fit(MetricsCallback(sink, run="r2", model="tiny", every_n_steps=2), y_nan=True)
    steps = [p for p in sink.points if "step_time_s" in p.fields]
    assert [p.fields["step"] for p in steps] == [2, 4, 6]
    for p in steps:
        assert p.fields["loss_nonfinite"] == "nan" and "loss" not in p.fields and "examples_per_s" not in p.fields
        validate(p)


@pytest.mark.timeout(180)
def test_training_points_reach_mlpulse_serve(tmp_path):
    from collector.sink import Sink
    from collector.training import MetricsCallback

    server = MlpulseServer(tmp_path / "data").start()
    try:
        with Sink(server.url, bucket="b") as sink:
            tiny_fit(MetricsCallback(sink, run="r3", model="tiny", batch_size=16), epochs=1)
    finally:
        server.stop()
    from tsdb.duckdb import DuckDBBackend

    b = DuckDBBackend(tmp_path / "data")
    try:
        df = b.query(RangeQuery("train", 0, 2**62, fields=["step", "loss", "val_loss"]))
    finally:
        b.close()
    assert list(df["run"].unique()) == ["r3"] and df["loss"].notna().sum() == 3 and df["val_loss"].notna().sum() == 1
