"""Scoring throughput (windows/s) of the TensorFlow detectors on GPU vs CPU, measured in one run.

    python bench/gpu_scoring.py [--windows N] [--window L] [--batch B] [--repeats R] [--detector NAME]

Trains a small model on synthetic data, then times batched scoring through the production path
(:class:`detectors.device.BatchScorer`, one cached ``tf.function``, XLA on GPU) on every device
TensorFlow sees. Prints windows/s per device and the GPU/CPU ratio when both exist.
Target on an H200: >= 1,000,000 windows/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def windows(n: int, length: int) -> np.ndarray:
    t = np.arange(n + length, dtype=np.float32)
    x = np.sin(t / 7.0) + np.random.default_rng(0).normal(0, 0.1, len(t)).astype(np.float32)
    return np.lib.stride_tricks.sliding_window_view(x, length)[:n, :, None].copy()


def trained(name: str, length: int):
    from detectors.base import WindowBatch
    from detectors.registry import build

    det = build(name, {"seed": 0, "window": length, "epochs": 1, "batch_size": 256})
    x = windows(2048, length)
    det.fit(WindowBatch(x, ("v",), np.arange(len(x))))
    return det


def measure(det, x: np.ndarray, device: str, batch: int, repeats: int, jit: bool) -> float:
    from detectors.device import BatchScorer, tensorflow

    tf = tensorflow()
    with tf.device(device):
        scorer = BatchScorer(det.model, batch_size=batch, jit=jit)
        inputs = det._normalise_array(x)
        scorer(inputs[: batch * 2])  # trace and compile outside the timing
        t0 = time.perf_counter()
        for _ in range(repeats):
            scorer(inputs)
        return repeats * len(x) / (time.perf_counter() - t0)


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--windows", type=int, default=2_000_000)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--detector", default="conv_ae")
    a = p.parse_args(argv)
    from detectors.device import tensorflow

    tf = tensorflow()
    det = trained(a.detector, a.window)
    x = windows(a.windows, a.window)
    result = {}
    for dev in tf.config.list_logical_devices("GPU")[:1] + tf.config.list_logical_devices("CPU")[:1]:
        kind = "gpu" if "GPU" in dev.name else "cpu"
        result[kind] = measure(det, x, dev.name, min(a.batch, a.windows), a.repeats, jit=kind == "gpu")
        print(f"{a.detector} {kind:>3} ({dev.name}): {result[kind]:,.0f} windows/s "
              f"[{a.windows:,} windows of {a.window} steps, batch {a.batch:,}]")
    if "gpu" in result:
        print(f"gpu/cpu ratio: {result['gpu'] / result['cpu']:.1f}x")
    else:
        print("no GPU visible to TensorFlow: CPU only")
    return result


if __name__ == "__main__":
    main()
