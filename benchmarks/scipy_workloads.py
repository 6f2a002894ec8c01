"""Task functions that use numpy and scipy, as scientific users' tasks do (issue 13).

Imported by the workers that run them, so importing scipy here is part of what a worker
that starts from scratch pays.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

_KERNEL = np.ones(8) / 8


def sig_task(i: int) -> float:
    """A small scipy.signal computation: the cost is in the imports, not the work."""
    x = np.arange(256, dtype=float) + i
    return float(scipy.signal.convolve(x, _KERNEL, mode="valid").sum())


def sig_expected(items: range) -> list[float]:
    return [sig_task(i) for i in items]
