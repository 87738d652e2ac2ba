"""The Toeplitz hash: known answers for all three implementations, linearity, the implementations
agreeing on random keys and inputs, and DPDK's own rte_softrss as an outside witness."""
from __future__ import annotations

import ipaddress
import shutil
import subprocess
import struct

import numpy as np
import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.errors import ConfigError
from explorer.rss.hash_input import FIELD_NAMES, input_layout
from explorer.rss.toeplitz import ToeplitzTable, hash_fields, hash_rows, toeplitz_hash, z3_toeplitz

MS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")
# (src, dst, sport, dport, IPv4-only hash, hash with ports), Microsoft's verification suite.
MS_VECTORS = [
    ("66.9.149.187", "161.142.100.80", 2794, 1766, 0x323E8FC2, 0x51CCC178),
    ("199.92.111.2", "65.69.140.83", 14230, 4739, 0xD718262A, 0xC626B0EA),
]


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def wire(src: str, dst: str, sport: int | None = None, dport: int | None = None) -> bytes:
    data = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    if sport is not None:
        data += struct.pack(">HH", sport, dport)
    return data


def z3_value(key: bytes, data: bytes) -> int:
    return z3.simplify(z3_toeplitz(key, data)).as_long()


@pytest.mark.parametrize("src,dst,sport,dport,ip_only,with_ports", MS_VECTORS)
def test_microsoft_vectors_reference(src, dst, sport, dport, ip_only, with_ports):
    assert toeplitz_hash(MS_KEY, wire(src, dst)) == ip_only
    assert toeplitz_hash(MS_KEY, wire(src, dst, sport, dport)) == with_ports


@pytest.mark.parametrize("src,dst,sport,dport,ip_only,with_ports", MS_VECTORS)
def test_microsoft_vectors_numpy(src, dst, sport, dport, ip_only, with_ports):
    rows8 = np.frombuffer(wire(src, dst), dtype=np.uint8).reshape(1, 8)
    rows12 = np.frombuffer(wire(src, dst, sport, dport), dtype=np.uint8).reshape(1, 12)
    assert hash_rows(ToeplitzTable(MS_KEY, 8), rows8)[0] == ip_only
    assert hash_rows(ToeplitzTable(MS_KEY, 12), rows12)[0] == with_ports
    arrays = {"src_ip": np.array([ip(src)], np.uint32), "dst_ip": np.array([ip(dst)], np.uint32),
              "src_port": np.array([sport], np.uint16), "dst_port": np.array([dport], np.uint16)}
    assert hash_fields(MS_KEY, ("src_ip", "dst_ip"), arrays)[0] == ip_only
    assert hash_fields(MS_KEY, FIELD_NAMES, arrays)[0] == with_ports


@pytest.mark.parametrize("src,dst,sport,dport,ip_only,with_ports", MS_VECTORS)
def test_microsoft_vectors_z3(src, dst, sport, dport, ip_only, with_ports):
    assert z3_value(MS_KEY, wire(src, dst)) == ip_only
    assert z3_value(MS_KEY, wire(src, dst, sport, dport)) == with_ports
    # symbolic input, solved back: the twin's hash pins the concrete input's hash
    data = z3.BitVec("data", 96)
    s = z3.Solver()
    s.add(data == int.from_bytes(wire(src, dst, sport, dport), "big"))
    h = z3.BitVec("h", 32)
    s.add(h == z3_toeplitz(MS_KEY, data))
    assert s.check() == z3.sat and s.model()[h].as_long() == with_ports


def test_hash_fields_order_is_canonical():
    arrays = {"src_ip": np.array([ip("66.9.149.187")], np.uint32),
              "dst_ip": np.array([ip("161.142.100.80")], np.uint32),
              "src_port": np.array([2794], np.uint16), "dst_port": np.array([1766], np.uint16)}
    shuffled = ("dst_port", "src_ip", "src_port", "dst_ip")
    assert hash_fields(MS_KEY, shuffled, arrays)[0] == 0x51CCC178


def test_hash_fields_skips_unselected_fields():
    # dst_ip alone is packed at offset 0 (not zero-filled in place)
    arrays = {"dst_ip": np.array([ip("161.142.100.80")], np.uint32)}
    expected = toeplitz_hash(MS_KEY, ipaddress.IPv4Address("161.142.100.80").packed)
    assert hash_fields(MS_KEY, ("dst_ip",), arrays)[0] == expected
    assert input_layout(("dst_port", "dst_ip")).offsets == (0, 32)


def test_short_key_rejected():
    with pytest.raises(ConfigError, match="too short"):
        toeplitz_hash(bytes(10), bytes(8))
    with pytest.raises(ConfigError, match="too short"):
        ToeplitzTable(bytes(15), 12)
    with pytest.raises(ConfigError, match="too short"):
        z3_toeplitz(bytes(8), bytes(8))


def test_hash_rows_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        hash_rows(ToeplitzTable(MS_KEY, 12), np.zeros((3, 8), np.uint8))


def test_hash_fields_needs_every_hashed_field():
    with pytest.raises(ValueError, match="dst_port"):
        hash_fields(MS_KEY, FIELD_NAMES, {"src_ip": np.zeros(2, np.uint32), "dst_ip": np.zeros(2, np.uint32),
                                          "src_port": np.zeros(2, np.uint16)})


def test_table_is_read_only():
    table = ToeplitzTable(MS_KEY, 12)
    with pytest.raises(ValueError):
        table.tables[0, 1] = 5
    with pytest.raises(AttributeError):
        table.key = bytes(52)


keys = st.binary(min_size=40, max_size=52)
inputs = st.binary(min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(key=keys, a=st.binary(min_size=8, max_size=8), b=st.binary(min_size=8, max_size=8))
def test_linearity(key, a, b):
    xored = bytes(x ^ y for x, y in zip(a, b))
    assert toeplitz_hash(key, xored) == toeplitz_hash(key, a) ^ toeplitz_hash(key, b)


@settings(max_examples=40, deadline=None)
@given(key=keys, data=inputs)
def test_numpy_reference_and_z3_agree(key, data):
    expected = toeplitz_hash(key, data)
    rows = np.frombuffer(data, dtype=np.uint8).reshape(1, len(data))
    assert int(hash_rows(ToeplitzTable(key, len(data)), rows)[0]) == expected
    assert z3_value(key, data) == expected


@settings(max_examples=20, deadline=None)
@given(key=keys, data=st.binary(min_size=1, max_size=4))
def test_z3_twin_with_symbolic_key(key, data):
    """The key symbolic, the input concrete: fixing the key's bits gives the reference hash."""
    k = z3.BitVec("k", len(key) * 8)
    term = z3_toeplitz(k, data)
    value = z3.simplify(z3.substitute(term, (k, z3.BitVecVal(int.from_bytes(key, "big"), len(key) * 8))))
    assert value.as_long() == toeplitz_hash(key, data)
    # bit sequences of Bools are accepted too
    bools = [bool(key[i // 8] >> (7 - i % 8) & 1) for i in range(len(key) * 8)]
    assert z3.simplify(z3_toeplitz(bools, data)).as_long() == toeplitz_hash(key, data)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), key=st.binary(min_size=52, max_size=52))
def test_hash_fields_matches_rows(seed, key):
    rng = np.random.default_rng(seed)
    n = 64
    arrays = {"src_ip": rng.integers(0, 2**32, n, dtype=np.uint32),
              "dst_ip": rng.integers(0, 2**32, n, dtype=np.uint32),
              "src_port": rng.integers(0, 2**16, n, dtype=np.uint16),
              "dst_port": rng.integers(0, 2**16, n, dtype=np.uint16)}
    rows = np.zeros((n, 12), np.uint8)
    for j in range(n):
        rows[j] = np.frombuffer(struct.pack(">IIHH", *(int(arrays[f][j]) for f in FIELD_NAMES)), np.uint8)
    assert np.array_equal(hash_fields(key, FIELD_NAMES, arrays), hash_rows(ToeplitzTable(key, 12), rows))
    # and a sample against the reference
    assert int(hash_fields(key, FIELD_NAMES, arrays)[0]) == toeplitz_hash(key, rows[0].tobytes())


@pytest.mark.dpdk
def test_rte_softrss_agrees(tmp_path):
    """DPDK's software Toeplitz (tuple in host order: src, dst, then sport << 16 | dport) is an
    independent implementation of the same function."""
    rng = np.random.default_rng(7)
    key = bytes(rng.integers(0, 256, 52, dtype=np.uint8))
    tuples = [(ip(s), ip(d), sp, dp) for s, d, sp, dp, _, _ in MS_VECTORS]
    tuples += [tuple(int(x) for x in (rng.integers(0, 2**32), rng.integers(0, 2**32),
                                       rng.integers(0, 2**16), rng.integers(0, 2**16))) for _ in range(50)]
    rows = ",\n".join(f"{{{s}u, {d}u, {(sp << 16) | dp}u}}" for s, d, sp, dp in tuples)
    source = tmp_path / "softrss.c"
    source.write_text(
        "#include <stdio.h>\n#include <rte_thash.h>\n"
        f"static const uint8_t ms_key[40] = {{{', '.join(str(b) for b in MS_KEY)}}};\n"
        f"static const uint8_t key[52] = {{{', '.join(str(b) for b in key)}}};\n"
        f"static uint32_t tuples[][3] = {{{rows}}};\n"
        "int main(void) {\n"
        "  for (unsigned i = 0; i < sizeof(tuples) / sizeof(tuples[0]); i++)\n"
        "    printf(\"%u %u %u\\n\", rte_softrss(tuples[i], 3, ms_key), rte_softrss(tuples[i], 3, key),\n"
        "           rte_softrss(tuples[i], 2, key));\n"
        "  return 0;\n}\n")
    flags = subprocess.run(["pkg-config", "--cflags", "libdpdk"], check=True, capture_output=True, text=True).stdout
    binary = tmp_path / "softrss"
    subprocess.run([shutil.which("gcc") or "gcc", "-O1", "-Wall", "-Werror", str(source), "-o", str(binary),
                    *flags.split()], check=True)
    lines = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.split("\n")
    arrays = {name: np.array([t[i] for t in tuples], np.uint32) for i, name in enumerate(FIELD_NAMES)}
    ms_all = hash_fields(MS_KEY, FIELD_NAMES, arrays)
    ours_all = hash_fields(key, FIELD_NAMES, arrays)
    ours_ips = hash_fields(key, ("src_ip", "dst_ip"), arrays)
    for i, line in enumerate(lines[:len(tuples)]):
        assert [int(x) for x in line.split()] == [int(ms_all[i]), int(ours_all[i]), int(ours_ips[i])]
    assert int(ms_all[0]) == MS_VECTORS[0][5]
