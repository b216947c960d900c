"""The detector interface: windows in, scores out; readiness explicit; decisions kept separate.

Convention, stated once: **a higher score means more anomalous.** Scores carry a per-window
``ready`` mask; a detector that cannot score yet raises :class:`NotReady` instead of returning 0.
Thresholding lives in :mod:`detectors.thresholds`, never inside a detector.

Every detector is built from one frozen config (``Detector(config)``); ``repr``, :meth:`clone`
and the saved ``config.json`` all come from that object. Learned state is saved as ``state.npz``
(loaded with ``allow_pickle=False``) and, for TensorFlow models, a Keras ``model.keras`` file
loaded with ``safe_mode=True``. Nothing is unpickled.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

SCHEMA_VERSION = 1


class NotReady(RuntimeError):
    """The detector cannot score yet: ``reason``, how many windows it ``needed`` and ``seen``."""

    def __init__(self, reason: str, needed: int = 1, seen: int = 0):
        self.reason, self.needed, self.seen = reason, needed, seen
        super().__init__(f"detector not ready: {reason} (needed {needed}, seen {seen})")


class ArtefactError(ValueError):
    """A saved detector cannot be loaded: wrong schema version, unknown detector, invalid config."""


@dataclass(frozen=True)
class WindowBatch:
    """Sliding windows of one or more aligned series.

    ``values``: float32 array ``(n, length, n_features)``; ``features``: the column names in
    order; ``times``: int64 ns of each window's last step (the time a score belongs to);
    ``series``: optional, the key of the series each window comes from (``Series.key``, a string
    array of shape ``(n,)``). Only detectors with ``supports_global`` read it; ``None`` means
    all windows come from one series.
    """

    values: np.ndarray
    features: tuple[str, ...]
    times: np.ndarray
    series: np.ndarray | None = None

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float32)
        if v.ndim != 3:
            raise ValueError(f"window values must be 3-d (n, length, features), got shape {v.shape}")
        if v.shape[2] != len(self.features):
            raise ValueError(f"{v.shape[2]} feature columns but {len(self.features)} feature names")
        t = np.asarray(self.times, dtype=np.int64)
        if t.shape != (v.shape[0],):
            raise ValueError(f"times must have shape ({v.shape[0]},), got {t.shape}")
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "times", t)
        if self.series is not None:
            keys = np.asarray(self.series, dtype=str)
            if keys.shape != t.shape:
                raise ValueError(f"series keys must have shape ({v.shape[0]},), got {keys.shape}")
            object.__setattr__(self, "series", keys)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def length(self) -> int:
        return int(self.values.shape[1])

    def select(self, mask_or_index: np.ndarray | slice) -> WindowBatch:
        keys = None if self.series is None else self.series[mask_or_index]
        return WindowBatch(self.values[mask_or_index], self.features, self.times[mask_or_index], keys)

    @staticmethod
    def concat(batches: list[WindowBatch]) -> WindowBatch:
        """The windows of ``batches`` (same length and features) one after the other; series
        keys are kept when every batch has them."""
        if not batches:
            raise ValueError("nothing to concatenate")
        first = batches[0]
        keys = None if any(b.series is None for b in batches) else np.concatenate([b.series for b in batches])
        values = np.concatenate([b.reorder(first.features).values for b in batches])
        return WindowBatch(values, first.features, np.concatenate([b.times for b in batches]), keys)

    def keys(self) -> np.ndarray:
        """The series key of every window (``"*"`` for all when ``series`` is ``None``)."""
        return np.full(len(self), "*") if self.series is None else self.series

    def reorder(self, features: tuple[str, ...]) -> WindowBatch:
        """The same windows with columns in ``features`` order (matched by name)."""
        if tuple(features) == self.features:
            return self
        missing = sorted(set(features) - set(self.features))
        if missing:
            raise ValueError(f"windows lack feature(s) {missing}; they have {list(self.features)}")
        idx = [self.features.index(f) for f in features]
        return WindowBatch(self.values[:, :, idx], tuple(features), self.times, self.series)


@dataclass(frozen=True)
class Scores:
    """Per-window scores (higher = more anomalous) and which of them are meaningful."""

    values: np.ndarray
    ready: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float64))
        object.__setattr__(self, "ready", np.asarray(self.ready, dtype=bool))
        if self.values.shape != self.ready.shape:
            raise ValueError("scores and ready mask differ in shape")

    def __len__(self) -> int:
        return int(self.values.shape[0])


class DetectorConfig(BaseModel):
    """Hyperparameters shared by every detector. Subclasses add their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int
    window: int = 32


class Detector(ABC):
    """Base class. Subclasses set ``name`` and ``Config`` and implement the ``_fit``/``_score``
    pair plus ``_state``/``_restore`` for persistence.

    ``supports_global``: the detector can be one model for many series (a job's
    ``model: global``). It then reads :attr:`WindowBatch.series` and keeps per-series state
    keyed by series key; windows of a series it has not seen must still get scores (say how in
    its docstring). Others ignore ``series`` and are trained one model per series."""

    name: ClassVar[str]
    Config: ClassVar[type[DetectorConfig]]
    supports_global: ClassVar[bool] = False

    def __init__(self, config: DetectorConfig):
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config
        self.features: tuple[str, ...] | None = None
        self.trained_on = 0

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def test_config(cls) -> DetectorConfig:
        """A small config for the conformance suite."""
        return cls.Config(seed=7, window=16)

    def clone(self) -> Detector:
        """An untrained copy with an equal config."""
        return type(self)(self.config)

    @property
    def is_fitted(self) -> bool:
        return self.features is not None

    def fit(self, windows: WindowBatch) -> None:
        """Learn what normal looks like from ``windows`` (replaces any earlier fit)."""
        self._check_length(windows)
        if len(windows) < self.min_windows():
            raise NotReady("too few windows to train", self.min_windows(), len(windows))
        self.features = windows.features
        self._fit(windows)
        self.trained_on = len(windows)

    def refit(self, windows: WindowBatch) -> None:
        """Train again on ``windows``. Learned models continue from their current weights (warm
        start); the baselines simply fit afresh."""
        self.fit(windows)

    def score(self, windows: WindowBatch) -> Scores:
        """Score each window; higher = more anomalous. Raises :class:`NotReady` before ``fit``."""
        if not self.is_fitted:
            raise NotReady("not trained yet", self.min_windows(), 0)
        self._check_length(windows)
        windows = windows.reorder(self.features)
        if len(windows) == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool))
        values = np.asarray(self._score(windows), dtype=np.float64)
        return Scores(values, np.isfinite(values))

    def min_windows(self) -> int:
        return 8

    def trained_series(self) -> frozenset[str] | None:
        """The series keys a ``supports_global`` detector was fitted on (``None`` for the others,
        which do not tell series apart)."""
        return None

    def _check_length(self, windows: WindowBatch) -> None:
        if windows.length != self.config.window:
            raise ValueError(f"{self.name}: windows have {windows.length} steps, config says {self.config.window}")

    @abstractmethod
    def _fit(self, windows: WindowBatch) -> None: ...

    @abstractmethod
    def _score(self, windows: WindowBatch) -> np.ndarray: ...

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _restore(self, state: dict[str, np.ndarray]) -> None: ...

    def _save_extra(self, directory: Path) -> None:
        """TensorFlow models write their Keras file here."""

    def _load_extra(self, directory: Path) -> None:
        """TensorFlow models read their Keras file here."""

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``state.npz`` (+ ``model.keras``) into ``directory``."""
        if not self.is_fitted:
            raise NotReady("nothing to save: not trained yet", self.min_windows(), 0)
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"schema": SCHEMA_VERSION, "detector": self.name, "config": self.config.model_dump(mode="json"),
                "features": list(self.features or ()), "trained_on": self.trained_on}
        (d / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        np.savez(d / "state.npz", **self._state())
        self._save_extra(d)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Detector:
        """Load a detector saved by :meth:`save` (this class; see :func:`detectors.registry.load`)."""
        d = Path(directory)
        meta = read_meta(d)
        if meta["detector"] != cls.name:
            raise ArtefactError(f"{d}: holds detector {meta['detector']!r}, not {cls.name!r}")
        try:
            config = cls.Config.model_validate(meta["config"])
        except ValidationError as e:
            raise ArtefactError(f"{d}: saved config (schema {meta['schema']}) does not validate against "
                                f"{cls.__name__} schema {SCHEMA_VERSION}: {e}") from None
        det = cls(config)
        with np.load(d / "state.npz", allow_pickle=False) as z:
            det._restore({k: z[k] for k in z.files})
        det.features = tuple(meta["features"])
        det.trained_on = int(meta["trained_on"])
        det._load_extra(d)
        return det


def read_meta(directory: Path) -> dict[str, Any]:
    """The ``config.json`` of a saved detector, refusing other schema versions."""
    try:
        meta = json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArtefactError(f"{directory}: no readable config.json ({e})") from None
    if meta.get("schema") != SCHEMA_VERSION:
        raise ArtefactError(f"{directory}: artefact schema {meta.get('schema')!r}; this version reads "
                            f"schema {SCHEMA_VERSION}")
    return meta


def robust_center_scale(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Median and a scale from MAD (falling back to std, then 1) along ``axis``."""
    med = np.median(x, axis=axis)
    mad = 1.4826 * np.median(np.abs(x - np.expand_dims(med, axis)), axis=axis)
    std = np.std(x, axis=axis)
    scale = np.where(mad > 1e-9, mad, np.where(std > 1e-9, std, 1.0))
    return med.astype(np.float64), scale.astype(np.float64)
