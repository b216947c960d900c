"""``mlpulse check config``: the server's loader, offline, every error located, rule files and
cross-references included."""

from typer.testing import CliRunner

from mlpulse.cli import build

RULES = """\
groups:
  - name: serving
    rules:
      - alert: Slow
        query: {measurement: inference, field: latency_ms_p99, window: 5m, aggregate: mean}
        condition: "> 250"
        actions: [rollbak]
"""


def run(*args):
    return CliRunner().invoke(build(), ["check", "config", *map(str, args)])


def test_a_good_config_passes(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES.replace("rollbak", "rollback"))
    cfg = tmp_path / "mlpulse.yaml"
    cfg.write_text("storage: {backend: duckdb, path: data}\nalerting: {rule_files: [rules.yaml]}\n")
    result = run(cfg)
    assert result.exit_code == 0, result.output
    assert f"{cfg}: OK" in result.output


def test_every_error_is_reported_with_file_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("storage:\n  backend: duckdb\n  pth: data\nalerting:\n  evaluation_interval: soon\n")
    result = run(cfg)
    assert result.exit_code == 1
    assert f"{cfg}:3:" in result.output and "storage.pth was not used" in result.output
    assert f"{cfg}:5:" in result.output and "evaluation_interval" in result.output
    assert "2 error(s)" in result.output


def test_an_action_nobody_provides_is_an_error_in_the_rule_file(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = tmp_path / "mlpulse.yaml"
    cfg.write_text("alerting: {rule_files: [rules.yaml]}\nserving: {actions: {kserve: {command: [echo]}}}\n")
    result = run(cfg)
    assert result.exit_code == 1
    assert "rules.yaml:4" in result.output and "'rollbak'" in result.output and "kserve" in result.output
