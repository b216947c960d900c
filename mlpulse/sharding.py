"""Spread scheduled per-series work (detector scoring, rule evaluation) over several workers.

Each worker owns the series whose stable hash ranks it first: rendezvous (highest random weight)
hashing. Every worker computes the same owner for a series from the same worker list, with no
coordination and no shared job store (APScheduler 3 job stores must not be shared between
processes), and when a worker joins, only the series it now wins move, all to it; when one
leaves, only its series move.

The series identity is the measurement and its sorted tags (:meth:`tsdb.point.Point.series_key`),
hashed with BLAKE2b, so owners are the same on every machine, Python version and run (Python's
own ``hash()`` is salted per process and must not be used for this)::

    workers = ["worker-0", "worker-1", "worker-2"]
    mine = owned(all_series, "worker-1", workers)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

SeriesKey = str | tuple[str, tuple[tuple[str, str], ...]] | tuple[str, Mapping[str, str]]
_MASK = (1 << 64) - 1


def _canonical(key: SeriesKey) -> bytes:
    """Bytes naming a series: length-prefixed measurement and sorted tag pairs (no ambiguity)."""
    if isinstance(key, str):
        parts = [key]
    else:
        measurement, tags = key
        items = sorted(tags.items()) if isinstance(tags, Mapping) else sorted(tags)
        parts = [measurement, *(s for kv in items for s in kv)]
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def series_hash(key: SeriesKey) -> int:
    """The stable 64-bit hash of a series identity (BLAKE2b)."""
    return int.from_bytes(hashlib.blake2b(_canonical(key), digest_size=8).digest(), "big")


def worker_seed(worker: str) -> int:
    """The stable 64-bit seed of a worker id."""
    return int.from_bytes(
        hashlib.blake2b(worker.encode("utf-8"), digest_size=8, person=b"mlpulse-w").digest(), "big"
    )


def _checked(workers: Sequence[str]) -> list[tuple[int, str]]:
    if not workers:
        raise ValueError("no workers: at least one worker id is needed")
    if len(set(workers)) != len(workers):
        raise ValueError(f"duplicate worker ids in {list(workers)}")
    return [(worker_seed(w), w) for w in workers]


def _owner_of(h: int, seeded: list[tuple[int, str]]) -> str:
    """The worker with the highest weight: SplitMix64's finalizer (a bijective 64-bit mix) of
    ``h ^ seed``, inlined because this loop is the shard function's whole cost. Ties,
    astronomically rare, go to the larger id."""
    best, owner_id = -1, ""
    for seed, worker in seeded:
        x = h ^ seed
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
        x ^= x >> 31
        if x > best or (x == best and worker > owner_id):
            best, owner_id = x, worker
    return owner_id


def owner(series_key: SeriesKey, workers: Sequence[str]) -> str:
    """The worker that owns ``series_key`` (independent of the order of ``workers``)."""
    return _owner_of(series_hash(series_key), _checked(workers))


def owned(series_keys: Iterable[SeriesKey], worker: str, workers: Sequence[str]) -> list[SeriesKey]:
    """The series of ``series_keys`` that ``worker`` owns, in input order."""
    seeded = _checked(workers)
    if worker not in workers:
        raise ValueError(f"worker {worker!r} is not one of {list(workers)}")
    return [k for k in series_keys if _owner_of(series_hash(k), seeded) == worker]


def assignment(series_keys: Iterable[SeriesKey], workers: Sequence[str]) -> dict[str, list[SeriesKey]]:
    """Every worker's series (workers that own none map to an empty list)."""
    seeded = _checked(workers)
    out: dict[str, list[SeriesKey]] = {w: [] for w in workers}
    for k in series_keys:
        out[_owner_of(series_hash(k), seeded)].append(k)
    return out
