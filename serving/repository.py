"""A model repository in TensorFlow Serving's layout, ``ROOT/<model>/<version>/``, with a status
record per version (``live``, ``good``, ``bad``, ``candidate``) in ``ROOT/<model>/status.json``.

Versions on disk without a record count as ``candidate``. The live version is the one recorded
as live; when none is recorded, the version pinned in models.config, else the newest version that
is not bad (TF Serving's default policy).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from alerting.jsonfile import load_json, save_json
from serving import modelsconfig
from serving.modelsconfig import ModelEntry

Status = Literal["live", "good", "bad", "candidate"]
STATUSES: tuple[str, ...] = ("live", "good", "bad", "candidate")
STATUS_FILE = "status.json"


class RepositoryError(RuntimeError):
    """A repository operation that cannot be done; the message says what and why."""


class ModelRepository:
    def __init__(self, root: str | Path, *, models_config: str | Path | None = None,
                 base_path: str | None = None, platforms: dict[str, str] | None = None):
        self.root = Path(root)
        self.models_config = Path(models_config) if models_config else self.root / "models.config"
        self.base_path = base_path
        self.platforms = platforms or {}

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and (self.versions(p.name) or (p / STATUS_FILE).exists()))

    def versions(self, model: str) -> list[int]:
        d = self.root / model
        if not d.is_dir():
            return []
        return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())

    def _records(self, model: str) -> dict[str, dict]:
        return load_json(self.root / model / STATUS_FILE, {"versions": {}})["versions"]

    def status(self, model: str) -> dict[int, Status]:
        """Every version on disk with its status."""
        records = self._records(model)
        out = {v: records.get(str(v), {}).get("status", "candidate") for v in self.versions(model)}
        if "live" not in out.values():
            pinned = [v for v in self.pinned(model) if v in out and out[v] != "bad"]
            usable = pinned or [v for v, s in out.items() if s != "bad"]
            if usable:
                out[max(usable)] = "live"
        return out

    def record_live(self, model: str, now: datetime) -> int | None:
        """Write down which version is live now, so new version folders cannot change it."""
        live = self.live(model)
        if live is not None and self._records(model).get(str(live), {}).get("status") != "live":
            self.set_status(model, {live: "live"}, now, "adopted as live")
        return live

    def live(self, model: str) -> int | None:
        return next((v for v, s in self.status(model).items() if s == "live"), None)

    def set_status(self, model: str, changes: dict[int, Status], now: datetime, reason: str) -> None:
        """Record new statuses for some versions in one atomic write."""
        self._require(model)
        records = self._records(model)
        for version, status in changes.items():
            if status not in STATUSES:
                raise RepositoryError(f"unknown status {status!r}; expected one of {STATUSES}")
            records[str(version)] = {"status": status, "updated": now.isoformat(), "reason": reason}
        save_json(self.root / model / STATUS_FILE, {"versions": records})

    def _require(self, model: str) -> None:
        if not (self.root / model).is_dir():
            known = ", ".join(self.models()) or "none"
            raise RepositoryError(f"no model {model!r} in {self.root} (models: {known})")

    def write_models_config(self) -> None:
        """Pin every model's live version in models.config (atomically)."""
        entries = []
        for m in self.models():
            live = self.live(m)
            if live is not None:
                base = f"{self.base_path.rstrip('/')}/{m}" if self.base_path else str((self.root / m).resolve())
                entries.append(ModelEntry(m, base, live, self.platforms.get(m, "tensorflow")))
        modelsconfig.write(self.models_config, entries)

    def pinned(self, model: str) -> list[int]:
        return modelsconfig.read_pins(self.models_config).get(model, [])
