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

from detectors.base import Detector, DetectorConfig, WindowBatch, robust_center_scale
from detectors.device import BatchScorer, current, enable_determinism, tensorflow
from detectors.windows import tf_dataset


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
        x = (windows.values.astype(np.float64) - self.center) / self.scale
        if self.config.normalise == "window":
            x = x - np.median(x[:, :-1, :], axis=1, keepdims=True)
        return np.clip(x, -50, 50).astype(np.float32)

    def _normalise_array(self, values: np.ndarray) -> np.ndarray:
        """Normalised model input for raw windows ``(n, length, features)`` in fitted order."""
        return self._normalise(WindowBatch(values, self.features, np.zeros(len(values), np.int64)))

    def _subsample(self, x: np.ndarray) -> np.ndarray:
        cap = self.config.max_train_windows
        if len(x) <= cap:
            return x
        idx = np.random.default_rng(self.config.seed).choice(len(x), cap, replace=False)
        return x[np.sort(idx)]

    def _fit(self, windows: WindowBatch) -> None:
        self.center, self.scale = robust_center_scale(windows.values.reshape(-1, windows.values.shape[2]))
        x = self._subsample(self._normalise(windows))
        if self.model is None:  # first fit builds; a refit continues from the current weights
            enable_determinism(self.config.seed)
            self.model = self._build(x.shape[1], x.shape[2])
            self.model.compile(optimizer=self._optimizer(), loss="mse", jit_compile=current().kind == "gpu")
            self._scorer = None
        inputs, targets = self._io(x)
        ds = tf_dataset(inputs, targets, self.config.batch_size, self.config.seed + self.refits)
        history = self.model.fit(ds, epochs=self.config.epochs, verbose=0, shuffle=False)
        self.metrics = {"train_loss": float(history.history["loss"][-1]), "refits": float(self.refits)}
        self.refits += 1
        self.err_scale = np.array([max(float(np.median(self._errors(x))), 1e-6)])

    def _optimizer(self):
        import keras

        return keras.optimizers.Adam(learning_rate=self.config.learning_rate)

    def _score(self, windows: WindowBatch) -> np.ndarray:
        return self._errors(self._normalise(windows)) / self.err_scale[0]

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if self._scorer is None:
            self._scorer = BatchScorer(self.model, batch_size=min(4096, max(256, len(x))))
        return self._scorer(x)

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
        from keras import layers

        c, dt = self.config, self._dtype()
        inp = keras.Input((length, features))
        h = layers.Conv1D(c.filters, c.kernel, padding="same", activation="relu", dtype=dt)(inp)
        h = layers.AveragePooling1D(2, padding="same", dtype=dt)(h)
        h = layers.Conv1D(c.latent, c.kernel, padding="same", activation="relu", dtype=dt)(h)
        h = layers.AveragePooling1D(2, padding="same", dtype=dt)(h)
        h = layers.UpSampling1D(2, dtype=dt)(h)
        h = layers.Conv1D(c.filters, c.kernel, padding="same", activation="relu", dtype=dt)(h)
        h = layers.UpSampling1D(2, dtype=dt)(h)
        h = layers.Cropping1D((0, h.shape[1] - length), dtype=dt)(h) if h.shape[1] > length else h
        out = layers.Conv1D(features, c.kernel, padding="same", dtype="float32")(h)
        return keras.Model(inp, out, name="conv_ae")

    def _io(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x, x

    def _errors(self, x: np.ndarray) -> np.ndarray:
        err = np.mean((self._predict(x) - x) ** 2, axis=2)
        return 0.5 * err.mean(axis=1) + 0.5 * err[:, -self.config.recent_steps:].mean(axis=1)


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


def device_kind() -> str:
    return current().kind
