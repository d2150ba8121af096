"""Executors for walkers and oracle calls: local processes, or a Dask distributed cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

from hal.ace.kernels import set_threads


@contextlib.contextmanager
def make_executor(workers: int = 1, scheduler: str | None = None) -> Iterator[Executor | None]:
    """A ``dask.distributed`` executor when ``scheduler`` (an address, or "local" for a
    ``LocalCluster`` of ``workers`` processes) is given; else a process pool of ``workers``;
    ``None`` (everything in this process, its evaluations on every core) for one worker. Pool and
    cluster workers evaluate on one thread each: the pool is their parallelism."""
    if scheduler:
        from distributed import Client, LocalCluster

        if scheduler == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
            with cluster, Client(cluster) as c:
                c.run(set_threads, 1)
                yield c.get_executor()
        else:
            with Client(scheduler) as c:
                c.run(set_threads, 1)
                yield c.get_executor()
    elif workers > 1:
        with ProcessPoolExecutor(workers, initializer=set_threads, initargs=(1,)) as pool:
            yield pool
    else:
        yield None
