"""Checks on Parsl's ``ParslPoolExecutor`` over a ``HighThroughputExecutor`` on this machine."""

import json
import sys
import tempfile

from checks import run_checks
from parsl.concurrent import ParslPoolExecutor
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

if __name__ == "__main__":
    config = Config(
        executors=[
            HighThroughputExecutor(
                label="htex",
                address="127.0.0.1",
                max_workers_per_node=2,
                provider=LocalProvider(init_blocks=1, max_blocks=1),
            )
        ],
        run_dir=sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(),
    )
    with ParslPoolExecutor(config) as executor:
        print("RESULT " + json.dumps(run_checks(executor)), flush=True)
