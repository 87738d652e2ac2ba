"""The packet fields RSS can hash, and where their bits sit in the Toeplitz input.

The NIC feeds the selected fields to the hash big-endian, as on the wire, always in the order
source IP, destination IP, source port, destination port; a field it does not select is left out
(not zeroed), so the next one moves up. A bit is ``(field, i)`` with ``i = 0`` the field's most
significant bit, as in ``docs/design.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from explorer.errors import ConfigError
from explorer.wire import RSS_BITS, RSS_NAMES

FIELD_NAMES: tuple[str, ...] = RSS_NAMES
FIELD_BITS: dict[str, int] = RSS_BITS
L3_FIELDS: tuple[str, ...] = ("src_ip", "dst_ip")
L4_FIELDS: tuple[str, ...] = ("src_port", "dst_port")


def canonical_fields(fields: Iterable[str]) -> tuple[str, ...]:
    """``fields`` without repeats, in hash-input order; unknown names raise ConfigError."""
    wanted = set()
    for name in fields:
        if name not in FIELD_BITS:
            raise ConfigError(f"{name!r} is not an RSS field (expected one of {', '.join(FIELD_NAMES)})")
        wanted.add(name)
    return tuple(name for name in FIELD_NAMES if name in wanted)


@dataclass(frozen=True)
class InputLayout:
    """Bit offsets of the selected fields in the hash input (offset 0 is the input's first, most
    significant bit)."""

    fields: tuple[str, ...]
    offsets: tuple[int, ...]
    bits: int

    @property
    def bytes(self) -> int:
        return self.bits // 8

    def offset(self, field: str) -> int:
        return self.offsets[self.fields.index(field)]

    def position(self, field: str, i: int) -> int:
        """The input bit that carries bit ``i`` (0 = MSB) of ``field``."""
        return self.offset(field) + i

    def field_mask(self, field: str) -> int:
        """The field's input bits as an integer whose most significant of ``bits`` bits is input bit 0."""
        width = FIELD_BITS[field]
        return ((1 << width) - 1) << (self.bits - self.offset(field) - width)


def input_layout(fields: Iterable[str]) -> InputLayout:
    """Where each selected field sits in the hash input (fields are put in hash-input order)."""
    names = canonical_fields(fields)
    offsets, at = [], 0
    for name in names:
        offsets.append(at)
        at += FIELD_BITS[name]
    return InputLayout(names, tuple(offsets), at)
