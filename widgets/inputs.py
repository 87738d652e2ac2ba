"""What a result was computed for: the NF, its defines and the solver's settings. Every result the
explorer shows carries the ``Inputs`` that produced it, so that a view can say what it is for and
the app can tell (and say) when the controls no longer match it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


def plural(count: int, word: str) -> str:
    """``1 core``, ``16 cores``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _frozen_overrides(overrides: Mapping[str, Any]) -> tuple:
    """Overrides as a sorted tuple: fields per device, or a decision ("lock")."""
    return tuple(sorted((name, value if isinstance(value, str) else
                         tuple(sorted((int(d), tuple(f)) for d, f in value.items())))
                        for name, value in overrides.items()))


@dataclass(frozen=True)
class Inputs:
    """The controls' values that a solution depends on."""

    nf: str
    defines: tuple[tuple[str, str], ...] = ()
    nic: str = "e810"
    cores: int = 16
    seed: int = 0
    strategy: str = "auto"
    overrides: tuple = field(default=())

    @staticmethod
    def of(nf: str, defines: Mapping[str, str], nic: str, cores: int, seed: int, strategy: str,
           overrides: Mapping[str, Mapping[int, Any]]) -> "Inputs":
        return Inputs(nf, tuple(sorted(defines.items())), nic, int(cores), int(seed), strategy,
                      _frozen_overrides(overrides))

    def label(self) -> str:
        """``fw.c, e810, 16 cores, seed 0`` (plus the strategy, defines and overrides when set)."""
        parts = [Path(self.nf).name or "no NF", self.nic, plural(self.cores, "core"), f"seed {self.seed}"]
        if self.strategy != "auto":
            parts.append(f"strategy {self.strategy}")
        if self.defines:
            parts.append(" ".join(f"{n}={v}" for n, v in self.defines))
        if self.overrides:
            parts.append("overrides on " + ", ".join(name for name, _ in self.overrides))
        return ", ".join(parts)

    def changes(self, now: "Inputs") -> list[str]:
        """What differs in ``now``, in words: ``["NIC e810 -> 82599", "cores 16 -> 4"]``."""
        out = []
        if now.nf != self.nf:
            out.append(f"NF {Path(self.nf).name} -> {Path(now.nf).name}")
        if now.defines != self.defines:
            out.append("defines")
        for name, label in (("nic", "NIC"), ("cores", "cores"), ("seed", "seed"), ("strategy", "strategy")):
            if getattr(now, name) != getattr(self, name):
                out.append(f"{label} {getattr(self, name)} -> {getattr(now, name)}")
        if now.overrides != self.overrides:
            out.append("overrides")
        return out
