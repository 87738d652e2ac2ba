"""What the NIC does with each packet: Toeplitz hash over the configured fields, RETA, core.

The model follows how RSS NICs treat packet types: unfragmented IPv4 TCP/UDP is hashed on every
field the device hashes; other IPv4 packets (fragments, ICMP, ...) only on its L3 fields; non-IPv4
frames are not hashed (hash 0, so RETA entry 0). The replay harness and the generated DPDK code
steer with the same rule, so the simulator, the replay and the NIC agree packet by packet.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.rss.hash_input import L3_FIELDS
from explorer.rss.key_solver import DevicePlan, RssPlan
from explorer.rss.toeplitz import hash_fields
from explorer.traffic.field_arrays import PacketFields


@dataclass(frozen=True, eq=False)
class Steering:
    """Per packet: its RSS hash, RETA entry (bucket) and core."""

    hashes: np.ndarray  # uint32
    buckets: np.ndarray  # int64, index into the device's RETA
    cores: np.ndarray  # int64


def device_hashes(device: DevicePlan, fields: PacketFields) -> np.ndarray:
    """The NIC's RSS hash of every packet received on ``device``."""
    arrays = {"src_ip": fields.src_ip, "dst_ip": fields.dst_ip,
              "src_port": fields.src_port, "dst_port": fields.dst_port}
    full = hash_fields(device.key, device.fields, arrays)
    l3 = tuple(f for f in device.fields if f in L3_FIELDS)
    if l3 != device.fields:
        full = np.where(fields.is_l4, full, hash_fields(device.key, l3, arrays))
    return np.where(fields.is_ipv4, full, np.uint32(0)).astype(np.uint32)


def steer(plan: RssPlan, fields: PacketFields, devices: np.ndarray, reta: dict[int, np.ndarray] | None = None) -> Steering:
    """Hash, bucket and core of every packet, each with the plan of its input device.

    ``reta`` replaces a device's RETA (e.g. after rebalancing); buckets do not depend on it.
    """
    n = len(fields)
    hashes = np.zeros(n, dtype=np.uint32)
    buckets = np.zeros(n, dtype=np.int64)
    cores = np.zeros(n, dtype=np.int64)
    size = plan.nic.reta_size
    for dev in np.unique(devices):
        mask = devices == dev
        dp = plan.device(int(dev))
        h = device_hashes(dp, fields.select(mask))
        b = (h & np.uint32(size - 1)).astype(np.int64)
        table = np.asarray(reta[int(dev)] if reta and int(dev) in reta else dp.reta, dtype=np.int64)
        hashes[mask], buckets[mask], cores[mask] = h, b, table[b]
    return Steering(hashes, buckets, cores)
