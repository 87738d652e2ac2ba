"""Sequential runs of an NF on a Trace: the verdict log, the processed frames and the state-call log.

``run_trace`` builds the NF with the sequential harness (explorer/runtime/harness.c), hands it the
trace in the binary format of docs/design.md and reads back one record per packet (and, on
request, the call log). Runts (frames shorter than an Ethernet header) never reach the NF: they are
dropped, logged as verdict -1 and counted apart.
"""
from __future__ import annotations

import hashlib
import signal
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from explorer.build import build_nf
from explorer.errors import ConfigError, RunError, TrafficError
from explorer.processes import die_with_parent, eal_prefix, run_child
from explorer.traffic.pcap import load_inputs
from explorer.traffic.trace import Trace
from explorer.wire import MAX_FRAME, MIN_FRAME  # the runtime's frame-size rule (nf.h's NF_MAX_FRAME)
from explorer.wording import captures_hold

DROP = -1
FLOOD = -2
TRACE_MAGIC = b"NFXTRACE"
_TRACE_RECORD = struct.Struct("<QHH")
_OUTPUT_RECORD = struct.Struct("<IiH")


@dataclass(frozen=True)
class PacketVerdict:
    """What happened to packet ``index`` received on ``device``: ``verdict`` is the output device,
    -1 (drop) or -2 (flood); ``digest`` the first 16 hex digits of the SHA-1 of the frame after
    processing ("" when dropped)."""

    index: int
    device: int
    verdict: int
    digest: str

    def to_dict(self) -> dict:
        return {"index": self.index, "device": self.device, "verdict": self.verdict, "digest": self.digest}


@dataclass(frozen=True)
class StateCall:
    """One line of the runtime's call log: ``<packet> <object> <call> <key> <results...>``;
    ``key`` is None where the log prints ``-``."""

    packet: int
    object: int
    call: str
    key: Optional[str]
    results: tuple[str, ...]

    @staticmethod
    def parse(line: str) -> "StateCall":
        fields = line.split(" ")
        if len(fields) < 4 or not fields[0].isdigit() or not fields[1].isdigit():
            raise RunError(f"malformed call-log line {line!r}")
        key = None if fields[3] == "-" else fields[3]
        return StateCall(int(fields[0]), int(fields[1]), fields[2], key, tuple(fields[4:]))


@dataclass(frozen=True, eq=False)
class RunResult:
    """The outcome of a sequential run: per packet in trace order, its verdict (``codes``: output
    device, DROP or FLOOD), its frame after processing (``frames``, None when dropped) and the
    device it arrived on (``inputs``). ``devices`` is the NF's NF_DEVICES and ``runts`` the indices
    of frames dropped before the NF for being shorter than 14 bytes. ``verdicts`` and ``outputs``
    are views made when asked: a checker's closed loop runs a trace a dozen times and needs neither."""

    codes: np.ndarray  # int32
    frames: tuple[Optional[bytes], ...]
    inputs: np.ndarray  # uint16
    calls: tuple[StateCall, ...] = ()
    devices: int = 2
    runts: tuple[int, ...] = ()

    @cached_property
    def verdicts(self) -> tuple[PacketVerdict, ...]:
        """One PacketVerdict per packet, with the digest of its frame after processing."""
        return tuple(PacketVerdict(index, device, verdict, "" if frame is None else digest(frame))
                     for index, (device, verdict, frame) in enumerate(zip(self.inputs.tolist(), self.codes.tolist(),
                                                                          self.frames)))

    @cached_property
    def outputs(self) -> tuple[tuple[int, int, bytes], ...]:
        """(packet index, verdict, frame after processing) of every packet not dropped, in trace order."""
        return tuple((index, verdict, frame)
                     for index, (verdict, frame) in enumerate(zip(self.codes.tolist(), self.frames)) if frame is not None)

    def emitted(self, device: int) -> list[tuple[int, bytes]]:
        """(packet index, frame) of what ``device`` sends, in order: packets forwarded to it and
        floods received on any other device."""
        return [(index, frame) for index, verdict, frame in self.outputs
                if verdict == device or (verdict == FLOOD and self.inputs[index] != device)]

    def output_frames(self, device: int) -> list[bytes]:
        """What ``device`` sends, in order (floods go to every device but the input one)."""
        return [frame for _, frame in self.emitted(device)]

    def summary(self) -> dict:
        """``{"in", "out": {"0": frames sent by device 0, ...}, "forwarded", "dropped", "flooded",
        "runts"}``; in = forwarded + dropped + flooded + runts, and "dropped" counts only the NF's
        drops."""
        runts = len(self.runts)
        verdicts = self.codes.tolist()
        return {
            "in": len(verdicts),
            "out": {str(d): len(self.emitted(d)) for d in range(self.devices)},
            "forwarded": sum(1 for v in verdicts if v >= 0),
            "dropped": verdicts.count(DROP) - runts,
            "flooded": verdicts.count(FLOOD),
            "runts": runts,
        }


def load_trace(inputs: list[str], needed_for: str = "") -> Trace:
    """``["0=lan.pcap", "1=wan.pcap"]`` -> the merged Trace. ConfigError for a bad spec or a
    device given twice, TrafficError for a missing or malformed pcap, and, when ``needed_for``
    names what the packets are for ("compare"), for captures that hold none."""
    trace = load_inputs(inputs)
    if needed_for and not len(trace):
        raise TrafficError(f"{captures_hold(inputs)} no packet: nothing to {needed_for}")
    return trace


def encode_trace(trace: Trace) -> bytes:
    """The harness's input format: "NFXTRACE", then per packet u64 ns, u16 device, u16 len, bytes."""
    parts = [TRACE_MAGIC]
    for index, (stamp, device, frame) in enumerate(zip(trace.timestamps.tolist(), trace.devices.tolist(),
                                                       trace.frames)):
        if len(frame) > MAX_FRAME:
            raise TrafficError(f"packet {index} has {len(frame)} bytes; the runtime takes frames of at "
                               f"most {MAX_FRAME} bytes (jumbo frames; the generated program drops longer ones)")
        parts.append(_TRACE_RECORD.pack(stamp, device, len(frame)))
        parts.append(frame)
    return b"".join(parts)


def digest(frame: bytes) -> str:
    return hashlib.sha1(frame).hexdigest()[:16]


def nf_devices(binary: Path) -> int:
    """NF_DEVICES as compiled into a harness binary (``--info``)."""
    done = run_child([str(binary), "--info"], timeout=60)
    key, _, value = done.stdout.strip().partition("=")
    if done.returncode != 0 or key != "NF_DEVICES" or not value.isdigit():
        raise RunError(f"{binary} --info failed: {done.stderr.strip() or done.stdout.strip()}")
    return int(value)


def _failure(nf: str, done: subprocess.CompletedProcess) -> RunError:
    """One readable RunError from a failed harness run: its own one-line message, or the
    sanitizer's report line, or the signal that killed it."""
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    for prefix in ("nfx-seq: ", "nfx runtime: "):
        for ln in lines:
            if ln.startswith(prefix):
                return RunError(f"{nf}: {ln[len(prefix):]}")
    for ln in lines:
        if "runtime error:" in ln or "ERROR: AddressSanitizer" in ln or "ERROR: LeakSanitizer" in ln:
            return RunError(f"{nf}: {ln}")
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return RunError(f"{nf}: the NF crashed ({name})" + (f": {lines[-1]}" if lines else ""))
    return RunError(f"{nf}: the harness failed (exit status {done.returncode})"
                    + (f": {lines[-1]}" if lines else ""))


def read_outputs(data: bytes, packets: int, program: str) -> tuple[np.ndarray, tuple[Optional[bytes], ...]]:
    """A run's output file: per packet in trace order a record (u32 index, i32 verdict, u16 length)
    and the frame after processing. Returns the verdicts (int32) and the frames, None where dropped.
    RunError names ``program`` ("the harness", "the replay") when the records are out of step."""
    codes: list[int] = []
    frames: list[Optional[bytes]] = []
    unpack, size, at, end = _OUTPUT_RECORD.unpack_from, _OUTPUT_RECORD.size, 0, len(data)
    for i in range(packets):
        if end - at < size:
            raise RunError(f"{program}'s output is truncated: it processed {i} of {packets} packets")
        index, verdict, length = unpack(data, at)
        at += size
        if index != i or end - at < length:
            raise RunError(f"{program}'s output is out of step at packet {i}")
        codes.append(verdict)
        frames.append(None if verdict == DROP else data[at:at + length])
        at += length
    if at != end:
        raise RunError(f"{program} wrote more records than the trace has packets")
    return np.array(codes, dtype=np.int32), tuple(frames)


def run_trace(nf: str | Path, trace: Trace, defines: Optional[Mapping[str, str]] = None,
              calls: bool = False, *, timeout: Optional[float] = None,
              sanitize: Optional[str] = None) -> RunResult:
    """Build ``nf`` (with ``defines``) and run it on ``trace``, packet by packet in trace order.

    Raises ConfigError when the trace uses a device the NF does not have, BuildError when the NF
    does not build, RunError when nf_init fails, the NF returns a device it does not have, breaks
    a contract of nf.h (a full map, ...) or crashes, or the run exceeds ``timeout`` seconds.
    ``sanitize`` ("address", "undefined", ...) builds with gcc's sanitizers; a report fails the run."""
    binary = build_nf(nf, dict(defines or {}), kind="seq", sanitize=sanitize)
    devices = nf_devices(binary)
    if len(trace):
        highest = int(trace.devices.max())
        if highest >= devices:
            raise ConfigError(f"the trace has packets on device {highest}, but {nf} has {devices} "
                              f"device{'s' if devices > 1 else ''} (0..{devices - 1})")
    encoded = encode_trace(trace)
    with tempfile.TemporaryDirectory(prefix="nfx-run-") as tmp:
        trace_path, output_path, calls_path = Path(tmp, "trace.bin"), Path(tmp, "out.bin"), Path(tmp, "calls.txt")
        trace_path.write_bytes(encoded)
        with eal_prefix("seq") as prefix:  # the harness's EAL runtime folder, removed afterwards
            argv = [str(binary), "--eal-prefix", prefix, *(["--calls", str(calls_path)] if calls else []),
                    str(trace_path), str(output_path)]
            try:
                done = run_child(argv, timeout=timeout, preexec_fn=die_with_parent)
            except subprocess.TimeoutExpired:
                raise RunError(f"{nf}: the run took longer than {timeout} s") from None
        if done.returncode != 0:
            raise _failure(str(nf), done)
        codes, frames = read_outputs(output_path.read_bytes(), len(trace), "the harness")
        call_log = ()
        if calls:
            call_log = tuple(StateCall.parse(ln) for ln in calls_path.read_text().splitlines() if ln)
    dropped = np.flatnonzero(codes == DROP).tolist()
    runts = tuple(i for i in dropped if len(trace.frames[i]) < MIN_FRAME)
    return RunResult(codes, frames, trace.devices.astype(np.uint16), call_log, devices, runts)
