"""Executors for walkers and oracle calls: local processes, or a Dask distributed cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor


@contextlib.contextmanager
def make_executor(workers: int = 1, scheduler: str | None = None) -> Iterator[Executor | None]:
    """A ``dask.distributed`` executor when ``scheduler`` (an address, or "local" for a
    ``LocalCluster`` of ``workers`` processes) is given; else a process pool of ``workers``;
    ``None`` (everything in this process) for one worker."""
    if scheduler:
        from distributed import Client, LocalCluster

        if scheduler == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
            with cluster, Client(cluster) as c:
                yield c.get_executor()
        else:
            with Client(scheduler) as c:
                yield c.get_executor()
    elif workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            yield pool
    else:
        yield None
