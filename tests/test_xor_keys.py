"""Keys that XOR header fields, as NFs on one port do to give both directions of a conversation one
entry (``tests/nfs/xor_pairs.c``: ``src ^ dst``; with ``XP_PORTS`` also ``sport ^ dport``; with
``XP_MASK`` the top 24 bits of the address XOR). Toeplitz is linear over GF(2): with a key whose
windows for the two addresses (and the two ports) are equal, hash(s, d) = M(s) ^ M(d) = M(s ^ d),
so packets with one XOR land on one core. Before, a XOR bit was opaque and these NFs fell back to
locks. A sum of the addresses (``XP_SUM``) is not linear and stays locked; keys ordered with ?:
(``tests/nfs/ordered_convs.c``, the lower address and its port first) shard through the ways of
their choices.

Soundness of the XOR keys is proved here for every NIC profile at 2 and 3 cores over all packets,
by GF(2) algebra on the analysis' own key terms and the Toeplitz definition: two packets whose keys
are equal reach one RETA entry. (Z3 took minutes per plan on the same question: XOR chains are hard
for a SAT solver.) The ordered keys are sampled: a packet and its reply share an entry."""
from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import z3

from explorer import pipeline
from explorer.cli import main
from explorer.rss import gf2
from explorer.rss.hash_input import FIELD_BITS, FIELD_NAMES
from explorer.rss.key_solver import plan_with_keys
from explorer.rss.nic import PROFILES
from explorer.rss.toeplitz import hash_fields
from explorer.sharding import constraints as sharding_constraints
from explorer.sharding.keybits import ZERO, KeyBit, key_alternatives, key_bits
from explorer.traffic.pcap import write_trace
from explorer.traffic.trace import Trace
from explorer.wire import RSS_SYMBOL

import nf_packets as pk

ROOT = Path(__file__).resolve().parent.parent
NFS = ROOT / "tests" / "nfs"
XOR = NFS / "xor_pairs.c"
ORDERED = NFS / "ordered_convs.c"
SMALL = {"XP_CAPACITY": "256", "XP_MAX": "6"}

# NF, defines, the object keyed by packets, the fields the device hashes
SHARDED = {
    "xor": (XOR, SMALL, "pairs", ("src_ip", "dst_ip")),
    "xor-ports": (XOR, {**SMALL, "XP_PORTS": "1"}, "pairs", ("src_ip", "dst_ip", "src_port", "dst_port")),
    "xor-mask": (XOR, {**SMALL, "XP_MASK": "1"}, "pairs", ("src_ip", "dst_ip")),
    "ordered": (ORDERED, {"OC_CAPACITY": "256", "OC_MAX": "6"}, "convs", ("src_ip", "dst_ip", "src_port", "dst_port")),
    "ordered-ports": (ORDERED, {"OC_CAPACITY": "256", "OC_MAX": "6", "OC_PORT_ORDER": "1"}, "convs",
                      ("src_ip", "dst_ip", "src_port", "dst_port")),
}


def conversations(packets: int = 6_000, pairs: int = 120, seed: int = 5, ports: bool = False) -> Trace:
    """UDP frames on device 0, each conversation's frames in both directions (addresses and ports
    swapped), and every conversation twinned with another whose addresses (and ports) are XORed with
    one mask: a different pair with the same XOR, which xor_pairs counts as one entry, so the
    plan must put the twins on one core too."""
    rng = random.Random(seed)
    convs = []
    for _ in range(pairs // 2):
        a, b = rng.getrandbits(32), rng.getrandbits(32)
        x, y = rng.randrange(1024, 65536), rng.choice([53, 443, 8080])
        mask, port_mask = rng.getrandbits(32), (rng.getrandbits(16) if ports else 0)
        convs += [(a, x, b, y), (a ^ mask, x ^ port_mask, b ^ mask, y ^ port_mask)]
    events = []
    for k in range(packets):
        a, x, b, y = rng.choice(convs)
        if rng.random() < 0.5:
            a, x, b, y = b, y, a, x
        frame = pk.udp(_dotted(a), x, _dotted(b), y, payload=b"q" * 18)
        events.append((10**9 + 20_000 * (k + 1), 0, frame))
    return pk.trace(events)


def _dotted(value: int) -> str:
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


def _keys_of(analysis, obj: str):
    """Every key term the analysis found for ``obj``, once each."""
    found = {}
    for path in analysis.paths:
        for access in path.accesses:
            if access.object == obj and access.key is not None:
                found.setdefault(access.key.sexpr(), access.key)
    return list(found.values())


INPUT = [(name, i) for name in FIELD_NAMES for i in range(FIELD_BITS[name])]  # the 96 RSS bits, MSB first


def _value(term: z3.ExprRef, fields: dict[str, int]) -> int:
    """``term`` for a packet with these RSS field values (the others 0)."""
    subs = [(z3.BitVec(RSS_SYMBOL[name], FIELD_BITS[name]), z3.BitVecVal(fields.get(name, 0), FIELD_BITS[name]))
            for name in FIELD_NAMES]
    return z3.simplify(z3.substitute(term, *subs)).as_long()


def _key_rows(term: z3.ExprRef, rng: random.Random) -> list[int]:
    """A XOR key as rows over the 96 RSS input bits (bit c of row r: key bit r follows input bit c),
    read off the analysis' own term by evaluating it on each unit input; linearity is checked on
    random inputs (the term is made of XORs, byte swaps, masks and concatenations)."""
    columns = [_value(term, {name: 1 << (FIELD_BITS[name] - 1 - i)}) for name, i in INPUT]
    assert _value(term, {}) == 0
    for _ in range(16):
        fields = {name: rng.getrandbits(FIELD_BITS[name]) for name in FIELD_NAMES}
        expected = 0
        for c, (name, i) in enumerate(INPUT):
            if fields[name] >> (FIELD_BITS[name] - 1 - i) & 1:
                expected ^= columns[c]
        assert _value(term, fields) == expected, "the key is not linear over GF(2)"
    return [sum(((col >> r) & 1) << c for c, col in enumerate(columns)) for r in range(term.size())]


def _index_rows(plan) -> list[int]:
    """The RETA index bits as rows over the 96 RSS input bits, from the Toeplitz definition: index
    bit j reads key bit p + 31 - j for the hashed input bit at position p."""
    m = len(plan.reta).bit_length() - 1
    key = [(plan.key[n // 8] >> (7 - n % 8)) & 1 for n in range(len(plan.key) * 8)]
    hashed = [(name, i) for name in plan.fields for i in range(FIELD_BITS[name])]
    rows = []
    for j in range(m):
        row = 0
        for p, bit in enumerate(hashed):
            if key[p + 31 - j]:
                row |= 1 << INPUT.index(bit)
        rows.append(row)
    return rows


def proves_equal_keys_share_a_core(solution, obj: str) -> bool:
    """For a key linear over GF(2) (one device): K(p1) == K(p2) means K(p1 ^ p2) == 0, and the RETA
    index H is then equal iff every row of H is a combination of K's rows. True when it is, for
    every key term of ``obj`` the analysis found (over all packets, not samples)."""
    plan = solution.plan.device(0)
    rng = random.Random(3)
    for term in _keys_of(solution.analysis, obj):
        span = gf2.Echelon(_key_rows(term, rng))
        if any(span.reduce(row) for row in _index_rows(plan)):
            return False
    return True


def reply_index_differs(solution, obj: str, samples: int = 200) -> int:
    """For a key ordered with ?: (not linear): of random packets, how many have a reply (addresses and
    ports swapped) with the same key but another RETA index."""
    plan = solution.plan.device(0)
    rng = random.Random(4)
    (term, *_) = _keys_of(solution.analysis, obj)
    bad = 0
    for _ in range(samples):
        p = {name: rng.getrandbits(FIELD_BITS[name]) for name in FIELD_NAMES}
        reply = {"src_ip": p["dst_ip"], "dst_ip": p["src_ip"], "src_port": p["dst_port"], "dst_port": p["src_port"]}
        assert _value(term, p) == _value(term, reply)
        arrays = [{k: np.array([v], dtype=np.uint64) for k, v in q.items()} for q in (p, reply)]
        i1, i2 = (int(hash_fields(plan.key, plan.fields, a)[0]) % len(plan.reta) for a in arrays)
        bad += i1 != i2
    return bad


@pytest.fixture(scope="module")
def analyses():
    return {name: pipeline.analyze(nf, defines) for name, (nf, defines, _, _) in SHARDED.items()}


@pytest.mark.parametrize("nic", sorted(PROFILES))
@pytest.mark.parametrize("name", sorted(SHARDED))
def test_equal_keys_reach_one_core_on_every_nic(analyses, name, nic):
    _, _, obj, fields = SHARDED[name]
    for cores in (2, 3):
        solution = pipeline.solve(analyses[name], nic=nic, cores=cores, quality=False)
        assert solution.strategy == "shared-nothing", solution.sharding.decision(obj).reason
        assert solution.sharding.decision(obj).decision == "shard"
        # 82599 has no field selection: it hashes all four, the key zeroes what must not count
        assert solution.plan.device(0).fields == (FIELD_NAMES if nic == "82599" else fields)
        if name.startswith("xor"):
            assert proves_equal_keys_share_a_core(solution, obj), (name, nic, cores)
        else:
            assert reply_index_differs(solution, obj) == 0, (name, nic, cores)
        assert len(set(solution.plan.device(0).reta)) == cores


def test_the_address_windows_of_the_key_are_equal(analyses):
    """src ^ dst on e810 (RETA 512: index bits 0-8): the key bits the RETA index reads for source
    bit i (key bits i + 23 .. i + 31) equal those for destination bit i (32 further on)."""
    key = pipeline.solve(analyses["xor"], cores=4, quality=False).plan.device(0).key
    bits = [(key[n // 8] >> (7 - n % 8)) & 1 for n in range(len(key) * 8)]
    assert all(bits[n] == bits[n + 32] for n in range(23, 63))


def test_a_key_that_ignores_the_xor_splits_twins_and_the_proof_finds_them(analyses):
    """The same proof on a plan whose key is not periodic finds a pair: the check can fail."""
    solution = pipeline.solve(analyses["xor"], cores=2, quality=False)
    broken = replace(solution, plan=plan_with_keys(solution.plan, {0: bytes(range(1, 53))}))
    assert proves_equal_keys_share_a_core(solution, "pairs")
    assert not proves_equal_keys_share_a_core(broken, "pairs")


@pytest.mark.parametrize("name", ["xor", "xor-ports", "xor-mask", "ordered", "ordered-ports"])
def test_the_simulator_sees_no_violation_on_both_directions(analyses, tmp_path, name):
    _, _, obj, _ = SHARDED[name]
    solution = pipeline.solve(analyses[name], cores=3, quality=False)
    trace = conversations(ports=name == "xor-ports")
    paths = write_trace(trace, tmp_path / "traffic")
    report = pipeline.simulate(solution, paths)
    assert report.violation_count == 0
    broken = pipeline.simulate(solution, paths, keys={0: bytes(range(1, 53))})
    assert broken.violation_count > 0 and {v.object for v in broken.violations} >= {obj}


def test_the_reason_names_the_xored_fields(analyses):
    reason = pipeline.solve(analyses["xor-ports"], cores=2, quality=False).sharding.decision("pairs").reason
    assert reason.endswith("(the key XORs src_ip with dst_ip and src_port with dst_port: packets whose XORs are "
                           "equal share an entry)"), reason
    plain = pipeline.solve(analyses["ordered"], cores=2, quality=False).sharding.decision("convs").reason
    assert "XOR" not in plain


@pytest.mark.parametrize("name,expected", [("xor", ["src_ip ^ dst_ip"]),
                                           ("xor-ports", ["src_ip ^ dst_ip", "src_port ^ dst_port"]),
                                           ("xor-mask", ["(src_ip ^ dst_ip)/24"]),
                                           ("ordered", ["src_ip", "dst_ip", "src_port", "dst_port (in either order)"])])
def test_the_explainer_names_a_xor_key_as_what_it_is(analyses, name, expected):
    """explain.key_fields (the explorer's key of each call site) called the XOR keys "computed from
    dst_ip, src_ip", as if the analysis could not trace them."""
    from explorer.explain import sites

    _, _, obj, _ = SHARDED[name]
    keyed = [site for site in sites(analyses[name], obj) if site["keys"]]
    assert keyed and all(site["keys"] == {"0": expected} for site in keyed), keyed


def test_a_sum_of_the_addresses_is_still_computed_from_them():
    from explorer.explain import sites

    analysis = pipeline.analyze(XOR, {**SMALL, "XP_SUM": "1"})
    keyed = [site for site in sites(analysis, "pairs") if site["keys"]]
    assert keyed and all(site["keys"] == {"0": ["computed from dst_ip, src_ip"]} for site in keyed)


def test_a_sum_of_the_addresses_stays_locked_and_says_why():
    solution = pipeline.solve(XOR, {**SMALL, "XP_SUM": "1"}, cores=2, quality=False)
    assert solution.strategy == "locks"
    reason = solution.sharding.decision("pairs").reason
    assert "share no RSS-hashable field (e.g. a hash or sum of fields)" in reason, reason


def test_without_xor_bits_it_was_locks(analyses, monkeypatch):
    real = sharding_constraints.key_alternatives
    monkeypatch.setattr(sharding_constraints, "key_alternatives", lambda term, xor=False: real(term))
    solution = pipeline.solve(analyses["xor"], cores=2, quality=False)
    assert solution.strategy == "locks"


# ---- the bits of hand-made keys ---------------------------------------------------------------------

SRC, DST = z3.BitVec("p.ipv4.src", 32), z3.BitVec("p.ipv4.dst", 32)
SPORT, DPORT = z3.BitVec("p.l4.sport", 16), z3.BitVec("p.l4.dport", 16)
PROTO = z3.BitVec("p.ipv4.proto", 8)


def _equalities(k1, k2):
    (b1,), (b2,) = key_alternatives(k1, xor=True), key_alternatives(k2, xor=True)
    return sharding_constraints._equalities(b1, b2)


def test_xor_bits_are_read_only_where_sharding_asks():
    key = SRC ^ DST
    assert all(b.symbol is None and b.const is None for b in key_bits(key))  # others see opaque bits
    (way,) = key_alternatives(key, xor=True)
    assert way[0] == KeyBit(parts=(("p.ipv4.dst", 0), ("p.ipv4.src", 0)))
    masked = (SRC ^ DST) & 0xFFFFFF00
    (way,) = key_alternatives(masked, xor=True)
    assert way[:8] == (ZERO,) * 8 and all(len(b.parts) == 2 for b in way[8:])
    (way,) = key_alternatives(SRC ^ SRC ^ DST, xor=True)  # a bit XORed with itself cancels
    assert way[0] == KeyBit(symbol="p.ipv4.dst", index=0)
    (way,) = key_alternatives(z3.Concat(SPORT, DPORT) ^ SRC ^ DST, xor=True)  # three parts: opaque
    assert all(b.parts == () and b.symbol is None and b.const is None for b in way)


def test_a_xor_is_related_straight_and_swapped():
    straight, swapped = _equalities(SRC ^ DST, SRC ^ DST)
    assert {(a[0], b[0]) for a, b in straight} == {("src_ip", "src_ip"), ("dst_ip", "dst_ip")}
    assert {(a[0], b[0]) for a, b in swapped} == {("src_ip", "dst_ip"), ("dst_ip", "src_ip")}
    assert all(a[1] == b[1] for a, b in straight + swapped) and len(straight) == len(swapped) == 64


def test_xors_that_share_a_bit_with_an_equality_are_left_out():
    """(src ^ dst, src): src is equal; its XOR with dst would share p1.src: left out (safe: dst is then
    unrelated, so the hash must ignore it)."""
    (only,) = _equalities(z3.Concat(SRC ^ DST, SRC), z3.Concat(SRC ^ DST, SRC))
    assert {(a[0], b[0]) for a, b in only} == {("src_ip", "src_ip")}


def test_a_xor_with_a_field_rss_cannot_hash_relates_nothing_there():
    key = z3.Concat(SRC ^ DST, z3.ZeroExt(8, PROTO) ^ DPORT)
    straight, swapped = _equalities(key, key)
    assert {a[0] for a, _ in straight} == {"src_ip", "dst_ip", "dst_port"}
    # the port's top byte is XORed with the zero-extension's zeros: copied; its low byte meets the protocol
    assert sorted(a[1] for a, _ in straight if a[0] == "dst_port") == list(range(8))
    assert [pair for pair in swapped if pair[0][0] == "dst_port"] == [pair for pair in straight if pair[0][0] == "dst_port"]


@pytest.mark.dpdk
@pytest.mark.slow
@pytest.mark.parametrize("name", ["xor", "xor-ports", "ordered-ports"])
@pytest.mark.parametrize("cores", [2, 3])
def test_check_is_equivalent_on_both_directions(tmp_path, capsys, name, cores):
    nf, defines, _, _ = SHARDED[name]
    trace = conversations(packets=4_000, ports=name == "xor-ports")
    paths = write_trace(trace, tmp_path / "traffic")
    args = [a for k, v in sorted(defines.items()) for a in ("-D", f"{k}={v}")]
    assert main(["check", str(nf), *args, "--in", f"0={paths[0]}", "--cores", str(cores), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["equivalent"] is True and report["strategy"] == "sn"


def test_two_devices_with_one_xor_key_hash_alike(tmp_path):
    """xor_pairs on LAN and WAN (each forwarding to the other): k(p1) == k(p2) across the devices
    asks both RETA indices to be one linear map (take p2 = p1) that the key's rows span; both hold."""
    source = XOR.read_text().replace("#define NF_DEVICES 1", "#define NF_DEVICES 2").replace(
        "return pass ? device : NF_DROP;", "return pass ? 1 - device : NF_DROP;")
    nf = tmp_path / "xor_pairs2.c"
    nf.write_text(source)
    solution = pipeline.solve(nf, SMALL, cores=3, quality=False)
    assert solution.strategy == "shared-nothing"
    lan, wan = (_index_rows(solution.plan.device(d)) for d in (0, 1))
    assert lan == wan
    assert proves_equal_keys_share_a_core(solution, "pairs")


def _straight_only(monkeypatch):
    """Sharding that relates a XOR's fields straight only (src with src, dst with dst): unsound."""
    real = sharding_constraints._equalities
    monkeypatch.setattr(sharding_constraints, "_equalities", lambda b1, b2: real(b1, b2)[:1])


def test_the_swapped_half_is_needed(tmp_path, monkeypatch):
    """Without the swapped constraint the key need not hash a reply alike: the simulator finds the
    pairs split (so the traffic above can tell a sound plan from an unsound one)."""
    _straight_only(monkeypatch)
    solution = pipeline.solve(XOR, SMALL, cores=3, quality=False)
    assert solution.strategy == "shared-nothing" and not proves_equal_keys_share_a_core(solution, "pairs")
    paths = write_trace(conversations(), tmp_path / "traffic")
    assert pipeline.simulate(solution, paths).violation_count > 0


@pytest.mark.dpdk
@pytest.mark.slow
def test_check_finds_the_straight_half_alone_not_equivalent(tmp_path, capsys, monkeypatch):
    _straight_only(monkeypatch)
    paths = write_trace(conversations(packets=4_000), tmp_path / "traffic")
    args = [a for k, v in sorted(SMALL.items()) for a in ("-D", f"{k}={v}")]
    assert main(["check", str(XOR), *args, "--in", f"0={paths[0]}", "--cores", "3", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["equivalent"] is False and report["strategy"] == "sn"
