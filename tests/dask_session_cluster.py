"""A LocalCluster in its own process for the test session (started by ``conftest.py``).

Prints the scheduler's address on one line, then runs until its standard input closes (the
test process exiting, even by a crash, closes it), and closes the cluster and its workers.
"""

from __future__ import annotations

import logging
import sys

import dask
from distributed import LocalCluster


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    # a worker killed mid-task (the crash tests) is tried once more elsewhere, then KilledWorker
    # one task per worker at a time, as the pool's own LocalCluster does (no prefetch)
    dask.config.set(
        {
            "distributed.scheduler.allowed-failures": 1,
            "distributed.scheduler.worker-saturation": 1.0,
        }
    )
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    ) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
