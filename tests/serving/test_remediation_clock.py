"""Action events carry the time they happened when the remediator has a clock."""

from datetime import datetime, timedelta, timezone

from alerting.actions import ActionRequest
from alerting.events import EventRecorder
from serving import ops
from serving.config import ServingConfig
from serving.remediation import Remediator, build_repository

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Events:
    def __init__(self):
        self.seen = []

    def __call__(self, event):
        self.seen.append(event)


def test_action_done_is_stamped_by_the_clock_after_the_work(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "2").mkdir(parents=True)
    cfg = ServingConfig(repository=tmp_path)
    ops.promote(build_repository(cfg), "m", 1, T)
    ops.promote(build_repository(cfg), "m", 2, T)
    ticks = iter([T + timedelta(seconds=1), T + timedelta(seconds=5)])
    events = Events()
    rem = Remediator(cfg, EventRecorder(None, hooks=[events]), clock=lambda: next(ticks))
    out = rem.run(ActionRequest("rollback", "m", "g/A", "fp", T, {"model": "m"}), T)
    assert out.status == "done"
    stamps = {e.kind: e.time for e in events.seen}
    assert stamps == {"action_started": T + timedelta(seconds=1), "action_done": T + timedelta(seconds=5)}
