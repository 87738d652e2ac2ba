"""The numbers a user may give nfx: one range for each, checked alike by the CLI (``--seed``,
``--packets``, ``--flows``, ``--cores``) and by the pipeline's functions, and the memory a request
for synthetic packets would take, refused up front when it cannot fit.

* seed: any unsigned 64-bit number (numpy's and Python's generators take all of them).
* packets: 1 .. 2**32 (the trace format's packet numbers are 32-bit).
* flows: 1 .. 2**26 (the generators draw distinct flows in memory).
* cores: 1 .. 128 (DPDK 22.11's RTE_MAX_LCORE; a NIC profile may allow fewer: ``NicProfile.max_cores``).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Optional

from explorer.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """An integer range with the name a message gives it."""

    name: str
    low: int
    high: int
    why: str = ""  # where the bounds come from, said with the error

    def check(self, value: Any, option: Optional[str] = None) -> int:
        """``value`` as an int, or a ConfigError naming ``option`` (default: the range's name)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not self.low <= value <= self.high:
            raise ConfigError(f"{option or self.name} {value!r}: {self._expected()}")
        return int(value)

    def parse(self, text: str, option: str) -> int:
        """A command-line value: decimal (or 0x hex), then ``check``."""
        try:
            value = int(text.strip(), 0)
        except ValueError:
            raise ConfigError(f"{option} {text}: {self._expected()}") from None
        return self.check(value, option)

    def _expected(self) -> str:
        return f"expected an integer from {self.low} to {self.high}" + (f" ({self.why})" if self.why else "")


SEED = Range("seed", 0, (1 << 64) - 1)
PACKETS = Range("packets", 1, 1 << 32)
FLOWS = Range("flows", 1, 1 << 26)
CORES = Range("cores", 1, 128, "one DPDK lcore per core, and DPDK's RTE_MAX_LCORE is 128")
PORT = Range("port", 1, 65535)

# Peak bytes per synthetic packet, measured (benchmarks/bench_memory.py): frames in memory (traffic,
# bench, check) and header fields only (simulate).
FRAME_BYTES = 900
FIELD_BYTES = 250
MEMORY_SHARE = 0.5  # of the memory available now


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or 8 GiB when the kernel does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 30


def check_memory(packets: int, per_packet: int, what: str, option: str = "--packets") -> None:
    """Refuse, before any work, ``packets`` synthetic packets that would need more than half the
    memory available, saying how much they would take."""
    need = packets * per_packet
    budget = int(available_memory() * MEMORY_SHARE)
    if need > budget:
        raise ConfigError(f"{option} {packets}: {what} would need about {size_text(need)} of memory, more than "
                          f"the {size_text(budget)} nfx allows itself here (half of what is available); ask for at "
                          f"most {max(1, budget // per_packet)} packets")


def size_text(count: int) -> str:
    """A byte count as people read it: '1.5 GiB', '12.0 MiB', '300 bytes'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.1f} {unit}"
    return f"{count} bytes"
