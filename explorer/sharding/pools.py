"""Per-core pools of an allocator that is sharded by allocation (``explorer.sharding.allocation``).

Index i of the allocator names the entry that packets on the reading device reach with
``field = offset + stride * i``; the NIC sends such a packet to ``reta[toeplitz(key, field) & (size
- 1)]``. That core is the index's owner, and core c's allocator hands out only the indices it owns,
lowest first. So the pools follow from the key and the RETA: a new RETA (rebalancing, another core
count) gives new pools, and a NIC whose key or RETA is not the plan's gives pools that are not the
plan's, which the generated program refuses (it recomputes them at start-up with the same rule).

Other hashed fields do not move the owner: the plan's key zeroes their part of the RETA index (the
allocation's constraint), so they are hashed as zeros here, and by the C twin (``nf_pool.c``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from explorer.errors import ShardingError
from explorer.rss.toeplitz import hash_fields
from explorer.sharding.allocation import Allocation
from explorer.wire import RSS_BITS

UNEVEN = 1.01  # pools whose largest exceeds the mean by more than this are reported as uneven
_C1, _C2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class Pools:
    """The indices each core may allocate: ``sizes[c]`` of them, the owner of every index summed up
    in ``digest`` (``owner_digest``), which the generated program compares with its own."""

    allocator: str
    capacity: int
    field: str
    device: int  # the device whose steering decides (every reading device steers alike)
    offset: int
    stride: int
    sizes: tuple[int, ...]  # per core
    digest: int

    @property
    def cores(self) -> int:
        return len(self.sizes)

    @property
    def imbalance(self) -> float:
        """The largest pool over the mean (1.0: all equal)."""
        mean = sum(self.sizes) / len(self.sizes)
        return max(self.sizes) / mean if mean else 1.0

    @property
    def uneven(self) -> bool:
        return self.imbalance > UNEVEN or min(self.sizes) == 0

    def text(self) -> str:
        """``"chain: 1024 indices per core (dst_port 1024 + i on device 1)"`` or the spread."""
        low, high = min(self.sizes), max(self.sizes)
        what = f"{self.field} {_formula(self.offset, self.stride)} on device {self.device}"
        if low == high:
            return f"{self.allocator}: {low} indices per core ({what})"
        flag = "UNEVEN " if self.uneven else ""
        return (f"{self.allocator}: {flag}pools of {low} to {high} indices per core, largest/mean "
                f"{self.imbalance:.3f} ({what}; sizes {' '.join(map(str, self.sizes))})")

    def to_dict(self) -> dict[str, Any]:
        return {"allocator": self.allocator, "capacity": self.capacity, "field": self.field, "device": self.device,
                "offset": self.offset, "stride": self.stride, "sizes": list(self.sizes),
                "digest": f"{self.digest:016x}", "imbalance": round(self.imbalance, 4), "uneven": self.uneven}


def _formula(offset: int, stride: int) -> str:
    base = f"{offset} + " if offset else ""
    return f"{base}i" if stride == 1 else f"{base}{stride} * i"


def field_values(capacity: int, offset: int, stride: int, field: str) -> np.ndarray:
    """``offset + stride * i`` for every index, in the field's width."""
    i = np.arange(capacity, dtype=np.uint64)
    return (np.uint64(offset) + np.uint64(stride) * i) & np.uint64((1 << RSS_BITS[field]) - 1)


def owners(capacity: int, offset: int, stride: int, field: str, key: bytes, fields: Sequence[str],
           reta: Sequence[int]) -> np.ndarray:
    """The core of every index (uint16), for a device that hashes ``fields`` with ``key`` and
    ``reta`` (its size a power of two)."""
    values = field_values(capacity, offset, stride, field)
    if field not in fields:
        raise ShardingError(f"the device hashes {', '.join(fields) or 'nothing'}, not {field}: it cannot steer "
                            "allocated values")
    zeros = np.zeros(capacity, dtype=np.uint64)
    arrays = {name: (values if name == field else zeros) for name in fields}
    hashes = hash_fields(key, fields, arrays)
    table = np.asarray(reta, dtype=np.uint16)
    return table[(hashes & np.uint32(len(table) - 1)).astype(np.int64)]


def owner_digest(owner: np.ndarray) -> int:
    """A 64-bit summary of who owns which index: the sum (mod 2**64) over i of splitmix64's finaliser
    of ``i << 16 | owner[i]``; nf_pool.c computes the same."""
    with np.errstate(over="ignore"):
        x = (np.arange(len(owner), dtype=np.uint64) << np.uint64(16)) | owner.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * _C1
        x = (x ^ (x >> np.uint64(27))) * _C2
        x = x ^ (x >> np.uint64(31))
        return int(np.sum(x, dtype=np.uint64))


def pools_of(allocation: Allocation, plan: Any, reta: Optional[Sequence[int]] = None) -> Pools:
    """The pools under an RSS plan (``rss.key_solver.RssPlan``), or under ``reta`` instead of the
    plan's RETA (a rebalanced one)."""
    per_device = []
    for dev in allocation.devices:
        d = plan.device(dev)
        per_device.append(owners(allocation.capacity, allocation.offset, allocation.stride, allocation.field,
                                 d.key, d.fields, reta if reta is not None else d.reta))
    owner = per_device[0]
    if any(not np.array_equal(owner, other) for other in per_device[1:]):
        raise ShardingError(f"devices {', '.join(map(str, allocation.devices))} steer the values of "
                            f"{allocation.allocator} to different cores: no pool can serve both")
    sizes = np.bincount(owner, minlength=plan.cores)[:plan.cores]
    if int(sizes.sum()) != allocation.capacity:
        raise ShardingError(f"the RETA names cores beyond the plan's {plan.cores}: pools of {allocation.allocator} "
                            "would be lost")
    return Pools(allocation.allocator, allocation.capacity, allocation.field, allocation.devices[0],
                 allocation.offset, allocation.stride, tuple(int(s) for s in sizes), owner_digest(owner))


def pools_from_dict(data: dict[str, Any]) -> Pools:
    """The inverse of ``Pools.to_dict`` (generated projects keep their plan as JSON)."""
    return Pools(data["allocator"], int(data["capacity"]), data["field"], int(data["device"]), int(data["offset"]),
                 int(data["stride"]), tuple(int(s) for s in data["sizes"]), int(data["digest"], 16))


def repooled(pools: Pools, key: bytes, fields: Sequence[str], reta: Sequence[int], cores: int) -> Pools:
    """``pools`` under another RETA (or core count): every index's owner again."""
    owner = owners(pools.capacity, pools.offset, pools.stride, pools.field, key, fields, reta)
    sizes = np.bincount(owner, minlength=cores)[:cores]
    return Pools(pools.allocator, pools.capacity, pools.field, pools.device, pools.offset, pools.stride,
                 tuple(int(s) for s in sizes), owner_digest(owner))
