"""One trace from several pcap files, streamed: the packets every device receives, merged by
timestamp (ties by device number, then file order) as ``Trace.merge`` does, without holding more
than a few chunks of each file.

A file is read in chunks; packets are released once no file can still deliver an earlier one.
The merge orders by (timestamp, device), then file order, and a file's next packets come at or
after (its last loaded timestamp, its device): the bound is the least of those among the files
still being read, and every loaded packet up to it goes, the bound file's own included (they
precede its next ones). So every round releases that file's whole loaded chunk, and a capture
whose timestamps are all equal (a pcapng of simple packet blocks, a generator's) streams like any
other instead of being held whole. In a file whose timestamps go backwards, packets keep their
file order, each at the latest time before it, as ``Trace.merge`` has them.

Frames are held as bytes (a 1M-packet chunk of IMIX frames is ~400 MB per file), so files are read
``_READ_PACKETS`` at a time and a merged chunk is handed on at ``chunk_packets`` packets or
``_CHUNK_BYTES`` of frames, whichever comes first: memory stays bounded whatever the frame sizes.
"""
from __future__ import annotations

import dataclasses
import os
import stat
import warnings
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from explorer.errors import TrafficError
from explorer.limits import size_text
from explorer.traffic.pcap import TrafficWarning, iter_pcap
from explorer.wire import reaching_the_nf

_READ_PACKETS = 1 << 14  # packets read from a file at a time
_CHUNK_BYTES = 1 << 25  # frame bytes of a merged chunk (32 MiB)


class _File:
    def __init__(self, device: int, path: str, chunk_packets: int):
        self.device = device
        self.chunks = iter_pcap(path, chunk_packets)
        self.stamps = np.zeros(0, dtype=np.uint64)
        self.latest = np.uint64(0)
        self.frames: list[bytes] = []
        self.done = False

    def load(self) -> None:
        """Append the file's next chunk (or note that there is none). A timestamp earlier than one
        before it is raised to that one, as ``Trace.merge`` does, so the file's order is kept."""
        for stamps, frames in self.chunks:
            stamps = np.maximum.accumulate(np.concatenate([[self.latest], stamps.astype(np.uint64)]))[1:]
            self.latest = stamps[-1] if len(stamps) else self.latest
            self.stamps = np.concatenate([self.stamps, stamps])
            self.frames.extend(frames)
            return
        self.done = True

    def take(self, bound: tuple[int, int] | None) -> tuple[np.ndarray, list[bytes]]:
        """The loaded packets that come no later than ``bound`` = (timestamp, device) in the merge
        (all when None): at its timestamp too when this file's device is not after the bound's."""
        if bound is None:
            k = len(self.frames)
        else:
            stamp, device = bound
            k = int(np.searchsorted(self.stamps, np.uint64(stamp), side="right" if self.device <= device else "left"))
        stamps, frames = self.stamps[:k], self.frames[:k]
        self.stamps, self.frames = self.stamps[k:], self.frames[k:]
        return stamps, frames


def merged_pcaps(per_device: Mapping[int, str], chunk_packets: int = 1 << 20) -> Iterator[tuple[tuple[bytes, ...], np.ndarray]]:
    """``(frames, devices)`` chunks of the merged trace of ``{device: pcap path}``, in order: at
    most ``chunk_packets`` packets each, fewer where their frames reach ``_CHUNK_BYTES``. Errors (a
    missing or damaged file) are those of ``explorer.traffic.pcap.iter_pcap``."""
    frames: list[bytes] = []
    devices: list[np.ndarray] = []
    held = size = 0
    for part, on in _released(per_device, min(chunk_packets, _READ_PACKETS)):
        frames.extend(part)
        devices.append(on)
        held += len(part)
        size += sum(map(len, part))
        while held >= chunk_packets or (held and size >= _CHUNK_BYTES):
            k = min(held, chunk_packets)
            every = np.concatenate(devices)
            yield tuple(frames[:k]), every[:k]
            frames, devices, held = frames[k:], [every[k:]], held - k
            size = sum(map(len, frames))
    if held:
        yield tuple(frames), np.concatenate(devices)


def _released(per_device: Mapping[int, str], read_packets: int) -> Iterator[tuple[tuple[bytes, ...], np.ndarray]]:
    """The merged trace in the pieces that the files' loaded chunks release."""
    files = [_File(int(dev), str(path), read_packets) for dev, path in sorted(per_device.items())]
    while True:
        for f in files:
            if not f.frames and not f.done:
                f.load()
        live = [f for f in files if f.frames or not f.done]
        if not live:
            return
        pending = [f for f in live if not f.done]
        bound = min((int(f.stamps[-1]), f.device) for f in pending) if pending else None
        parts = [(f.device, *f.take(bound)) for f in live]
        stamps = np.concatenate([s for _, s, _ in parts])
        devices = np.concatenate([np.full(len(fr), dev, dtype=np.int64) for dev, _, fr in parts])
        frames = [frame for _, _, fr in parts for frame in fr]
        order = np.lexsort((np.arange(len(stamps)), devices, stamps))
        yield tuple(frames[i] for i in order.tolist()), devices[order]


def read_once(per_device: Mapping[int, str]) -> list[str]:
    """The captures of ``{device: path}`` that give their bytes once (pipes), as ``DEV=PATH``."""
    return [f"{dev}={path}" for dev, path in sorted(per_device.items()) if not _rereadable(str(path))]


class Replayed:
    """The chunks of a trace that a capture given as a pipe makes readable once, for a simulation
    that goes over the trace twice (``--rebalance`` on an NF that allocates per core simulates it
    again under the new RETA): the first pass keeps each chunk as it goes by (header fields, about
    40 bytes a packet, not the frames) and the second replays them. Kept chunks beyond ``budget``
    bytes are refused while read, naming the pipes: the trace has to be read again from a file."""

    def __init__(self, make: Callable[[], Iterable[tuple[Any, np.ndarray]]], pipes: list[str], budget: int):
        self.make, self.pipes, self.budget = make, pipes, budget
        self.kept: list[tuple[Any, np.ndarray]] | None = None

    def __call__(self) -> Iterator[tuple[Any, np.ndarray]]:
        if self.kept is not None:
            return iter(self.kept)
        self.kept = []
        return self._first()

    def _first(self) -> Iterator[tuple[Any, np.ndarray]]:
        size = packets = 0
        for fields, devices in self.make():
            size += devices.nbytes + sum(getattr(fields, f.name).nbytes for f in dataclasses.fields(fields))
            packets += len(devices)
            if size > self.budget:
                many = len(self.pipes) > 1
                raise TrafficError(
                    f"{', '.join(self.pipes)}: {'these are pipes' if many else 'a pipe'}, read once, and --rebalance "
                    f"on an NF that allocates per core simulates the trace twice; its header fields, kept for the "
                    f"second pass, would need more than {size_text(self.budget)} after {packets} packets (half of "
                    f"the memory available); save the capture{'s' if many else ''} to a file and give that, or "
                    f"simulate without --rebalance")
            self.kept.append((fields, devices))
            yield fields, devices


def _rereadable(path: str) -> bool:
    """Whether ``path`` gives the same bytes when read again: a regular file, not a pipe."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # gone since: the merge would fail, and the examples keep their numbers


def frames_at(per_device: Mapping[int, str], numbers: Iterable[int],
              chunk_packets: int = _READ_PACKETS) -> dict[int, tuple[int, int]]:
    """``{number: (device, frame)}`` for the packets numbered ``numbers`` of the merged trace of
    ``{device: pcap path}`` as the simulator numbers them (from 0, runts left out: they never reach
    the NF), with ``frame`` the packet's number in its device's capture (from 1, as Wireshark
    counts, runts included): how a person finds a simulator's example packet.

    A streamed simulation keeps no per-packet device or frame (its memory follows flows, not
    packets), so the few packets its examples name are found afterwards: the files are merged
    again, only as far as the last of ``numbers``, without decoding any header. What the files
    hold that nfx warns about was said on the first reading, and is not said again. The merge
    order does not depend on the chunk size; small chunks stop the reading soon after the last
    number (examples are the earliest splits, usually early in the trace).

    A capture given as a pipe (``--in 0=<(zcat lan.pcap.gz)``) was used up by the simulation and
    cannot be merged again: then no packet is found, and examples keep their packet numbers."""
    wanted = sorted({int(n) for n in numbers})
    out: dict[int, tuple[int, int]] = {}
    if not wanted or not all(_rereadable(path) for path in per_device.values()):
        return out
    before: dict[int, int] = {}  # per device, its frames in the chunks already passed
    start = 0  # the simulator's number of the chunk's first packet that reaches the NF
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrafficWarning)
        chunks = merged_pcaps(per_device, chunk_packets)
        try:
            for frames, devices in chunks:
                numbered = np.flatnonzero(reaching_the_nf(frames))  # chunk positions of numbered packets
                for number in wanted:
                    if start <= number < start + len(numbered):
                        at = int(numbered[number - start])
                        device = int(devices[at])
                        out[number] = (device, before.get(device, 0) + int(np.count_nonzero(devices[:at + 1] == device)))
                for device, count in zip(*np.unique(devices, return_counts=True)):
                    before[int(device)] = before.get(int(device), 0) + int(count)
                start += len(numbered)
                if start > wanted[-1]:
                    break
        finally:
            chunks.close()  # the files stay open until their readers are closed
    return out
