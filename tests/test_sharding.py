"""The shard function: every series has exactly one owner, and membership changes move little."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpulse.sharding import assignment, owned, owner, series_hash
from tsdb.point import Point

tag_sets = st.dictionaries(
    st.sampled_from(["host", "gpu", "model", "run"]), st.text(min_size=1, max_size=6), max_size=3
)
series = st.tuples(st.sampled_from(["cpu", "train", "inference", "nvidia_smi"]), tag_sets).map(
    lambda mt: (mt[0], tuple(sorted(mt[1].items())))
)
worker_ids = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=8, unique=True)


@given(keys=st.lists(series, max_size=60), workers=worker_ids)
def test_every_series_is_owned_by_exactly_one_worker(keys, workers):
    shares = [owned(keys, w, workers) for w in workers]
    assert sorted(k for share in shares for k in share) == sorted(keys)
    for k in keys:
        holders = [w for w, share in zip(workers, shares) if k in share]
        assert holders == [owner(k, workers)]


@given(keys=st.lists(series, max_size=60), workers=worker_ids, data=st.data())
def test_owner_does_not_depend_on_worker_order(keys, workers, data):
    shuffled = data.draw(st.permutations(workers))
    assert [owner(k, workers) for k in keys] == [owner(k, shuffled) for k in keys]


@given(keys=st.lists(series, max_size=60), workers=worker_ids, new=st.text(min_size=1, max_size=8))
def test_adding_a_worker_moves_series_only_to_it(keys, workers, new):
    if new in workers:
        return
    before = {k: owner(k, workers) for k in keys}
    after = {k: owner(k, [*workers, new]) for k in keys}
    assert all(after[k] in (before[k], new) for k in keys)


@given(keys=st.lists(series, max_size=60), workers=worker_ids.filter(lambda w: len(w) > 1), data=st.data())
def test_removing_a_worker_moves_only_its_series(keys, workers, data):
    gone = data.draw(st.sampled_from(workers))
    rest = [w for w in workers if w != gone]
    for k in keys:
        if owner(k, workers) != gone:
            assert owner(k, rest) == owner(k, workers)


@pytest.mark.parametrize("n", [1, 3, 7, 15])
def test_adding_a_worker_moves_about_its_share(n):
    keys = [("train", (("run", f"r{i}"), ("host", f"h{i % 17}"))) for i in range(12_000)]
    workers = [f"worker-{i}" for i in range(n)]
    before = assignment(keys, workers)
    after = assignment(keys, [*workers, "worker-new"])
    moved = len(after["worker-new"])
    share = len(keys) / (n + 1)
    assert 0.9 * share < moved < 1.1 * share
    assert sum(len(v) for v in after.values()) == len(keys)
    for w in workers:
        assert set(after[w]) <= set(before[w])
    sizes = [len(v) for v in before.values()]
    assert max(sizes) < 1.1 * len(keys) / n  # balanced


def test_the_hash_is_stable_across_processes_and_versions():
    # golden values: changing them reassigns every series of every running deployment
    assert series_hash(("cpu", (("host", "a"),))) == series_hash(("cpu", {"host": "a"}))
    assert series_hash(Point("cpu", {"host": "a"}, {"v": 1.0}).series_key()) == series_hash(
        ("cpu", {"host": "a"})
    )
    assert series_hash(("cpu", (("host", "a"),))) == 0xFF371CD3501CA374
    got = [owner(("train", (("run", f"r{i}"),)), ["w0", "w1", "w2"]) for i in range(8)]
    assert got == ["w2", "w0", "w1", "w2", "w1", "w2", "w2", "w1"]
    assert series_hash("a|b") != series_hash(("a", {"b": ""}))
    assert series_hash(("ab", {})) != series_hash(("a", {"b": ""}))


def test_bad_worker_lists_are_refused():
    with pytest.raises(ValueError, match="no workers"):
        owner("s", [])
    with pytest.raises(ValueError, match="duplicate"):
        owner("s", ["a", "a"])
    with pytest.raises(ValueError, match="not one of"):
        owned(["s"], "c", ["a", "b"])
