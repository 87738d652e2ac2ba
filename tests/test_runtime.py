"""The C state runtime, the call log, the sequential harness and the builds, through tiny NFs in
tests/nfs/ run by explorer.run.run_trace.

Most tests drive tests/nfs/state_ops.c, whose frames name a state operation; results are read from
the call log and from the frame. Expected values come from Python models written here (a dict for
the map, sets for the dchain, a count-min model and a Maglev twin for the sketch and the table),
not from the C code.
"""
from __future__ import annotations

import random
import struct
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import dpkt
import numpy as np
import pytest

from explorer import build, nfsource
from explorer.errors import BuildError, ConfigError, CSyntaxError, RunError
from explorer.run import encode_trace, run_trace
from explorer.traffic.pcap import read_pcap
from explorer.traffic.trace import Trace

pytestmark = pytest.mark.dpdk  # everything here links the runtime with DPDK

NFS = Path(__file__).resolve().parent / "nfs"
STATE_OPS = NFS / "state_ops.c"
HTTP_PCAP = "/usr/share/doc/python3-dpkt/examples/data/http.pcap"
M32 = 0xFFFFFFFF

# state_ops operations and object numbers (see tests/nfs/state_ops.c)
MAP_GET, MAP_PUT, MAP_ERASE = 0x01, 0x02, 0x03
VEC_GET, VEC_SET, VEC_HOLD = 0x10, 0x11, 0x12
CHAIN_ALLOC, CHAIN_REJUVENATE, CHAIN_IS_ALLOCATED, CHAIN_FREE, CHAIN_ALLOC_MANY = 0x20, 0x21, 0x22, 0x23, 0x24
FLOW, EXPIRE, EXPIRE2, FLOWS_GET, FLOWS_B_GET = 0x30, 0x31, 0x32, 0x33, 0x34
SKETCH_TOUCH, SKETCH_ESTIMATE, SKETCH_EXPIRE = 0x40, 0x41, 0x42
BACKEND_ALLOC, BACKEND_FREE, CHT_FIND, HASH = 0x50, 0x51, 0x52, 0x60
OBJ_MAP, OBJ_CELLS, OBJ_CHAIN, OBJ_FLOWS, OBJ_FLOWS_B, OBJ_SKETCH, OBJ_CHT, OBJ_ACTIVE = 0, 1, 2, 4, 6, 7, 8, 9
ETHER = bytes.fromhex("020000000002" "020000000001" "88b5")


@pytest.fixture(scope="module", autouse=True)
def build_cache(tmp_path_factory):
    """A build cache of this module's own (the builds are part of what is tested)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NFX_CACHE", str(tmp_path_factory.mktemp("nfx-cache")))
        yield


def u32(value: int) -> bytes:
    return struct.pack("<I", value & M32)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def op(code: int, args: bytes = b"", verdict: int = 0) -> bytes:
    """A 64-byte state_ops frame."""
    assert len(args) <= 16
    return ETHER + bytes([code]) + args.ljust(16, b"\0") + bytes([verdict & 0xFF]) + bytes(32)


def trace_of(frames, times=None, devices=None) -> Trace:
    n = len(frames)
    return Trace(np.asarray(times if times is not None else range(n), dtype=np.uint64),
                 np.asarray(devices if devices is not None else [0] * n, dtype=np.uint16), tuple(frames))


def run_ops(frames, times=None, calls=True, **defines):
    return run_trace(STATE_OPS, trace_of(frames, times), {k: str(v) for k, v in defines.items()}, calls=calls)


def results(result) -> dict[int, bytes]:
    """Packet index -> the 32 result bytes state_ops wrote."""
    return {index: frame[32:64] for index, _verdict, frame in result.outputs}


def calls_by_packet(result) -> dict[int, list]:
    out = defaultdict(list)
    for call in result.calls:
        out[call.packet].append(call)
    return out


# ---- Python twins of the runtime's hashes (the spec in nf_state.c, re-implemented) --------------

def fnv1a(data: bytes, h: int = 2166136261) -> int:
    for byte in data:
        h = ((h ^ byte) * 16777619) & M32
    return h


def mix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def seeded(seed: int, data: bytes) -> int:
    return mix32(fnv1a(data, fnv1a(u32(seed))))


def sketch_columns(key: bytes, width: int) -> list[int]:
    return [r * width + seeded((0x9E3779B9 * (r + 1)) & M32, key) % width for r in range(4)]


def maglev_rows(height: int, backends: int) -> list[list[int]]:
    """Each row's backends in preference order, filled one column per round, Maglev-style."""
    offset = [seeded(0x4D41474C, u32(b)) % height for b in range(backends)]
    skip = [seeded(0x45563031, u32(b)) % (height - 1) + 1 for b in range(backends)]
    rows: list[list[int]] = [[] for _ in range(height)]
    for round_ in range(backends):
        position = [0] * backends
        claimed = 0
        while claimed < height:
            for b in range(backends):
                if claimed == height:
                    break
                while position[b] < height:
                    r = (offset[b] + position[b] * skip[b]) % height
                    position[b] += 1
                    if len(rows[r]) == round_ and b not in rows[r]:
                        rows[r].append(b)
                        claimed += 1
                        break
    return rows


# ---- the call log ---------------------------------------------------------------------------------

def test_call_log_lines_follow_the_design():
    key = bytes.fromhex("01020304")
    frames = [
        op(MAP_GET, bytes.fromhex("deadbeef")),  # put by nf_init, which logs nothing
        ETHER[:10],  # a runt: never reaches the NF, still counts as packet 1
        op(MAP_PUT, key + u32(5)),
        op(MAP_GET, key),
        op(MAP_ERASE, key),
        op(MAP_GET, key),
        op(VEC_GET, u32(0)),
        op(CHAIN_ALLOC),
        op(CHAIN_REJUVENATE, u32(0)),
        op(CHAIN_IS_ALLOCATED, u32(3)),
        op(CHAIN_FREE, u32(-1)),
        op(EXPIRE, u64(100)),
        op(SKETCH_TOUCH, bytes.fromhex("aabbccdd")),
        op(SKETCH_ESTIMATE, bytes.fromhex("aabbccdd")),
        op(SKETCH_EXPIRE, u64(0)),
        op(CHT_FIND, u32(27)),
        op(EXPIRE2, u64(100)),
        op(MAP_PUT, key + u32(-2)),
        op(MAP_GET, key),
    ]
    result = run_ops(frames)
    lines = [" ".join([str(c.packet), str(c.object), c.call, c.key or "-", *c.results]) for c in result.calls]
    assert lines == [
        "0 0 nf_map_get deadbeef 01 00000007",
        "2 0 nf_map_put 01020304",
        "3 0 nf_map_get 01020304 01 00000005",
        "4 0 nf_map_erase 01020304",
        "5 0 nf_map_get 01020304 00 00000000",
        "6 1 nf_vector_borrow 00000000 0102030405060708",
        "6 1 nf_vector_return 00000000",
        "7 2 nf_dchain_allocate_new_index - 01 00000000",
        "8 2 nf_dchain_rejuvenate_index 00000000 01",
        "9 2 nf_dchain_is_index_allocated 00000003 00",
        "10 2 nf_dchain_free_index ffffffff 00",
        "11 2 nf_expire_items - 00000001",
        "12 7 nf_sketch_touch aabbccdd",
        "13 7 nf_sketch_estimate aabbccdd 00000001",
        "14 7 nf_sketch_expire -",
        "15 8 nf_cht_find_backend 00000001 00 00000000",  # row 27 % 13; no backend is active
        "16 2 nf_expire_items2 - 00000000",
        "17 0 nf_map_put 01020304",
        "18 0 nf_map_get 01020304 01 fffffffe",  # ints: 8 hex digits, two's complement
    ]
    assert result.calls[7].key is None and result.calls[7].results == ("01", "00000000")
    assert result.runts == (1,)


def test_no_call_log_unless_asked():
    result = run_ops([op(MAP_GET, bytes.fromhex("deadbeef"))], calls=False)
    assert result.calls == ()
    assert results(result)[0][:5] == b"\x01" + u32(7)


# ---- map ----------------------------------------------------------------------------------------

def test_map_behaves_like_a_dict():
    rng = random.Random(7)
    keys = [bytes([rng.randrange(256) for _ in range(4)]) for _ in range(6)]
    model = {bytes.fromhex("deadbeef"): 7}
    frames, expected = [], []
    for _ in range(300):
        key, kind = rng.choice(keys), rng.choice("gggpe")
        if kind == "g":
            frames.append(op(MAP_GET, key))
            expected.append(("01", f"{model[key] & M32:08x}") if key in model else ("00", "00000000"))
        elif kind == "p":
            value = rng.randrange(-2**31, 2**31)
            frames.append(op(MAP_PUT, key + u32(value)))
            model[key] = value
            expected.append(())
        else:
            frames.append(op(MAP_ERASE, key))
            model.pop(key, None)
            expected.append(())
    result = run_ops(frames)
    got = calls_by_packet(result)
    for index, want in enumerate(expected):
        (call,) = got[index]
        assert call.object == OBJ_MAP and call.key == frames[index][15:19].hex()
        assert call.results == want, index
        if want:  # the value reached the NF too
            assert results(result)[index][:5] == bytes([int(want[0])]) + u32(int(want[1], 16))


def test_map_holds_exactly_its_capacity():
    n = 1000  # nf_init already put one key
    keys = [u32(i * 2654435761) for i in range(n - 1)]
    frames = [op(MAP_PUT, k + u32(i)) for i, k in enumerate(keys)] + [op(MAP_GET, k) for k in keys]
    frames += [op(MAP_PUT, keys[0] + u32(99)), op(MAP_GET, keys[0])]  # overwriting needs no room
    result = run_ops(frames, calls=False, MAP_CAPACITY=n)
    got = results(result)
    for i in range(n - 1):
        assert got[n - 1 + i][:5] == b"\x01" + u32(i)
    assert got[len(frames) - 1][:5] == b"\x01" + u32(99)


def test_a_full_map_is_a_clear_run_error():
    frames = [op(MAP_PUT, b"k001" + u32(1)), op(MAP_PUT, b"k001" + u32(2)), op(MAP_PUT, b"k002" + u32(3))]
    with pytest.raises(RunError, match=r"packet 2: nf_map_put: map #0 is full \(capacity 2\)"):
        run_ops(frames, MAP_CAPACITY=2)
    # erasing makes room again
    frames = [op(MAP_ERASE, bytes.fromhex("deadbeef")), op(MAP_PUT, b"k001" + u32(1)), op(MAP_PUT, b"k002" + u32(3))]
    assert len(run_ops(frames, MAP_CAPACITY=2).outputs) == 3


# ---- vector ---------------------------------------------------------------------------------------

def test_vector_borrow_and_return():
    cell = bytes(range(0xA0, 0xA8))
    frames = [op(VEC_GET, u32(0)), op(VEC_GET, u32(3)), op(VEC_SET, u32(3) + cell), op(VEC_GET, u32(3)),
              op(VEC_SET, u32(3) + cell)]
    result = run_ops(frames)
    got = results(result)
    assert got[0][:8] == bytes(range(1, 9))  # set by nf_init
    assert got[1][:8] == bytes(8)  # zeroed at allocation
    assert got[3][:8] == cell
    borrows = [c for c in result.calls if c.call == "nf_vector_borrow"]
    assert [c.results for c in borrows] == [(bytes(range(1, 9)).hex(),), ("00" * 8,), ("00" * 8,),
                                           (cell.hex(),), (cell.hex(),)]
    assert [c.call for c in result.calls].count("nf_vector_return") == 5


def test_vector_index_out_of_range_is_a_run_error():
    with pytest.raises(RunError, match=r"packet 1: nf_vector_borrow: index 4 out of range for vector #1 \(capacity 4\)"):
        run_ops([op(VEC_GET, u32(3)), op(VEC_GET, u32(4))])


def test_vector_borrows_without_return_are_bounded():
    assert len(run_ops([op(VEC_HOLD, u32(1) + u32(8))]).outputs) == 1
    with pytest.raises(RunError, match="more than 8 cells of vector #1 borrowed without nf_vector_return"):
        run_ops([op(VEC_HOLD, u32(1) + u32(9))])


# ---- dchain ---------------------------------------------------------------------------------------

def test_dchain_matches_a_model():
    """Random allocate / rejuvenate / verify / free / expire against sets: the lowest free index
    is allocated, and expiry frees exactly the indices last used strictly before its time."""
    rng = random.Random(11)
    used: dict[int, int] = {}  # index -> last use
    frames, times, expected = [], [], []
    now = 0
    for _ in range(400):
        now += rng.choice([0, 1, 5])
        kind = rng.choice(["alloc", "alloc", "rejuv", "is", "free", "expire"])
        index = rng.randrange(-1, 6)
        if kind == "alloc":
            frames.append(op(CHAIN_ALLOC))
            free = [i for i in range(4) if i not in used]
            if free:
                used[free[0]] = now
                expected.append(("nf_dchain_allocate_new_index", None, ("01", f"{free[0]:08x}")))
            else:
                expected.append(("nf_dchain_allocate_new_index", None, ("00", "00000000")))
        elif kind == "expire":
            limit = now - rng.randrange(0, 20)
            frames.append(op(EXPIRE, u64(max(limit, 0))))
            gone = [i for i, t in used.items() if t < max(limit, 0)]
            for i in gone:
                del used[i]
            expected.append(("nf_expire_items", None, (f"{len(gone):08x}",)))
        else:
            code = {"rejuv": CHAIN_REJUVENATE, "is": CHAIN_IS_ALLOCATED, "free": CHAIN_FREE}[kind]
            frames.append(op(code, u32(index)))
            ok = index in used
            if ok and kind == "rejuv":
                used[index] = now
            if ok and kind == "free":
                del used[index]
            call = {"rejuv": "nf_dchain_rejuvenate_index", "is": "nf_dchain_is_index_allocated",
                    "free": "nf_dchain_free_index"}[kind]
            expected.append((call, f"{index & M32:08x}", ("01" if ok else "00",)))
        times.append(now)
    result = run_ops(frames, times)
    got = calls_by_packet(result)
    for index, (call, key, res) in enumerate(expected):
        (logged,) = got[index]
        assert (logged.object, logged.call, logged.key, logged.results) == (OBJ_CHAIN, call, key, res), index


def test_dchain_expiry_is_exact_when_time_goes_backwards():
    """Stamps older than the newest (a capture with out-of-order times, or cores whose clocks
    differ) take the age lists' late path; expiry still frees exactly the indices last used
    strictly before its time, whatever order they were stamped in. A refresh older than an index's
    stamp leaves it (time never runs backwards for an index: the locks runtime merges the cores'
    refreshes as the latest per index, and the sequential NF must mean the same)."""
    rng = random.Random(5)
    n = 300
    used: dict[int, int] = {}
    frames, times, expected = [op(CHAIN_ALLOC_MANY, u32(n))], [1000], [None]
    for i in range(n):
        used[i] = 1000
    for step in range(3000):
        now = rng.randrange(0, 100_000)  # anywhere in time: mostly far from the newest stamp
        if step % 50 == 49:
            limit = rng.randrange(0, 100_000)
            frames.append(op(EXPIRE, u64(limit)))
            gone = sorted(i for i, t in used.items() if t < limit)
            for i in gone:
                del used[i]
            expected.append(("nf_expire_items", f"{len(gone):08x}"))
        elif step % 7 == 0:
            frames.append(op(CHAIN_ALLOC))
            free = [i for i in range(n) if i not in used]
            if free:
                used[free[0]] = now
            expected.append(("nf_dchain_allocate_new_index", "01" if free else "00"))
        else:
            index = rng.randrange(n)
            frames.append(op(CHAIN_REJUVENATE, u32(index)))
            ok = index in used
            if ok:
                used[index] = max(used[index], now)
            expected.append(("nf_dchain_rejuvenate_index", "01" if ok else "00"))
        times.append(now)
    result = run_ops(frames, times, CHAIN_RANGE=n)
    got = calls_by_packet(result)
    expiries = 0
    for index, want in enumerate(expected):
        if want is None:
            continue
        logged = got[index][-1]
        assert (logged.call, logged.results[0]) == want, index
        expiries += want[0] == "nf_expire_items" and want[1] != "00000000"
    assert expiries > 20  # the check had something to find


def test_an_older_refresh_does_not_move_an_index_back_in_time():
    # allocated at 10, refreshed at 50, then at 20 (another core's clock): expiry at 40 keeps it
    frames = [op(CHAIN_ALLOC), op(CHAIN_REJUVENATE, u32(0)), op(CHAIN_REJUVENATE, u32(0)), op(EXPIRE, u64(40)),
              op(CHAIN_IS_ALLOCATED, u32(0)), op(EXPIRE, u64(51))]
    got = calls_by_packet(run_ops(frames, [10, 50, 20, 30, 31, 32]))
    assert [c.results for c in got[2]] == [("01",)]  # the refresh itself succeeds
    assert got[3][-1].results == ("00000000",) and got[4][-1].results == ("01",)
    assert got[5][-1].results == ("00000001",)


def test_dchain_hands_out_the_lowest_free_index_over_a_large_range():
    n = 5000  # three levels of the free-index bitmap
    freed = [4999, 64, 4097, 63]
    frames = [op(CHAIN_ALLOC_MANY, u32(n)), op(CHAIN_ALLOC)] + [op(CHAIN_FREE, u32(i)) for i in freed]
    frames += [op(CHAIN_ALLOC_MANY, u32(4)), op(CHAIN_ALLOC)]
    result = run_ops(frames, CHAIN_RANGE=n)
    got = results(result)
    assert got[0][:8] == u32(n) + u32(n - 1)
    assert got[1][0] == 0
    again = [c.results for c in calls_by_packet(result)[len(frames) - 2]]
    assert again == [("01", f"{i:08x}") for i in sorted(freed)]
    assert got[len(frames) - 1][0] == 0


def test_expire_items_erases_the_keys_from_the_map():
    a, b, c = b"AAAA", b"BBBB", b"CCCC"
    flipped = bytes(x ^ 0xFF for x in b)
    frames = [op(FLOW, a), op(FLOW, b), op(FLOW, c), op(FLOW, a),  # a refreshed at t=40
              op(EXPIRE, u64(30)),  # b (t=20) goes; c (t=30) is not strictly older
              op(FLOWS_GET, a), op(FLOWS_GET, b), op(FLOWS_GET, c), op(FLOWS_B_GET, flipped),
              op(EXPIRE2, u64(45)),  # a (40) and c (30) go, from both maps
              op(FLOWS_GET, a), op(FLOWS_B_GET, bytes(x ^ 0xFF for x in a)), op(FLOW, b), op(FLOWS_GET, b)]
    times = [10, 20, 30, 40, 50, 50, 50, 50, 50, 60, 60, 60, 70, 70]
    got = results(run_ops(frames, times))
    assert got[4][:4] == u32(1)
    assert got[5][:5] == b"\x01" + u32(0)
    assert got[6][0] == 0
    assert got[7][:5] == b"\x01" + u32(2)
    assert got[8][:5] == b"\x01" + u32(1)  # expiry of one map erased nothing from the other
    assert got[9][:4] == u32(2)
    assert got[10][0] == 0 and got[11][0] == 0
    assert got[13][:5] == b"\x01" + u32(0)  # the lowest free index again


def test_flows_beyond_the_chain_range_are_not_recorded():
    keys = [bytes([65 + i]) * 4 for i in range(5)]
    frames = [op(FLOW, k) for k in keys] + [op(FLOWS_GET, keys[4]), op(FLOWS_GET, keys[3])]
    got = results(run_ops(frames, CHAIN_RANGE=4))
    assert got[5][0] == 0 and got[6][:5] == b"\x01" + u32(3)


# ---- count-min sketch ------------------------------------------------------------------------------

def test_sketch_matches_a_count_min_model():
    """Touches, estimates and expiry against a model using the runtime's documented row hashes,
    with a narrow sketch so that keys collide."""
    width = 8
    rng = random.Random(5)
    keys = [bytes([rng.randrange(256) for _ in range(4)]) for _ in range(10)]
    counts = [0] * (4 * width)
    touched = [0] * (4 * width)
    frames, times, expected = [], [], {}
    now = 0
    for _ in range(300):
        now += rng.randrange(0, 4)
        kind = rng.choice("ttte e")
        key = rng.choice(keys)
        if kind == "t":
            frames.append(op(SKETCH_TOUCH, key))
            for col in sketch_columns(key, width):
                counts[col] += 1
                touched[col] = now
        elif kind == "e":
            frames.append(op(SKETCH_ESTIMATE, key))
            expected[len(frames) - 1] = min(counts[col] for col in sketch_columns(key, width))
        else:
            limit = max(now - rng.randrange(0, 30), 0)
            frames.append(op(SKETCH_EXPIRE, u64(limit)))
            for col in range(4 * width):
                if counts[col] and touched[col] < limit:
                    counts[col] = 0
        times.append(now)
    result = run_ops(frames, times, SKETCH_WIDTH=width)
    got = results(result)
    assert expected and any(v > 1 for v in expected.values())
    for index, estimate in expected.items():
        assert got[index][:4] == u32(estimate), index
    logged = {c.packet: c.results for c in result.calls if c.call == "nf_sketch_estimate"}
    assert logged == {i: (f"{v:08x}",) for i, v in expected.items()}


def test_sketch_counts_exactly_without_collisions():
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    assert not set(sketch_columns(a, 1024)) & set(sketch_columns(b, 1024))
    frames = [op(SKETCH_TOUCH, a)] * 3 + [op(SKETCH_TOUCH, b)] + [op(SKETCH_ESTIMATE, a), op(SKETCH_ESTIMATE, b),
                                                                  op(SKETCH_EXPIRE, u64(3)), op(SKETCH_ESTIMATE, a),
                                                                  op(SKETCH_ESTIMATE, b)]
    times = [1, 2, 3, 4, 5, 5, 6, 6, 6]
    got = results(run_ops(frames, times, SKETCH_WIDTH=1024))
    assert [int.from_bytes(got[i][:4], "little") for i in (4, 5, 7, 8)] == [3, 1, 3, 1]
    frames[6] = op(SKETCH_EXPIRE, u64(4))  # a was last touched at 3: its counters go
    got = results(run_ops(frames, times, SKETCH_WIDTH=1024))
    assert [int.from_bytes(got[i][:4], "little") for i in (7, 8)] == [0, 1]


# ---- Maglev table ---------------------------------------------------------------------------------

def find_all(height: int, backends: int, prefix_frames, **defines):
    frames = list(prefix_frames) + [op(CHT_FIND, u32(h)) for h in range(height)]
    got = results(run_ops(frames, calls=False, CHT_HEIGHT=height, CHT_BACKENDS=backends, **defines))
    start = len(prefix_frames)
    return [(got[start + r][0], int.from_bytes(got[start + r][1:5], "little")) for r in range(height)]


def test_cht_rows_follow_the_maglev_twin_and_fail_over():
    height, backends = 13, 4
    rows = maglev_rows(height, backends)
    assert all(sorted(row) == list(range(backends)) for row in rows)
    alloc = [op(BACKEND_ALLOC)] * backends
    found = find_all(height, backends, alloc)
    assert found == [(1, rows[r][0]) for r in range(height)]
    firsts = Counter(b for _, b in found)
    assert max(firsts.values()) - min(firsts.values()) <= 1  # Maglev's even share
    # backend 2 dies: only its rows move, each to its next preference
    after = find_all(height, backends, alloc + [op(BACKEND_FREE, u32(2))])
    for r in range(height):
        want = rows[r][0] if rows[r][0] != 2 else rows[r][1]
        assert after[r] == (1, want)
    assert all(b != 2 for _, b in after)
    # no backend alive: nothing found
    gone = find_all(height, backends, alloc + [op(BACKEND_FREE, u32(b)) for b in range(backends)])
    assert gone == [(0, 0)] * height


def test_cht_spreads_first_choices_evenly_on_a_big_table():
    height, backends = 4099, 32
    found = find_all(height, backends, [op(BACKEND_ALLOC)] * backends)
    counts = Counter(b for _, b in found)
    assert sorted(counts) == list(range(backends))
    assert max(counts.values()) - min(counts.values()) <= 1
    assert found == [(1, row[0]) for row in maglev_rows(height, backends)]


def test_cht_needs_a_prime_height():
    with pytest.raises(RunError, match=r"nf_init failed \(returned false\): nf_cht_allocate: height 12 is not a prime"):
        run_ops([op(CHT_FIND, u32(0))], CHT_HEIGHT=12)


# ---- hashing and checksums ------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)])
def test_nf_hash_is_fnv1a_known_answers(data, expected):
    got = results(run_ops([op(HASH, bytes([len(data)]) + data)]))
    assert got[0][:4] == u32(expected)


def test_nf_hash_matches_the_python_twin():
    rng = random.Random(3)
    data = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 16))) for _ in range(50)]
    got = results(run_ops([op(HASH, bytes([len(d)]) + d) for d in data]))
    assert [got[i][:4] for i in range(len(data))] == [u32(fnv1a(d)) for d in data]


def ones_complement(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksums_valid(frame: bytes) -> tuple[bool, bool]:
    """(IPv4 header checksum valid, L4 checksum valid or absent), recomputed independently."""
    ihl = (frame[14] & 15) * 4
    ip = frame[14:14 + ihl]
    ip_ok = ones_complement(ip) == 0xFFFF
    total = struct.unpack("!H", frame[16:18])[0]
    proto = frame[23]
    l4 = frame[14 + ihl:14 + total]
    if proto == 17 and l4[6:8] == b"\0\0":
        return ip_ok, True
    pseudo = frame[26:34] + struct.pack("!BBH", 0, proto, len(l4))
    return ip_ok, ones_complement(pseudo + l4) == 0xFFFF


def ipv4_frame(l4: bytes, proto: int, *, options: bytes = b"", frag: int = 0, total: int | None = None) -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total or 4 * ihl + len(l4), 1, frag, 64, proto, 0,
                         bytes([192, 168, 0, 1]), bytes([192, 168, 0, 2])) + options
    return ETHER[:12] + b"\x08\x00" + header + l4


def run_rewrite(frames):
    return run_trace(NFS / "rewrite.c", trace_of(frames))


def test_checksums_after_rewriting_a_real_capture():
    _stamps, frames = read_pcap(HTTP_PCAP)
    result = run_rewrite(frames)
    assert result.devices == 3
    assert [v.verdict for v in result.verdicts] == [2] * len(frames)
    for _index, _verdict, frame in result.outputs:
        packet = dpkt.ethernet.Ethernet(frame)
        assert packet.ip.src == bytes([10, 9, 8, 7]) and packet.ip.data.sport == 4242
        assert checksums_valid(frame) == (True, True)


def test_checksum_cases():
    udp = struct.pack("!HHHH", 1000, 53, 8 + 5, 0xBEEF) + b"hello"  # odd length, bogus checksum
    udp_none = struct.pack("!HHHH", 1000, 53, 8 + 4, 0) + b"abcd"
    tcp = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x50, 2, 1024, 0x1234, 0) + b"xyz"
    frames = [
        ipv4_frame(udp, 17),
        ipv4_frame(udp_none, 17),
        ipv4_frame(tcp, 6, options=b"\x01\x01\x01\x00"),  # IHL 6
        ipv4_frame(tcp, 6) + b"\0" * 10,  # Ethernet padding after the datagram
        ipv4_frame(tcp, 6, total=20 + len(tcp) + 100),  # capture shorter than the datagram
        ipv4_frame(udp, 17, frag=0x2000),  # first fragment (MF): no L4 header for the NF
        ipv4_frame(udp, 17, frag=0x0001),  # a later fragment
        ipv4_frame(b"\x08\x00\x00\x00", 1),  # ICMP
        ipv4_frame(tcp, 6)[:14 + 20 + 19],  # TCP header cut short
        ETHER + bytes(50),  # not IPv4
        ipv4_frame(udp, 17)[:14] + b"\x45" + ipv4_frame(udp, 17)[15:14 + 19],  # IPv4 header cut short
        ipv4_frame(udp, 17)[:14] + b"\x44" + ipv4_frame(udp, 17)[15:],  # IHL 4
        ipv4_frame(udp, 17)[:14] + b"\x65" + ipv4_frame(udp, 17)[15:],  # version 6
    ]
    result = run_rewrite(frames)
    assert [v.verdict for v in result.verdicts] == [2, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0]
    out = {index: frame for index, _v, frame in result.outputs}
    assert checksums_valid(out[0]) == (True, True)
    assert out[1][14 + 20 + 6:14 + 20 + 8] == b"\0\0" and checksums_valid(out[1]) == (True, True)
    assert checksums_valid(out[2]) == (True, True) and out[2][14 + 24:14 + 26] == struct.pack("!H", 4242)
    assert checksums_valid(out[3][:-10]) == (True, True) and out[3][-10:] == bytes(10)
    assert checksums_valid(out[4])[0] and out[4][14 + 20 + 16:14 + 20 + 18] == frames[4][14 + 20 + 16:14 + 20 + 18]
    for i in (5, 6, 7, 8):  # the IPv4 checksum is fixed, nothing else changes
        assert checksums_valid(out[i])[0]
        assert out[i][:24] + out[i][26:] == frames[i][:24] + frames[i][26:]
    for i in (9, 10, 11, 12):
        assert out[i] == frames[i]


def test_checksums_of_random_frames():
    rng = random.Random(9)
    frames = []
    for _ in range(200):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        if rng.random() < 0.5:
            l4 = struct.pack("!HHHH", rng.randrange(65536), rng.randrange(65536), 8 + len(payload), 1) + payload
            frames.append(ipv4_frame(l4, 17))
        else:
            l4 = struct.pack("!HHIIBBHHH", rng.randrange(65536), 80, rng.randrange(2**32), 0, 0x50, 0x18, 512, 0, 0)
            frames.append(ipv4_frame(l4 + payload, 6, options=b"\x01" * 4 * rng.randrange(0, 3)))
    result = run_rewrite(frames)
    assert [v.verdict for v in result.verdicts] == [2] * len(frames)
    assert all(checksums_valid(frame) == (True, True) for _i, _v, frame in result.outputs)


def test_a_udp_checksum_of_zero_is_sent_as_ffff():
    def udp(last_word: int) -> bytes:
        l4 = struct.pack("!HHHH", 4242, 53, 10, 1) + struct.pack("!H", last_word)
        frame = bytearray(ipv4_frame(l4, 17))
        frame[26:30] = bytes([10, 9, 8, 7])  # what rewrite.c writes anyway
        return bytes(frame)

    def l4_sum(frame: bytes) -> int:  # the sum over pseudo-header and datagram, checksum field 0
        l4 = frame[34:40] + b"\0\0" + frame[42:44]
        return ones_complement(frame[26:34] + struct.pack("!BBH", 0, 17, len(l4)) + l4)

    base = udp(0)
    frame = udp(0xFFFF - l4_sum(base))  # makes the one's-complement sum 0xffff: checksum 0
    assert l4_sum(frame) == 0xFFFF
    (_index, _verdict, out), = run_rewrite([frame]).outputs
    assert out[40:42] == b"\xff\xff" and checksums_valid(out) == (True, True)


# ---- the harness ------------------------------------------------------------------------------------

def test_runts_never_reach_the_nf():
    frames = [ETHER[:13], ETHER + b"\xdd", ETHER, b""]
    result = run_trace(NFS / "reflect.c", trace_of(frames, devices=[1, 0, 1, 0]))
    assert [v.verdict for v in result.verdicts] == [-1, -1, 1, -1]
    assert result.runts == (0, 3)
    assert result.summary() == {"in": 4, "out": {"0": 0, "1": 1}, "forwarded": 1, "dropped": 1,
                                "flooded": 0, "runts": 2}


def test_a_device_the_nf_lacks_stops_the_run():
    with pytest.raises(RunError, match=r"nf_process returned 5 for packet 1: not a device of this NF \(0\.\.1\)"):
        run_ops([op(MAP_GET, b"xxxx"), op(MAP_GET, b"xxxx", verdict=5)])


def test_nf_init_failure_is_a_run_error():
    with pytest.raises(RunError, match=r"init_fails\.c: nf_init failed \(returned false\): "
                                       r"nf_map_allocate: key_size 0 or capacity 16 out of range$"):
        run_trace(NFS / "init_fails.c", trace_of([ETHER + bytes(50)]))


def test_bench_mode_restores_frames_and_reports_mpps(tmp_path):
    binary = build.build_nf(NFS / "mark.c")
    trace_file = tmp_path / "trace.bin"
    trace_file.write_bytes(encode_trace(trace_of([ETHER + bytes(50), ETHER[:5], ETHER + bytes(10)], devices=[0, 1, 1])))
    done = subprocess.run([str(binary), "--bench", "30001", str(trace_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[0] == "bench:" and words[1] == "30001" and words[-1] == "Mpps" and float(words[-2]) > 0
    # mark.c answers device 7 to a frame it already marked: every lap saw pristine frames


@pytest.mark.parametrize("stamps", [[0, 1 << 62, 1 << 63], [0, (1 << 64) - 1], [(1 << 64) - 2] * 3])
def test_bench_laps_of_a_trace_spanning_centuries_never_go_back_in_time(tmp_path, stamps):
    """Each lap shifts time by the trace's span plus a mean gap: with stamps 0 and 2**63 the shift
    wrapped past 2**64 ns and time went backwards (time_order.c answers device 7 then). Past
    2**64 - 1 ns, time now stays there."""
    binary = build.build_nf(NFS / "time_order.c")
    trace_file = tmp_path / "trace.bin"
    trace_file.write_bytes(encode_trace(Trace(np.array(stamps, dtype=np.uint64), np.zeros(len(stamps), np.uint16),
                                              (ETHER + bytes(50),) * len(stamps))))
    done = subprocess.run([str(binary), "--bench", "30", str(trace_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("bench: 30 packets in "), done.stderr


def test_harness_rejects_a_bad_trace_file(tmp_path):
    binary = build.build_nf(NFS / "mark.c")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NFXTRACE" + struct.pack("<QHH", 0, 0, 100) + bytes(10))
    done = subprocess.run([str(binary), str(bad), str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == f"nfx-seq: {bad}: packet 0 is truncated"
    bad.write_bytes(b"NFXTRACE" + struct.pack("<QHH", 0, 2, 1) + b"x")
    done = subprocess.run([str(binary), str(bad), str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "arrives on device 2, but the NF has 2 devices" in done.stderr
    assert subprocess.run([str(binary), "--info"], capture_output=True, text=True).stdout == "NF_DEVICES=2\n"


# ---- builds -----------------------------------------------------------------------------------------

def test_builds_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("NFX_CACHE", str(tmp_path / "cache"))
    nf = tmp_path / "nf.c"
    nf.write_text((NFS / "reflect.c").read_text())
    first = build.build_nf(nf)
    assert first.is_relative_to(tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert build.build_nf(nf) == first and first.stat().st_mtime_ns == stamp
    nf.write_text(nf.read_text() + "\n/* a comment changes nothing gcc sees */\n")
    assert build.build_nf(nf) == first
    nf.write_text(nf.read_text().replace("0xdd", "0xde"))
    second = build.build_nf(nf)
    assert second != first and second.is_file()
    assert build.build_nf(nf, kind="dpdk") not in (first, second)


def test_defines_reach_the_nf_and_change_the_build():
    plain = build.build_nf(STATE_OPS)
    small = build.build_nf(STATE_OPS, {"MAP_CAPACITY": "2"})
    assert plain != small


def test_configurable_macros_come_from_the_preprocessor():
    macros = nfsource.configurable_macros(STATE_OPS)
    assert list(macros) == ["CHAIN_RANGE", "CHT_BACKENDS", "CHT_HEIGHT", "MAP_CAPACITY", "NF_DEVICES",
                            "SKETCH_WIDTH", "VECTOR_CAPACITY"]
    assert macros["MAP_CAPACITY"].line == 26 and macros["NF_DEVICES"] is None
    # rewrite.c fixes NF_DEVICES itself, so it is not configurable there
    assert nfsource.configurable_macros(NFS / "rewrite.c") == {}
    assert nfsource.read_nf(NFS / "rewrite.c").devices == 3
    assert nfsource.read_nf(STATE_OPS, {"NF_DEVICES": "(2 + 2)"}).devices == 4


def test_a_macro_only_tested_is_configurable(tmp_path):
    nf = tmp_path / "tested.c"
    nf.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  "  (void)packet; (void)len; (void)now;\n#ifdef SWAP\n  return 1 - device;\n#endif\n"
                  "  return device;\n}\n")
    assert list(nfsource.configurable_macros(nf)) == ["NF_DEVICES", "SWAP"]
    frame = ETHER + bytes(50)
    assert [v.verdict for v in run_trace(nf, trace_of([frame])).verdicts] == [0]
    assert [v.verdict for v in run_trace(nf, trace_of([frame]), {"SWAP": "1"}).verdicts] == [1]


def test_unknown_and_fixed_defines_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown define NOPE: .*state_ops\.c neither defines nor tests it "
                                          r"\(its configurable macros: CHAIN_RANGE, .*VECTOR_CAPACITY\)"):
        build.build_nf(STATE_OPS, {"NOPE": "1"})
    with pytest.raises(ConfigError, match=r"rewrite\.c:7:1: define NF_DEVICES: .* defines NF_DEVICES unconditionally"):
        build.build_nf(NFS / "rewrite.c", {"NF_DEVICES": "4"})
    with pytest.raises(ConfigError, match="not a C identifier"):
        build.build_nf(STATE_OPS, {"1X": "1"})
    with pytest.raises(ConfigError, match="no such NF source file"):
        build.build_nf(NFS / "missing.c")


def test_compile_errors_point_at_the_source():
    with pytest.raises(CSyntaxError) as caught:  # a syntax error: the same error analyze gives
        build.build_nf(NFS / "bad_syntax.c")
    assert str(caught.value) == f"{NFS / 'bad_syntax.c'}:6:11: expected expression before ';' token"


def test_missing_entry_point_is_named(tmp_path):
    with pytest.raises(BuildError, match=r"no_process\.c does not define nf_process \(expected: int nf_process"):
        build.build_nf(NFS / "no_process.c")
    nf = tmp_path / "no_init.c"
    nf.write_text((NFS / "reflect.c").read_text().replace("bool nf_init(void)", "static bool unused_init(void)")
                  .replace("{ return true; }", "{ return true; }\nbool (*keep)(void) = unused_init;"))
    with pytest.raises(BuildError, match=r"no_init\.c does not define nf_init \(expected: bool nf_init\(void\), not static\)"):
        build.build_nf(nf)


def test_undefined_behaviour_sanitizer_build_runs():
    binary = build.build_nf(STATE_OPS, sanitize="undefined")
    assert binary != build.build_nf(STATE_OPS)
    result = run_trace(STATE_OPS, trace_of([op(MAP_GET, bytes.fromhex("deadbeef"))]), sanitize="undefined")
    assert results(result)[0][:5] == b"\x01" + u32(7)
    with pytest.raises(ConfigError, match="unknown sanitizer"):
        build.build_nf(STATE_OPS, sanitize="thread")
