"""Model repository, models.config, rollback, promote and retrain on real folders and processes."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import modelsconfig
from serving.config import ModelConfig
from serving.ops import promote, retrain, rollback
from serving.repository import ModelRepository, RepositoryError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_status_defaults_to_newest_live(repo_root):
    repo = ModelRepository(repo_root)
    assert repo.models() == ["fraud", "ranker"]
    assert repo.status("fraud") == {1: "candidate", 2: "candidate", 3: "candidate", 4: "live"}


def test_rollback_pins_newest_non_bad_older_version(repo_root):
    repo = ModelRepository(repo_root)
    repo.set_status("fraud", {3: "bad"}, T0, "known bad")
    result = rollback(repo, "fraud", T0, reason="latency")
    assert (result.from_version, result.to_version) == (4, 2)
    assert repo.status("fraud")[4] == "bad" and repo.live("fraud") == 2
    text = (repo_root / "models.config").read_text()
    assert 'name: "fraud"' in text and "specific {\n        versions: 2\n" in text
    assert modelsconfig.read_pins(repo_root / "models.config") == {"fraud": [2], "ranker": [1]}


def test_rollback_refuses_when_no_good_version_is_left(repo_root):
    repo = ModelRepository(repo_root)
    with pytest.raises(RepositoryError, match="refusing to roll back 'ranker': no version older than live 1"):
        rollback(repo, "ranker", T0)
    repo.set_status("fraud", {1: "bad", 2: "bad", 3: "bad"}, T0, "")
    with pytest.raises(RepositoryError, match="1=bad, 2=bad, 3=bad, 4=live"):
        rollback(repo, "fraud", T0)
    assert not (repo_root / "models.config").exists()


def test_dry_run_changes_nothing(repo_root):
    repo = ModelRepository(repo_root)
    result = rollback(repo, "fraud", T0, dry_run=True)
    assert result.dry_run and result.to_version == 3
    assert repo.live("fraud") == 4 and not (repo_root / "models.config").exists()


def test_promote_and_unknown_model(repo_root):
    repo = ModelRepository(repo_root)
    promote(repo, "fraud", 2, T0)
    assert repo.status("fraud") == {1: "candidate", 2: "live", 3: "candidate", 4: "good"}
    repo.set_status("fraud", {3: "bad"}, T0, "")
    with pytest.raises(RepositoryError, match="marked bad"):
        promote(repo, "fraud", 3, T0)
    with pytest.raises(RepositoryError, match="no model 'nope'.*models: fraud, ranker"):
        rollback(repo, "nope", T0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["live", "good", "bad", "candidate"]), min_size=1, max_size=6))
def test_rollback_never_picks_a_bad_or_newer_version(tmp_path_factory, statuses):
    root = tmp_path_factory.mktemp("repo")
    for v in range(1, len(statuses) + 1):
        (root / "m" / str(v)).mkdir(parents=True)
    repo = ModelRepository(root)
    repo.set_status("m", {v: s for v, s in enumerate(statuses, 1) if s != "live"}, T0, "")
    before = repo.status("m")
    live = repo.live("m")
    try:
        result = rollback(repo, "m", T0)
    except RepositoryError:
        assert live is None or all(s == "bad" for v, s in before.items() if v < live)
        return
    assert result.to_version < live and before[result.to_version] != "bad"
    assert all(before[v] == "bad" for v in before if result.to_version < v < live)
    assert repo.pinned("m") == [result.to_version]


def test_models_config_round_trip_with_quotes():
    entries = [modelsconfig.ModelEntry('we"ird', "/models/w", 7), modelsconfig.ModelEntry("a", "/m/a", 1)]
    assert modelsconfig.pinned_versions(modelsconfig.render(entries)) == {'we"ird': [7], "a": [1]}


TRAIN = """
import json, pathlib, sys
out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True)
(out / "saved_model.pb").write_bytes(b"x")
(out / "metrics.json").write_text(json.dumps({"val_auc": float(sys.argv[2])}))
"""


def train_cfg(tmp_path, auc: str, **kw) -> ModelConfig:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return ModelConfig(retrain_command=[sys.executable, str(script), "{output_dir}", auc],
                       gate={"metric": "val_auc", "op": ">=", "threshold": 0.9}, **kw)


def test_retrain_promotes_a_version_that_passes_the_gate(repo_root, tmp_path):
    repo = ModelRepository(repo_root)
    result = retrain(repo, "fraud", train_cfg(tmp_path, "0.95"), T0)
    assert result.ok and result.to_version == 5 and "val_auc=0.95 passes" in result.message
    assert repo.live("fraud") == 5 and repo.status("fraud")[4] == "good" and repo.pinned("fraud") == [5]


def test_retrain_that_fails_the_gate_is_marked_bad_and_live_stays(repo_root, tmp_path):
    repo = ModelRepository(repo_root)
    result = retrain(repo, "fraud", train_cfg(tmp_path, "0.5"), T0)
    assert not result.ok and "fails gate" in result.message
    assert repo.status("fraud")[5] == "bad" and repo.live("fraud") == 4


def test_retrain_command_failure_and_timeout(repo_root, tmp_path):
    repo = ModelRepository(repo_root)
    bad = ModelConfig(retrain_command=[sys.executable, "-c", "import sys; sys.exit('no data')"])
    assert "exit status 1: no data" in retrain(repo, "fraud", bad, T0).message
    slow = ModelConfig(retrain_command=[sys.executable, "-c", "import time; time.sleep(30)"],
                       retrain_timeout=timedelta(seconds=0.5))
    assert "timed out" in retrain(repo, "fraud", slow, T0).message
    assert repo.live("fraud") == 4
