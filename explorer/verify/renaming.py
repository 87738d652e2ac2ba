"""Renaming: the one difference shared-nothing may make to a forwarded frame.

A header field written from an allocated index of a divided object (a NAT's external port
NAT_START_PORT + index) comes from a per-core index range, so the parallel build may write another
value than the sequential NF. Such a frame is still right when it equals the sequential one with
those fields replaced and the checksums recomputed as nf_update_checksums does, and when the
renaming is consistent: every flow (input device and 5-tuple) keeps one pair (sequential value,
parallel value), a sequential value never maps to two parallel values, and on one core a parallel
value never stands for two sequential values. Any such bijection is accepted (per-core pools of
any shape, not only ranges).

The bijection holds among live entries: an entry that expires frees its index, and each build hands
it to a later flow in its own order (the sequential NF's lowest free index is not the core's). A
packet at which the sequential run allocated a new index (``fresh``) therefore starts a new binding
for its flow and ends the bindings that held either of its values; a packet whose flow the
sequential run still holds must keep its flow's binding, and neither of its values may be held by
another live flow.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import z3

from explorer.ir import result_parts
from explorer.symbex.bitvec import symbols_of
from explorer.traffic.replies import l4_start
from explorer.wire import FIELD_BY_NAME, L4_REGIONS, PROTO_TCP, PROTO_UDP, frame_offset


# ---- frames -------------------------------------------------------------------------------------

def _span(name: str, frame: bytes) -> Optional[tuple[int, int]]:
    field = FIELD_BY_NAME.get(name)
    if field is None:
        return None
    start = frame_offset(field, l4_start(frame) if field.region in L4_REGIONS else None)
    return None if start is None else (start, field.size)


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _sum16(data: bytes | bytearray) -> int:
    """The sum of the big-endian 16-bit words of ``data`` (a last odd byte padded with zero)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    return int(np.frombuffer(bytes(data), dtype=">u2").sum(dtype=np.uint64))


def update_checksums(frame: bytes) -> bytes:
    """The frame with its IPv4 and TCP/UDP checksums recomputed as nf_update_checksums does."""
    out = bytearray(frame)
    if len(out) < 34 or out[12:14] != b"\x08\x00" or out[14] >> 4 != 4 or out[14] & 15 < 5 or \
            len(out) < 14 + 4 * (out[14] & 15):
        return bytes(out)
    ip_len = 4 * (out[14] & 15)
    out[24:26] = b"\0\0"
    out[24:26] = _fold(_sum16(out[14:14 + ip_len])).to_bytes(2, "big")
    l4 = l4_start(bytes(out))
    total = int.from_bytes(out[16:18], "big")
    if l4 is None or total < ip_len:
        return bytes(out)
    l4_len = total - ip_len
    if l4 + l4_len > len(out):
        return bytes(out)
    proto = out[23]
    if proto == PROTO_TCP:
        if l4_len < 20:
            return bytes(out)
        at = l4 + 16
    else:
        if l4_len < 8 or out[l4 + 6:l4 + 8] == b"\0\0":
            return bytes(out)
        at = l4 + 6
    out[at:at + 2] = b"\0\0"
    pseudo = _sum16(out[26:34]) + proto + l4_len
    checksum = _fold(_sum16(out[l4:l4 + l4_len]) + pseudo)
    if checksum == 0 and proto == PROTO_UDP:
        checksum = 0xFFFF
    out[at:at + 2] = checksum.to_bytes(2, "big")
    return bytes(out)


def flow_key(device: int, frame: bytes) -> tuple:
    l4 = l4_start(frame)
    if l4 is None:
        return (device, frame[26:34] if len(frame) >= 34 else frame)
    return (device, frame[26:34], frame[23], frame[l4:l4 + 4])


# ---- renaming ------------------------------------------------------------------------------

def renamable_fields(solution: Any, plan: Any) -> frozenset[str]:
    """Header fields some path writes with a value that depends on an allocated index of a divided
    object: a dchain's index or a map's value (``<object>.index#n``, ``<object>.value#n``)."""
    divided = {o.name for o in plan.objects if o.per_core != o.capacity and o.kind in ("dchain", "map")}
    fields: set[str] = set()
    for path in solution.analysis.paths:
        for write in path.writes:
            if write.value is not None and _mentions_index(write.value, divided):
                fields.add(write.field)
    return frozenset(fields)


def _mentions_index(term: z3.ExprRef, objects: set[str]) -> bool:
    """Whether ``term`` uses an index or value returned by one of ``objects`` (``chain.index#3``)."""
    for name in symbols_of(term):
        obj, what = result_parts(name)
        if obj in objects and what in ("index", "value"):
            return True
    return False


class Renaming:
    """Checks that index-derived values are renamed consistently (see the module docstring)."""

    def __init__(self) -> None:
        self.by_flow: dict[tuple, tuple] = {}  # flow -> (names, seq, core, par): its live binding
        self.seq_owner: dict[tuple, tuple] = {}  # (names, seq) -> the flow holding it
        self.par_owner: dict[tuple, tuple] = {}  # (names, core, par) -> the flow holding it

    def accept(self, flow: tuple, core: int, names: tuple[str, ...], seq: tuple, par: tuple,
               fresh: bool = False) -> Optional[str]:
        """None when the pair is consistent, else why not. ``fresh``: the sequential run allocated
        a new index at this packet, so earlier holders of these values have expired."""
        binding = (names, seq, core, par)
        known = self.by_flow.get(flow)
        if fresh:
            for holder in {flow, self.seq_owner.get((names, seq)), self.par_owner.get((names, core, par))}:
                if holder is not None and holder in self.by_flow:
                    self._end(holder)
        elif known is not None and known != binding:
            if known[1] == seq or known[3] == par:
                return (f"the flow's renamed {', '.join(names)} changed on one side only "
                        f"({(known[1], known[3])} then {(seq, par)})")
        holder = self.seq_owner.get((names, seq))
        if holder is not None and holder != flow:
            return f"sequential {', '.join(names)} {seq} became both {self.by_flow[holder][3]} and {par}"
        holder = self.par_owner.get((names, core, par))
        if holder is not None and holder != flow:
            return (f"on core {core}, parallel {', '.join(names)} {par} stands for both "
                    f"{self.by_flow[holder][1]} and {seq}")
        self.by_flow[flow] = binding
        self.seq_owner[(names, seq)] = flow
        self.par_owner[(names, core, par)] = flow
        return None

    def _end(self, flow: tuple) -> None:
        names, seq, core, par = self.by_flow.pop(flow)
        if self.seq_owner.get((names, seq)) == flow:
            del self.seq_owner[(names, seq)]
        if self.par_owner.get((names, core, par)) == flow:
            del self.par_owner[(names, core, par)]


def renamed_equal(seq: bytes, par: bytes, fields: frozenset[str]) -> Optional[tuple[tuple[str, ...], tuple, tuple]]:
    """When ``par`` is ``seq`` with some renamable fields replaced and checksums recomputed: the
    fields and their values on each side; else None."""
    if len(seq) != len(par) or not fields:
        return None
    spans = [(name, _span(name, seq)) for name in sorted(fields)]
    spans = [(name, span) for name, span in spans if span is not None and span[0] + span[1] <= len(seq)]
    patched = bytearray(seq)
    for _, (at, size) in spans:
        patched[at:at + size] = par[at:at + size]
    # Checksums as the sequential frame has them: recomputed when its own were (nf_update_checksums
    # after the rewrite), else left as they are.
    recomputed = update_checksums(seq) == seq
    if (update_checksums(bytes(patched)) if recomputed else bytes(patched)) != par:
        return None
    changed = tuple((name, span) for name, span in spans if seq[span[0]:span[0] + span[1]] != par[span[0]:span[0] + span[1]])
    if not changed:
        return None
    return (tuple(n for n, _ in changed), tuple(seq[a:a + s].hex() for _, (a, s) in changed),
            tuple(par[a:a + s].hex() for _, (a, s) in changed))
