"""Where TensorFlow runs: a GPU when TensorFlow sees one (mixed precision, XLA-compiled batched
scoring through a cached ``tf.function``), the CPU otherwise.

TensorFlow is imported here, lazily, so ``import detectors`` stays light. Thread counts come from
``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` when set (read when TensorFlow is first
needed, not at import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

Kind = Literal["gpu", "cpu"]


@lru_cache(maxsize=1)
def tensorflow():
    """The TensorFlow module, configured once (threads, determinism-friendly settings)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("TF_NUM_INTRAOP_THREADS", "2")))
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("TF_NUM_INTEROP_THREADS", "1")))
    except RuntimeError:
        pass  # TensorFlow was already initialised by the caller; keep its settings
    return tf


@dataclass(frozen=True)
class Device:
    kind: Kind
    name: str

    @property
    def mixed_precision(self) -> bool:
        """float16 compute pays off on GPUs only."""
        return self.kind == "gpu"


@lru_cache(maxsize=1)
def current() -> Device:
    tf = tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    return Device("gpu", gpus[0].name) if gpus else Device("cpu", "/CPU:0")


def enable_determinism(seed: int) -> None:
    """Same seed + same data → same weights and scores."""
    tf = tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class BatchScorer:
    """Batched inference through one cached ``tf.function`` (XLA-compiled on GPU).

    Inputs are padded to a fixed batch size so the function is traced once per model; Keras
    ``predict`` would cost ~100 ms per call. A model with several inputs gets them as several
    arrays of equal length (``scorer(x, ids)``), batched together.
    """

    def __init__(self, model, batch_size: int = 4096, jit: bool | None = None):
        tf = tensorflow()
        self.model, self.batch_size = model, batch_size
        jit = current().kind == "gpu" if jit is None else jit
        self._fn = tf.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False),
                               jit_compile=jit, reduce_retracing=True)

    def __call__(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        arrays, n, out = (x, *more), len(x), []
        for start in range(0, n, self.batch_size):
            chunks = [a[start:start + self.batch_size] for a in arrays]
            pad = self.batch_size - len(chunks[0]) if n > self.batch_size else 0
            if pad:
                chunks = [np.concatenate([c, np.zeros((pad,) + c.shape[1:], c.dtype)]) for c in chunks]
            y = np.asarray(self._fn(*chunks), dtype=np.float32)
            out.append(y[: len(y) - pad] if pad else y)
        return np.concatenate(out) if out else np.zeros((0,), np.float32)
