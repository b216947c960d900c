"""Generated dashboards: valid against Grafana's schema, stable uids, committed files up to date."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
from typer.testing import CliRunner

from dashboards.definitions import all_dashboards
from dashboards.export import COMMITTED_DIR, DashboardInvalid, export, rendered, stale
from dashboards.render import DATASOURCE_TYPES, Datasource, render
from dashboards.schema import validate
from mlpulse.cli import build

TYPES = list(DATASOURCE_TYPES)


@pytest.mark.parametrize("ds_type", TYPES)
def test_committed_dashboards_are_up_to_date(ds_type):
    problems = stale(COMMITTED_DIR / ds_type, Datasource(ds_type))
    assert problems == [], (
        "generated dashboards are stale; run "
        f"`mlpulse dashboards export --out dashboards/grafana/{ds_type} --datasource {ds_type}`:\n"
        + "\n".join(problems))


def test_stale_detects_edited_missing_and_extra_files(tmp_path):
    ds = Datasource("prometheus")
    shutil.copytree(COMMITTED_DIR / "prometheus", tmp_path, dirs_exist_ok=True)
    assert stale(tmp_path, ds) == []
    first, second = sorted(tmp_path.glob("*.json"))[:2]
    first.write_text(first.read_text().replace("mlpulse /", "ml /", 1))
    second.unlink()
    (tmp_path / "old.json").write_text("{}")
    problems = stale(tmp_path, ds)
    assert any(first.name in p and "out of date" in p for p in problems)
    assert any(second.name in p and "missing" in p for p in problems)
    assert any("old.json" in p and "not generated" in p for p in problems)


@pytest.mark.parametrize("ds_type", TYPES)
def test_every_dashboard_validates(ds_type):
    for d in all_dashboards():
        assert d.check() == []
        assert validate(render(d, Datasource(ds_type)), ds_type) == []


def test_uids_are_stable_distinct_and_per_datasource():
    uids = [b["uid"] for t in TYPES for b in rendered(Datasource(t)).values()]
    assert len(set(uids)) == len(uids) == 8
    assert "mlpulse-training-flux" in uids and "mlpulse-inference-prom" in uids
    again = [b["uid"] for t in TYPES for b in rendered(Datasource(t)).values()]
    assert again == uids


def test_template_variables_cover_host_model_version_run():
    names = {v["name"] for t in TYPES for b in rendered(Datasource(t)).values() for v in b["templating"]["list"]}
    assert {"host", "model", "version", "run"} <= names


def _board():
    return render(all_dashboards()[1], Datasource("prometheus"))


@pytest.mark.parametrize("mutate, expected", [
    (lambda b: b["panels"][1]["options"]["legend"].update(bogus=1), "legend.bogus: not part of"),
    (lambda b: b["panels"][1].update(gridpos={}), "gridpos: not part of"),
    (lambda b: b["panels"][1]["targets"][0].update(exprr="up"), "exprr: not part of"),
    (lambda b: b["panels"][1]["fieldConfig"]["defaults"]["custom"].update(lineWidht=2), "lineWidht"),
    (lambda b: b.update(uid="short"), "uid 'short'"),
    (lambda b: b["panels"][1]["options"]["tooltip"].update(mode="all"), "tooltip.mode: 'all' is not one of"),
    (lambda b: b.update(graphTooltip=7), "graph_tooltip: 7 is not one of [0, 1, 2]"),
    (lambda b: b["panels"][1]["gridPos"].update(w="12"), "grid_pos.w: expected int"),
    (lambda b: b["panels"][1]["targets"][0].update(range="yes"), "range_val: expected bool"),
    (lambda b: b["templating"]["list"][0].update(multi="true"), "multi: expected bool"),
    (lambda b: b["panels"][1]["targets"][0].update(expr='up{a="$nope"}'), "undefined variable $nope"),
    (lambda b: b["panels"][1]["gridPos"].update(x=20), "not inside the 24-column grid"),
    (lambda b: b["panels"][2].update(id=b["panels"][1]["id"]), "used more than once"),
    (lambda b: b["panels"][1]["targets"][0].update(datasource={"type": "influxdb", "uid": "x"}),
     "expected 'prometheus'"),
])
def test_validation_rejects(mutate, expected):
    board = copy.deepcopy(_board())
    mutate(board)
    problems = validate(board, "prometheus")
    assert any(expected in p for p in problems), problems


def test_export_refuses_invalid_dashboards(tmp_path, monkeypatch):
    import dashboards.export as export_module

    monkeypatch.setattr(export_module, "validate", lambda data, ds_type: ["broken on purpose"])
    with pytest.raises(DashboardInvalid, match="broken on purpose"):
        export(tmp_path, Datasource("influxdb"))
    assert list(tmp_path.iterdir()) == []


def test_cli_export_writes_what_is_committed(tmp_path):
    result = CliRunner().invoke(build(), ["dashboards", "export", "--out", str(tmp_path), "--datasource", "influxdb"])
    assert result.exit_code == 0, result.output
    for path in sorted(tmp_path.glob("*.json")):
        assert path.read_text() == (COMMITTED_DIR / "influxdb" / path.name).read_text()
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_cli_export_with_custom_datasource_uid(tmp_path):
    result = CliRunner().invoke(build(), ["dashboards", "export", "--out", str(tmp_path), "--datasource",
                                          "prometheus", "--datasource-uid", "vm-prod"])
    assert result.exit_code == 0, result.output
    board = json.loads((tmp_path / "mlpulse-inference.json").read_text())
    refs = {t["datasource"]["uid"] for p in board["panels"] for t in p.get("targets", [])}
    assert refs == {"vm-prod"}
