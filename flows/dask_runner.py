"""Dask task runners for flows whose tasks should run in other processes or machines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def dask_task_runner(workers: int = 2, dask_address: str | None = None) -> Any:
    """A `prefect_dask.DaskTaskRunner`: the cluster at `dask_address`, else a local cluster of
    `workers` single-threaded processes (torch's RNG and thread pool are per process).

    Each worker's BLAS/OpenMP pool is one thread too: torch would otherwise start one thread per
    core in every worker, and two workers on two cores would fight over them.
    """
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        }
    )


@contextmanager
def one_prefect_server() -> Iterator[None]:
    """Make Dask workers report to this process's Prefect server.

    Workers inherit the environment, not Prefect's in-process settings: without an API URL each
    worker would start a temporary server of its own and its task runs would be lost to the
    flow's. So the URL (of the temporary server, when none is configured) goes into the env.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the one temporary server of this process
        server.start()
        url = server.api_url
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
