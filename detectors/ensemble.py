"""An ensemble of unlike detectors: each member judges the same windows in its own way, and a
window is as anomalous as the member that finds it rarest.

A convolutional autoencoder judges shapes (a window that does not look like any learned one) and
misses a single value far off its window's median when the shape is otherwise ordinary; a robust
z-score sees exactly that and nothing else. Their raw scores are on unrelated scales, so each
member's threshold (``threshold``, peaks over threshold by default) is calibrated on that member's
own training scores, and the ensemble's score of a window is the largest member *rarity*
(``-log10`` of the tail probability under that member's training scores, :func:`score_rarity`):
rare for any member means rare. The ensemble's own threshold is then calibrated on these scores
like any detector's. Members get the ensemble's ``window`` and seeds ``seed``, ``seed + 1``, …

>>> import numpy as np
>>> from detectors.windows import sliding
>>> x = np.sin(np.arange(600) / 5.0)[:, None]; x[550] += 4.0
>>> w = sliding(x, np.arange(600), 16, ("v",))
>>> cfg = Ensemble.Config(seed=0, window=16, members=({"detector": "robust_z", "params": {"reference": "window"}},
...                                                   {"detector": "ewma"}))
>>> det = Ensemble(cfg); det.fit(w.select(slice(0, 450)))
>>> int(np.argmax(det.score(w.select(slice(450, None))).values)) + 450 + 15
550
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detectors.base import Detector, DetectorConfig, NotReady, WindowBatch
from detectors.model import score_rarity
from detectors.registry import build, load
from detectors.thresholds import PotThreshold, ThresholdConfig, threshold_from_json


class MemberSpec(BaseModel):
    """One member: a registered detector's name and its parameters, less ``seed`` and ``window``
    (the ensemble sets those); ``features``: glob patterns of the window features it reads
    (``None``: all), e.g. ``["*@1"]`` for the finest scale of multiscale windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    detector: str
    params: dict = Field(default_factory=dict)
    features: tuple[str, ...] | None = Field(None, min_length=1)

    @field_validator("params")
    @classmethod
    def _no_seed_or_window(cls, params: dict) -> dict:
        taken = sorted({"seed", "window"} & set(params))
        if taken:
            raise ValueError(f"member params must not set {taken}: the ensemble's seed and window are used")
        return params


class EnsembleConfig(DetectorConfig):
    """``members``: at least one; ``threshold``: how each member's scores are calibrated into
    rarities (a POT threshold gives a tail probability; others give score / threshold)."""

    members: tuple[MemberSpec, ...] = Field(
        default=(MemberSpec(detector="conv_ae"), MemberSpec(detector="robust_z", params={"reference": "window"})),
        min_length=1)
    threshold: ThresholdConfig = Field(default_factory=PotThreshold)

    @field_validator("members")
    @classmethod
    def _known_members(cls, members: tuple[MemberSpec, ...]) -> tuple[MemberSpec, ...]:
        for i, m in enumerate(members):
            if m.detector == Ensemble.name:
                raise ValueError(f"members[{i}]: an ensemble cannot be a member of an ensemble")
            try:
                build(m.detector, {**m.params, "seed": 0, "window": 2})
            except LookupError as e:
                raise ValueError(f"members[{i}]: {e}") from None
            except ValidationError as e:
                why = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
                raise ValueError(f"members[{i}] ({m.detector}): invalid params: {why}") from None
        return members


class Ensemble(Detector):
    """Score = the largest member rarity (see the module docstring); ready where every member is."""

    name = "ensemble"
    Config = EnsembleConfig

    def __init__(self, config: EnsembleConfig):
        super().__init__(config)
        self.members = [self._build(i) for i in range(len(config.members))]
        self.thresholds: list = []

    @classmethod
    def test_config(cls) -> EnsembleConfig:
        return cls.Config(seed=7, window=16, members=(
            MemberSpec(detector="conv_ae", params={"epochs": 4}),
            MemberSpec(detector="robust_z", params={"reference": "window"})))

    def _build(self, i: int) -> Detector:
        spec = self.config.members[i]
        return build(spec.detector, {**spec.params, "seed": self.config.seed + i, "window": self.config.window})

    def min_windows(self) -> int:
        """What every member needs, and the 10 training scores a member's calibration needs."""
        return max(10, *(m.min_windows() for m in self.members))

    def _view(self, i: int, windows: WindowBatch) -> WindowBatch:
        """The features of ``windows`` member ``i`` reads."""
        patterns = self.config.members[i].features
        if patterns is None:
            return windows
        picked = tuple(f for f in windows.features if any(fnmatchcase(f, p) for p in patterns))
        if not picked:
            raise ValueError(f"ensemble members[{i}] ({self.config.members[i].detector}): no window feature "
                             f"matches {list(patterns)}; the windows have {list(windows.features)}")
        return windows.reorder(picked)

    def _fit(self, windows: WindowBatch) -> None:
        self.members = [self._build(i) for i in range(len(self.members))]
        for i, m in enumerate(self.members):
            m.fit(self._view(i, windows))
        self._calibrate(windows)

    def refit(self, windows: WindowBatch) -> None:
        """Members continue from their current state (learned models warm-start), then are
        calibrated again."""
        if not self.is_fitted:
            return self.fit(windows)
        self._check_length(windows)
        if len(windows) < self.min_windows():
            raise NotReady("too few windows to train", self.min_windows(), len(windows))
        for i, m in enumerate(self.members):
            m.refit(self._view(i, windows))
        self._calibrate(windows)
        self.trained_on = len(windows)

    def _calibrate(self, windows: WindowBatch) -> None:
        self.thresholds = []
        for i, m in enumerate(self.members):
            s = m.score(self._view(i, windows))
            self.thresholds.append(self.config.threshold.fit(s.values[s.ready]))

    def _score(self, windows: WindowBatch) -> np.ndarray:
        out = np.full(len(windows), -np.inf)
        for i, (m, t) in enumerate(zip(self.members, self.thresholds)):
            s = m.score(self._view(i, windows))
            out = np.maximum(out, np.where(s.ready, score_rarity(t, s.values), np.nan))
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {"thresholds": np.array(json.dumps([t.model_dump(mode="json") for t in self.thresholds]))}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.thresholds = [threshold_from_json(t) for t in json.loads(str(state["thresholds"]))]

    def _save_extra(self, directory: Path) -> None:
        for i, m in enumerate(self.members):
            m.save(directory / f"member{i}")

    def _load_extra(self, directory: Path) -> None:
        self.members = [load(directory / f"member{i}") for i in range(len(self.config.members))]
