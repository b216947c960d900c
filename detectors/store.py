"""Versioned model store: ``<root>/<name>/v<NNNN>/`` holds a saved detector (``config.json``,
``state.npz``, ``model.keras``), its calibrated ``threshold.json`` and ``meta.json`` (training
range, data hash, metrics, creation time). Everything is JSON, NumPy arrays or a Keras file
loaded with ``safe_mode=True``; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from detectors import registry
from detectors.model import Trained
from detectors.thresholds import threshold_from_json

_VERSION = re.compile(r"^v(\d{4,})$")
_NAME = re.compile(r"^[A-Za-z0-9_.=,:-]+$")


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    path: Path
    meta: dict


class ModelStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name) or name.startswith("."):
            raise ValueError(f"model name {name!r} may only use letters, digits and _ . = , : -")
        return self.root / name

    def versions(self, name: str) -> list[int]:
        d = self._dir(name)
        if not d.is_dir():
            return []
        return sorted(int(m.group(1)) for p in d.iterdir() if (m := _VERSION.match(p.name)))

    def save(self, name: str, trained: Trained, extra: dict | None = None) -> Version:
        """Store ``trained`` as the next version of ``name`` (written to a temporary folder and
        renamed into place, so readers never see half a version)."""
        number = (self.versions(name) or [0])[-1] + 1
        final = self._dir(name) / f"v{number:04d}"
        tmp = self._dir(name) / f".tmp-v{number:04d}-{os.getpid()}"
        trained.detector.save(tmp)
        (tmp / "threshold.json").write_text(trained.threshold.model_dump_json(indent=2))
        meta = _meta(trained, extra)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        tmp.rename(final)
        return Version(name, number, final, meta)

    def load(self, name: str, version: int | None = None) -> tuple[Trained, Version]:
        """The given version of ``name`` (latest when ``None``); ``LookupError`` when absent."""
        have = self.versions(name)
        if not have or (version is not None and version not in have):
            raise LookupError(f"no model {name!r}" + (f" version {version}" if version else "")
                              + f" in {self.root} (versions: {have or 'none'})")
        number = version if version is not None else have[-1]
        path = self._dir(name) / f"v{number:04d}"
        meta = json.loads((path / "meta.json").read_text())
        detector = registry.load(path)
        threshold = threshold_from_json(json.loads((path / "threshold.json").read_text()))
        trained = Trained(detector, threshold, meta["train_start"], meta["train_end"], meta["windows"],
                          meta["data_hash"])
        return trained, Version(name, number, path, meta)

    def prune(self, name: str, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions; returns the deleted version numbers."""
        old = self.versions(name)[:-keep] if keep > 0 else self.versions(name)
        for v in old:
            shutil.rmtree(self._dir(name) / f"v{v:04d}")
        return old


def _meta(trained: Trained, extra: dict | None) -> dict:
    det = trained.detector
    return {"detector": det.name, "config": det.config.model_dump(mode="json"),
            "train_start": trained.train_start, "train_end": trained.train_end,
            "windows": trained.windows, "data_hash": trained.data_hash,
            "threshold": trained.threshold.value, "metrics": dict(getattr(det, "metrics", {}) or {}),
            **(extra or {})}
