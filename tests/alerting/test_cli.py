"""The alerting and models CLI commands, run through typer's runner on real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mlpulse.commands import alerting as alerting_cmds
from mlpulse.commands import models as models_cmds

DATA = Path(__file__).parent / "testdata"


@pytest.fixture
def cli():
    app = typer.Typer()
    alerting_cmds.register(app)
    models_cmds.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def config(tmp_path) -> Path:
    shutil.copy(DATA / "rules.yaml", tmp_path / "rules.yaml")
    path = tmp_path / "mlpulse.yaml"
    path.write_text(f"""\
alerting:
  rule_files: [rules.yaml]
  silences_file: {tmp_path / 'silences.json'}
  state_file: {tmp_path / 'state.json'}
  receivers: [{{name: default, log_configs: [{{}}]}}, {{name: pager, log_configs: [{{level: error}}]}}]
  route:
    receiver: default
    group_by: [alertname]
    routes: [{{matchers: [severity=critical], receiver: pager, group_by: [model]}}]
""")
    return path


def test_rules_check_ok_and_errors(cli, tmp_path):
    ok = cli("rules", "check", DATA / "rules.yaml")
    assert ok.exit_code == 0 and "3 rules" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n        condition: '>'\n")
    result = cli("rules", "check", bad)
    assert result.exit_code == 1
    assert f"{bad}:4: group 'g', rule 0 'X': groups[0].rules[0].query: required key is missing" in result.output
    assert f"{bad}:5: group 'g', rule 0 'X'" in result.output and "2 error(s)" in result.output


def test_rules_test_exit_codes(cli, tmp_path):
    assert cli("rules", "test", DATA / "rules_test.yaml").exit_code == 0
    shutil.copy(DATA / "rules.yaml", tmp_path / "rules.yaml")
    failing = tmp_path / "t.yaml"
    failing.write_text((DATA / "rules_test.yaml").read_text().replace("model: ranker, severity", "model: other, severity"))
    result = cli("rules", "test", failing)
    assert result.exit_code == 1 and "FAILED" in result.output and "exp:" in result.output and "got:" in result.output


def test_rules_list_shows_health(cli, config):
    result = cli("rules", "list", "--config", config)
    assert result.exit_code == 0
    assert "serving/HighLatency\t> 250\thealth=unknown\tfiring=0" in result.output


def test_silence_add_list_expire(cli, config):
    added = cli("silence", "add", "--matcher", "model=fraud", "--for", "2h", "--comment", "deploy", "--config", config)
    assert added.exit_code == 0
    sid = added.output.strip()
    listed = cli("silence", "list", "--config", config)
    assert sid in listed.output and "model=fraud" in listed.output and "active" in listed.output
    assert cli("silence", "expire", sid, "--config", config).exit_code == 0
    assert sid not in cli("silence", "list", "--config", config).output
    assert cli("silence", "expire", "nope", "--config", config).exit_code == 1
    assert cli("silence", "add", "--matcher", "=x", "--config", config).exit_code == 2


def test_routes_test_prints_receivers(cli, config):
    result = cli("routes", "test", "--labels", "alertname=HighLatency,severity=critical,model=fraud", "--config", config)
    assert result.exit_code == 0 and result.output.startswith("pager\tgroup_by=model")
    assert cli("routes", "test", "--labels", "alertname=X", "--config", config).output.startswith("default")


def test_models_commands(cli, tmp_path):
    for v in (1, 2, 3):
        (tmp_path / "repo" / "fraud" / str(v)).mkdir(parents=True)
    repo = tmp_path / "repo"
    assert "fraud\t1:candidate 2:candidate 3:live\tpinned=-" in cli("models", "list", "--repo", repo).output
    dry = cli("models", "rollback", "fraud", "--repo", repo, "--dry-run")
    assert dry.exit_code == 0 and "[dry run] fraud: roll back 3 -> 2" in dry.output
    assert not (repo / "models.config").exists()
    assert cli("models", "rollback", "fraud", "--repo", repo).exit_code == 0
    assert "pinned=2" in cli("models", "list", "--repo", repo).output
    assert cli("models", "promote", "fraud", "--version", "1", "--repo", repo).exit_code == 0
    assert "1:live 2:good 3:bad\tpinned=1" in cli("models", "list", "--repo", repo).output
    refused = cli("models", "rollback", "fraud", "--repo", repo)
    assert refused.exit_code == 1 and "refusing to roll back" in refused.output
