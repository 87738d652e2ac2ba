"""Packet classes counted by the numba kernels against a plain Counter over the packed keys."""
from collections import Counter

import numpy as np
import pytest
import z3

import explorer.simulate.classes as classes_module
from explorer.simulate.classes import Classes, ClassTable, Layout
from explorer.simulate.threads import run_tasks
from explorer.symbex.packet import INPUT_SYMBOLS
from explorer.traffic.field_arrays import PacketFields
from explorer.wire import FIELD_BY_NAME

LEN = z3.BitVec("p.len", INPUT_SYMBOLS["p.len"])
IHL = z3.BitVec("p.ipv4.version_ihl", FIELD_BY_NAME["p.ipv4.version_ihl"].bits)
PROTO = z3.BitVec("p.ipv4.proto", FIELD_BY_NAME["p.ipv4.proto"].bits)
SRC_MAC = z3.BitVec("p.ether.src", FIELD_BY_NAME["p.ether.src"].bits)


def _fields(rng: np.random.Generator, n: int, flows: int) -> tuple[PacketFields, np.ndarray]:
    """n packets over a few flows, with a few lengths, IHLs, protocols, flags and MACs each, so
    that classes repeat and split on every part of the key."""
    flow = rng.integers(0, flows, n)
    pick = lambda values: np.asarray(values)[rng.integers(0, len(values), n)]  # noqa: E731
    is_ipv4 = pick([True, True, True, False])
    frag = pick([False, False, False, True]) & is_ipv4
    proto = np.where(is_ipv4, pick([6, 17, 1]), 0).astype(np.uint8)
    is_l4 = is_ipv4 & ~frag & (proto != 1)
    fields = PacketFields(
        length=pick([60, 64, 570, 1514]).astype(np.uint32),
        ether_type=np.where(is_ipv4, 0x800, pick([0x806, 0x86DD])).astype(np.uint16),
        eth_src=(flow % 5).astype(np.uint64) + np.uint64(0x525400000000),
        eth_dst=np.full(n, 0x3CFDFEA00001, dtype=np.uint64),
        is_ipv4=is_ipv4, ihl=np.where(is_ipv4, pick([5, 6]), 0).astype(np.uint8), proto=proto, frag=frag,
        src_ip=np.where(is_ipv4, (flow * 2654435761) % (1 << 32), 0).astype(np.uint32),
        dst_ip=np.where(is_ipv4, (flow * 40503 + 7) % (1 << 32), 0).astype(np.uint32),
        is_l4=is_l4, src_port=np.where(is_l4, 1024 + flow % 50000, 0).astype(np.uint16),
        dst_port=np.where(is_l4, pick([53, 80, 443]), 0).astype(np.uint16))
    return fields, pick([0, 1, 3]).astype(np.int64)


LAYOUTS = {
    "plain": Layout.of([], []),
    "length tests": Layout.of([], [z3.UGE(LEN, 64),
                                   z3.UGE(z3.ZeroExt(16, LEN), 14 + 4 * z3.ZeroExt(28, z3.Extract(3, 0, IHL))),
                                   z3.And(PROTO == 6, z3.UGE(LEN, 600))]),
    "mac and exact length": Layout.of([z3.Concat(SRC_MAC, LEN)], []),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("chunk", [1, 97, 5000])
def test_class_counts_match_a_counter(name, chunk):
    layout = LAYOUTS[name]
    fields, devices = _fields(np.random.default_rng(7), 6000, 700)
    keys = layout.pack(fields, devices)
    rows = [tuple(r) for r in keys.tolist()]
    count, first = Counter(rows), {}
    for i, r in enumerate(rows):
        first.setdefault(r, i)
    expected = sorted(first, key=first.get)  # in first-packet order

    table = ClassTable(layout, capacity=16)  # tiny: the kernel grows it many times
    for start in range(0, len(fields), chunk):
        at = np.arange(start, min(start + chunk, len(fields)))
        table.add(fields.select(at), devices[at], start)
    got = table.classes()
    assert [tuple(r) for r in got.keys.tolist()] == expected
    assert got.first.tolist() == [first[r] for r in expected]
    assert got.count.tolist() == [count[r] for r in expected]
    assert got.packets == len(fields) and 100 < len(got) < len(fields)


def test_pack_matches_its_fields():
    """The packed key holds what ``Layout.env`` gives back (the reference the kernels are checked
    against is itself right)."""
    layout = LAYOUTS["length tests"]
    fields, devices = _fields(np.random.default_rng(3), 500, 50)
    env, got_devices = layout.env(layout.pack(fields, devices))
    steering = layout.steering(layout.pack(fields, devices))
    assert np.array_equal(got_devices, devices)
    for name in ("src_ip", "dst_ip", "src_port", "dst_port", "is_ipv4", "is_l4"):
        assert np.array_equal(steering[name], getattr(fields, name)), name
    bits = layout.length_values(layout.pack(fields, devices))
    length, ihl = fields.length.astype(np.int64), fields.ihl.astype(np.int64)
    version_ihl = np.where(fields.is_ipv4, 0x40 | ihl, 0)
    assert np.array_equal(bits[layout.length_tests[0].get_id()], length >= 64)
    assert np.array_equal(bits[layout.length_tests[1].get_id()], length >= 14 + 4 * (version_ihl & 15))
    assert np.array_equal(bits[layout.length_tests[2].get_id()], (fields.proto == 6) & (length >= 600))


def test_merged_chunks_equal_one_pass():
    layout = LAYOUTS["length tests"]
    fields, devices = _fields(np.random.default_rng(11), 8000, 900)
    whole = ClassTable(layout)
    whole.add(fields, devices, 0)
    parts = []
    for start in range(0, len(fields), 1500):
        t = ClassTable(layout)
        at = np.arange(start, min(start + 1500, len(fields)))
        t.add(fields.select(at), devices[at], start)
        parts.append(t.classes())
    merged, one = Classes.merge(parts), whole.classes()
    assert np.array_equal(merged.keys, one.keys)
    assert np.array_equal(merged.first, one.first) and np.array_equal(merged.count, one.count)


def test_length_tests_reading_wide_fields_are_evaluated_per_packet():
    """A test on the length that also reads an address cannot be numbered by the narrow fields:
    its bits come from evaluating it over every packet, and agree with numpy."""
    src = z3.BitVec("p.ipv4.src", FIELD_BY_NAME["p.ipv4.src"].bits)
    layout = Layout.of([], [z3.UGE(LEN, 100), z3.And(z3.Extract(0, 0, src) == 1, z3.ULT(LEN, 600))])
    fields, devices = _fields(np.random.default_rng(5), 3000, 300)
    bits = layout.length_values(layout.pack(fields, devices))
    length = fields.length.astype(np.int64)
    assert np.array_equal(bits[layout.length_tests[0].get_id()], length >= 100)
    assert np.array_equal(bits[layout.length_tests[1].get_id()], ((fields.src_ip & 1) == 1) & (length < 600))


@pytest.mark.parametrize("scale", [5_000_000_029, 2_500_000_001])
def test_counts_past_32_bits_merge_exactly(scale):
    """A slot keeps a 32-bit count; a class of more packets (here merged from two huge parts:
    every part's count past 2^32 on its own, or only their sums) moves its count out of the slot
    and still adds up exactly."""
    layout = LAYOUTS["plain"]
    fields, devices = _fields(np.random.default_rng(13), 3000, 200)
    parts = []
    for start in (0, 1500):
        t = ClassTable(layout)
        at = np.arange(start, start + 1500)
        t.add(fields.select(at), devices[at], start)
        c = t.classes()
        parts.append(Classes(layout, c.keys, c.first, c.count * scale))
    whole = ClassTable(layout)
    whole.add(fields, devices, 0)
    one, merged = whole.classes(), Classes.merge(parts)
    assert np.array_equal(merged.keys, one.keys) and np.array_equal(merged.first, one.first)
    assert merged.count.tolist() == (one.count * scale).tolist()
    assert merged.count.max() > 1 << 32 and (one.count > 1).any()


def test_slots_start_on_a_cache_line():
    table = ClassTable(LAYOUTS["plain"], capacity=1 << 14)
    fields, devices = _fields(np.random.default_rng(2), 40_000, 30_000)  # grows the table
    table.add(fields, devices, 0)
    for part in table.parts:
        assert part.slots.shape[1] * 8 == 32 and part.slots.ctypes.data % 64 == 0
    assert len(table.classes()) > 1 << 14


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_threads_count_the_same_classes(threads, monkeypatch):
    """Partitions counted on threads of their own, each growing its slots many times and some
    classes past 32 bits, list exactly what one thread does: same keys, order, first packets and
    counts (in chunks of packets and in merged classes alike)."""
    monkeypatch.setattr(classes_module, "_SERIAL_ROWS", 0)  # threads even for small chunks
    monkeypatch.setattr(classes_module, "_BLOCK", 1000)  # many blocks per chunk
    layout = LAYOUTS["length tests"]
    fields, devices = _fields(np.random.default_rng(17), 12_000, 2500)
    one, many = ClassTable(layout, capacity=16, threads=1), ClassTable(layout, capacity=16, threads=threads)
    for start in range(0, len(fields), 4321):
        at = np.arange(start, min(start + 4321, len(fields)))
        one.add(fields.select(at), devices[at], start)
        many.add(fields.select(at), devices[at], start)
    expected, got = one.classes(), many.classes()
    assert len(many.parts) == threads and min(p.size for p in many.parts) > 0
    for name in ("keys", "first", "count"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    assert np.array_equal(expected.first, np.sort(expected.first)) and len(expected) > 2000
    huge = Classes(layout, expected.keys, expected.first, expected.count * 3_000_000_007)
    merged = Classes.merge([huge, huge_later(huge, len(fields))], threads=threads)
    reference = Classes.merge([huge, huge_later(huge, len(fields))], threads=1)
    assert merged.count.tolist() == reference.count.tolist() == (2 * huge.count).tolist()
    assert np.array_equal(merged.keys, reference.keys) and np.array_equal(merged.first, reference.first)


@pytest.mark.parametrize("limit", [8, 1 << 20])
def test_length_bits_looked_up_per_narrow_combination_equal_the_reference(limit, monkeypatch):
    """The table of narrow combinations learns those first seen in later chunks; past its limit
    the packets are tested one by one: the classes are the reference's either way."""
    monkeypatch.setattr(classes_module.NarrowBits, "LIMIT", limit)
    monkeypatch.setattr(classes_module, "_BLOCK", 700)  # combinations first seen mid-chunk too
    layout = LAYOUTS["length tests"]
    assert layout.narrow_tests and not LAYOUTS["plain"].narrow_tests
    fields, devices = _fields(np.random.default_rng(5), 5000, 300)
    late = np.arange(len(fields)) >= 3000  # a length only late packets have
    fields = PacketFields(**{**{f: getattr(fields, f) for f in PacketFields.__dataclass_fields__},
                             "length": np.where(late & (np.arange(len(fields)) % 3 == 0), 999,
                                                fields.length).astype(np.uint32)})
    table = ClassTable(layout, threads=1)
    for start in range(0, len(fields), 1999):
        at = np.arange(start, min(start + 1999, len(fields)))
        table.add(fields.select(at), devices[at], start)
    got = table.classes()
    rows = [tuple(r) for r in layout.pack(fields, devices).tolist()]
    count = Counter(rows)
    assert [tuple(k) for k in got.keys.tolist()] == list(dict.fromkeys(rows))
    assert got.count.tolist() == [count[tuple(k)] for k in got.keys.tolist()]
    assert (table.narrow is None) == (limit == 8)
    if table.narrow is not None:
        assert 999 in (table.narrow.values[:table.narrow.size] & np.uint64(0xFFFF)).tolist()


@pytest.mark.parametrize("limit", [8, 1 << 20])
def test_packets_passing_narrow_tests_equal_the_reference(limit, monkeypatch):
    """``NarrowBits.passing`` (the pool model's guard: tests learned per narrow combination, chunk
    after chunk) gives the packets received on the wanted devices whose every test holds, as
    testing each packet does; past its limit it says so (None) and learns nothing."""
    monkeypatch.setattr(classes_module.NarrowBits, "LIMIT", limit)
    tests = [z3.UGE(LEN, 64), z3.ULE(LEN, 1000), PROTO != 1, z3.Extract(3, 0, IHL) == 5]
    narrow = classes_module.NarrowBits(tests)
    fields, devices = _fields(np.random.default_rng(8), 6000, 300)
    for start in range(0, len(fields), 2000):
        at = np.arange(start, start + 2000)
        chunk, on = fields.select(at), devices[at]
        got = narrow.passing(classes_module.narrow_inputs(chunk, on), (0, 3))
        bits = classes_module.test_bits(tests, chunk, on)
        expected = np.flatnonzero((bits == np.uint64(15)) & ((on == 0) | (on == 3)))
        if limit == 8:
            assert got is None and narrow.size == 0
        else:
            assert got.tolist() == expected.tolist() and 0 < len(expected) < len(at)
    assert classes_module.narrow_only(tests) and not classes_module.narrow_only([SRC_MAC == 1])


def test_length_tests_that_read_state_take_no_bit():
    """A condition on the length and a state value (a policer's bucket) is assumed to hold, as in
    guards: it takes no bit of the class key and does not make the other tests run per packet."""
    cell = z3.BitVec("buckets.cell#4", 128)
    over = z3.ULE(z3.ZeroExt(64 - LEN.size(), LEN), z3.Extract(63, 0, cell))
    layout = Layout.of([], [over, z3.UGE(LEN, 64)])
    assert [t.get_id() for t in layout.length_tests] == [z3.UGE(LEN, 64).get_id()] and layout.narrow_tests


def huge_later(classes: Classes, offset: int) -> Classes:
    """The same classes again, as if their packets came again after ``offset`` packets."""
    return Classes(classes.layout, classes.keys, classes.first + offset, classes.count)


def test_a_table_needs_a_thread():
    with pytest.raises(ValueError, match="at least 1 thread"):
        ClassTable(LAYOUTS["plain"], threads=0)


def test_shared_tasks_all_run_and_the_first_error_is_raised_after():
    """Every task runs once, on whichever thread takes it (this one included), and an error
    in one is raised only when all have finished."""
    ran = []

    def task(k):
        def run():
            ran.append(k)
            if k in (3, 5):
                raise ValueError(f"task {k}")
        return run

    with pytest.raises(ValueError, match="task [35]"):
        run_tasks([task(k) for k in range(8)], threads=3)
    assert sorted(ran) == list(range(8))
    ran.clear()
    run_tasks([task(k) for k in (0, 1, 2)], threads=1)
    assert ran == [0, 1, 2]


def test_a_forked_child_counts_with_threads_of_its_own():
    """A process forked after the helper threads started (a multiprocessing pool, a Dask
    worker) gets a pool of its own: its tasks run on threads, not only on the calling one."""
    import multiprocessing
    import threading

    names = []
    run_tasks([lambda: names.append(threading.current_thread().name) for _ in range(4)], threads=2)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_task_threads) is True


def _task_threads() -> bool:
    import threading
    import time

    names = set()

    def task():
        names.add(threading.current_thread().name)
        time.sleep(0.05)  # long enough that a helper takes a task while this thread runs one

    run_tasks([task for _ in range(6)], threads=2)
    return any(name.startswith("nfx-count") for name in names)


def test_guards_decided_per_narrow_signature_equal_guards_per_class():
    """The report decides conjuncts on narrow symbols (and length tests) once per signature and
    spreads them; the rest per class: the guard equals the plain per-class one, for conditions
    mixing both kinds, unknown state, and several devices."""
    from explorer.simulate.key_arrays import on_devices, packet_guard
    from explorer.simulate.simulation import _Part

    dport = z3.BitVec("p.l4.dport", 16)
    device = z3.BitVec("p.device", 16)
    state = z3.BitVec("table.value", 8)
    tests = [z3.UGE(LEN, 64), z3.And(PROTO == 6, z3.UGE(LEN, 600))]
    conditions = [z3.And(PROTO == 17, dport == 53, tests[0]), z3.And(tests[1], state == 3),
                  z3.And(device == 1, z3.Extract(3, 0, IHL) == 5), z3.Or(PROTO == 1, dport == 80)]
    layout = Layout.of([], tests + conditions)
    fields, devices = _fields(np.random.default_rng(11), 4000, 500)
    table = ClassTable(layout, threads=1)
    table.add(fields, devices, 0)
    found = table.classes()
    part = _Part(0, len(found), found.keys, layout)
    env, class_devices = layout.env(found.keys)
    memo = {k: (None, v) for k, v in layout.length_values(found.keys).items()}
    partial = 0
    for chosen in ([0], [1], [2], [3], [0, 1, 2, 3], [1, 3]):
        for on in ((0,), (1, 3), (0, 1, 3)):
            want = np.zeros(len(found), dtype=bool)
            for k in chosen:
                want |= packet_guard(conditions[k], env, len(found), memo)
            want &= on_devices(class_devices, on)
            got = part.guard(on, [conditions[k] for k in chosen], {})
            assert np.array_equal(got, want), (chosen, on)
            partial += 0 < want.sum() < len(found)
    assert partial >= 12


def test_distinct_rows_are_numbered_in_order_of_first_appearance():
    from explorer.simulate.classes import distinct_rows

    rng = np.random.default_rng(3)
    for n, width, high in [(0, 1, 5), (1, 2, 5), (5000, 1, 40), (20000, 2, 3000), (3000, 3, 1 << 60)]:
        values = rng.integers(0, high, size=(n, width), dtype=np.int64).astype(np.uint64)
        ids, distinct = distinct_rows(values)
        first = list(dict.fromkeys(map(tuple, values.tolist())))
        assert [tuple(r) for r in distinct.tolist()] == first
        assert np.array_equal(distinct[ids], values) if n else len(ids) == 0
    assert distinct_rows(np.arange(5000, dtype=np.uint64).reshape(-1, 1), limit=100) is None
