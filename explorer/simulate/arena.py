"""Large arrays of the simulator's tables, kept for reuse within a process.

The class table, the listing of classes and the report's key tables are arrays of 50-150 MB
each. A fresh one is page-faulted in before its first use, and numpy asks the kernel for huge
pages on such arrays (random probes need them: without, fw's report took 0.48 s instead of 0.35
on the development VM), which on a machine with fragmented memory means compacting it first: a
96 MB key table then took 120 ms to fill where a reused one took 13. A simulator that runs again
in the same process (the explorer's reruns, a sweep's points, a benchmark's rounds) takes its
buffers from here instead.

A buffer is free when nothing but this module refers to it: every array handed out is a view of
its buffer (numpy keeps the buffer as the view's base), so CPython's reference count tells when
the last view is gone. Buffers come in powers of two from 32 MB; before a new one is allocated,
the free ones that do not fit are let go, so the peak memory of a run never grows by what is kept.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

_SMALLEST = 1 << 25  # arrays below 32 MB come from numpy as usual (malloc reuses those itself)
_ALIGN = 64  # every array starts on a cache line
_kept: list[np.ndarray] = []  # uint8 buffers
_lock = threading.Lock()


def _free_indices() -> list[int]:
    """Kept buffers no array refers to: the list's reference and getrefcount's argument are all."""
    return [i for i in range(len(_kept)) if sys.getrefcount(_kept[i]) == 2]


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array, cache-line aligned, from a kept buffer when one is free."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < _SMALLEST:
        raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    else:
        size = 1 << (nbytes + _ALIGN - 1).bit_length()
        with _lock:
            free = _free_indices()
            fits = [i for i in free if len(_kept[i]) == size]
            if fits:
                raw = _kept[fits[0]]
            else:  # let go of the free buffers (of other sizes) first
                for i in reversed(free):
                    del _kept[i]
                raw = np.empty(size, dtype=np.uint8)
                _kept.append(raw)
    skip = -raw.ctypes.data % _ALIGN
    return raw[skip:skip + nbytes].view(dtype).reshape(shape)


def full(shape: tuple[int, ...], value, dtype) -> np.ndarray:
    out = empty(shape, dtype)
    out.fill(value)
    return out


def zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    return full(shape, 0, dtype)


def release() -> None:
    """Let go of every free buffer (the ones still in use stay until their arrays are gone)."""
    with _lock:
        for i in reversed(_free_indices()):
            del _kept[i]
