"""The demo's served model: a small Keras classifier, a good version and a bad one.

* version 1 — trained on synthetic data, small and fast;
* version 2 — the "bad deploy": a much larger network (slower) whose first layer carries a
  corrupted weight, so inputs with a large first feature overflow to non-finite outputs
  (the server answers those with 500s). Both are real ``.keras`` files loaded with safe_mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_FEATURES = 8
N_CLASSES = 3


def synthetic_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return x, y


def _classifier(widths: list[int]):
    import keras

    layers = [keras.Input((N_FEATURES,))]
    layers += [keras.layers.Dense(w, activation="relu") for w in widths]
    layers += [keras.layers.Dense(N_CLASSES, activation="softmax")]
    return keras.Sequential(layers)


def build_good(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    model = _classifier([16])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = synthetic_data(2000, seed)
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return model


def build_bad(seed: int = 1, width: int = 1536, depth: int = 8):
    """A slow model with a corrupted first-layer weight (overflows for x[0] > ~1)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = _classifier([width] * depth)
    kernel, bias = model.layers[0].get_weights()
    kernel[0, :] = 3.0e38  # corrupted: positive inputs overflow float32 to inf, softmax gives NaN
    model.layers[0].set_weights([kernel, bias])
    return model


def write_version(root: Path, name: str, version: int, model) -> Path:
    d = Path(root) / name / str(version)
    d.mkdir(parents=True, exist_ok=True)
    model.save(d / "model.keras")
    return d
