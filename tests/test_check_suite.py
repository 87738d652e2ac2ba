"""The NF suite of issue 10 ("Done when"): NFs of our own beyond the samples (tests/nfs/README.md),
each through ``nfx analyze``, ``solve``, ``generate`` and ``check`` as a user would run them. Each
gets the strategy a domain expert expects and is equivalent under check at 2 and 4 cores, on traffic
built from its own path conditions (``explorer.verify.witnesses``: a packet per path, after the state
it needs, plus closed-loop replies for NFs that rewrite). The path coverage of that traffic is
printed. Tables are small (64 entries) so that "table full" paths are cheap to reach; traffic that
fills a table is checked apart, where a core's share running out must make the verdict "partial".
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.cli import main
from explorer.codegen import parallel_plan, write_project
from explorer.run import run_trace
from explorer.traffic.generators import generate
from explorer.traffic.trace import Trace
from explorer.traffic.pcap import write_trace
from explorer.verify.coverage import match_paths
from explorer.verify.replay import run_replay
from explorer.verify.witnesses import find_witnesses

ROOT = Path(__file__).resolve().parent.parent
NFS = ROOT / "tests" / "nfs"
ANY = None  # no constraint on the hashed fields: the NF has no state the packets write


# NF: (expected strategy, hashed fields per device or ANY, defines for the test, the issue 10 item it
# guards: the NF failed there before the item's fix)
SUITE = {
    "host_bytes": ("sn", {0: ("src_ip",), 1: ("dst_ip",)}, {"HB_CAPACITY": "64", "HB_QUOTA": "3000"}, None),
    "dst_sketch": ("sn", {0: ("dst_ip",)}, {"DS_LIMIT": "5"}, None),
    "global_counter": ("locks", ANY, {}, None),
    "port_forward": ("sn", ANY, {}, None),
    "acl_rules": ("sn", ANY, {}, None),
    "hash_lb": ("sn", ANY, {}, None),
    "conn_track": ("sn", {0: ("src_ip", "dst_ip", "src_port", "dst_port"),
                          1: ("src_ip", "dst_ip", "src_port", "dst_port")}, {"CT_CAPACITY": "64", "CT_BUDGET": "4"},
                   None),
    "src_window": ("sn", {1: ("src_ip",)}, {"SW_CAPACITY": "64"}, None),
    "mac_counter": ("locks", ANY, {"MC_CAPACITY": "64", "MC_CAP": "4"}, None),
    "ttl_guard": ("sn", ANY, {}, None),
    "dport_counters": ("sn", {1: ("dst_port",)}, {"DC_BUDGET": "4"}, 2),  # + uniform traffic: ports up to 65535
    "ternary_hosts": ("sn", {0: ("src_ip",), 1: ("dst_ip",)}, {"TH_CAPACITY": "64", "TH_LIMIT": "4"}, 1),
    "dns_limit": ("sn", {0: ("src_ip", "dst_ip"), 1: ("src_ip", "dst_ip")}, {"RL_CAPACITY": "64", "RL_LIMIT": "3"},
                  None),
    "src_quota_fw": ("sn", {0: ("src_ip",), 1: ("dst_ip",)}, {"QUOTA": "2"}, None),
    # keyed by the two addresses in numeric order: both devices hash them symmetrically
    "pair_quota": ("sn", {0: ("src_ip", "dst_ip"), 1: ("src_ip", "dst_ip")}, {"PQ_CAPACITY": "64", "PQ_QUOTA": "3"},
                   None),
    # keyed by (input device, source): the devices' entries never meet
    "port_hosts": ("sn", {0: ("src_ip",), 1: ("src_ip",)}, {"DK_LIMIT": "3"}, None),
    "cell_sum": ("sn", ANY, {"CS_LIMIT": "20"}, None),  # the counters replicated
    "rr_lb": ("locks", ANY, {}, None),
    # each table could shard alone, on different fields: no key shards both, locks
    "two_keys": ("locks", ANY, {}, None),
    # a connection erased from the map as its slot is freed (FIN, RST): no dangling slot, sharded
    "conn_close": ("sn", {0: ("src_ip", "dst_ip", "src_port", "dst_port"),
                          1: ("src_ip", "dst_ip", "src_port", "dst_port")}, {"CC_CONNS": "64"}, None),
    # each host keeps the flow indices it opened, past their expiry: a dangling index, locks
    "host_flow_limit": ("locks", ANY,
                        {"HFL_CAPACITY": "64", "HFL_FLOWS_PER_HOST": "2", "HFL_EXPIRATION_NS": "2000000"}, None),
    # only LAN frames expire the flows: a reply sees what the last LAN frame of any flow left, locks
    "lan_expiry_fw": ("locks", ANY, {"LE_CAPACITY": "64"}, None),
    # only control frames expire and fill the list; data frames read it: replicated
    "ctl_blocklist": ("sn", ANY, {"CB_CAPACITY": "64"}, None),
    # one device: frames go back out of the port they came in on
    "one_port": ("sn", {0: ("src_ip",)}, {"OP_CAPACITY": "64", "OP_MAX": "3"}, None),
    # one device, a budget per host pair keyed by src ^ dst: a key whose two address windows are equal
    "xor_pairs": ("sn", {0: ("src_ip", "dst_ip")}, {"XP_CAPACITY": "64", "XP_MAX": "3"}, None),
    # one device, a budget per conversation keyed by (lower address, its port, higher, its port)
    "ordered_convs": ("sn", {0: ("src_ip", "dst_ip", "src_port", "dst_port")}, {"OC_CAPACITY": "64", "OC_MAX": "3"},
                      None),
    # one bucket for every frame: WAN frames write its cell under the cell lock, LAN frames read it
    "agg_policer": ("locks", ANY, {"AP_BURST": "1500"}, None),
    # each frame moves a unit between two cells keyed by different ports: locks, two cell locks a pass
    "cell_transfer": ("locks", ANY, {}, None),
    # a NAT whose WAN mapping is named by a scrambled port of the fresh index: locks (sn before the fix)
    "scrambled_nat": ("locks", ANY, {"NS_CAP": "128"}, None),
    # a budget per block of 256 ports, the block taken by C's signed / and >>: sn (locks before the fix)
    "port_blocks": ("sn", {0: ("dst_port",), 1: ("src_port",)}, {"PB_BUDGET": "2"}, None),
    # counters per class from a 256-entry const table indexed by the TOS: locks (refused before: an index
    # of more than 16 values)
    "tos_lut": ("locks", ANY, {}, None),
    # DSCP re-marking from a 2-D const table ACTION[PHB[tos >> 2]][device], per-source counters: sn
    # (the witnesses fill its table on their own: no separate fill traffic)
    "dscp_remark": ("sn", {0: ("src_ip",), 1: ("src_ip",)}, {"DR_SOURCES": "64"}, None),
    # session 18's new styles: an enum-indexed TCP state machine over a struct of arrays (NEXT[state][event])
    "tcp_fsm": ("sn", {0: ("src_ip", "dst_ip", "src_port", "dst_port"), 1: ("src_ip", "dst_ip", "src_port", "dst_port")},
                {"TF_CAP": "64"}, None),
    # while / do-while loops of constant bounds with continue, per-source offender counts
    "port_scan_loops": ("sn", {1: ("src_ip",)}, {"PSL_CAP": "64"}, None),
    # a parse step filling a struct of header pointers, helpers swapping fields through pointers; a sketch
    "echo_responder": ("sn", {1: ("src_ip",)}, {}, None),
    # the verdict from an X-macro list of rules expanded into a switch of function-like action macros
    "xmacro_policy": ("sn", ANY, {}, None),
}
# NFs whose equivalence runs on generated traffic of their own (GENERATED below) instead of the
# witnesses: the witness search cannot build the state some of their paths need.
OWN_TRAFFIC = {"host_flow_limit"}
EXTRA = {"dport_counters": ("uniform", 2_000, 200)}  # generated traffic after the witnesses (kind, packets, flows)


def _params(with_cores: bool):
    return [pytest.param(nf, cores, id=nf if cores is None else f"{nf}-{cores}")
            for nf in SUITE if not (with_cores and nf in OWN_TRAFFIC) for cores in ((2, 4) if with_cores else (None,))]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _defines(nf: str) -> list[str]:
    return [arg for name, value in sorted(SUITE[nf][2].items()) for arg in ("-D", f"{name}={value}")]


@functools.lru_cache(maxsize=None)
def _witnesses(nf: str):
    analysis = pipeline.analyze(NFS / f"{nf}.c", SUITE[nf][2])
    return analysis, find_witnesses(analysis, SUITE[nf][2], seed=3)


def _cli(capsys, *argv) -> tuple[int, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out


@pytest.mark.dpdk
@pytest.mark.parametrize("nf,cores", _params(False))
def test_the_expected_strategy(tmp_path, capsys, nf, cores):
    strategy, fields, _, _ = SUITE[nf]
    path = str(NFS / f"{nf}.c")
    status, out = _cli(capsys, "analyze", path, *_defines(nf), "--json")
    assert status == 0 and json.loads(out)["paths"]
    status, out = _cli(capsys, "solve", path, *_defines(nf), "--cores", "4", "--json")
    solved = json.loads(out)
    assert status == 0 and solved["strategy"] == {"sn": "shared-nothing"}.get(strategy, strategy), solved
    if fields is not ANY:
        hashed = {d["device"]: tuple(d["fields"]) for d in solved["devices"].values()}
        for device, expected in fields.items():
            assert hashed[device] == expected, (device, hashed)
    status, out = _cli(capsys, "generate", path, *_defines(nf), "--cores", "4", "-o", str(tmp_path / "project"))
    assert status == 0 and (tmp_path / "project" / "Makefile").is_file() and f": {strategy} on 4 cores" in out


@pytest.mark.dpdk
@pytest.mark.slow
@pytest.mark.parametrize("nf,cores", _params(True))
def test_equivalent_on_traffic_that_runs_its_paths(tmp_path, capsys, nf, cores):
    analysis, witnesses = _witnesses(nf)
    trace = witnesses.combined(kinds=("main", "sweep", "pump", "jump"))
    if nf in EXTRA:
        kind, packets, flows = EXTRA[nf]
        extra = generate(kind, packets=packets, flows=flows, seed=3)
        later = extra.timestamps - extra.timestamps[0] + np.uint64(int(trace.timestamps[-1]) + 3_600_000_000_000)
        trace = Trace(np.concatenate([trace.timestamps, later]),
                      np.concatenate([trace.devices, extra.devices]), trace.frames + extra.frames)
    assert len(trace)
    seq = run_trace(analysis.source, trace, SUITE[nf][2], calls=True)
    counts = match_paths(analysis, trace, seq).counts(len(analysis.paths))
    ran = int(np.count_nonzero(counts))
    filled = {p for p, hit in enumerate(witnesses.hits) if hit is not None and witnesses.kinds[hit[0]] == "fill"}
    with capsys.disabled():
        print(f"\ncheck suite {nf} ({cores} cores): the check traffic runs {ran} of {len(analysis.paths)} paths "
              f"({len(trace)} packets); the witness search reached {witnesses.coverage.covered}"
              + (f"; {len(filled)} need a full table and run in the fill traffic" if filled else ""))
    assert ran + len(filled) >= witnesses.coverage.covered
    assert witnesses.coverage.covered == len(analysis.paths), witnesses.unreached
    paths = write_trace(trace, tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]
    status, out = _cli(capsys, "check", str(NFS / f"{nf}.c"), *_defines(nf), *inputs, "--cores", str(cores), "--json")
    report = json.loads(out)
    assert status == 0 and report["equivalent"] is True, json.dumps(report, indent=1)[:3000]
    assert report["strategy"] == SUITE[nf][0] and report["cores"] == cores


@pytest.mark.dpdk
@pytest.mark.slow
@pytest.mark.parametrize("cores", [2, 4])
def test_host_flow_limit_is_equivalent_where_hosts_hit_their_limit(tmp_path, capsys, cores):
    """The witnesses, then sixteen LAN hosts with many flows each (their limit of 2 bites) whose
    replies come back, under locks: each host keeps the indices of the flows it opened past their
    expiry, and a sharded build (a dchain per core, each with its own order of handing indices
    out) differed from the sequential NF where a stale index met a flow of another host. The
    witness search reaches about half of the 27 paths: the others need a host's slot to hold a
    flow that expired while the host itself stayed (it is refreshed only by new flows), which
    neither it nor this traffic builds; the test prints the coverage."""
    nf = "host_flow_limit"
    analysis, witnesses = _witnesses(nf)
    trace = witnesses.combined(kinds=("main", "sweep", "pump", "jump"))
    extra = generate("prefix", packets=12_000, flows=200, seed=5, client_prefix="10.1.0.0/28", reply_share=0.4,
                     skew=1.5, rate_pps=100_000)
    later = extra.timestamps - extra.timestamps[0] + np.uint64(int(trace.timestamps[-1]) + 3_600_000_000_000)
    trace = Trace(np.concatenate([trace.timestamps, later]), np.concatenate([trace.devices, extra.devices]),
                  trace.frames + extra.frames)
    seq = run_trace(analysis.source, trace, SUITE[nf][2], calls=True)
    ran = int(np.count_nonzero(match_paths(analysis, trace, seq).counts(len(analysis.paths))))
    verdicts = [v.verdict for v in seq.verdicts]
    with capsys.disabled():
        print(f"\ncheck suite {nf} ({cores} cores): the check traffic runs {ran} of {len(analysis.paths)} paths")
    assert min(verdicts.count(-1), verdicts.count(0), verdicts.count(1)) > 1_000  # limits bite, replies pass
    assert ran >= 13
    paths = write_trace(trace, tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]
    status, out = _cli(capsys, "check", str(NFS / f"{nf}.c"), *_defines(nf), *inputs, "--cores", str(cores), "--json")
    report = json.loads(out)
    assert status == 0 and report["equivalent"] is True, json.dumps(report, indent=1)[:3000]


REPLICATED = {"ctl_blocklist"}  # every core holds the whole table: no core's share runs out first
FILLED = [nf for nf, spec in SUITE.items() if spec[0] == "sn" and "CAPACITY" in "".join(spec[2]) and nf not in REPLICATED]


@pytest.mark.dpdk
@pytest.mark.slow
@pytest.mark.parametrize("nf", FILLED)
def test_a_full_table_is_partial_not_equivalent(tmp_path, capsys, nf):
    """The traffic that fills a table: at 4 cores each core holds a quarter of it, so its share
    runs out first; check sets those packets aside and says "partial" (exit 3), never equivalent."""
    _, witnesses = _witnesses(nf)
    trace = witnesses.combined(kinds=("fill",))
    assert len(trace) > 64
    paths = write_trace(trace, tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]
    status, out = _cli(capsys, "check", str(NFS / f"{nf}.c"), *_defines(nf), *inputs, "--cores", "4", "--json")
    report = json.loads(out)
    assert status == 3 and report["verdict"] == "partial" and report["equivalent"] is False, report
    assert report["partial"]["not_compared"] > 0 and report["unexplained"] == 0


def test_a_verdict_outside_the_devices_is_rejected_with_its_line(capsys):
    """Issue 10 item 3."""
    status = main(["analyze", str(NFS / "bad_verdict.c")])
    err = capsys.readouterr().err
    assert status == 1 and "bad_verdict.c:13:" in err and "7" in err


@pytest.mark.dpdk
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["locks", "tm", "sn"])
def test_a_pass_never_runs_before_a_time_the_state_holds(tmp_path, capsys, strategy):
    """clock_guard drops a frame whose time is before the last tick's, which the sequential NF on a
    trace in time order never does. Under locks the cores race: a tick of the core that is ahead
    reached the cell before frames of the core behind, which then ran at their own, earlier times
    and were dropped (hundreds of frames per run at 4 cores on 2 CPUs), though the check, taking the
    same times, said equivalent. Under sn the cell is replicated and a core that is behind applied
    the ticks of a core that is ahead (1,380 extra drops lagged, 5,080 strict). A pass now runs at
    the latest time its state holds."""
    nf, defines = NFS / "clock_guard.c", {"CG_TICK_PORT": "9999"}
    trace = generate("heartbeat", packets=30_000, flows=400, seed=7, heartbeat_share=0.05, backends=16,
                     rate_pps=1_000_000)
    seq = [v.verdict for v in run_trace(nf, trace, defines).verdicts]
    ticks = seq.count(-1)
    assert ticks > 1_000 and ticks == sum(1 for d in trace.devices.tolist() if d == 0)
    solution = pipeline.solve(nf, cores=4, defines=defines, strategy=strategy, quality=False)
    plan = parallel_plan(solution, strategy, 4)
    assert bool(plan.broadcast) == (strategy == "sn")  # sn: the cell is replicated
    project = write_project(plan, tmp_path / "project")
    run = run_replay(project, trace)
    late = int(np.count_nonzero(run.times > trace.timestamps))
    with capsys.disabled():
        print(f"\nclock_guard under {strategy} (4 cores): {late} of {len(trace)} packets ran later than their own time")
    assert int(np.count_nonzero(run.verdicts == -1)) == ticks  # nothing else dropped as from the past
    assert np.all(run.times >= trace.timestamps)
    paths = write_trace(trace, tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]
    status, out = _cli(capsys, "check", str(nf), "-D", "CG_TICK_PORT=9999", *inputs, "--cores", "4",
                       "--strategy", strategy, "--json")
    report = json.loads(out)
    assert status == 0 and report["equivalent"] is True, json.dumps(report, indent=1)[:3000]


@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
def test_expiry_on_some_paths_only_is_not_sharded(tmp_path, capsys, monkeypatch, cores):
    """lan_expiry_fw: 40 LAN flows open, a LAN frame of another flow 100 s later expires them all
    (sequentially), then their replies come: the sequential NF drops every one. The locks build does
    too; a sharded build (the rule that locks it switched off) lets through the replies of every
    core the late LAN frame did not reach."""
    import explorer.sharding.decisions as decisions
    import nf_packets as pk

    second = 1_000_000_000
    events = [(second + i * 1000, 0, pk.tcp(f"10.0.0.{i + 1}", 30000 + i, "93.184.216.34", 443)) for i in range(40)]
    events.append((100 * second, 0, pk.tcp("10.0.1.1", 31000, "93.184.216.35", 80)))
    events += [(100 * second + 1000 * (i + 1), 1, pk.tcp("93.184.216.34", 443, f"10.0.0.{i + 1}", 30000 + i))
               for i in range(40)]
    paths = write_trace(pk.trace(events), tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]
    nf = str(NFS / "lan_expiry_fw.c")
    status, out = _cli(capsys, "check", nf, *inputs, "--cores", str(cores), "--json")
    report = json.loads(out)
    assert status == 0 and report["equivalent"] is True and report["strategy"] == "locks"
    monkeypatch.setattr(decisions, "_lock_partial_expiry", lambda analysis, found: found)
    status, out = _cli(capsys, "check", nf, *inputs, "--cores", str(cores), "--json")
    report = json.loads(out)
    assert status == 2 and report["strategy"] == "sn" and report["equivalent"] is False


@pytest.mark.dpdk
def test_a_one_device_nf_solves_and_refuses_generated_traffic_saying_what_instead(capsys):
    """Generated traffic arrives on LAN 0 and WAN 1: an NF with one device solves (with no balance
    figures: those are measured on such traffic) and each command says what to give it instead."""
    nf = str(NFS / "one_port.c")
    status, out = _cli(capsys, "solve", nf, "--json")
    assert status == 0 and json.loads(out)["strategy"] == "shared-nothing"
    for command, instead in (("check", "give its traffic with --in 0=PCAP, or use --traffic paths"),
                             ("simulate", "give its traffic with --in 0=PCAP, or use --traffic paths"),
                             ("bench", "give its traffic with --in 0=PCAP"),
                             ("sweep", "a sweep runs generated traffic only")):
        assert main([command, nf, "--traffic", "uniform", "--cores", "2"]) == 1
        err = capsys.readouterr().err
        assert ("one_port has one device, and generated traffic (uniform) arrives on two (LAN 0 and WAN 1): "
                + instead) in err, err
