"""Replicated objects (issue 15): the replicate decision from the analysis, the generated code that
broadcasts writes through per-core rings, and the checks: strict replication equivalent packet by
packet, lagged replication different only by classified replication lag, TSan clean, the write
share, and the rare-writer NFs of our own (tests/nfs/ctl_acl_fw.c)."""
from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import dpkt
import numpy as np
import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.errors import ConfigError
from explorer.traffic.generators import generate
from explorer.traffic.trace import Trace
from explorer.verify.equivalence import check, check_plan
from explorer.verify.replay import RAN_WRITE, run_replay
from explorer.verify.replication import replica_order_differences

ROOT = Path(__file__).resolve().parent.parent
LB = "sample_nfs/lb.c"
ACL = "tests/nfs/ctl_acl_fw.c"
BACKEND_OBJECTS = ("backends", "backend_keys", "backend_info", "active")


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


_SOLVED: dict = {}


def solved(nf: str, cores: int = 4, **kw):
    key = (nf, cores, tuple(sorted((k, repr(v)) for k, v in kw.items())))
    if key not in _SOLVED:
        _SOLVED[key] = pipeline.solve(nf, cores=cores, quality=False, **kw)
    return _SOLVED[key]


def heartbeat_trace(packets: int = 10_000, seed: int = 1, share: float = 0.05) -> Trace:
    return generate("heartbeat", packets=packets, flows=packets // 20, seed=seed, heartbeat_share=share)


def control_frame(slot: int, blocked: str) -> bytes:
    """An ACL control packet of ctl_acl_fw.c: LAN, UDP to port 7777, rule slot = source port."""
    udp = dpkt.udp.UDP(sport=slot, dport=7777, data=b"\0" * 18)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=ipaddress.IPv4Address("10.9.9.9").packed, dst=ipaddress.IPv4Address(blocked).packed,
                    p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=udp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02\0\0\0\0\x09", dst=b"\x02\0\0\0\0\x01", type=0x0800, data=ip))


def acl_trace(packets: int = 8_000, seed: int = 2, every: int = 200) -> Trace:
    """Bidirectional flows, and every ``every`` packets a control packet that blocks (or, every
    third time, unblocks) the server of a flow that is still to come."""
    base = generate("bidir", packets=packets, flows=packets // 30, seed=seed, size=64)
    frames = list(base.frames)
    rng = np.random.default_rng(seed)
    for n, at in enumerate(range(every, packets - 50, every)):
        later = at + int(rng.integers(1, 50))
        frame = base.frames[later]
        server = frame[30:34] if base.devices[later] == 0 else frame[26:30]
        blocked = "0.0.0.0" if n % 3 == 2 else str(ipaddress.IPv4Address(server))
        frames[at] = control_frame(n % 4, blocked)
    devices = base.devices.copy()
    devices[every:packets - 50:every] = 0
    return Trace(base.timestamps, devices, tuple(frames))


# ---- the decision ----------------------------------------------------------------------------------

def test_lb_replicates_its_backend_objects_and_shards_its_flows():
    s = solved(LB)
    assert s.strategy == "shared-nothing" and s.valid
    decisions = {o.name: o for o in s.sharding.objects}
    for name in BACKEND_OBJECTS:
        o = decisions[name]
        assert o.decision == "replicate" and o.broadcast, (name, o.reason)
        assert "rare" in o.reason and "p.l4.dport == 9999" in o.write_class and "device 0" in o.write_class
        assert set(o.writers) <= {10, 11, 12} and o.writers  # the heartbeat paths (LAN, UDP to 9999)
    assert decisions["cht"].decision == "replicate" and not decisions["cht"].broadcast  # read-only
    for name in ("flows", "flow_keys", "flow_backend", "flow_chain"):
        assert decisions[name].decision == "shard"
    # Reads of replicated objects impose nothing: only the flow table's 5-tuple constraints remain.
    assert {c.origin.split(":")[0] for c in s.sharding.constraints} == {"flows"}
    assert "replicated on every core" in s.to_dict()["replication"]


def test_objects_replicated_with_a_frequently_written_one_are_not_called_rarely_written():
    """fw --override flows=replicate: keys and chain go with flows, and half the traffic (every new
    LAN flow, every refresh) writes them: their reasons must not say rare packets write them."""
    s = pipeline.solve(ROOT / "sample_nfs" / "fw.c", cores=4, overrides={"flows": "replicate"}, quality=False)
    decisions = {o.name: o for o in s.sharding.objects}
    for name in ("keys", "chain"):
        o = decisions[name]
        assert o.decision == "replicate" and "goes with flows" in o.reason, (name, o.reason)
        assert "rare" not in o.reason.replace("no header field singles out as rare", ""), (name, o.reason)


def test_lb_under_locks_still_works():
    s = solved(LB, strategy="locks")
    assert s.strategy == "locks" and s.valid and not s.explanation
    assert parallel_plan(s, "locks", 2).replication == ""


def test_the_bridge_keeps_its_locks_and_says_why_with_the_write_share():
    s = pipeline.solve("sample_nfs/bridge.c", cores=4)
    assert s.strategy == "locks"
    chain = s.sharding.decision("chain")
    assert chain.decision == "lock" and "not replicated" in chain.reason
    assert "no header field narrows" in chain.reason and "core-local refresh" in chain.reason
    assert dict(s.write_shares)["chain"] == 1.0  # every packet refreshes (or learns) a MAC
    r = _nfx("solve", "sample_nfs/bridge.c", "--cores", "4")
    assert "write share on uniform traffic" in r.stdout and "chain 100.0%" in r.stdout


def test_an_acl_updated_by_control_packets_is_replicated():
    s = solved(ACL)
    assert s.strategy == "shared-nothing"
    rules = s.sharding.decision("rules")
    assert rules.broadcast and "p.l4.dport == 7777" in rules.write_class
    assert s.sharding.decision("flows").decision == "shard"
    assert {d.device: d.fields for d in s.plan.devices} == {0: ("src_ip", "dst_ip", "src_port", "dst_port"),
                                                            1: ("src_ip", "dst_ip", "src_port", "dst_port")}


def test_each_object_can_be_chosen_shard_replicate_or_lock():
    locked = solved(LB, overrides={"active": "lock"})
    assert locked.strategy == "locks" and locked.sharding.decision("active").chosen
    assert all(locked.sharding.decision(n).decision == "lock" for n in ("backend_keys", "backend_info", "active"))
    assert "not replicated" in locked.sharding.decision("backend_info").reason
    # backends could be sharded on its own, but its expiry goes with active's
    split = solved(LB, overrides={"backends": "shard"})
    assert split.strategy == "locks" and "chosen to be sharded" in split.sharding.decision("active").reason
    with pytest.raises(ConfigError, match="cannot shard active"):
        solved(LB, overrides={"active": "shard"})
    forced = pipeline.solve("sample_nfs/bridge.c", cores=2, quality=False, overrides={"macs": "replicate"})
    assert forced.strategy == "shared-nothing" and "by choice" in forced.sharding.decision("macs").reason
    assert {o.name for o in forced.sharding.replicated} == {"macs", "keys", "ports", "chain"}


def test_cli_overrides_choose_decisions_and_refuse_bad_ones():
    r = _nfx("solve", LB, "--override", "active=lock", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["strategy"] == "locks"
    r = _nfx("solve", LB, "--override", "active=maybe")
    assert r.returncode == 1 and "shard|replicate|lock" in r.stderr and "Traceback" not in r.stderr
    r = _nfx("solve", LB)
    assert r.returncode == 0 and "replicate written only by rare packets" in r.stdout and "why: backends" in r.stdout


def test_the_simulator_reports_the_write_share_of_the_chosen_traffic():
    s = solved(LB)
    report = pipeline.simulate(s, "heartbeat", packets=50_000, flows=1000, heartbeat_share=0.001)
    shares = dict(report.write_shares)
    assert set(shares) == set(BACKEND_OBJECTS)
    assert shares["active"] == pytest.approx(0.001, abs=1e-9)  # exactly the heartbeats
    assert dict(pipeline.simulate(s, "uniform", packets=10_000).write_shares)["active"] == 0.0


def _nfx(*args):
    return subprocess.run([sys.executable, "-m", "explorer.cli", *args], capture_output=True, text=True, cwd=ROOT)


# ---- the generated code ----------------------------------------------------------------------------

def test_the_plan_and_the_nf_route_replicated_writes_through_the_replica_runtime(tmp_path):
    plan = parallel_plan(solved(LB), "sn", 4, "strict")
    assert plan.replication == "strict" and {o.name for o in plan.broadcast} == set(BACKEND_OBJECTS)
    assert all(o.per_core == o.capacity for o in plan.broadcast)  # a full copy per core
    assert "replication strict: writes to backends, backend_keys, backend_info, active" in plan.text()
    project = write_project(plan, tmp_path / "lb")
    nf = (project.folder / "nf.c").read_text()
    assert "nf_rep_dchain_allocate_new_index(active" in nf and "nf_rep_expire_items(active" in nf
    assert "nf_sn_capacity" in nf  # the flow table is still divided
    header = (project.folder / "nf_plan.h").read_text()
    assert "#define NF_REPLICAS 4" in header and "#define NF_REPLICATED_ORDINALS {0, 1, 2, 3}" in header
    assert "NF_REPLICATION_STRICT" in header
    assert "replication lag" not in (project.folder / "README.md").read_text()  # strict: none
    lagged = write_project(parallel_plan(solved(LB), "sn", 4), tmp_path / "lagged")
    assert "replication lag" in (lagged.folder / "README.md").read_text()
    with pytest.raises(Exception, match="replication"):
        parallel_plan(solved(LB), "sn", 4, "eventually")


# ---- checks ----------------------------------------------------------------------------------------

@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
def test_strict_replication_is_equivalent_packet_by_packet(cores):
    report = check(solved(LB, cores), heartbeat_trace(), cores, "sn", replication="strict")
    assert report.equivalent, report.render()
    assert report.replication == "strict" and report.writes == 500  # every heartbeat (5%) registers or refreshes
    assert report.lag_differences == 0 and report.missed == ()
    assert min(report.per_core) > 10_000 / cores / 3


@pytest.mark.dpdk
@pytest.mark.parametrize("replication", ["strict", "lagged"])
def test_one_core_with_replicated_objects_applies_its_own_writes(replication):
    """nfx check lb.c --cores 1: the only core's writes never count as applied (publish returned
    before recording them when there is no other core), so every write was "published without having
    applied every earlier write" and every later packet lagged: NOT equivalent, about half the packets."""
    report = check(solved(LB, 1), heartbeat_trace(2_000), 1, "sn", replication=replication)
    assert report.equivalent, report.render()
    assert report.writes > 0 and report.missed == () and report.lag_differences == 0


@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
def test_lagged_replication_differs_only_by_classified_lag(cores):
    report = check(solved(LB, cores), heartbeat_trace(), cores, "sn", replication="lagged")
    assert report.equivalent, report.render()
    assert report.missed, "lagged replication should let some packets run before a write reaches their core"
    assert all(m.core_lag <= 32 for m in report.missed)  # at most one burst of a core's packets
    assert sum(m.differing for m in report.missed) == report.lag_differences
    data = report.to_dict()["replication"]
    assert data["mode"] == "lagged" and data["missed"][0]["packet"] >= 0
    assert "lag:" in report.render()


@pytest.mark.dpdk
def test_a_core_idle_across_a_time_gap_applied_the_writes_before_its_next_packet():
    """ctl_acl_fw's own paths traffic: witness traces an hour apart. A replay core whose burst of 32
    packets spanned the gap ran an hour of trace time behind a rule write, and the replica order put
    its packets from an hour later before the write: the sequential NF expired every flow there,
    went back in time, and dropped replies the build forwarded (NOT equivalent, 3 of 4161). On a
    NIC the queue runs dry in such a gap and the lcore's empty polls apply the write: the replay
    ends a core's burst when its next packet is over a millisecond later (IDLE_GAP_NS)."""
    report = pipeline.check(solved(ACL, 3), "paths", cores=3)
    assert report.equivalent, report.render()
    assert report.writes >= 1 and report.missed  # lag within a burst is still exercised


@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
def test_the_acl_firewall_is_equivalent_with_strict_replication(cores):
    trace = acl_trace()
    report = check(solved(ACL, cores), trace, cores, "sn", replication="strict")
    assert report.equivalent, report.render()
    slots, changes = [b"\0" * 4] * 4, 0  # a control packet writes when it changes its rule slot
    for i in range(200, 8_000 - 50, 200):
        frame = trace.frames[i]
        slot, blocked = int.from_bytes(frame[34:36], "big") % 4, frame[30:34]
        changes += slots[slot] != blocked
        slots[slot] = blocked
    assert report.writes == changes > 20
    # The rules bite: the sequential NF drops packets of blocked servers it would otherwise pass.
    from explorer.run import run_trace
    with_rules = run_trace(ACL, trace)
    without = run_trace(ACL, generate("bidir", packets=8_000, flows=8_000 // 30, seed=2, size=64))
    dropped = sum(v.verdict == -1 for v in with_rules.verdicts)
    assert dropped > sum(v.verdict == -1 for v in without.verdicts) + 100


def dscp_trace(packets: int = 6_000, seed: int = 3, every: int = 150) -> tuple[Trace, int]:
    """Traffic for tests/nfs/ctl_dscp.c: bidirectional flows and, every ``every`` packets, a LAN
    control packet setting the mark (from its source port, sometimes the mark it already has);
    also the number of control packets that change the mark."""
    base = generate("bidir", packets=packets, flows=packets // 30, seed=seed, size=64)
    frames, devices = list(base.frames), base.devices.copy()
    mark, changes = 0, 0
    for n, at in enumerate(range(every, packets, every)):
        port = 40 + n % 5 if n % 4 else 40 + (n - 1) % 5  # every fourth repeats the previous mark
        frames[at] = control_frame(port, "192.0.2.7")
        devices[at] = 0
        changes += (port & 0x3F) != mark
        mark = port & 0x3F
    return Trace(base.timestamps, devices, tuple(frames)), changes


@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
def test_a_writer_that_rewrote_its_frame_and_holds_a_cell_reruns_from_its_original_bytes(cores):
    # ctl_dscp's control packets decrement their TTL, then borrow the replicated mark and change it:
    # the reader pass aborts with the frame changed and a cell borrowed, and the writer pass must
    # start from the original bytes (one TTL step, not two) with every cell given back.
    nf = "tests/nfs/ctl_dscp.c"
    s = solved(nf, cores)
    assert s.sharding.decision("mark").decision == "replicate"
    trace, changes = dscp_trace()
    report = check(s, trace, cores, "sn", replication="strict")
    assert report.equivalent, report.render()
    assert report.writes == changes > 20
    from explorer.run import run_trace
    seq = run_trace(nf, trace)
    out = {index: frame for index, _, frame in seq.outputs}
    control = range(150, 6_000, 150)
    assert all(seq.verdicts[i].verdict == 1 for i in control)
    assert all(out[i][22] == trace.frames[i][22] - 1 for i in control)  # TTL, once


@pytest.mark.dpdk
def test_backends_that_expire_on_every_replica_from_the_same_timestamps():
    # Backends die 2 ms after their last heartbeat; each beats every 4 ms (8 backends, one
    # heartbeat per 500 packets at 1 Mpps): they expire and register again, under new indices.
    defines = {"LB_BACKEND_EXPIRATION_NS": "2000000"}
    s = pipeline.solve(LB, defines, cores=4, quality=False)
    trace = heartbeat_trace(share=0.002)
    from explorer.run import run_trace
    seq = run_trace(LB, trace, defines, calls=True)
    expired = [c for c in seq.calls if c.call == "nf_expire_items" and c.object == 3 and c.results[0] != "00000000"]
    assert len(expired) >= 10
    heartbeats = sum(1 for d, f in zip(trace.devices, trace.frames) if d == 0 and f[36:38] == (9999).to_bytes(2, "big"))
    for mode in ("strict", "lagged"):
        report = check(s, trace, 4, "sn", replication=mode)
        assert report.equivalent, report.render()
        if mode == "strict":  # one write per heartbeat and per expiry of the sequential run, no more
            assert report.writes == heartbeats + len(expired) and report.lag_differences == 0
        else:
            assert report.missed


@pytest.mark.dpdk
def test_the_checker_catches_lost_writes_and_a_strict_build_that_does_not_wait():
    s = solved(LB, 2)
    trace = heartbeat_trace(6000)
    lost = check_plan(parallel_plan(s, "sn", 2, "lagged"), trace, s, defines=("NF_TEST_FAULT_LOSE_WRITES",),
                      timeout=30)
    assert not lost.equivalent and ("diverged" in lost.failure or lost.unexplained), lost.render()
    eager = check_plan(parallel_plan(s, "sn", 2, "strict"), trace, s, defines=("NF_TEST_FAULT_STRICT_NO_WAIT",))
    assert not eager.equivalent and "strict replication let it run without write" in eager.render()


@pytest.mark.dpdk
def test_forced_replication_of_a_frequently_written_table_is_still_correct():
    s = pipeline.solve("sample_nfs/bridge.c", cores=2, quality=False, overrides={"macs": "replicate"})
    report = check(s, generate("mixed", packets=4000, flows=200, seed=4), 2, "sn", replication="strict")
    assert report.equivalent, report.render()
    assert report.writes > 2000  # nearly every packet refreshes its source MAC, and broadcasts it


@pytest.mark.dpdk
@pytest.mark.parametrize("replication", ["lagged", "strict"])
def test_thread_sanitizer_is_clean_on_the_replicated_build(tmp_path, replication):
    s = solved(LB, 4)
    plan = parallel_plan(s, "sn", 4, replication)
    project = write_project(plan, tmp_path / replication)
    trace = heartbeat_trace(3000, share=0.03)
    run = run_replay(project, trace, sanitize="thread")  # free-running cores; a race report fails the run
    assert np.count_nonzero(run.ran == RAN_WRITE) >= 70 and np.count_nonzero(run.ticket_end) >= 70
    assert replica_order_differences(plan, trace, run, dict(plan.overrides)) == []


@pytest.mark.dpdk
def test_the_dpdk_program_runs_the_replicated_build_on_pcap_ports(tmp_path):
    from explorer.verify.pcap_run import expected_outputs, microsecond_trace, run_on_pcaps
    project = write_project(parallel_plan(solved(LB, 1), "sn", 1), tmp_path / "one")
    trace = microsecond_trace(heartbeat_trace(3000))
    sent = run_on_pcaps(project, trace, tmp_path / "run1")
    assert sent == expected_outputs(run_replay(project, trace), trace, 2, 1)
    two = write_project(parallel_plan(solved(LB, 2), "sn", 2), tmp_path / "two")
    sent = run_on_pcaps(two, trace, tmp_path / "run2")
    forwarded = sum(len(frames) for frames in sent.values())
    assert forwarded > 2000  # client packets reach backends registered by heartbeats on the other core


def test_the_explainer_says_replicated_objects_are_written_by_rare_packets():
    words = pipeline.explain(solved(LB))["objects"]
    assert words["active"]["summary"].startswith("Written only by rare packets") and "dst_port == 9999" in words["active"]["summary"]
    assert words["cht"]["summary"].startswith("Packets only read it")  # read-only: filled by nf_init


# ---- an object no key shards, written only by control frames (tests/nfs/both_ends_blocklist.c) -----

BOTH_ENDS = "tests/nfs/both_ends_blocklist.c"


def listing_frame(dport: int, address: bytes) -> bytes:
    """A LAN control frame of both_ends_blocklist.c: UDP to 9999 lists ``address``, to 10000 unlists it."""
    udp = dpkt.udp.UDP(sport=5000, dport=dport, data=b"\0" * 18)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=ipaddress.IPv4Address("10.9.9.9").packed, dst=address, p=dpkt.ip.IP_PROTO_UDP, ttl=64,
                    data=udp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02\0\0\0\0\x09", dst=b"\x02\0\0\0\0\x01", type=0x0800, data=ip))


def blocklist_trace(packets: int = 6_000, seed: int = 4, every: int = 100) -> Trace:
    """Bidirectional flows, and every ``every`` packets a control frame that lists (or, every third
    time, unlists) the source or the destination of a packet still to come."""
    base = generate("bidir", packets=packets, flows=packets // 30, seed=seed, size=64)
    frames, devices = list(base.frames), base.devices.copy()
    rng = np.random.default_rng(seed)
    for n, at in enumerate(range(every, packets - 50, every)):
        later = base.frames[at + int(rng.integers(1, 50))]
        address = later[26:30] if n % 2 else later[30:34]
        frames[at] = listing_frame(10000 if n % 3 == 2 else 9999, address)
        devices[at] = 0
    return Trace(base.timestamps, devices, tuple(frames))


def test_a_blocklist_met_at_both_ends_is_replicated_instead_of_locking_the_nf():
    """The packets that share an entry of `blocked` agree on no one RSS field (one frame's source is
    another's destination), so no key shards it; it was left 'shard' until the plan's conflict put
    every object under locks, and never tried as a replica, as a locked object is."""
    s = solved(BOTH_ENDS)
    assert s.strategy == "shared-nothing" and s.valid, s.explanation
    for name in ("blocked", "blocked_keys", "blocked_chain"):
        o = s.sharding.decision(name)
        assert o.decision == "replicate" and o.broadcast, (name, o.reason)
        assert "p.l4.dport == 9999" in o.write_class and "device 0" in o.write_class
    assert "no RSS key shards it" in s.sharding.decision("blocked").reason
    assert s.sharding.decision("hosts").decision == "shard"
    assert {d.device: d.fields for d in s.plan.devices}[0] == ("src_ip",)


def test_an_unshardable_object_that_every_frame_writes_keeps_the_nf_locked(tmp_path):
    """Every LAN frame lists its destination: no narrow class of writers, so the table that no key
    shards is not replicated; the NF stays under locks, saying why, as before."""
    nf = tmp_path / "every_frame_lists.c"
    nf.write_text("""#include "nf.h"
static struct nf_map *listed;
bool nf_init(void) { return nf_map_allocate(sizeof(uint32_t), 64, &listed); }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  int index;
  if (nf_map_get(listed, &ip->src_addr, &index) || nf_map_get(listed, &ip->dst_addr, &index)) return NF_DROP;
  if (device == 0) nf_map_put(listed, &ip->dst_addr, 0);
  return 1 - device;
}
""")
    s = pipeline.solve(str(nf), cores=4, quality=False)
    assert s.strategy == "locks"
    listed = s.sharding.decision("listed")
    assert listed.decision == "shard" and not dict(listed.fields)[0]  # no key: the plan's conflict locks it


@pytest.mark.dpdk
@pytest.mark.parametrize("replication", ["strict", "lagged"])
def test_the_both_ends_blocklist_is_equivalent_with_its_blocklist_replicated(replication):
    trace = blocklist_trace()
    report = check(solved(BOTH_ENDS, 4), trace, 4, "sn", replication=replication)
    assert report.equivalent, report.render()
    assert report.writes > 20
    from explorer.run import run_trace  # the list bites: frames of listed hosts are dropped
    dropped = sum(v.verdict == -1 for v in run_trace(BOTH_ENDS, trace).verdicts)
    assert dropped > (6_000 - 50) // 100 + 100
