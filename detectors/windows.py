"""From stored points to windows: a portable query result → aligned, normalised sliding windows,
and ``tf.data`` pipelines for the TensorFlow models.

>>> import numpy as np
>>> w = sliding(np.arange(10, dtype=float)[:, None], np.arange(10), 4, ("v",))
>>> w.values.shape, int(w.times[0]), w.values[0, :, 0].tolist()
((7, 4, 1), 3, [0.0, 1.0, 2.0, 3.0])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors.base import WindowBatch


@dataclass(frozen=True)
class Series:
    """One series from a query: its tags, field names, times (ns) and values ``(T, F)``."""

    tags: dict[str, str]
    fields: tuple[str, ...]
    times: np.ndarray
    values: np.ndarray

    @property
    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.tags.items())) or "*"


def bucket(key: str, buckets: int) -> int:
    """A stable bucket in ``[0, buckets)`` for a series key: the first 8 bytes of its BLAKE2b
    digest, modulo ``buckets`` (the same in every process; Python's ``hash()`` is salted).

    >>> bucket("gpu=0,host=node1", 1024)
    756
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def sliding(values: np.ndarray, times: np.ndarray, length: int, features: tuple[str, ...]) -> WindowBatch:
    """Every window of ``length`` consecutive steps; each is stamped with its last step's time."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 1:
        v = v[:, None]
    if len(v) < length:
        return WindowBatch(np.zeros((0, length, v.shape[1]), np.float32), features, np.zeros(0, np.int64))
    win = np.lib.stride_tricks.sliding_window_view(v, length, axis=0)  # (n, F, length)
    return WindowBatch(np.ascontiguousarray(win.transpose(0, 2, 1)), features, np.asarray(times)[length - 1:])


def multiscale(values: np.ndarray, times: np.ndarray, length: int, scales: tuple[int, ...],
               names: tuple[str, ...]) -> WindowBatch:
    """Windows that look further back at coarser scales: for scale ``s`` each feature becomes its
    trailing mean over ``s`` points, sampled every ``s`` points, so a window of ``length`` steps
    spans ``length * s`` points. One window per input point (the first ones padded with the first
    value); causal: a window only uses its own and earlier points. Features are named
    ``<name>@<s>``.

    >>> w = multiscale(np.arange(8.0), np.arange(8), 2, (1, 2), ("v",))
    >>> w.features, w.values[-1].tolist()
    (('v@1', 'v@2'), [[6.0, 4.5], [7.0, 6.5]])
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    n, cols, feats = len(v), [], []
    for s in scales:
        smooth = pd.DataFrame(v).rolling(s, min_periods=1).mean().to_numpy()
        idx = np.arange(n)[:, None] - s * np.arange(length - 1, -1, -1)[None, :]
        cols.append(smooth[np.maximum(idx, 0)])  # (n, length, F)
        feats += [f"{name}@{s}" for name in names]
    return WindowBatch(np.concatenate(cols, axis=2).astype(np.float32), tuple(feats), np.asarray(times))


def split_series(frame: pd.DataFrame, fields: list[str]) -> list[Series]:
    """Split a :meth:`Backend.query` result into one :class:`Series` per tag set."""
    if frame.empty:
        return []
    tag_cols = [c for c in frame.columns if c != "time" and c not in fields]
    groups = frame.groupby(tag_cols, sort=True, dropna=False) if tag_cols else [((), frame)]
    out = []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        tags = {k: str(v) for k, v in zip(tag_cols, key) if isinstance(v, str) and v}
        times = part["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        out.append(Series(tags, tuple(fields), times, part[list(fields)].to_numpy(dtype=np.float64)))
    return out


def align(series: Series, every: int) -> Series:
    """Put a series on a regular grid of ``every`` ns: buckets without data take the last value
    (a gap at the start takes the first)."""
    if len(series.times) == 0:
        return series
    start = series.times[0] - series.times[0] % every
    grid = np.arange(start, series.times[-1] + 1, every, dtype=np.int64)
    frame = pd.DataFrame(series.values, index=series.times // every * every)
    frame = frame[~frame.index.duplicated(keep="last")].reindex(grid).ffill().bfill()
    return Series(series.tags, series.fields, grid, frame.to_numpy(dtype=np.float64))


def windows_of(series: Series, length: int, scales: tuple[int, ...] = (1,)) -> WindowBatch:
    """The windows of ``series`` the replay harness would build: :func:`sliding` for scales
    ``(1,)`` (features named as the fields), else :func:`multiscale` (one window per point, the
    first ``span(length, scales) - 1`` of them padded)."""
    if tuple(scales) == (1,):
        return sliding(series.values, series.times, length, series.fields)
    return multiscale(series.values, series.times, length, tuple(scales), series.fields)


def span(length: int, scales: tuple[int, ...] = (1,)) -> int:
    """How many consecutive points one window of ``length`` steps at ``scales`` depends on."""
    return length * max(scales)


def tf_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, shuffle: bool = True):
    """A seeded, batched, prefetched ``tf.data`` pipeline of ``(x, y)`` pairs."""
    from detectors.device import tensorflow

    tf = tensorflow()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(min(len(x), 4096), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
