"""TensorFlow/Keras detectors: a convolutional autoencoder and an LSTM forecaster.

Both normalise inputs with robust per-feature statistics learned at ``fit``, train through a
seeded ``tf.data`` pipeline with ``Model.fit``, report ``Model.evaluate`` loss as a metric, and
score through :class:`detectors.device.BatchScorer` (one cached ``tf.function``). Scores are the
model error in units of the median training error, so they are comparable across series.

>>> import numpy as np
>>> from detectors.windows import sliding
>>> x = np.sin(np.arange(300) / 4.0)[:, None]; x[280] += 3.0
>>> w = sliding(x, np.arange(300), 16, ("v",))
>>> det = ConvAutoencoder(ConvAutoencoder.Config(seed=1, window=16, epochs=3))
>>> det.fit(w.select(slice(0, 200))); s = det.score(w.select(slice(200, None)))
>>> bool(s.values[280 - 15 - 200] > np.median(s.values) * 3)
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from detectors.base import Detector, DetectorConfig, WindowBatch, robust_center_scale
from detectors.device import BatchScorer, current, enable_determinism, tensorflow
from detectors.windows import bucket, tf_dataset


class KerasConfig(DetectorConfig):
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 3e-3
    max_train_windows: int = 4096
    normalise: Literal["global", "window"] = "global"
    precision: Literal["auto", "float32", "mixed_float16"] = "auto"


class _KerasDetector(Detector):
    """Shared machinery: normalisation, training loop, batched scoring, Keras persistence."""

    Config = KerasConfig

    def __init__(self, config: KerasConfig):
        super().__init__(config)
        self.model = None
        self._scorer: BatchScorer | None = None
        self.metrics: dict[str, float] = {}
        self.refits = 0

    @classmethod
    def test_config(cls) -> KerasConfig:
        return cls.Config(seed=7, window=16, epochs=4)

    def min_windows(self) -> int:
        return 16

    def _normalise(self, windows: WindowBatch) -> np.ndarray:
        return _standardise(windows.values, self.center, self.scale, self.config.normalise)

    def _normalise_array(self, values: np.ndarray) -> np.ndarray:
        """Normalised model input for raw windows ``(n, length, features)`` in fitted order."""
        return self._normalise(WindowBatch(values, self.features, np.zeros(len(values), np.int64)))

    def _subsample(self, x: np.ndarray) -> np.ndarray:
        return x[self._pick(len(x))]

    def _pick(self, n: int) -> np.ndarray | slice:
        """Which of ``n`` training windows to train on: all, or a seeded ``max_train_windows``."""
        cap = self.config.max_train_windows
        if n <= cap:
            return slice(None)
        return np.sort(np.random.default_rng(self.config.seed).choice(n, cap, replace=False))

    def _fit(self, windows: WindowBatch) -> None:
        self.center, self.scale = robust_center_scale(windows.values.reshape(-1, windows.values.shape[2]))
        x = self._subsample(self._normalise(windows))
        self._train(*self._io(x), x.shape[1], x.shape[2])
        self.err_scale = np.array([max(float(np.median(self._errors(x))), 1e-6)])

    def _train(self, inputs, targets: np.ndarray, length: int, features: int) -> None:
        """Build the model on the first fit (a refit continues from the current weights) and
        fit it on ``inputs`` → ``targets`` through a seeded ``tf.data`` pipeline."""
        if self.model is None:
            enable_determinism(self.config.seed)
            self.model = self._build(length, features)
            self.model.compile(optimizer=self._optimizer(), loss="mse", jit_compile=current().kind == "gpu")
            self._scorer = None
        ds = tf_dataset(inputs, targets, self.config.batch_size, self.config.seed + self.refits)
        history = self.model.fit(ds, epochs=self.config.epochs, verbose=0, shuffle=False)
        self.metrics = {"train_loss": float(history.history["loss"][-1]), "refits": float(self.refits)}
        self.refits += 1

    def _optimizer(self):
        import keras

        return keras.optimizers.Adam(learning_rate=self.config.learning_rate)

    def _score(self, windows: WindowBatch) -> np.ndarray:
        return self._errors(self._normalise(windows)) / self.err_scale[0]

    def _predict(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        if self._scorer is None:
            self._scorer = BatchScorer(self.model, batch_size=min(4096, max(256, len(x))))
        return self._scorer(x, *more)

    def _state(self) -> dict[str, np.ndarray]:
        return {"center": self.center, "scale": self.scale, "err_scale": self.err_scale}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.center, self.scale, self.err_scale = state["center"], state["scale"], state["err_scale"]

    def _save_extra(self, directory: Path) -> None:
        self.model.save(directory / "model.keras")

    def _load_extra(self, directory: Path) -> None:
        tensorflow()
        import keras

        self.model = keras.models.load_model(directory / "model.keras", safe_mode=True, compile=False)
        self._scorer = None

    def _dtype(self) -> str:
        """Hidden-layer dtype policy: float16 compute with float32 weights on a GPU (``auto``)."""
        if self.config.precision == "auto":
            return "mixed_float16" if current().mixed_precision else "float32"
        return self.config.precision

    def _io(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _errors(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _build(self, length: int, features: int):
        raise NotImplementedError


class ConvAEConfig(KerasConfig):
    filters: int = 16
    kernel: int = 5
    latent: int = 8
    recent_steps: int = 4


class ConvAutoencoder(_KerasDetector):
    """1-d convolutional autoencoder; the score weighs the reconstruction error of the whole
    window and of its most recent steps (so fresh anomalies count at once)."""

    name = "conv_ae"
    Config = ConvAEConfig

    def _build(self, length: int, features: int):
        import keras

        inp = keras.Input((length, features))
        out = _conv_stack(self.config, self._dtype(), inp, length, features)
        return keras.Model(inp, out, name="conv_ae")

    def _io(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x, x

    def _errors(self, x: np.ndarray) -> np.ndarray:
        return _reconstruction_error(self._predict(x), x, self.config.recent_steps)


def _standardise(values: np.ndarray, center: np.ndarray, scale: np.ndarray, mode: str) -> np.ndarray:
    """``(values - center) / scale``, then (``mode == "window"``) minus each window's median of its
    earlier steps; clipped to ±50, float32."""
    x = (values.astype(np.float64) - center) / scale
    if mode == "window":
        x = x - np.median(x[:, :-1, :], axis=1, keepdims=True)
    return np.clip(x, -50, 50).astype(np.float32)


def _conv_stack(c: ConvAEConfig, dt: str, inp, length: int, features: int, condition=None):
    """The conv_ae encoder/decoder on tensor ``inp``. ``condition(h)``, when given, widens a
    tensor's channels (the series embedding of the global model) at the encoder's input and at
    the decoder's input."""
    from keras import layers

    widen = condition or (lambda h: h)
    h = layers.Conv1D(c.filters, c.kernel, padding="same", activation="relu", dtype=dt)(widen(inp))
    h = layers.AveragePooling1D(2, padding="same", dtype=dt)(h)
    h = layers.Conv1D(c.latent, c.kernel, padding="same", activation="relu", dtype=dt)(h)
    h = layers.AveragePooling1D(2, padding="same", dtype=dt)(h)
    h = layers.UpSampling1D(2, dtype=dt)(widen(h))
    h = layers.Conv1D(c.filters, c.kernel, padding="same", activation="relu", dtype=dt)(h)
    h = layers.UpSampling1D(2, dtype=dt)(h)
    h = layers.Cropping1D((0, h.shape[1] - length), dtype=dt)(h) if h.shape[1] > length else h
    return layers.Conv1D(features, c.kernel, padding="same", dtype="float32")(h)


def _reconstruction_error(pred: np.ndarray, x: np.ndarray, recent_steps: int) -> np.ndarray:
    """Per window: half the mean squared error of all steps, half that of the last ``recent_steps``."""
    err = np.mean((pred - x) ** 2, axis=2)
    return 0.5 * err.mean(axis=1) + 0.5 * err[:, -recent_steps:].mean(axis=1)


class LSTMConfig(KerasConfig):
    units: int = 16


class LSTMForecaster(_KerasDetector):
    """An LSTM reads all but the last step of a window and forecasts the last; the score is the
    squared forecast error."""

    name = "lstm_forecaster"
    Config = LSTMConfig

    def _build(self, length: int, features: int):
        import keras
        from keras import layers

        inp = keras.Input((length - 1, features))
        h = layers.LSTM(self.config.units, dtype=self._dtype())(inp)
        return keras.Model(inp, layers.Dense(features, dtype="float32")(h), name="lstm_forecaster")

    def _io(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[:, :-1, :], x[:, -1, :]

    def _errors(self, x: np.ndarray) -> np.ndarray:
        return np.mean((self._predict(x[:, :-1, :]) - x[:, -1, :]) ** 2, axis=1)


class GlobalConvAEConfig(ConvAEConfig):
    """``buckets``: size of the hashed series-embedding table; ``embedding_dim``: its width.
    ``normalise: global`` here means each series' own robust statistics."""

    buckets: int = Field(1024, ge=1)
    embedding_dim: int = Field(8, ge=1)
    max_train_windows: int = 65536


class GlobalConvAutoencoder(_KerasDetector):
    """One conv_ae for many series (a job's ``model: global``): each window's series key
    (:attr:`WindowBatch.series`) is hashed into ``buckets`` (:func:`detectors.windows.bucket`)
    and an ``Embedding(buckets, embedding_dim)`` vector, repeated over the steps, is concatenated
    to the encoder's and the decoder's input channels.

    Per series key it keeps, as arrays in ``state.npz``: the robust centre/scale of the series'
    points (inputs are normalised per series, so series on any scale share the model) and the
    median training error (scores are in units of it, so one threshold serves every series).
    A series not seen in training still scores: its inputs are normalised by each window's own
    median/MAD, its bucket's embedding is whatever training left there (untrained, or shared
    with a colliding series), and its errors are divided by the median of the series' error
    scales. Windows without series keys are one series, ``"*"``.

    >>> import numpy as np
    >>> from detectors.base import WindowBatch
    >>> from detectors.windows import sliding
    >>> t = np.arange(300); parts = []
    >>> for k, scale in (("host=a", 1.0), ("host=b", 1000.0)):
    ...     x = scale * np.sin(t / 4.0)[:, None]; x[280] += 3.0 * scale
    ...     w = sliding(x, t, 16, ("v",))
    ...     parts.append(WindowBatch(w.values, w.features, w.times, [k] * len(w)))
    >>> both = WindowBatch.concat(parts)
    >>> det = GlobalConvAutoencoder(GlobalConvAutoencoder.Config(seed=1, window=16, epochs=3))
    >>> det.fit(both.select(both.times < 215)); s = det.score(both.select(both.times >= 215))
    >>> [int(np.argmax(s.values[i * 85:(i + 1) * 85])) + 215 for i in (0, 1)]
    [280, 280]
    """

    name = "global_conv_ae"
    Config = GlobalConvAEConfig
    supports_global = True

    def _fit(self, windows: WindowBatch) -> None:
        keys, inverse = np.unique(windows.keys(), return_inverse=True)
        groups = _groups(inverse, len(keys))
        last = windows.values[:, -1, :].astype(np.float64)  # each series' points (last steps)
        stats = [robust_center_scale(last[g]) for g in groups]
        self.keys = keys
        self.center, self.scale = np.stack([c for c, _ in stats]), np.stack([v for _, v in stats])
        x, ids, _, _ = self._inputs(windows)
        pick = self._pick(len(x))
        self._train({"values": x[pick], "series": ids[pick]}, x[pick], x.shape[1], x.shape[2])
        err = self._errors(x, ids)
        self.err_scale = np.array([max(float(np.median(err[g])), 1e-6) for g in groups])
        self.fallback_err = np.array([float(np.median(self.err_scale))])

    def _inputs(self, windows: WindowBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Model inputs (normalised windows, bucket ids) and, per window, the index of its series
        in ``keys`` and whether training saw that series."""
        keys = windows.keys()
        pos = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        seen = self.keys[pos] == keys
        center, scale = self.center[pos], self.scale[pos]
        if not seen.all():  # unseen series: each window's own robust statistics
            own = windows.values[~seen].astype(np.float64)
            center[~seen], scale[~seen] = robust_center_scale(own, axis=1)
        x = _standardise(windows.values, center[:, None, :], scale[:, None, :], self.config.normalise)
        uniq, inverse = np.unique(keys, return_inverse=True)
        ids = np.array([bucket(k, self.config.buckets) for k in uniq], dtype=np.int32)[inverse]
        return x, ids, pos, seen

    def trained_series(self) -> frozenset[str] | None:
        return frozenset(self.keys.tolist()) if self.is_fitted else None

    def _score(self, windows: WindowBatch) -> np.ndarray:
        x, ids, pos, seen = self._inputs(windows)
        return self._errors(x, ids) / np.where(seen, self.err_scale[pos], self.fallback_err[0])

    def _errors(self, x: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return _reconstruction_error(self._predict(x, ids), x, self.config.recent_steps)

    def _build(self, length: int, features: int):
        import keras
        from keras import layers

        c, dt = self.config, self._dtype()
        values = keras.Input((length, features), name="values")
        series = keras.Input((), dtype="int32", name="series")
        embedded = layers.Embedding(c.buckets, c.embedding_dim, name="series_embedding")(series)

        def condition(h):
            return layers.Concatenate(dtype=dt)([h, layers.RepeatVector(h.shape[1], dtype=dt)(embedded)])

        out = _conv_stack(c, dt, values, length, features, condition)
        return keras.Model([values, series], out, name="global_conv_ae")

    def _state(self) -> dict[str, np.ndarray]:
        return {"keys": self.keys, "center": self.center, "scale": self.scale, "err_scale": self.err_scale,
                "fallback_err": self.fallback_err}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.keys, self.center, self.scale = state["keys"], state["center"], state["scale"]
        self.err_scale, self.fallback_err = state["err_scale"], state["fallback_err"]


def _groups(inverse: np.ndarray, k: int) -> list[np.ndarray]:
    """Indices of each of ``k`` groups, given every item's group number ``inverse``."""
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse, minlength=k))[:-1])


def device_kind() -> str:
    return current().kind
