"""The hash of the simulator's numba tables (classes, key tables, pool tables): splitmix64's
finaliser, folded over a row's 64-bit words from a fixed seed."""
from __future__ import annotations

import numba
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # the seed a row's hash starts from
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


@numba.njit(cache=True, inline="always")
def mix(x):
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit value."""
    x = (x ^ (x >> _S30)) * _C1
    x = (x ^ (x >> _S27)) * _C2
    return x ^ (x >> _S31)
