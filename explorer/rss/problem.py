"""The key problem ``explorer.sharding`` hands to ``explorer.rss`` (see docs/design.md).

``PairConstraint(dev1, dev2, equal, origin)``: for all packets p1 on dev1 and p2 on dev2 whose RSS
field bits satisfy ``p1.a == p2.b`` for every ``(a, b)`` in ``equal``, the RETA indices of their
hashes must be equal. A bit of p1 (or p2) absent from ``equal`` is unconstrained, so it must not
affect the RETA index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from explorer.errors import ConfigError
from explorer.rss.hash_input import FIELD_BITS, canonical_fields
from explorer.rss.nic import NicProfile

Bit = tuple[str, int]  # (field, i), i = 0 the field's most significant bit


def _check_bit(bit: Bit, where: str) -> None:
    name, i = bit
    if name not in FIELD_BITS or not 0 <= i < FIELD_BITS[name]:
        raise ConfigError(f"{where}: {bit!r} is not a bit of an RSS field")


@dataclass(frozen=True)
class PairConstraint:
    dev1: int
    dev2: int
    equal: tuple[tuple[Bit, Bit], ...]  # (bit of p1, bit of p2)
    origin: str  # object, paths and source locations, for explanations

    def __post_init__(self) -> None:
        for a, b in self.equal:
            _check_bit(a, self.origin)
            _check_bit(b, self.origin)

    def related_fields(self) -> tuple[tuple[str, str], ...]:
        """The (p1 field, p2 field) pairs ``equal`` relates, sorted."""
        return tuple(sorted({(a[0], b[0]) for a, b in self.equal}))

    def to_dict(self) -> dict[str, Any]:
        return {"dev1": self.dev1, "dev2": self.dev2, "origin": self.origin,
                "equal": [[list(a), list(b)] for a, b in self.equal]}


@dataclass(frozen=True, kw_only=True)
class KeyProblem:
    """Constraints between devices' keys. ``hashed[dev]`` are the fields the device hashes, in
    hash-input order (all four on NICs without field selection). Build it with keywords."""

    devices: tuple[int, ...]
    constraints: tuple[PairConstraint, ...]
    hashed: tuple[tuple[int, tuple[str, ...]], ...]
    nic: NicProfile
    cores: int
    seed: int = 0

    def __post_init__(self) -> None:
        if len(set(self.devices)) != len(self.devices) or not self.devices:
            raise ConfigError(f"a key problem needs distinct devices, got {self.devices!r}")
        if not 1 <= self.cores <= self.nic.max_cores:
            limit = (f"the {self.nic.rss_queues} queues its RSS spreads over" if self.nic.max_cores < self.nic.reta_size
                     else f"its RETA size {self.nic.reta_size}")
            raise ConfigError(f"{self.nic.name} ({self.nic.model}) takes 1 to {self.nic.max_cores} cores "
                              f"({limit}), not {self.cores}")
        hashed = dict(self.hashed)
        if sorted(hashed) != sorted(self.devices) or len(hashed) != len(self.hashed):
            raise ConfigError(f"hashed fields must name every device once: devices {self.devices!r}, "
                              f"hashed {sorted(hashed)!r}")
        for dev, fields in self.hashed:
            canonical_fields(fields)
        for c in self.constraints:
            for dev in (c.dev1, c.dev2):
                if dev not in hashed:
                    raise ConfigError(f"{c.origin}: device {dev} is not one of the problem's devices "
                                      f"{self.devices!r}")

    def fields_of(self, device: int) -> tuple[str, ...]:
        return canonical_fields(dict(self.hashed)[device])

    def to_dict(self) -> dict[str, Any]:
        return {"devices": list(self.devices), "constraints": [c.to_dict() for c in self.constraints],
                "hashed": {str(d): list(f) for d, f in self.hashed}, "nic": self.nic.name,
                "reta_size": self.nic.reta_size, "cores": self.cores, "seed": self.seed}
