"""How well a key spreads packets: the GF(2) rank of its RETA-index bits, per-field influence, and
the load balance of a per-core count."""
from __future__ import annotations

from typing import Iterable, Sequence

from explorer.errors import ConfigError
from explorer.rss import gf2
from explorer.rss.hash_input import FIELD_BITS, input_layout


def _index_bits(reta_size: int) -> int:
    if reta_size < 1 or reta_size & (reta_size - 1):
        raise ConfigError(f"the RETA size must be a power of two, got {reta_size}")
    return reta_size.bit_length() - 1


def reta_rows(key: bytes, fields: Iterable[str], reta_size: int) -> list[int]:
    """The RETA index as a linear map of the hashed input: row j (hash bit j, 0 least significant)
    has input bit i set (as bit ``n - 1 - i`` of an n-bit integer) when key bit ``i + 31 - j`` is 1."""
    layout = input_layout(fields)
    n, total = layout.bits, len(key) * 8
    if total < n + 32:
        raise ConfigError(f"an RSS key of {len(key)} bytes is too short for {n} input bits")
    k = int.from_bytes(key, "big")
    rows = []
    for j in range(_index_bits(reta_size)):
        start = 31 - j  # key bit for input bit 0
        rows.append((k >> (total - start - n)) & ((1 << n) - 1))
    return rows


def reta_rank(key: bytes, fields: Iterable[str], reta_size: int) -> int:
    """GF(2) rank of the RETA-index bits as a function of the hashed input bits: the packets can
    reach ``2 ** rank`` distinct RETA entries."""
    return gf2.rank(reta_rows(key, fields, reta_size))


def field_ranks(key: bytes, fields: Iterable[str], reta_size: int) -> dict[str, int]:
    """Per hashed field, the rank of the RETA index as a function of that field alone (0 means the
    field does not affect which core a packet reaches)."""
    layout = input_layout(fields)
    rows = reta_rows(key, layout.fields, reta_size)
    return {name: gf2.rank(row & layout.field_mask(name) for row in rows) for name in layout.fields}


def low_bits_rank(key: bytes, fields: Iterable[str], reta_size: int, field: str, low_bits: int = 16) -> int:
    """Rank of the RETA index as a function of the ``low_bits`` least significant bits of ``field``:
    how many cores the hosts of one prefix (a /16 for 16 bits of an address) can reach (2**rank)."""
    layout = input_layout(fields)
    rows = reta_rows(key, layout.fields, reta_size)
    mask = layout.field_mask(field) & ((1 << (layout.bits - layout.offset(field) - FIELD_BITS[field] + low_bits)) - 1)
    return gf2.rank(row & mask for row in rows)


def balance(per_core: Sequence[float]) -> float:
    """Busiest core over the mean (1.0 is perfectly even; an idle system counts as even)."""
    values = [float(v) for v in per_core]
    if not values:
        raise ConfigError("balance of no cores")
    mean = sum(values) / len(values)
    return max(values) / mean if mean > 0 else 1.0


def dependence_mask(key: bytes, fields: Iterable[str], reta_size: int) -> int:
    """The hashed input bits that can change the RETA index (as a mask whose most significant of the
    layout's bits is input bit 0). Toeplitz is linear: flipping input bit i changes the index by its
    RETA column, whatever the packet, so a bit matters exactly when that column is not zero."""
    mask = 0
    for row in reta_rows(key, fields, reta_size):
        mask |= row
    return mask


def dependence(key: bytes, fields: Iterable[str], reta_size: int) -> tuple[tuple[str, int], ...]:
    """Per hashed field that the RETA index depends on, in hash-input order, the mask of its bits that
    matter (bit ``width - 1 - i`` for field bit i, i = 0 the most significant); fields the key makes
    irrelevant are left out."""
    layout = input_layout(fields)
    if not layout.fields:
        return ()
    mask = dependence_mask(key, layout.fields, reta_size)
    out = []
    for name in layout.fields:
        width = FIELD_BITS[name]
        bits = (mask >> (layout.bits - layout.offset(name) - width)) & ((1 << width) - 1)
        if bits:
            out.append((name, bits))
    return tuple(out)


def describe_dependence(depends: Iterable[tuple[str, int]]) -> str:
    """``"src_ip, dst_ip (its top 24 bits)"``: the fields a RETA index depends on, with the bits
    where only some of them matter: a prefix (a /24) or the low bits as such, other bits by
    number, 0 the most significant, as the spread warnings number them."""
    parts = []
    for name, bits in depends:
        width = FIELD_BITS[name]
        clear = ~bits & ((1 << width) - 1)  # the bits that do not matter
        if not clear:
            parts.append(name)
        elif clear & (clear + 1) == 0:  # ones, then zeros: a prefix
            parts.append(f"{name} (its {_top_or_low('top', width - clear.bit_length())})")
        elif bits & (bits + 1) == 0:  # zeros, then ones
            parts.append(f"{name} (its {_top_or_low('low', bits.bit_length())})")
        else:
            ranges = bit_ranges(name, bits)
            parts.append(f"{name} (bit{'s' if ',' in ranges or '-' in ranges else ''} {ranges}, "
                         f"bit 0 the most significant)")
    return ", ".join(parts) or "nothing (every packet reaches RETA entry 0)"


def _top_or_low(end: str, n: int) -> str:
    return f"{end} bit" if n == 1 else f"{end} {n} bits"


def bit_ranges(name: str, bits: int) -> str:
    """``"0-7, 12"``: the bits of field ``name`` set in the mask ``bits`` (bit ``width - 1 - i`` for
    field bit i), numbered as ``dependence`` does (0 = the most significant), in runs."""
    width = FIELD_BITS[name]
    ranges: list[list[int]] = []
    for i in range(width):
        if bits >> (width - 1 - i) & 1:
            if ranges and ranges[-1][1] == i - 1:
                ranges[-1][1] = i
            else:
                ranges.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)
