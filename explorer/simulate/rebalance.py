"""RETA rebalancing from measured per-bucket load (RSS++ style).

A RETA maps buckets to cores; changing it moves whole buckets, never splits one, so packets that
share a bucket still share a core and a correct sharding stays correct. Keys relate packets of
different devices through equal bucket numbers, so every device uses the same RETA and a bucket's
load is summed over devices.
"""
from __future__ import annotations

import heapq

import numpy as np


def round_robin(reta_size: int, cores: int) -> np.ndarray:
    """The default RETA: bucket i -> core i mod cores."""
    return np.arange(reta_size, dtype=np.int64) % cores


def rebalance(bucket_load: np.ndarray, cores: int) -> np.ndarray:
    """A RETA minimising the most loaded core: longest-processing-time-first greedy (heaviest bucket
    to the least loaded core), which is within 4/3 of optimal; ties broken by bucket and core number
    so the result is deterministic. Empty buckets are spread round robin for future traffic."""
    load = np.asarray(bucket_load, dtype=np.float64)
    reta = round_robin(len(load), cores)
    heap = [(0.0, core) for core in range(cores)]
    order = sorted(np.flatnonzero(load > 0), key=lambda b: (-load[b], b))
    for bucket in order:
        total, core = heapq.heappop(heap)
        reta[bucket] = core
        heapq.heappush(heap, (total + load[bucket], core))
    return reta


def per_core(bucket_load: np.ndarray, reta: np.ndarray, cores: int) -> np.ndarray:
    return np.bincount(np.asarray(reta, dtype=np.int64), weights=np.asarray(bucket_load, dtype=np.float64),
                       minlength=cores)[:cores]


def imbalance(per_core_load: np.ndarray) -> float:
    """max/mean of per-core load (1.0 is perfect; 0 traffic counts as balanced)."""
    mean = float(np.mean(per_core_load)) if len(per_core_load) else 0.0
    return float(np.max(per_core_load)) / mean if mean > 0 else 1.0
