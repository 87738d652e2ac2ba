"""Traffic that a plan cannot spread because a sharding key keeps only part of a field.

A key such as ``nf_ntohs(port) >> 8`` (blocks of 256 ports) or an address's /24 relates only some
bits of the field, so the RETA index may depend on those bits alone, and packets that agree on them
must share a RETA entry, hence a core, whatever the key and the RETA. Real traffic often agrees
there: the well-known ports all lie below 1024, the ephemeral ports Linux hands out between 32768
and 60999 all have the top bit set, and one capture may hold a single port block. These notes say
so, naming the object, the field and its bits, rather than leave a user to wonder why one core got
everything.

``port_range_notes`` looks at the typical port ranges (for ``solve``), ``trace_notes`` at how
many RETA entries a simulated trace's packets of each device reached (for ``simulate``), and
``portless_notes`` at frames without ports (ICMP, IPv4 fragments), which the NIC hashes on other
fields than TCP/UDP frames (``NicProfile.portless_fields``), fields the key may have had to make
irrelevant.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from explorer.rss.hash_input import FIELD_BITS, FIELD_NAMES, L4_FIELDS
from explorer.rss.key_solver import DevicePlan, RssPlan
from explorer.rss.problem import PairConstraint
from explorer.rss.quality import bit_ranges, dependence
from explorer.rss.toeplitz import hash_fields
from explorer.wording import count

# (first, end excluded, what they are): the ports that real traffic concentrates on
PORT_RANGES = ((0, 1024, "well-known services"), (32768, 61000, "Linux's ephemeral ports"))


def narrowing_objects(constraints: Iterable[PairConstraint], device: int, field: str) -> tuple[str, ...]:
    """The objects whose constraints relate some but not all bits of ``field`` on ``device``'s side:
    the keys that keep only part of it. (By the sharding stage's convention an origin starts with
    ``"<object>: "``.)"""
    width = FIELD_BITS[field]
    found = set()
    for c in constraints:
        sides = ([{a for a, _ in c.equal}] if c.dev1 == device else []) + \
                ([{b for _, b in c.equal}] if c.dev2 == device else [])
        for bits in sides:
            kept = sum(1 for name, _ in bits if name == field)
            if 0 < kept < width:
                found.add(c.origin.split(":", 1)[0])
    return tuple(sorted(found))


def partial_fields(d: DevicePlan) -> tuple[tuple[str, int], ...]:
    """The fields ``d``'s RETA index depends on only partly, with the mask of the bits it does."""
    return tuple((name, bits) for name, bits in d.depends if bits != (1 << FIELD_BITS[name]) - 1)


def _kept(constraints: tuple[PairConstraint, ...], device: int, partial: Iterable[tuple[str, int]]) -> str:
    """``"blocks keeps only dst_port bits 0-7"``, per partial field, joined."""
    parts = []
    for field, bits in partial:
        objects = narrowing_objects(constraints, device, field)
        who = (f"{', '.join(objects)} keep{'s' if len(objects) == 1 else ''}" if objects
               else "the sharding constraints keep")
        parts.append(f"{who} only {field} bits {bit_ranges(field, bits)}")
    return "; ".join(parts) + " (bit 0 the most significant)"


def port_range_notes(plan: RssPlan, constraints: Iterable[PairConstraint]) -> tuple[str, ...]:
    """Per device whose RETA index depends on nothing but some bits of one port: each typical port
    range (``PORT_RANGES``) whose ports reach fewer RETA entries than there are cores."""
    constraints = tuple(constraints)
    notes = []
    if plan.cores < 2:
        return ()
    for d in plan.devices:
        partial = partial_fields(d)
        if len(d.depends) != 1 or len(partial) != 1 or partial[0][0] not in L4_FIELDS:
            continue
        field = partial[0][0]
        for first, end, label in PORT_RANGES:
            ports = np.arange(first, end, dtype=np.uint64)
            arrays = {name: ports if name == field else np.zeros(len(ports), dtype=np.uint64) for name in FIELD_NAMES}
            entries = len(np.unique(hash_fields(d.key, d.fields, arrays) & np.uint32(len(d.reta) - 1)))
            if entries < plan.cores:
                notes.append(
                    f"device {d.device}: {_kept(constraints, d.device, partial)}, and the RETA index depends on "
                    f"nothing else: the {end - first} {field} values {first}-{end - 1} ({label}) share "
                    f"{count(entries, 'RETA entry', 'RETA entries')}, so packets with them reach at most {entries} "
                    f"of {plan.cores} cores whatever the key and RETA")
    return tuple(notes)


def portless_notes(plan: RssPlan) -> tuple[str, ...]:
    """Per device whose key makes every field the NIC hashes of frames without TCP/UDP ports
    irrelevant to the RETA index: all such frames (ICMP, IPv4 fragments) reach one core."""
    notes = []
    if plan.cores < 2:
        return ()
    for d in plan.devices:
        portless = plan.nic.portless_fields(d.fields)
        if portless and not dependence(d.key, portless, len(d.reta)):
            notes.append(f"device {d.device}: frames without TCP/UDP ports (ICMP, IPv4 fragments) all reach RETA "
                         f"entry 0, core {d.reta[0]}: {plan.nic.name} hashes only {', '.join(portless)} of them, "
                         "which the key keeps out of the RETA index for the TCP/UDP frames")
    return tuple(notes)


def trace_notes(plan: RssPlan, constraints: Iterable[PairConstraint],
                reached: Mapping[int, tuple[int, int]]) -> tuple[str, ...]:
    """Per device whose RETA index depends on only part of some field and whose packets of a trace
    (``reached[device] = (packets, distinct RETA entries)``) reached fewer RETA entries than there
    are cores: that many cores at most could get them, and which keys made it so."""
    constraints = tuple(constraints)
    notes = []
    for d in plan.devices:
        packets, entries = reached.get(d.device, (0, 0))
        partial = partial_fields(d)
        if not packets or not partial or entries >= plan.cores:
            continue
        notes.append(f"device {d.device}: its {count(packets, 'packet')} in the trace reach only "
                     f"{count(entries, 'RETA entry', 'RETA entries')}, hence at most {entries} of {plan.cores} "
                     f"cores whatever the RETA: {_kept(constraints, d.device, partial)}, the index depends on "
                     f"{d.depends_text}, and the trace varies too little there")
    return tuple(notes)
