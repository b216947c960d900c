"""The sink against a real ``mlpulse serve``: an outage and restart lose nothing and duplicate
nothing; a writer killed with SIGKILL leaves a spool that the next sink replays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from collector.sink import Backoff, Sink
from tests.support.servers import MlpulseServer, free_port
from tsdb.base import RangeQuery
from tsdb.point import Point

ROOT = Path(__file__).resolve().parents[2]
FAST = Backoff(base=0.02, cap=0.2)


def points(start: int, n: int) -> list[Point]:
    return [Point("outage", {"series": f"s{i % 3}"}, {"seq": i}, 1_700_000_000_000_000_000 + i * 1000)
            for i in range(start, start + n)]


def written_counter(server: MlpulseServer) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    line = next(ln for ln in text.splitlines() if ln.startswith("mlpulse_points_written_total"))
    return float(line.split()[-1])


def stored(data: Path) -> list[tuple[str, int]]:
    from tsdb.duckdb import DuckDBBackend

    backend = DuckDBBackend(data)
    try:
        df = backend.query(RangeQuery("outage", 0, 2**62, fields=["seq"]))
    finally:
        backend.close()
    return list(zip(df["series"], df["seq"].astype(int)))


def assert_exactly(rows: list[tuple[str, int]], n: int) -> None:
    assert sorted(seq for _, seq in rows) == list(range(n))  # all N, none twice
    for s in ("s0", "s1", "s2"):
        seqs = [seq for series, seq in rows if series == s]  # rows come sorted by series, then time
        assert seqs == sorted(seqs)


@pytest.mark.timeout(120)
def test_outage_and_restart_lose_and_duplicate_nothing(tmp_path):
    n = 3000
    server = MlpulseServer(tmp_path / "data").start()
    sink = Sink(server.url, bucket="b", batch_size=200, spool_dir=tmp_path / "spool", backoff=FAST, timeout=2.0)
    try:
        sink.write(points(0, 1000))
        assert sink.flush()
        before = written_counter(server)
        server.stop()
        sink.write(points(1000, 1000))  # target down: these go to the disk spool
        assert not sink.flush()
        assert sink.stats().backlog_points == 1000 and sink.stats().spool_bytes > 0
        server.start()
        sink.write(points(2000, 1000))
        sink.close(timeout=30)
        after = written_counter(server)
    finally:
        server.stop()
    s = sink.stats()
    assert (s.points_written, s.points_dropped, s.backlog_points) == (n, 0, 0)
    assert before + after == n  # the server stored each point once
    assert_exactly(stored(tmp_path / "data"), n)


CHILD = textwrap.dedent("""
    import sys, time
    from collector.sink import Sink, Backoff
    from tsdb.point import Point
    url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sink = Sink(url, bucket="b", spool_dir=spool, batch_size=250, backoff=Backoff(base=5, cap=5), timeout=0.5)
    sink.write([Point("outage", {"series": f"s{i % 3}"}, {"seq": i}, 1_700_000_000_000_000_000 + i * 1000)
                for i in range(n)])
    sink.flush()
    print("SPOOLED", sink.stats().backlog_points, flush=True)
    time.sleep(120)
""")


@pytest.mark.timeout(120)
def test_sigkill_while_spooled_then_a_new_sink_replays(tmp_path):
    n, port = 2000, free_port()
    child = subprocess.Popen([sys.executable, "-c", CHILD, f"http://127.0.0.1:{port}", str(tmp_path / "spool"), str(n)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().split() == ["SPOOLED", str(n)]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    server = MlpulseServer(tmp_path / "data", port=port).start()
    try:
        with Sink(server.url, bucket="b", spool_dir=tmp_path / "spool", backoff=FAST) as sink:
            assert sink.stats().backlog_points == n
            assert sink.flush()
        count = written_counter(server)
    finally:
        server.stop()
    assert count == n and sink.stats().points_written == n
    assert_exactly(stored(tmp_path / "data"), n)


LOOP_CHILD = textwrap.dedent("""
    import sys
    from collector.sink import Sink, Backoff
    from tsdb.point import Point
    url, spool = sys.argv[1], sys.argv[2]
    sink = Sink(url, bucket="b", spool_dir=spool, batch_size=100, backoff=Backoff(base=60, cap=60), timeout=0.5)
    i = 0
    while True:
        sink.write([Point("outage", {"series": f"s{k % 3}"}, {"seq": k}, 1_700_000_000_000_000_000 + k * 1000)
                    for k in range(i, i + 100)])
        i += 100
        sink.flush()
        print("SPOOLED", sink.stats().backlog_points, flush=True)
""")


@pytest.mark.timeout(120)
def test_sigkill_in_the_middle_of_spooling_replays_a_clean_prefix(tmp_path):
    from tests.collector.conftest import RecordingWriteServer

    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", LOOP_CHILD, f"http://127.0.0.1:{port}", str(tmp_path / "spool")],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        reported = [int(child.stdout.readline().split()[1]) for _ in range(5)]
    finally:
        child.send_signal(signal.SIGKILL)  # while it keeps writing and spooling
        child.wait(10)
    server = RecordingWriteServer(port)
    try:
        with Sink(server.url, bucket="b", spool_dir=tmp_path / "spool", backoff=FAST) as sink:
            assert sink.flush()
        got = [p.fields["seq"] for p in server.points()]
    finally:
        server.stop()
    assert got == list(range(len(got)))  # whole batches, in order, no gap, none twice
    assert len(got) >= reported[-1] and len(got) % 100 == 0
    assert sink.stats().points_written == len(got)
