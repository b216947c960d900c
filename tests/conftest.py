"""Shared fixtures. Every test builds its own objects (no process-global registries)."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


# ------------------------------------------------------------ tests leave the checkout as found

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _untracked() -> set[str] | None:
    """Files git does not track and does not ignore, or None outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", _ROOT, "status", "--porcelain", "--untracked-files=all"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return {line[3:] for line in out.stdout.splitlines() if line.startswith("?? ")}


def pytest_sessionstart(session):
    session.config._untracked_at_start = _untracked()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when tests wrote files into the checkout (they belong under ``tmp_path``)."""
    before = getattr(session.config, "_untracked_at_start", None)
    after = _untracked()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        import sys

        print(f"\ntests left files in the checkout (write under tmp_path instead): {new}", file=sys.stderr)
        if session.exitstatus == 0:
            session.exitstatus = 1
