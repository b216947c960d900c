"""The demo empties its data directory on each run, so it must refuse one it did not make."""

import subprocess
import sys

import pytest

from mlpulse.demo.scenario import MARKER, DemoError, prepare_directory


def test_refuses_a_directory_it_did_not_make_and_leaves_it_alone(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(DemoError, match="not made by `mlpulse demo`"):
        prepare_directory(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_empties_a_previous_demo_directory_and_marks_a_new_one(tmp_path):
    d = tmp_path / "demo"
    prepare_directory(d)
    (d / "old.json").write_text("{}")
    prepare_directory(d)
    assert sorted(p.name for p in d.iterdir()) == [MARKER]


def test_cli_says_why_and_exits_non_zero(tmp_path):
    (tmp_path / "notes.txt").write_text("keep")
    proc = subprocess.run([sys.executable, "-m", "mlpulse", "demo", "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert str(tmp_path) in proc.stderr and "choose another --data directory" in proc.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep"
