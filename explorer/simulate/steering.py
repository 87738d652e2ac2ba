"""What the NIC does with each packet: Toeplitz hash over the configured fields, RETA, core.

The model follows how RSS NICs treat packet types: unfragmented IPv4 TCP/UDP is hashed on every
field the device hashes; other IPv4 packets (fragments, ICMP, ...) on what the NIC's IPv4 type
hashes of them (``NicProfile.portless_fields``: the device's L3 fields, or both addresses where an
ice or i40e port hashes ports alone); non-IPv4 frames are not hashed (hash 0, so RETA entry 0). The
replay harness and the generated DPDK code steer with the same rule, so the simulator, the replay
and the NIC agree packet by packet.

The hash is one table lookup per input byte (``explorer.rss.toeplitz.ToeplitzTable``), done by a
numba loop that reads each packet's fields once instead of one numpy pass per input byte.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from explorer.errors import TrafficError
from explorer.rss.hash_input import FIELD_BITS
from explorer.rss.key_solver import DevicePlan, RssPlan
from explorer.rss.nic import NicProfile
from explorer.rss.toeplitz import ToeplitzTable, hash_fields
from explorer.simulate.classes import steering_fields
from explorer.traffic.field_arrays import PacketFields
from explorer.wire import RSS_NAMES

_MAX_INPUT = sum(FIELD_BITS.values()) // 8  # 12 bytes: both addresses and both ports


@dataclass(frozen=True, eq=False)
class Steering:
    """Per packet: its RSS hash, RETA entry (bucket) and core."""

    hashes: np.ndarray  # uint32
    buckets: np.ndarray  # int64, index into the device's RETA
    cores: np.ndarray  # int64


def device_hashes(device: DevicePlan, fields: PacketFields, nic: NicProfile) -> np.ndarray:
    """The RSS hash ``nic`` gives every packet received on ``device`` (numpy, one pass per input
    byte: the reference the fast path is tested against)."""
    arrays = {"src_ip": fields.src_ip, "dst_ip": fields.dst_ip,
              "src_port": fields.src_port, "dst_port": fields.dst_port}
    full = hash_fields(device.key, device.fields, arrays)
    portless = nic.portless_fields(device.fields)
    if portless != device.fields:
        full = np.where(fields.is_l4, full, hash_fields(device.key, portless, arrays))
    return np.where(fields.is_ipv4, full, np.uint32(0)).astype(np.uint32)


class Hasher:
    """Per-device lookup tables for a plan. For each device and each packet type (TCP/UDP hashed on
    all its fields, other IPv4 on ``NicProfile.portless_fields``) there is one 256-entry table per byte of the full 12-byte
    input (source IP, destination IP, source port, destination port): the hashes of that byte at
    the input position where the device puts it, or zeros where the device does not hash the
    field. Every packet is then the XOR of the same 12 lookups."""

    def __init__(self, plan: RssPlan):
        devices = sorted(d.device for d in plan.devices)
        self.slot = np.full(max(devices) + 1, -1, dtype=np.int64)  # device number -> table row
        self.tables = np.zeros((len(devices), 2, _MAX_INPUT, 256), dtype=np.uint32)
        for row, number in enumerate(devices):
            self.slot[number] = row
            dp = plan.device(number)
            for kind, names in enumerate((dp.fields, plan.nic.portless_fields(dp.fields))):
                self._fill(row, kind, dp.key, names)
        self.devices = tuple(devices)

    def _fill(self, row: int, kind: int, key: bytes, names: tuple[str, ...]) -> None:
        hashed = [name for name in RSS_NAMES if name in names]
        if not hashed:
            return
        table = ToeplitzTable(key, sum(FIELD_BITS[name] for name in hashed) // 8)
        canonical, position = 0, 0
        for name in RSS_NAMES:
            width = FIELD_BITS[name] // 8
            if name in hashed:
                self.tables[row, kind, canonical:canonical + width] = table.tables[position:position + width]
                position += width
            canonical += width

    def check_devices(self, devices: np.ndarray) -> None:
        """A clear error for packets on a device the plan does not have."""
        if not len(devices):
            return
        low, high = int(devices.min()), int(devices.max())
        if low < 0:
            raise TrafficError(f"the traffic has packets on device {low}, which is not a device")
        if high < len(self.slot) and (self.slot[low:high + 1] >= 0).all():
            return  # every device in the range is the plan's (no count of packets per device needed)
        present = np.flatnonzero(np.bincount(devices)).tolist()
        bad = [d for d in present if d >= len(self.slot) or self.slot[d] < 0]
        if bad:
            raise TrafficError(f"the traffic has packets on device {bad[0]}, which the NF does not have "
                               f"(devices {', '.join(map(str, self.devices))})")

    def hashes(self, fields: PacketFields, devices: np.ndarray) -> np.ndarray:
        return self.hash_arrays(devices, fields.src_ip, fields.dst_ip, fields.src_port, fields.dst_port,
                                fields.is_ipv4, fields.is_l4)

    def class_steering(self, keys: np.ndarray, counts: np.ndarray, reta_size: int) -> ClassSteering:
        """The RETA entry of every packet class (keys as ``classes.Layout`` makes them), packets per
        entry and per device: one pass over the classes (the hash, a gather of the fields and a
        sort per device to count distinct entries took ten times as long)."""
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        n, rows = len(keys), len(self.devices)
        buckets, load = np.empty(n, dtype=np.int64), np.zeros(reta_size, dtype=np.int64)
        packets, classes = np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=np.int64)
        seen = np.zeros((rows, reta_size), dtype=np.bool_)
        if _class_kernel(self.slot, self.tables, keys, np.ascontiguousarray(counts, dtype=np.int64), buckets, load,
                         packets, classes, seen) >= 0:
            self.check_devices((keys[:, 1] & np.uint64(0xFFFF)).astype(np.int64))  # raises, naming the device
        reach = tuple((self.devices[row], int(packets[row]), int(seen[row].sum()))
                      for row in range(rows) if classes[row])
        return ClassSteering(buckets, load, reach)

    def hash_arrays(self, devices, src_ip, dst_ip, src_port, dst_port, is_ipv4, is_l4) -> np.ndarray:
        """The RSS hash per packet, from its device and fields (hashed where the flags say so)."""
        devices = np.ascontiguousarray(devices, dtype=np.int64)
        self.check_devices(devices)
        return _hash_kernel(self.slot, self.tables, devices, _c(src_ip, np.uint32), _c(dst_ip, np.uint32),
                            _c(src_port, np.uint16), _c(dst_port, np.uint16), _c(is_ipv4, np.bool_),
                            _c(is_l4, np.bool_))


def _c(values: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=dtype)


@numba.njit(cache=True, inline="always")
def _toeplitz(t, s, d, sp, dp):
    """The hash of one packet's fields from its device's 12 byte tables ``t``."""
    return (t[0, s >> 24] ^ t[1, (s >> 16) & 255] ^ t[2, (s >> 8) & 255] ^ t[3, s & 255]
            ^ t[4, d >> 24] ^ t[5, (d >> 16) & 255] ^ t[6, (d >> 8) & 255] ^ t[7, d & 255]
            ^ t[8, sp >> 8] ^ t[9, sp & 255] ^ t[10, dp >> 8] ^ t[11, dp & 255])


@numba.njit(cache=True)
def _hash_kernel(slot, tables, devices, src_ip, dst_ip, src_port, dst_port, is_ipv4, is_l4):
    out = np.zeros(len(devices), dtype=np.uint32)
    for i in range(len(devices)):
        if not is_ipv4[i]:
            continue
        out[i] = _toeplitz(tables[slot[devices[i]], 0 if is_l4[i] else 1], src_ip[i], dst_ip[i], src_port[i],
                           dst_port[i])
    return out


@dataclass(frozen=True, eq=False)
class ClassSteering:
    """Where the NIC sends packet classes, and the totals the report reads of it."""

    buckets: np.ndarray  # int64, per class: its RETA entry
    load: np.ndarray  # int64, per RETA entry: its packets (all devices)
    # per device with classes, in device order: (device, packets, distinct RETA entries they reached)
    reach: tuple[tuple[int, int, int], ...]


@numba.njit(cache=True, nogil=True)
def _class_kernel(slot, tables, keys, counts, buckets, load, packets, classes, seen):
    """``Hasher.class_steering`` in one pass over the class keys; -1, or the first class whose
    device is not the plan's."""
    mask = np.uint64(len(load) - 1)
    for r in range(len(keys)):
        s, d, sp, dp, ipv4, l4, device = steering_fields(keys[r, 0], keys[r, 1])
        if device >= len(slot) or slot[device] < 0:
            return r
        row = slot[device]
        h = np.uint64(_toeplitz(tables[row, 0 if l4 else 1], s, d, sp, dp)) if ipv4 else np.uint64(0)
        b = np.int64(h & mask)
        buckets[r] = b
        load[b] += counts[r]
        packets[row] += counts[r]
        classes[row] += 1
        seen[row, b] = True
    return -1


def steer(plan: RssPlan, fields: PacketFields, devices: np.ndarray, reta: dict[int, np.ndarray] | None = None,
          hasher: Hasher | None = None) -> Steering:
    """Hash, bucket and core of every packet, each with the plan of its input device.

    ``reta`` replaces a device's RETA (e.g. after rebalancing); buckets do not depend on it.
    ``hasher`` reuses the tables of an earlier call with the same plan."""
    devices = np.asarray(devices, dtype=np.int64)
    hashes = (hasher or Hasher(plan)).hashes(fields, devices)
    buckets = (hashes & np.uint32(plan.nic.reta_size - 1)).astype(np.int64)
    present = np.flatnonzero(np.bincount(devices)).tolist() if len(devices) else []
    tables = [np.asarray(reta[dev] if reta and dev in reta else plan.device(dev).reta, dtype=np.int64)
              for dev in present]
    if len({len(t) for t in tables}) <= 1:  # one gather through a (device, bucket) table
        row = np.zeros(present[-1] + 1 if present else 1, dtype=np.int64)
        row[present] = np.arange(len(present))
        cores = np.stack(tables)[row[devices], buckets] if present else np.zeros(0, dtype=np.int64)
    else:
        cores = np.zeros(len(devices), dtype=np.int64)
        for dev, table in zip(present, tables):
            mask = devices == dev
            cores[mask] = table[buckets[mask]]
    return Steering(hashes, buckets, cores)
