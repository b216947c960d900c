"""Every host and GPU metric a dashboard shows is produced by a registered collector (STYLE G6
cross-reference), with the tags the dashboard groups and filters by."""

from __future__ import annotations

import pytest

from collector.base import load_collector_class
from dashboards.definitions import cluster_gpu

COLLECTED = ("cpu", "mem", "disk", "nvidia_smi")


def _described() -> dict[str, tuple[set[str], set[str]]]:
    out = {}
    for name in COLLECTED:
        for spec in load_collector_class(name)(None).describe():
            out[spec.measurement] = (set(spec.fields), set(spec.tags) | {"host"})  # host: a global tag
    return out


@pytest.mark.parametrize("query", cluster_gpu.dashboard().queries(), ids=lambda q: f"{q.measurement}.{q.field}")
def test_cluster_dashboard_metric_is_collected(query):
    fields, tags = _described()[query.measurement]
    assert query.field in fields
    assert set(query.group_by or ()) | set(query.where) <= tags
