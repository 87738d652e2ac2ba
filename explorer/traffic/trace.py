"""A trace: the packets every device receives, merged into one timeline.

A trace is one pcap per input device; packets from all devices are merged by timestamp (ties by
device number, then by order in the file), and the timestamp in nanoseconds is the NF's ``now``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trace:
    """Packets in processing order: ``timestamps[i]`` (ns), ``devices[i]`` and raw ``frames[i]``."""

    timestamps: np.ndarray  # uint64, non-decreasing
    devices: np.ndarray  # uint16
    frames: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not (len(self.timestamps) == len(self.devices) == len(self.frames)):
            raise ValueError("timestamps, devices and frames differ in length")

    def __len__(self) -> int:
        return len(self.frames)

    @staticmethod
    def merge(per_device: dict[int, tuple[np.ndarray, tuple[bytes, ...]]]) -> "Trace":
        """Merge ``{device: (timestamps, frames)}`` by timestamp, ties by device, then file order.
        Each device's packets keep their order: a timestamp earlier than one before it in its file
        is raised to that one (never re-sorted; the pcap reader warns about it)."""
        stamps, devs, frames = [], [], []
        for dev in sorted(per_device):
            ts, fr = per_device[dev]
            ts = np.asarray(ts, dtype=np.uint64)
            stamps.append(np.maximum.accumulate(ts) if len(ts) else ts)
            devs.append(np.full(len(fr), dev, dtype=np.uint16))
            frames.extend(fr)
        if not frames:
            return Trace(np.zeros(0, np.uint64), np.zeros(0, np.uint16), ())
        ts_all = np.concatenate(stamps)
        dev_all = np.concatenate(devs)
        order = np.lexsort((np.arange(len(ts_all)), dev_all, ts_all))  # last key is primary
        return Trace(ts_all[order], dev_all[order], tuple(frames[i] for i in order))

    def for_device(self, device: int) -> "Trace":
        mask = self.devices == device
        idx = np.flatnonzero(mask)
        return Trace(self.timestamps[idx], self.devices[idx], tuple(self.frames[i] for i in idx))
