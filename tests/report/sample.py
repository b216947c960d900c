"""A small, fixed data set for report tests: two hours of training, inference for two versions
of one model (v2 degrades), two GPUs, CPU, anomaly scores, and an alert followed by a rollback."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from tsdb.point import to_ns

END = to_ns(datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc))
STEP = 60 * 1_000_000_000
MINUTES = 120
INCIDENT = END - 29 * STEP


def _inference(i: int, t: int) -> list[str]:
    out = []
    for v in ("1", "2"):
        lat = 20 + 5 * math.sin(i / 10) + (40 if v == "2" and i > 90 else 0)
        out.append(f"inference,model=fraud,version={v},endpoint=/predict requests={100 + i}i,errors_4xx=1i,"
                   f"errors_5xx={3 if i > 90 else 0}i,latency_ms_p50={lat},latency_ms_p90={lat * 1.5},"
                   f"latency_ms_p99={lat * 2},latency_ms_max={lat * 3},pred_mean=0.{i % 10},pred_std=0.1 {t}")
    return out


def _cluster(i: int, t: int) -> list[str]:
    out = [f"cpu,host=h1,cpu=cpu-total usage_user={20 + i % 9},usage_system=5.0,usage_idle=70.0 {t}"]
    for g in ("0", "1"):
        out.append(f"nvidia_smi,host=h1,index={g},name=H100,uuid=GPU-{g} utilization_gpu={50 + int(g) * 20 + i % 7}i,"
                   f"memory_used={30000 + i}i,temperature_gpu={60 + i % 5}i,power_draw=300.5 {t}")
    return out


def _training_and_scores(i: int, t: int) -> list[str]:
    return [
        f"train,run=r1,model=fraud,host=h1 loss={1 / (i + 1)},val_loss={1.2 / (i + 1)},step={i}i,"
        f"step_time_s=0.1,examples_per_s=1000,lr=0.001,epoch={i // 10}i {t}",
        f"anomaly,detector=conv_ae,measurement=inference,field=latency_ms_p99,model=fraud,version=2 "
        f"score={5.0 if i > 90 else 0.5},threshold=3.0,is_anomaly={str(i > 90).lower()},spatial=false,"
        f"seasonal={str(i > 95).lower()} {t}",
    ]


def metrics_lp() -> str:
    """Numeric metrics only (every backend stores them)."""
    lines = []
    for i in range(MINUTES):
        t = END - (MINUTES - i) * STEP
        lines += _inference(i, t) + _cluster(i, t) + _training_and_scores(i, t)
    return "\n".join(lines)


EVENTS = [
    ("alert_firing", "latency p99 of fraud v2 above 60ms", INCIDENT),
    ("action_started", "rollback fraud to v1", INCIDENT + 2 * STEP),
    ("action_done", "fraud pinned to v1 <ok>", INCIDENT + 3 * STEP),
]


def events_lp() -> str:
    """The alert and the rollback in ``mlpulse_events`` (string fields)."""
    return "\n".join(
        f'mlpulse_events,kind={kind},rule=HighLatency,model=fraud,severity=critical message="{msg}",'
        f'fingerprint="abc" {t}' for kind, msg, t in EVENTS)
