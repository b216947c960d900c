"""Batch work over many series (training, backtests, the NAB run) on an existing engine:
Dask distributed when a scheduler address is given, local processes otherwise (``jobs``).

``fn`` must be a picklable top-level function; results come back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_many(fn: Callable[[T], R], items: Iterable[T], *, jobs: int = 1,
             scheduler: str | Any | None = None) -> list[R]:
    """``[fn(x) for x in items]``, spread over a Dask cluster (``scheduler``: an address such as
    ``tcp://host:8786`` or a ``distributed.Client``/``LocalCluster``) or over ``jobs`` local
    processes (``jobs=1`` runs in this process)."""
    work = list(items)
    if scheduler is not None:
        return _on_dask(fn, work, scheduler)
    if jobs <= 1 or len(work) <= 1:
        return [fn(x) for x in work]
    with ProcessPoolExecutor(max_workers=min(jobs, len(work)), initializer=_quiet_worker) as pool:
        return list(pool.map(fn, work))


def _on_dask(fn: Callable, work: list, scheduler) -> list:
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler.gather(scheduler.map(fn, work, pure=False))
    with Client(scheduler) as client:
        return client.gather(client.map(fn, work, pure=False))


def _quiet_worker() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
