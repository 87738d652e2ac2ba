"""Keys that take the top or low bits of a header field the way C writes it.

C promotes a 16-bit port to int, so ``nf_ntohs(port) / 256``, ``>> 8`` and ``% 16`` are signed
operations (bvsdiv, bvashr, bvsrem) of a zero-extended value; the key walk knew only unsigned shifts
and called them opaque, which locked state that RSS can shard (``tests/nfs/port_blocks.c``).
"""
from __future__ import annotations

from pathlib import Path

import z3

from explorer import pipeline
from explorer.sharding.keybits import OPAQUE, ZERO, KeyBit, key_bits

ROOT = Path(__file__).resolve().parent.parent
PORT = z3.BitVec("p.l4.dport", 16)
WIDE = z3.ZeroExt(16, PORT)


def _port_bits(*indices):
    return tuple(KeyBit(symbol="p.l4.dport", index=i) for i in indices)


def test_signed_shift_division_and_remainder_of_a_non_negative_value_keep_their_bits():
    top = _port_bits(*range(8, 16)) + (ZERO,) * 24
    assert key_bits(WIDE >> 8) == top  # z3's >> on bit-vectors is the arithmetic shift
    assert key_bits(WIDE / 256) == top  # signed division
    assert key_bits(z3.UDiv(WIDE, 256)) == top
    assert key_bits(z3.SRem(WIDE, 16)) == _port_bits(0, 1, 2, 3) + (ZERO,) * 28
    assert key_bits(z3.URem(WIDE, 16)) == _port_bits(0, 1, 2, 3) + (ZERO,) * 28


def test_what_may_be_negative_or_is_no_power_of_two_stays_as_it_must():
    signed = z3.SignExt(16, PORT)  # the sign bit is a packet bit: a signed division rounds toward zero
    assert set(key_bits(signed / 256)) == {OPAQUE}
    assert key_bits(signed >> 8)[:8] == _port_bits(*range(8, 16))  # an arithmetic shift copies the sign bit
    assert key_bits(signed >> 8)[8:] == _port_bits(15) * 24
    assert set(key_bits(WIDE / 3)) == {OPAQUE}
    assert set(key_bits(z3.SRem(WIDE, 12))) == {OPAQUE}


def test_port_blocks_shard_on_the_ports():
    solution = pipeline.solve(ROOT / "tests" / "nfs" / "port_blocks.c", quality=False)
    assert solution.strategy == "shared-nothing"
    assert dict(solution.sharding.decision("blocks").fields) == {0: ("dst_port",), 1: ("src_port",)}


def test_the_reta_deals_cores_out_over_the_index_bits_a_port_block_can_set():
    """Only the port's top byte may steer, and the Toeplitz window then leaves the RETA index's
    lowest bit 0 for every packet: a round-robin RETA (core i % cores) sent every packet of
    port_blocks to core 0 on 2 cores, and to cores 0 and 2 on 4. The RETA skips the dead bit."""
    from collections import Counter

    from explorer.rss.quality import reta_rows

    for cores in (2, 4):
        plan = pipeline.solve(ROOT / "tests" / "nfs" / "port_blocks.c", cores=cores, quality=False).plan
        for device in plan.devices:
            rows = reta_rows(device.key, device.fields, len(device.reta))
            assert rows[0] == 0  # why it matters: no port sets the index's lowest bit
            index = [sum((bin(row & port).count("1") & 1) << j for j, row in enumerate(rows)) for port in range(65536)]
            assert Counter(device.reta[i] for i in index) == {core: 65536 // cores for core in range(cores)}
