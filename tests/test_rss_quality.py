"""Key quality: RETA rank, per-field influence, balance, and the GF(2) algebra under them."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.errors import ConfigError
from explorer.rss import gf2
from explorer.rss.hash_input import FIELD_NAMES, input_layout
from explorer.rss.quality import balance, describe_dependence, field_ranks, low_bits_rank, reta_rank, reta_rows
from explorer.rss.toeplitz import hash_fields

SYMMETRIC_KEY = bytes.fromhex("6d5a") * 26


def test_random_key_has_full_rank():
    rng = random.Random(1)
    for _ in range(20):
        key = rng.randbytes(52)
        assert reta_rank(key, FIELD_NAMES, 512) == 9
        assert reta_rank(key, FIELD_NAMES, 128) == 7


def test_zero_key_has_rank_zero():
    assert reta_rank(bytes(52), FIELD_NAMES, 512) == 0
    assert field_ranks(bytes(52), FIELD_NAMES, 512) == dict.fromkeys(FIELD_NAMES, 0)


def test_rank_is_number_of_reachable_buckets():
    """2**rank distinct RETA indices appear among many random inputs: the rank is not a proxy."""
    rng = np.random.default_rng(3)
    key = bytearray(random.Random(5).randbytes(52))
    key[3] &= 0xF0  # only key bits 0..27 survive: the RETA index reads at most bits 23..27
    key[4:] = bytes(48)
    key = bytes(key)
    arrays = {"src_ip": rng.integers(0, 2**32, 20000, dtype=np.uint32)}
    rank = reta_rank(key, ("src_ip",), 512)
    seen = len(set((hash_fields(key, ("src_ip",), arrays) & 511).tolist()))
    assert 0 < rank < 9
    assert seen == 2 ** rank


def test_symmetric_key_hashes_both_directions_alike():
    rng = np.random.default_rng(11)
    n = 5000
    s, d = rng.integers(0, 2**32, n, dtype=np.uint32), rng.integers(0, 2**32, n, dtype=np.uint32)
    sp, dp = rng.integers(0, 2**16, n, dtype=np.uint16), rng.integers(0, 2**16, n, dtype=np.uint16)
    forward = hash_fields(SYMMETRIC_KEY, FIELD_NAMES, {"src_ip": s, "dst_ip": d, "src_port": sp, "dst_port": dp})
    reverse = hash_fields(SYMMETRIC_KEY, FIELD_NAMES, {"src_ip": d, "dst_ip": s, "src_port": dp, "dst_port": sp})
    assert np.array_equal(forward, reverse)
    assert reta_rank(SYMMETRIC_KEY, FIELD_NAMES, 512) == 9
    # ... and an ordinary key does not
    key = random.Random(2).randbytes(52)
    f = hash_fields(key, FIELD_NAMES, {"src_ip": s, "dst_ip": d, "src_port": sp, "dst_port": dp})
    r = hash_fields(key, FIELD_NAMES, {"src_ip": d, "dst_ip": s, "src_port": dp, "dst_port": sp})
    assert not np.array_equal(f, r)


def test_field_ranks_find_an_ignored_field():
    # Zero the key bits that dst_ip's RETA columns read (input bits 32..63 read key bits 55..94
    # for 9 index bits); src_ip still reads bits 23..62, partly shared, so it keeps some rank.
    key = bytearray(random.Random(9).randbytes(52))
    k = int.from_bytes(key, "big")
    for bit in range(55, 95):
        k &= ~(1 << (52 * 8 - 1 - bit))
    key = k.to_bytes(52, "big")
    ranks = field_ranks(key, FIELD_NAMES, 512)
    assert ranks["dst_ip"] == 0
    assert ranks["src_ip"] > 0 and ranks["dst_port"] > 0


def test_low_bits_rank_sees_prefix_concentration():
    """Maestro's policer key: the RETA index reads only the top of the address, so one /16 hits
    one entry. A key whose index reads the low bits spreads it."""
    layout = input_layout(("dst_ip",))
    top_only = int("1" * 39, 2) << (52 * 8 - 39)  # key bits 0..38: read by input bits 0..15 only
    key = top_only.to_bytes(52, "big")
    assert low_bits_rank(key, layout.fields, 512, "dst_ip") == 0
    assert reta_rank(key, layout.fields, 512) > 0
    assert low_bits_rank(random.Random(4).randbytes(52), layout.fields, 512, "dst_ip") == 9


def test_reta_rows_shape():
    rows = reta_rows(random.Random(0).randbytes(40), FIELD_NAMES, 128)
    assert len(rows) == 7 and all(r < 1 << 96 for r in rows)
    with pytest.raises(ConfigError):
        reta_rows(bytes(40), FIELD_NAMES, 100)


def test_balance():
    assert balance([10, 10, 10, 10]) == 1.0
    assert balance([40, 0, 0, 0]) == 4.0
    assert balance([0, 0]) == 1.0
    with pytest.raises(ConfigError):
        balance([])


# ---- GF(2) ----------------------------------------------------------------------------------------

def test_rank_known_answers():
    assert gf2.rank([]) == 0
    assert gf2.rank([0b1, 0b10, 0b11]) == 2
    assert gf2.rank([0b101, 0b101]) == 1
    assert gf2.rank([1 << i for i in range(100)]) == 100


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.integers(0, 2**24 - 1), max_size=20), seed=st.integers(0, 2**32 - 1))
def test_echelon_solutions_satisfy_every_equation(rows, seed):
    ech = gf2.Echelon(rows)
    free = ech.free(24)
    assert len(free) == 24 - len(ech.rows)
    rng = random.Random(seed)
    x = ech.solve(rng.getrandbits(24))
    for row in rows:
        assert (row & x).bit_count() % 2 == 0
    # the free bits are kept as drawn
    bits = rng.getrandbits(24)
    y = ech.solve(bits)
    assert all((y >> v & 1) == (bits >> v & 1) for v in free)


def test_implies_zero():
    ech = gf2.Echelon([0b011, 0b001])  # x0 + x1 = 0, x0 = 0
    assert ech.implies_zero(0) and ech.implies_zero(1) and not ech.implies_zero(2)


@pytest.mark.parametrize("depends, text", [
    ([("src_ip", 0xFFFFFFFF), ("dst_port", 0xFFFF)], "src_ip, dst_port"),
    ([("src_ip", 0xFFFFFF00)], "src_ip (its top 24 bits)"),  # a /24: "bits 0-23" said nothing of where 0 is
    ([("dst_port", 0x003F)], "dst_port (its low 6 bits)"),
    ([("dst_port", 0x8000)], "dst_port (its top bit)"),
    ([("src_ip", 0x00FFFF00)], "src_ip (bits 8-23, bit 0 the most significant)"),
    ([("dst_port", 0x0100)], "dst_port (bit 7, bit 0 the most significant)"),
    ([], "nothing (every packet reaches RETA entry 0)"),
])
def test_the_bits_an_index_depends_on_read_as_a_prefix_low_bits_or_numbered(depends, text):
    assert describe_dependence(depends) == text
