"""The sink buffer's batching: every line once, in order, never more than batch_size per payload."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.buffer import LineBuffer, batches


@given(st.lists(st.integers(1, 25), max_size=30), st.integers(1, 20), st.integers(0, 60))
@settings(deadline=None)
def test_batches_keep_order_and_size(block_sizes, batch_size, limit):
    buf, expected, k = LineBuffer(), [], 0
    for size in block_sizes:
        lines = [f"m v={k + j}" for j in range(size)]
        k += size
        expected += lines
        if size == 1:
            buf.add_lines(lines)
        else:
            buf.add_block("\n".join(lines), size)
    first = buf.take(limit)
    assert sum(n for _, n in first) >= min(limit, len(expected))
    rest = buf.take()
    assert len(buf) == 0
    got = []
    for payload, n in batches(first + rest, batch_size):
        lines = payload.decode().split("\n")
        assert lines[-1] == "" and len(lines) - 1 == n <= batch_size
        got += lines[:-1]
    assert got == expected
