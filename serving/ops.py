"""Remediation operations on a :class:`ModelRepository`: rollback, promote and retrain.

Each returns a :class:`OpResult` saying what it did (or, with ``dry_run``, would do) and raises
:class:`RepositoryError` when it must refuse (no older version that is not bad, unknown model...).
"""

from __future__ import annotations

import json
import math
import operator
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping

from serving.config import ModelConfig
from serving.repository import ModelRepository, RepositoryError

_GATE_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class OpResult:
    model: str
    action: str
    from_version: int | None
    to_version: int | None
    message: str
    dry_run: bool = False
    ok: bool = True
    retryable: bool = True  # a failure (ok=False) that trying again may fix; a gate verdict is final


def rollback_target(repo: ModelRepository, model: str) -> tuple[int, int]:
    """(live, target): the newest version older than the live one that is not bad."""
    status = repo.status(model)
    live = next((v for v, s in status.items() if s == "live"), None)
    if live is None:
        raise RepositoryError(f"model {model!r} has no live version to roll back (versions: {status or 'none'})")
    older = [v for v, s in status.items() if v < live and s != "bad"]
    if not older:
        raise RepositoryError(
            f"refusing to roll back {model!r}: no version older than live {live} is usable "
            f"(statuses: {', '.join(f'{v}={s}' for v, s in status.items())})"
        )
    return live, max(older)


def rollback(repo: ModelRepository, model: str, now: datetime, *, dry_run: bool = False, reason: str = "") -> OpResult:
    """Pin the newest non-bad older version, mark the live one bad, rewrite models.config."""
    repo._require(model)
    live, target = rollback_target(repo, model)
    msg = f"{model}: roll back {live} -> {target}" + (f" ({reason})" if reason else "")
    if not dry_run:
        repo.set_status(model, {live: "bad", target: "live"}, now, reason or "rollback")
        repo.write_models_config()
    return OpResult(model, "rollback", live, target, msg, dry_run)


def promote(repo: ModelRepository, model: str, version: int, now: datetime, *, dry_run: bool = False,
            reason: str = "") -> OpResult:
    """Make ``version`` live (the previous live one becomes good) and rewrite models.config."""
    repo._require(model)
    status = repo.status(model)
    if version not in status:
        raise RepositoryError(f"model {model!r} has no version {version} (versions: {sorted(status)})")
    if status[version] == "bad":
        raise RepositoryError(f"refusing to promote {model!r} version {version}: it is marked bad")
    live = next((v for v, s in status.items() if s == "live"), None)
    msg = f"{model}: promote {version} (live was {live})"
    if not dry_run:
        changes = {live: "good"} if live is not None and live != version else {}
        repo.set_status(model, {**changes, version: "live"}, now, reason or "promote")
        repo.write_models_config()
    return OpResult(model, "promote", live, version, msg, dry_run)


def gate_passes(cfg: ModelConfig, metrics: Mapping[str, object]) -> tuple[bool, str]:
    gate = cfg.gate
    if gate is None:
        return False, "no validation gate configured; the new version stays a candidate"
    value = metrics.get(gate.metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return False, f"metric {gate.metric!r} missing or not a number in {cfg.metrics_file} (got {value!r})"
    ok = _GATE_OPS[gate.op](float(value), gate.threshold)
    return ok, f"{gate.metric}={value:g} {'passes' if ok else 'fails'} gate {gate.op} {gate.threshold:g}"


def _argv(cfg: ModelConfig, params: Mapping[str, str]) -> list[str]:
    try:
        return [arg.format_map(params) for arg in cfg.retrain_command]
    except (KeyError, IndexError, ValueError) as e:
        raise RepositoryError(f"retrain command template {cfg.retrain_command}: unknown parameter {e}") from None


def retrain(repo: ModelRepository, model: str, cfg: ModelConfig, now: datetime, *, dry_run: bool = False,
            labels: Mapping[str, str] | None = None) -> OpResult:
    """Run the training command for a new version; promote it only if it passes the gate."""
    repo._require(model)
    if not cfg.retrain_command:
        raise RepositoryError(f"model {model!r} has no retrain_command configured")
    version = max(repo.versions(model), default=0) + 1
    out_dir = repo.root / model / str(version)
    params = {**(labels or {}), "model": model, "version": str(version), "output_dir": str(out_dir),
              "repository": str(repo.root)}
    argv = _argv(cfg, params)
    if dry_run:
        return OpResult(model, "retrain", repo.live(model), version, f"{model}: would run {argv}", True)
    live = repo.record_live(model, now)
    failure, retryable = _run(argv, cfg, out_dir), True
    if failure is None:
        metrics = _metrics(out_dir / cfg.metrics_file)
        ok, why = gate_passes(cfg, metrics)
        if ok:
            promote(repo, model, version, now, reason=f"retrained: {why}")
            return OpResult(model, "retrain", live, version, f"{model}: retrained version {version} promoted; {why}")
        if cfg.gate is None:
            repo.set_status(model, {version: "candidate"}, now, why)
            return OpResult(model, "retrain", live, live, f"{model}: version {version}: {why}", ok=False,
                            retryable=False)
        failure, retryable = why, False
    if out_dir.is_dir():
        repo.set_status(model, {version: "bad"}, now, f"retrain failed: {failure}")
    return OpResult(model, "retrain", live, live, f"{model}: retrain to version {version} failed: {failure}; "
                    f"live stays {live}", ok=False, retryable=retryable)


def _run(argv: list[str], cfg: ModelConfig, out_dir: Path) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=cfg.retrain_timeout.total_seconds())
    except subprocess.TimeoutExpired:
        return f"timed out after {cfg.retrain_timeout}"
    except OSError as e:
        return f"cannot run {argv[0]!r}: {e}"
    if proc.returncode != 0:
        return f"exit status {proc.returncode}: {proc.stderr.strip()[-500:]}"
    if not out_dir.is_dir():
        return f"the command did not create {out_dir}"
    return None


def _metrics(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
