"""A state key the simulator found split, read back as the packet fields it was made of.

The simulator keeps a key as its bytes (memory order, the first byte most significant): all that a
key table needs. A person wants the fields: ``{src_ip: 10.202.6.8, dst_port: 123}``, not
``0aca0608...``. The key term an access computes says where each packet field's bits went
(``explorer.sharding.keybits``), so each field's value is gathered back from those bits: byte order
comes out right whatever the NF did (a port copied as on the wire or converted with nf_ntohs reads
as the port), addresses read as dotted quads. Bits the NF set to a constant (padding, a protocol it
tested) are left out; a key with bits the analysis cannot trace (a hash) has no fields, only its
bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from explorer.explain import FIELD_BITS, field_name
from explorer.sharding.keybits import key_bits
from explorer.symbex.render import address

# Fields whose values people read as dotted quads or colon-separated bytes.
_ADDRESSES = frozenset({"p.ipv4.src", "p.ipv4.dst"})
_MACS = frozenset({"p.ether.src", "p.ether.dst"})


@dataclass(frozen=True)
class KeyFields:
    """A key's value as packet fields, named as the packets of ``device`` carry them."""

    fields: tuple[tuple[str, str], ...]  # (field name, value), in key order (most significant first)
    device: Optional[int] = None  # set when another device's packets build the key from other fields

    @property
    def text(self) -> str:
        """``{src_ip: 10.202.6.8, src_port: 33184}``, as ``nfx solve`` shows a key's expressions,
        and which device's packets have those fields when devices differ."""
        inner = "{" + ", ".join(f"{name}: {value}" for name, value in self.fields) + "}"
        return inner if self.device is None else f"{inner} (fields of a device {self.device} packet)"


def read_key(value: int, terms: Iterable[tuple[Any, Iterable[int]]]) -> Optional[KeyFields]:
    """``value`` (a key's bits, least significant bit 0) as the fields of the first of ``terms``
    ((key term, the devices whose packets compute it), the lowest device first) that could have
    produced it: its constant bits match and a field copied twice agrees. None when no term
    traces every bit to a packet field or a constant, or every bit is a constant."""
    named: list[tuple[int, tuple[tuple[str, str], ...]]] = []
    for term, devices in sorted(terms, key=lambda t: min(t[1], default=0)):
        fields = _fields(value, term)
        if fields:  # a constant key has no fields to show: its bytes say as much
            named.append((min(devices, default=0), fields))
    if not named:
        return None
    device, fields = named[0]
    same = all(f == fields for _, f in named)
    return KeyFields(fields, None if same else device)


def _fields(value: int, term: Any) -> Optional[tuple[tuple[str, str], ...]]:
    """The fields ``term`` copies into the key, with the values ``value`` gives them; None when
    ``term`` could not have made ``value`` or has an untraceable bit."""
    bits_of = key_bits(term)
    if value >> len(bits_of):  # set bits above the term's width: a wider term's key
        return None
    order: list[str] = []  # symbols in key order, most significant first
    gathered: dict[str, dict[int, int]] = {}  # symbol -> {its bit index: the bit}
    for position in reversed(range(len(bits_of))):
        bit, got = bits_of[position], (value >> position) & 1
        if bit.symbol is None:
            if bit.const is None or bit.const != got:
                return None
            continue
        bits = gathered.setdefault(bit.symbol, {})
        if bits.get(bit.index, got) != got:
            return None
        bits[bit.index] = got
        if bit.symbol not in order:
            order.append(bit.symbol)
    return tuple((_name(s, gathered[s]), _value(s, gathered[s])) for s in order)


def _name(symbol: str, bits: dict[int, int]) -> str:
    """``src_ip``, ``src_ip/24`` when the key keeps only its top bits, ``part of src_port`` else."""
    name = "device" if symbol == "p.device" else field_name(symbol)  # the input device, as nf_process names it
    width = FIELD_BITS.get(symbol)
    if width is None or len(bits) == width:
        return name
    top = sorted(bits, reverse=True)
    return f"{name}/{len(top)}" if top == list(range(width - 1, width - 1 - len(top), -1)) else f"part of {name}"


def _value(symbol: str, bits: dict[int, int]) -> str:
    """The field's value with the bits the key lacks as 0: an address dotted, a MAC address in
    colon-separated hex, anything else (ports, the protocol) as a number."""
    number = sum(b << i for i, b in bits.items())
    if symbol in _ADDRESSES:
        return address(number)
    if symbol in _MACS:
        return ":".join(f"{(number >> s) & 0xFF:02x}" for s in range(40, -8, -8))
    return str(number)
