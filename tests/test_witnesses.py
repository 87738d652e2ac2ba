"""The witness search (explorer.verify.witnesses) and path matching (explorer.verify.coverage) on
their own: frames built from models, what a call log says the state holds, thresholds, variants,
and witnesses that really run their paths when replayed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.run import run_trace
from explorer.symbex import analyze
from explorer.traffic.trace import Trace
from explorer.verify.coverage import calls_by_packet, coverage, match_paths
from explorer.verify.witnesses import (FILL_SPARES, StateFacts, _threshold, balanced_fills, build_frame, find_witnesses,
                                       unreached_lines, variants)

import nf_packets as pk

ROOT = Path(__file__).resolve().parent.parent
NAT_SMALL = {"NAT_CAPACITY": "64"}


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_a_frame_holds_every_field_where_the_headers_put_it():
    values = {"p.ether.dst": 0x020000000001, "p.ether.src": 0x020000000002, "p.ether.type": 0x0800,
              "p.ipv4.version_ihl": 0x46, "p.ipv4.ttl": 9, "p.ipv4.proto": 17, "p.ipv4.src": 0x0A000001,
              "p.ipv4.dst": 0xC0A80101, "p.l4.sport": 1234, "p.l4.dport": 53}
    frame = build_frame(values, 70)
    assert len(frame) == 70 and frame[:6] == bytes.fromhex("020000000001") and frame[12:14] == b"\x08\x00"
    assert frame[14] == 0x46 and frame[22] == 9 and frame[23] == 17
    assert frame[26:30] == bytes([10, 0, 0, 1]) and frame[30:34] == bytes([192, 168, 1, 1])
    assert frame[38:40] == (1234).to_bytes(2, "big") and frame[40:42] == (53).to_bytes(2, "big")  # after 4 option bytes
    assert int.from_bytes(frame[16:18], "big") == 70 - 14
    h = pk.headers(build_frame({**values, "p.ipv4.version_ihl": 0x45}, 60))
    assert (h.src, h.dst, h.sport, h.dport) == ("10.0.0.1", "192.168.1.1", 1234, 53)
    assert pk.checksums_ok(build_frame({**values, "p.ipv4.version_ihl": 0x45}, 60))


def test_the_call_log_tells_what_the_state_holds():
    """Three LAN flows through the NAT (one of them twice), then an hour of silence and a fourth:
    the chain holds the live indices, the maps their keys; expiry frees the oldest first."""
    flows = [pk.udp(f"10.0.0.{k}", 1000 + k, "198.51.100.7", 53) for k in range(3)]
    events = [(1_000, 0, flows[0]), (2_000, 0, flows[1]), (3_000, 0, flows[0]), (4_000, 0, flows[2])]
    analysis = analyze("sample_nfs/nat.c", NAT_SMALL)
    trace = pk.trace(events)
    result = run_trace("sample_nfs/nat.c", trace, NAT_SMALL, calls=True)
    calls = calls_by_packet(result, len(trace))
    facts = StateFacts.of(analysis, trace, calls, match_paths(analysis, trace, result, calls))
    assert sorted(facts.allocated["chain"]) == [0, 1, 2]
    assert sum(present for present, _ in facts.maps["internal"].values()) == 3
    assert facts.maps["internal"][int(calls[2][1].key, 16)] == (True, 0)  # the repeat found index 0
    later = pk.trace(events + [(3_600_000_000_000, 0, pk.udp("10.0.0.9", 9, "198.51.100.7", 53))])
    result = run_trace("sample_nfs/nat.c", later, NAT_SMALL, calls=True)
    calls = calls_by_packet(result, len(later))
    facts = StateFacts.of(analysis, later, calls, match_paths(analysis, later, result, calls))
    assert list(facts.allocated["chain"]) == [0]  # all three expired; the new flow got index 0 again


def test_thresholds_are_the_limits_state_is_compared_with():
    psd = analyze("sample_nfs/psd.c", {})
    counted = [p for p in psd.paths if "counters.cell" in p.condition_text and ">= 64" in p.condition_text]
    assert counted and _threshold(counted[0].condition) == (66, {"counters"})
    cl = analyze("sample_nfs/cl.c", {})
    limited = [p for p in cl.paths if "estimate" in p.condition_text and ">= 100" in p.condition_text]
    assert _threshold(limited[0].condition) == (102, {"connections"})
    assert _threshold(analyze("sample_nfs/nop.c", {}).paths[0].condition) == (0, set())


def test_variants_keep_the_path_and_make_new_keys():
    analysis = analyze("sample_nfs/nat.c", NAT_SMALL)
    frame = pk.udp("10.0.0.5", 4000, "198.51.100.7", 53)
    trace = pk.trace([(1_000, 0, frame)])
    result = run_trace("sample_nfs/nat.c", trace, NAT_SMALL, calls=True)
    match = match_paths(analysis, trace, result)
    path = analysis.paths[int(match.path_of[0])]
    results = {name: int(np.asarray(match.environments[path.index][name]).ravel()[0])
               for access in path.accesses for name in access.results}
    more = variants(analysis, path, frame, 0, {**results, "now": 1_000}, 40, set(), 1_000)
    assert len(more) == 40 and len({f for _, _, f in more}) == 40
    both = pk.trace([(1_000, 0, frame)] + more)
    again = run_trace("sample_nfs/nat.c", both, NAT_SMALL, calls=True)
    followed = match_paths(analysis, both, again).path_of
    assert set(followed.tolist()) == {path.index}  # each one a new flow, given a new port
    assert len({f[34:36] for _, _, f in again.outputs}) == 41


def test_witnesses_run_their_paths_when_replayed():
    analysis = analyze("sample_nfs/nat.c", NAT_SMALL)
    found = find_witnesses(analysis, NAT_SMALL, seed=1)
    assert found.coverage.covered == len(analysis.paths) == 8 and found.unreached == ()
    assert len(found.kinds) == len(found.traces) and "fill" in found.kinds  # "table full" needs 64 flows
    total = None
    for p, (t, i) in enumerate(found.hits):
        trace = found.traces[t]
        result = run_trace("sample_nfs/nat.c", trace, NAT_SMALL, calls=True)
        assert match_paths(analysis, trace, result).path_of[i] == p
    for trace in found.traces:
        got = coverage(analysis, trace, run_trace("sample_nfs/nat.c", trace, NAT_SMALL, calls=True))
        total = got if total is None else total + got
    assert total.packets == found.coverage.packets
    combined = found.combined(gap_ns=10**12)
    assert len(combined) == sum(len(t) for t in found.traces)
    assert np.all(np.diff(combined.timestamps.astype(np.int64)) >= 0)
    first = len(found.traces[0])
    assert int(combined.timestamps[first]) - int(combined.timestamps[first - 1]) == 10**12
    only_main = found.combined(kinds=("main",))
    assert len(only_main) == sum(len(t) for t, k in zip(found.traces, found.kinds) if k == "main")


def test_a_path_no_traffic_reaches_is_reported_with_the_reason():
    """psd's "new source with a known port" (see test_soundness.UNREACHED): the search says which
    facts of the state its condition contradicts."""
    defines = {"PSD_CAPACITY": "64", "PSD_MAX_PORTS": "4"}
    analysis = analyze("sample_nfs/psd.c", defines)
    found = find_witnesses(analysis, defines, seed=1)
    unreached = dict(found.unreached)
    target = next(p.index for p in analysis.paths if "!sources.found" in p.condition_text
                  and "ports.found#10" in p.condition_text and "!ports.found" not in p.condition_text)
    assert set(unreached) == {target}
    assert "conflicts with the state" in unreached[target] and "map:sources" in unreached[target]
    assert isinstance(found.combined(), Trace)


@pytest.mark.parametrize("nf", ["tests/nfs/src_quota_fw.c", "tests/nfs/knock.c", "sample_nfs/lb.c"])
def test_every_witness_trace_is_in_time_order(nf):
    """Replies to a round's packets came after the round's last packet only when every uncovered
    path got one: src_quota_fw's main trace went back in time 4 times (a pcap reader warns of it,
    and the NF saw time go back)."""
    found = find_witnesses(analyze(nf), {}, seed=0)
    for trace in found.traces:
        assert np.all(np.diff(trace.timestamps.astype(np.int64)) >= 0)
    assert np.all(np.diff(found.combined().timestamps.astype(np.int64)) >= 0)
    assert found.coverage.covered >= found.coverage.paths - 2


READ_ONLY_MAP = """#include "nf.h"
struct pk { uint16_t port; uint16_t pad; };
static struct nf_map *ports;
static struct nf_map *seeded;
bool nf_init(void) {
  struct pk ssh = {0x1600, 0};  /* port 22, as on the wire */
  if (!nf_map_allocate(sizeof(struct pk), 64, &ports) || !nf_map_allocate(sizeof(struct pk), 64, &seeded))
    return false;
  nf_map_put(seeded, &ssh, 1);
  return true;
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) return NF_DROP;
  struct pk dst = {l4->dst_port, 0}, src = {l4->src_port, 0};
  int v;
  if (nf_map_get(seeded, &dst, &v)) return NF_FLOOD;
  if (nf_map_get(ports, &dst, &v) + nf_map_get(ports, &src, &v) == 2) return NF_DROP;
  return device == 0 ? 1 : 0;
}
"""


def test_a_hit_in_a_map_nothing_fills_is_reported_at_once_and_one_nf_init_filled_is_found(tmp_path):
    """``ports`` is only read and nf_init leaves it empty: a path through a hit in it cannot run, and
    the search says so without sweeping its keys (which took a minute); ``seeded`` holds what
    nf_init put (the analysis counts it), and the sweep still finds the packet that hits it."""
    nf = tmp_path / "read_only.c"
    nf.write_text(READ_ONLY_MAP)
    analysis = analyze(nf)
    assert dict(analysis.object("seeded").extra) == {"init_entries": 1}
    assert dict(analysis.object("ports").extra) == {}
    found = find_witnesses(analysis, seed=0)
    unreached = dict(found.unreached)
    needs_ports = [p.index for p in analysis.paths if any(a.object == "ports" for a in p.accesses)
                   and p.verdict.kind == "drop"]
    assert needs_ports and all("needs a hit in ports, which is always empty" in unreached[p] for p in needs_ports)
    flood = next(p.index for p in analysis.paths if p.verdict.kind == "flood")
    assert found.hits[flood] is not None  # the one key nf_init put, found by the sweep


def test_a_path_that_reads_the_ipv4_total_length_gets_frames_that_run_it():
    """byte_quota's condition reads p.ipv4.total_length, a field the frame template leaves to the
    frame's length: building its frames raised KeyError (nfx traffic paths and check --traffic
    paths crashed on any NF that counts IPv4 bytes); the over-quota path needs a large one."""
    nf = "tests/nfs/byte_quota.c"
    analysis = analyze(nf)
    found = find_witnesses(analysis, seed=0)
    over = [p.index for p in analysis.paths if "p.ipv4.total_length" in p.condition_text
            and p.verdict.kind == "drop"]
    assert over and all(found.hits[p] is not None for p in over)
    for p in over:
        t, i = found.hits[p]
        trace = found.traces[t]
        assert match_paths(analysis, trace, run_trace(nf, trace, calls=True)).path_of[i] == p


def test_a_path_that_reads_a_stored_value_gets_a_writer_packet_first():
    """mgmt_cfg forwards a data frame only when a management frame (device 2) stored a TOS other
    than 0 in its slot: the search solves the writer (the TOS it stores) together with the data
    frame that reads it, so the forwarding paths are reached (they were left unreached, the cells
    conflicting with every prefix); replayed, each hit runs its path after its writer."""
    nf = "tests/nfs/mgmt_cfg.c"
    analysis = analyze(nf)
    stored = [(a.call, str(a.value)) for p in analysis.paths for a in p.accesses if a.value is not None]
    assert stored == [("nf_vector_return", "p.ipv4.tos")]  # what the management frame's write stores
    found = find_witnesses(analysis, seed=0)
    forwarding = [p.index for p in analysis.paths if p.verdict.kind == "forward"]
    assert len(forwarding) == 2 and found.unreached == ()
    assert found.coverage.covered == len(analysis.paths)
    for p in forwarding:
        t, i = found.hits[p]
        trace = found.traces[t]
        match = match_paths(analysis, trace, run_trace(nf, trace, calls=True))
        assert match.path_of[i] == p
        slot = int.from_bytes(trace.frames[i][36:38], "big") % 16
        writers = [j for j in range(i) if int(trace.devices[j]) == 2
                   and int.from_bytes(trace.frames[j][36:38], "big") % 16 == slot and trace.frames[j][15] != 0]
        assert writers  # a management frame stored a TOS in the slot before the data frame read it


def test_a_fill_is_redone_so_that_each_core_share_fills_when_the_table_does():
    """A shared-nothing build gives each core a share of nat's 64 ports (32 on 2 cores). The fill
    branch's variants fall on cores as the hash wills, so a core could run out while the sequential
    table still had room (capacity drift). ``balanced_fills`` picks, from the variants and their
    spares, 32 allocations per core, and the redone trace still follows every path."""
    analysis = analyze("sample_nfs/nat.c", NAT_SMALL)
    found = find_witnesses(analysis, NAT_SMALL, seed=1)
    (fill,) = found.fills
    assert found.kinds[fill.trace] == "fill" and fill.chain == "chain"
    assert len(fill.allocated) + fill.count == 64 and len(fill.spares) == fill.count
    bigger = fill.pool(analysis, FILL_SPARES)  # more spares, made again: the first ones are the same
    assert len(bigger) >= FILL_SPARES * fill.count and bigger[:fill.count] == list(fill.spares)

    def cores_of(trace):  # a skewed steering: two of every three sources on core 1
        return np.array([int(f[29] % 3 != 0) if len(f) > 29 else 0 for f in trace.frames], dtype=np.int64)

    def taken(trace):
        positions = list(fill.allocated) + list(range(fill.start, fill.start + fill.count))
        return np.bincount(cores_of(trace)[positions], minlength=2).tolist()

    before = found.traces[fill.trace]
    assert taken(before)[1] > 32  # core 1's share would run out first
    redone = balanced_fills(found, analysis, NAT_SMALL, cores_of, {"chain": (32, 32)})
    after = redone.traces[fill.trace]
    assert taken(after) == [32, 32] and len(after) == len(before)
    assert after.frames[:fill.start] == before.frames[:fill.start]  # the state before the fill is the same
    assert after.frames[fill.start + fill.count:] == before.frames[fill.start + fill.count:]  # and the tail
    paths = [set(match_paths(analysis, t, run_trace("sample_nfs/nat.c", t, NAT_SMALL, calls=True)).path_of.tolist())
             for t in (before, after)]
    assert paths[1] >= paths[0]
    assert [t for i, t in enumerate(redone.traces) if i != fill.trace] == \
        [t for i, t in enumerate(found.traces) if i != fill.trace]
    # nothing to redo when the steering already spreads the fill evenly, or the chain is not split
    assert balanced_fills(found, analysis, NAT_SMALL, cores_of, {}).traces[fill.trace] is before


def test_a_search_stops_after_its_budget_of_questions_and_says_so(monkeypatch):
    """A search whose paths hide behind hashes and thresholds asked Z3 for thousands of packets (an
    hour); it stops after QUESTION_LIMIT, keeps the traces it has, and names each path it did not
    reach with the reason. The count is deterministic: the same traces every time."""
    from explorer.verify import witnesses

    analysis = analyze("sample_nfs/nat.c", NAT_SMALL)
    monkeypatch.setattr(witnesses, "QUESTION_LIMIT", 4)
    found = find_witnesses(analysis, NAT_SMALL, seed=1)
    assert 0 < found.coverage.covered < len(analysis.paths)
    unreached = dict(found.unreached)
    assert set(unreached) == {p for p, hit in enumerate(found.hits) if hit is None}
    assert all(why.startswith("the search stopped after asking the solver for 4 packets, before reaching it; "
                              "so far ") for why in unreached.values())
    for trace in found.traces:  # what it kept still runs the paths it claims
        result = run_trace("sample_nfs/nat.c", trace, NAT_SMALL, calls=True)
        assert set(match_paths(analysis, trace, result).path_of.tolist()) - {-1}
    again = find_witnesses(analysis, NAT_SMALL, seed=1)
    assert [t.frames for t in again.traces] == [t.frames for t in found.traces]


def test_a_fill_varies_the_tos_when_the_table_is_keyed_by_it():
    """tos_ttl_table keeps the (TOS, TTL) pairs it saw: its "table full" path needs 64 frames that
    differ in those bytes, and the fill varied only addresses, ports and MACs (plain copies of
    one frame here, which fill nothing: 7 of 8 paths)."""
    nf = "tests/nfs/tos_ttl_table.c"
    analysis = analyze(nf)
    found = find_witnesses(analysis, {}, seed=0)
    assert found.coverage.covered == len(analysis.paths) == 8, found.unreached
    (fill,) = found.fills
    trace = found.traces[fill.trace]
    assert len({trace.frames[i][15] for i in range(fill.start, fill.start + fill.count)}) == fill.count  # TOS


def test_a_fill_changes_the_fields_that_fill_the_table():
    """dst_src counts LAN frames per destination (dropped past DS_MAX = 5) and keeps a table of
    sources. The fill's first choice of field, the source address (the one the path condition
    accepts, with the state results held fixed), sends every frame to one destination, which the
    NF stops at the 5th: dst_chain never filled and its "full" path went unreached. The fill now
    runs its variants and takes the first choice that fills the chain."""
    nf, defines = "tests/nfs/dst_src.c", {"DS_CAP": "16"}
    analysis = analyze(nf, defines)
    found = find_witnesses(analysis, defines, seed=0)
    assert found.coverage.covered == len(analysis.paths) == 12, found.unreached
    for fill in found.fills:
        trace = found.traces[fill.trace]
        result = run_trace(nf, trace, defines, calls=True)
        taken = [c for c in result.calls if c.call == "nf_dchain_allocate_new_index" and c.results[:1] == ("01",)
                 and fill.start <= c.packet < fill.start + fill.count]
        assert len(taken) >= fill.count  # every variant took an index


def test_the_reasons_of_unreached_paths_are_grouped():
    """A count-min sketch left 79 paths unreached, each with its own line that differed from the
    others only in which rows conflicted. Paths with one reason share a line, the rows named once
    ("some of" where the paths differ), and the search's stop at its budget is said once."""
    from explorer.verify.witnesses import CONFLICTS, OTHER_PATHS, QUESTION_LIMIT, Cause, Witnesses
    from explorer.verify.coverage import Coverage

    causes = [Cause(p, CONFLICTS, (f"cell:row{p % 3}",) + (("cell:row3",) if p > 6 else ()), True)
              for p in (1, 2, 3, 4, 5, 7, 8, 9)]
    causes += [Cause(11, OTHER_PATHS, (), True), Cause(12, "needs a hit in acl, which is always empty")]
    found = Witnesses("hh", (), (None,) * 13, tuple((c.path, c.text()) for c in causes), Coverage("hh", (0,) * 13),
                      causes=tuple(causes))
    assert unreached_lines(found) == [
        f"the search stopped after asking the solver for {QUESTION_LIMIT:,} packets, before reaching 9 paths (so "
        "far, why each was not reached:)",
        "8 paths (1-5, 7-9) not reached, each for the same reason: its condition conflicts with the state every "
        "prefix built (some of "
        "cell:row0, cell:row1, cell:row2, cell:row3)",
        "path 11 not reached: the packets solved for it followed other paths",
        "path 12 not reached: needs a hit in acl, which is always empty"]
    assert dict(found.unreached)[1] == (f"the search stopped after asking the solver for {QUESTION_LIMIT:,} packets, "
                                         "before reaching it; so far its condition conflicts with the state every "
                                         "prefix built (cell:row1)")
    same = Witnesses("x", (), (None,) * 3, (), Coverage("x", (0,) * 3),
                     causes=(Cause(0, CONFLICTS, ("map:flows",)), Cause(2, CONFLICTS, ("map:flows",))))
    assert unreached_lines(same) == ["2 paths (0, 2) not reached, each for the same reason: its condition conflicts "
                                     "with the state every prefix built (map:flows)"]


def test_state_facts_are_built_through_the_c_api_as_z3py_would_build_them():
    """``_facts_for`` makes a term per known key (hundreds per question); z3.py's coercions and
    sort checks were most of host_flow_limit's search. ``bitvec.equalities`` makes the same
    terms through Z3's C API, so the questions, and the packets Z3 answers with, stay the same."""
    import z3

    from explorer.symbex.bitvec import conjoined, disjoined, equalities, implies

    key, found = z3.BitVec("flows.key", 32), z3.BitVec("flows.found#2", 8)
    values = [7, 0, 2**32 - 1, -1, 123456]
    assert all(a.eq(b) for a, b in zip(equalities(key, values), [key == v for v in values]))
    assert all(a.eq(b) for a, b in zip(equalities(key, values, differ=True), [key != v for v in values]))
    # key == z3.BitVecVal(...): Python lets the numeral, a subclass, answer (v == key)
    assert all(a.eq(b) for a, b in zip(equalities(key, values, numeral_first=True),
                                       [key == z3.BitVecVal(v, 32) for v in values]))
    number = z3.BitVecVal(5, 32)
    assert equalities(number, [5], numeral_first=True)[0].eq(number == z3.BitVecVal(5, 32))
    hit = disjoined(equalities(key, values) + [z3.BoolVal(False)])
    assert hit.eq(z3.Or(*[key == v for v in values], z3.BoolVal(False)))
    assert conjoined(equalities(key, values, differ=True)).eq(z3.And(*[key != v for v in values]))
    assert implies(hit, found == 1).eq(z3.Implies(hit, found == 1))


@pytest.mark.parametrize("nf", ["handshake", "burst_gate", "nested_key"])
def test_the_search_reaches_every_path_that_needs_earlier_packets(nf):
    """handshake: an ACK after a SYN, data after the ACK, data past the limit, a SYN when the table
    is full; burst_gate: a source past its budget, a new source when the table is full;
    nested_key: its table full. nested_key's fill made no variant: each reads back the meter it
    wrote, whose id is its own key, and the variants were held to the first packet's cell (8 of 9)."""
    analysis = analyze(f"tests/nfs/{nf}.c")
    found = find_witnesses(analysis, {}, seed=0)
    assert found.coverage.covered == len(analysis.paths), found.unreached
    assert found.unreached == ()


def test_a_fill_of_two_tables_varies_every_field_that_keeps_the_path():
    """svc_src: a frame takes an entry in a per-source table (a budget of 50 frames a source) and
    a per-service table (address, port, protocol). The fill of the service table tried each field
    alone (the address alone meets the source's budget) and then all of them, the protocol byte
    among them, which breaks the path: "service table full" (paths 2 and 6) went unreached. It
    now also varies every field that keeps the path on its own, together."""
    analysis = analyze("tests/nfs/svc_src.c")
    found = find_witnesses(analysis, {}, seed=0)
    reached = {p for p, hit in enumerate(found.hits) if hit is not None}
    assert {2, 6} <= reached, found.unreached
    full = [p for p in range(len(analysis.paths)) if "!svc_chain.ok" in analysis.paths[p].condition_text]
    assert set(full) == {2, 6}


def test_a_value_no_put_stores_is_named_unreachable():
    """macro_meter's ``if (idx < 0)`` after a hit in g_dsts: every nf_map_put into g_dsts stores
    an index g_chain handed out (0 to 255), so no packets reach the path; the search said 'its
    condition conflicts with the state every prefix built (map:g_dsts)'. It now names the
    condition and why, and asks Z3 for no packet of it."""
    analysis = analyze("tests/nfs/macro_meter.c")
    found = find_witnesses(analysis, {}, seed=0)
    why = dict(found.unreached)
    unreachable = [p for p, text in why.items() if text.startswith("unreachable")]
    assert len(unreachable) == 1 and "g_dsts.value#2 < 0" in analysis.paths[unreachable[0]].condition_text, why
    text = why[unreachable[0]]
    assert "g_dsts.value#2 < 0" in text and "an index of g_chain" in text and "0 to 255" in text, text
