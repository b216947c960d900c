"""The sink's disk spool: order, acknowledgement, crash recovery, corruption and size limits."""

from __future__ import annotations

from collections import deque

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from collector.spool import HEADER, DiskSpool, MemorySpool


def drain(spool) -> list[bytes]:
    out = []
    while (rec := spool.peek()) is not None:
        out.append(rec.payload)
        spool.ack(rec)
    return out


def segments(path):
    return sorted(p for p in path.iterdir() if p.suffix == ".spool")


def test_replays_in_order_after_reopen(tmp_path):
    sp = DiskSpool(tmp_path, segment_bytes=200)
    for i in range(20):
        sp.append(f"m v={i} {i}\n".encode(), 1)
    first = sp.peek()
    sp.ack(first)
    sp.close()
    again = DiskSpool(tmp_path)
    assert again.stats().points == 19
    assert drain(again) == [f"m v={i} {i}\n".encode() for i in range(1, 20)]
    assert again.stats().records == 0
    again.close()
    assert DiskSpool(tmp_path).peek() is None


def test_acknowledged_segments_are_deleted(tmp_path):
    sp = DiskSpool(tmp_path, segment_bytes=64)
    for i in range(10):
        sp.append(b"x" * 40, 1)
    assert len(segments(tmp_path)) == 10
    drain(sp)
    assert len(segments(tmp_path)) <= 1  # only the segment still open for writing


def test_truncated_tail_is_skipped_and_counted(tmp_path):
    sp = DiskSpool(tmp_path)
    for i in range(5):
        sp.append(f"m v={i} {i}\n".encode(), 1)
    sp.close()
    seg = segments(tmp_path)[0]
    data = seg.read_bytes()
    seg.write_bytes(data[:-3])  # a crash in the middle of the last write
    again = DiskSpool(tmp_path)
    st_ = again.stats()
    assert (st_.corrupt_records, st_.corrupt_bytes) == (1, len(data) - 3 - 4 * (HEADER.size + len(b"m v=0 0\n")))
    assert drain(again) == [f"m v={i} {i}\n".encode() for i in range(4)]
    again.append(b"m v=9 9\n", 1)  # a new segment: the torn one is never appended to
    assert drain(again) == [b"m v=9 9\n"]


def test_flipped_byte_fails_the_checksum(tmp_path):
    sp = DiskSpool(tmp_path)
    sp.append(b"m v=1 1\n", 1)
    sp.append(b"m v=2 2\n", 1)
    sp.close()
    seg = segments(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0x01
    seg.write_bytes(bytes(data))
    again = DiskSpool(tmp_path)
    assert again.stats().corrupt_records == 1
    assert drain(again) == [b"m v=1 1\n"]


def test_full_spool_drops_oldest_segments_and_counts_points(tmp_path):
    sp = DiskSpool(tmp_path, max_bytes=1000, segment_bytes=300)
    for i in range(30):
        sp.append(b"%03d" % i + b"y" * 50, 3)
    st_ = sp.stats()
    assert st_.bytes <= 1000
    assert st_.dropped_points + st_.points == 90
    assert st_.dropped_points > 0
    kept = drain(sp)
    assert kept == [b"%03d" % i + b"y" * 50 for i in range(30 - len(kept), 30)]  # newest kept, in order


def test_memory_spool_drops_oldest_first():
    sp = MemorySpool(max_bytes=100)
    for i in range(10):
        sp.append(bytes([i]) * 30, 2)
    st_ = sp.stats()
    assert st_.dropped_points == 14 and st_.points == 6
    assert drain(sp) == [bytes([i]) * 30 for i in (7, 8, 9)]


class SpoolMachine(RuleBasedStateMachine):
    """A disk spool behaves like a FIFO across appends, acks and reopen (crash) cycles."""

    def __init__(self):
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.spool = DiskSpool(self.tmp.name, segment_bytes=120)
        self.model: deque[bytes] = deque()
        self.n = 0

    @rule(size=st.integers(1, 60))
    def append(self, size):
        payload = (b"%d:" % self.n) + b"z" * size
        self.n += 1
        self.spool.append(payload, 1)
        self.model.append(payload)

    @precondition(lambda self: self.model)
    @rule()
    def ack(self):
        rec = self.spool.peek()
        assert rec.payload == self.model.popleft()
        self.spool.ack(rec)

    @rule()
    def reopen(self):
        self.spool.close()
        self.spool = DiskSpool(self.tmp.name, segment_bytes=120)

    @invariant()
    def same_front_and_size(self):
        rec = self.spool.peek()
        assert (rec.payload if rec else None) == (self.model[0] if self.model else None)
        assert len(self.spool) == len(self.model)

    def teardown(self):
        self.spool.close()
        self.tmp.cleanup()


TestSpoolMachine = SpoolMachine.TestCase
TestSpoolMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_a_second_live_sink_cannot_share_the_spool(tmp_path):
    import pytest

    from collector.spool import SpoolInUse

    first = DiskSpool(tmp_path)
    with pytest.raises(SpoolInUse, match=f"in use by pid {__import__('os').getpid()}"):
        DiskSpool(tmp_path)
    first.close()
    DiskSpool(tmp_path).close()
