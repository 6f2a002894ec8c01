"""Run under ``mpiexec -n 3 python -m mpi4py.futures mpi_map.py``: checks on MPIPoolExecutor."""

import json

from checks import run_checks
from mpi4py.futures import MPIPoolExecutor

if __name__ == "__main__":
    with MPIPoolExecutor() as executor:
        print("RESULT " + json.dumps(run_checks(executor)), flush=True)
