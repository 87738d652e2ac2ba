"""The generated DPDK program on net_pcap ports (one rx_pcap per queue, split in software as RSS would)
agrees with the replay harness, transmit queue by transmit queue."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.verify.pcap_run import expected_outputs, microsecond_trace, run_on_pcaps
from explorer.verify.replay import run_replay
from explorer.verify.split import cores_of, split_trace
from explorer.errors import ConfigError
from explorer.traffic.pcap import read_pcap
from explorer.traffic.trace import Trace

from codegen_fixtures import pcap_vdevs, project, traffic

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.dpdk


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)




# ---- the DPDK program on pcap ports ------------------------------------------------------------------

def test_split_pcaps_follow_the_steering(tmp_path):
    p = project(tmp_path, "fw", "sn", 2)
    trace = traffic(packets=2000)
    paths = split_trace(p.plan, trace, tmp_path / "in")
    cores = cores_of(p.plan, trace)
    for (device, core), path in paths.items():
        stamps, frames = read_pcap(path)
        picked = np.flatnonzero((trace.devices == device) & (cores == core))
        assert frames == tuple(trace.frames[i] for i in picked)
        assert np.array_equal(stamps, trace.timestamps[picked])


def _dpdk_agrees(tmp_path, nf, strategy, cores, kind="mixed"):
    p = project(tmp_path, nf, strategy, cores)
    trace = microsecond_trace(traffic(kind, 3000))
    done, sent = _program(p, trace, tmp_path / "run", "--rx-time", "--ordered")
    assert done.returncode == 0, done.stderr
    totals = _totals(done.stdout)  # every packet accounted for
    assert totals["received"] == len(trace) == sum(totals[k] for k in ("forwarded", "flooded", "dropped", "runts"))
    expected = expected_outputs(run_replay(p, trace), trace, p.plan.devices, p.plan.cores)
    assert sent.keys() == expected.keys()
    for queue in sorted(expected):
        assert sent[queue] == expected[queue], f"{nf} {strategy}: device {queue[0]}, core {queue[1]} differs"
    assert sum(len(v) for v in sent.values()) > 0


@pytest.mark.parametrize("nf,strategy,cores,kind", [("fw", "sn", 2, "mixed"), ("nat", "sn", 2, "mixed"),
                                                    ("pol", "sn", 2, "mixed"), ("bridge", "locks", 2, "mixed"),
                                                    ("lb", "tm", 1, "heartbeat")])
def test_dpdk_program_on_pcap_ports_agrees_with_the_replay(tmp_path, nf, strategy, cores, kind):
    _dpdk_agrees(tmp_path, nf, strategy, cores, kind)


@pytest.mark.slow
@pytest.mark.parametrize("nf", ["nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb"])
def test_dpdk_program_agrees_for_every_sample_and_strategy(tmp_path, nf):
    kind = "heartbeat" if nf == "lb" else "mixed"
    strategies = ["seq", "locks", "tm"] + (["sn"] if nf not in ("bridge", "lb") else [])
    for strategy in strategies:
        # Under locks and tm, cores race: whether a packet sees another core's packet first (a
        # firewall reply its request, a client the heartbeat that registered its backend) differs
        # from run to run, so two runs agree only where the outcome cannot depend on it. The bridge's
        # can't on this traffic (with two devices every frame leaves on the other one, or is dropped
        # only for a MAC learned on its own side, and none is), so it runs on two cores; the other
        # NFs' locks and tm runs are compared on one core.
        cores = 1 if strategy == "seq" or (strategy in ("locks", "tm") and nf != "bridge") else 2
        _dpdk_agrees(tmp_path / strategy, nf, strategy, cores, kind)


def test_dpdk_run_needs_microsecond_timestamps(tmp_path):
    p = project(tmp_path, "nop", "sn", 2)
    with pytest.raises(ConfigError, match="microsecond"):
        run_on_pcaps(p, traffic(packets=10), tmp_path / "run")


# ---- running the DPDK program under eal_prefix and run_child --------------------------------------

def _program(project_, trace, folder, *options, cores=None, vdevs=None, defines=(), timeout=90):
    """Run nfx-nf on net_pcap ports fed with ``trace`` split per queue (or on ``vdevs``); returns the
    finished process and what every (device, core) tx queue sent."""
    from explorer.bench.launch import run_dpdk
    from explorer.codegen.compile import build_program

    plan = project_.plan
    folder = Path(folder)
    if vdevs is None:
        vdevs = pcap_vdevs(plan, trace, folder)
    binary = build_program(project_, "nf", defines=defines)
    done = run_dpdk(binary, cores or plan.cores, options, eal=vdevs, tag="test-nf", timeout=timeout)
    sent = {}
    if (folder / "out").is_dir():
        sent = {(d, c): read_pcap(folder / "out" / f"dev{d}-core{c}.pcap")[1]
                for d in range(plan.devices) for c in range(plan.cores)
                if (folder / "out" / f"dev{d}-core{c}.pcap").is_file()}
    return done, sent


def _totals(stdout: str) -> dict[str, int]:
    """The program's totals line ("nfx-nf: received 6, forwarded 6, ...") as a dict."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("nfx-nf: received "))
    return {k: int(v) for k, v in (part.rsplit(" ", 1) for part in line[len("nfx-nf: "):].split(", "))}


def _udp_frames(sizes, first_port=4000):
    """LAN UDP frames of the given total sizes, checksummed (a NAT recomputes the UDP checksum over
    the whole payload, so an NF that saw only part of a frame would emit a different one)."""
    import dpkt

    frames = []
    for i, size in enumerate(sizes):
        udp = dpkt.udp.UDP(sport=first_port + i, dport=53, data=bytes((i + k) % 251 for k in range(size - 42)))
        ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1 + i]), dst=bytes([198, 51, 100, 7]), p=17, data=udp)
        ip.len = 20 + len(udp)
        frame = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))
        assert len(frame) == size
        frames.append(frame)
    return frames


JUMBO = (64, 1514, 2000, 4000, 9000, 9018)


def _jumbo_trace(sizes=JUMBO, repeat=2):
    frames = _udp_frames(sizes * repeat)
    n = len(frames)
    return Trace(np.arange(1, n + 1, dtype=np.uint64) * np.uint64(1000), np.zeros(n, np.uint16), tuple(frames))


def test_the_frame_size_limit_is_one_number():
    """nf.h's NF_MAX_FRAME, explorer.wire.MAX_FRAME and the trace encoder's refusal agree."""
    from explorer.errors import TrafficError
    from explorer.run import encode_trace
    from explorer.wire import MAX_FRAME

    header = (ROOT / "explorer" / "runtime" / "include" / "nf.h").read_text()
    assert f"#define NF_MAX_FRAME {MAX_FRAME}\n" in header and MAX_FRAME == 9018
    encode_trace(_jumbo_trace((MAX_FRAME,), 1))
    with pytest.raises(TrafficError, match="9019 bytes.*at most 9018"):
        encode_trace(Trace(np.zeros(1, np.uint64), np.zeros(1, np.uint16), (bytes(9019),)))


def test_every_frame_size_up_to_the_limit_comes_out_as_with_nfx_run(tmp_path):
    """Issue 10 item 5: 64 .. 9018-byte frames through net_pcap (2 KB mbufs, so chains of up to 5
    segments) come out of the generated program byte for byte as the sequential harness emits them."""
    from explorer.run import run_trace

    trace = _jumbo_trace()
    expected = run_trace("sample_nfs/nat.c", trace).output_frames(1)
    assert len(expected) == len(trace) and sorted(map(len, expected)) == sorted(map(len, trace.frames))
    p = project(tmp_path, "nat", "seq", 1)
    done, sent = _program(p, trace, tmp_path / "seq", "--rx-time", "--ordered")
    assert done.returncode == 0, done.stderr
    assert sent[(1, 0)] == tuple(expected) and sent[(0, 0)] == ()
    assert _totals(done.stdout) == {"received": 12, "forwarded": 12, "flooded": 0, "dropped": 0, "runts": 0,
                                    "giants": 0, "sent": 12, "tx failures": 0}


def test_jumbo_frames_on_two_cores_agree_with_the_replay(tmp_path):
    p = project(tmp_path, "nat", "sn", 2)
    trace = _jumbo_trace(repeat=3)
    done, sent = _program(p, trace, tmp_path / "sn", "--rx-time", "--ordered")
    assert done.returncode == 0, done.stderr
    expected = expected_outputs(run_replay(p, trace), trace, p.plan.devices, p.plan.cores)
    assert sent == expected and sum(map(len, sent.values())) == len(trace)


def test_giants_are_dropped_before_the_nf_and_counted(tmp_path):
    """A capture can hold frames over NF_MAX_FRAME, which the program (like a NIC at that MTU) drops
    uncounted by the NF; the trace reader of the harnesses refuses them outright."""
    from explorer.traffic.pcap import write_pcap

    p = project(tmp_path, "nop", "seq", 1)
    frames = _udp_frames((9019, 1000, 12000, 9018))
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    write_pcap(tmp_path / "in" / "lan.pcap", [1000, 2000, 3000, 4000], frames)
    write_pcap(tmp_path / "in" / "wan.pcap", [], [])
    vdevs = [arg for d, name in enumerate(("lan", "wan")) for arg in
             ("--vdev", f"net_pcap{d},rx_pcap={tmp_path / 'in' / f'{name}.pcap'},"
                        f"tx_pcap={tmp_path / 'out' / f'dev{d}-core0.pcap'}")]
    done, sent = _program(p, None, tmp_path, "--idle-ms", "300", vdevs=vdevs)
    assert done.returncode == 0, done.stderr
    assert sent[(1, 0)] == (frames[1], frames[3])
    totals = _totals(done.stdout)
    assert (totals["received"], totals["forwarded"], totals["giants"]) == (4, 2, 2)


# ---- exit paths ---------------------------------------------------------------------------------

def _custom_project(tmp_path, nf, strategy, cores, defines):
    from explorer import pipeline
    from explorer.codegen import parallel_plan, write_project

    solution = pipeline.solve(f"tests/nfs/{nf}.c", defines, cores=cores,
                              strategy="locks" if strategy in ("locks", "tm") else "auto")
    return write_project(parallel_plan(solution, strategy, cores), tmp_path / f"{nf}-{strategy}-{cores}")


def _stopped(stdout: str) -> list[str]:
    return [ln.split(":")[1].strip() for ln in stdout.splitlines() if " stopped" in ln]


@pytest.mark.parametrize("strategy,cores", [("seq", 1), ("sn", 2)])
def test_ports_are_stopped_when_nf_init_fails(tmp_path, strategy, cores):
    p = _custom_project(tmp_path, "init_refuses", strategy, cores, {"MAP_CAPACITY": "1073741824"})
    done, sent = _program(p, _jumbo_trace((64, 100)), tmp_path / "run", "--idle-ms", "200")
    assert done.returncode == 2 and "nf_init failed" in done.stderr and "capacity 1073741824" in done.stderr
    assert _stopped(done.stdout) == ["port 0 stopped", "port 1 stopped"]
    assert all(v == () for v in sent.values())  # every tx pcap written out whole, empty


def test_ports_are_stopped_when_a_worker_breaks_a_contract(tmp_path):
    """A packet that breaks nf.h's contract on one lcore ends the process from that lcore: the other
    lcore leaves its loop, the ports are stopped, and the frames sent before are in the pcaps."""
    # The analysis refuses a port index that can pass a capacity of 64 (one crafted packet would
    # stop the NF); an index from state can still break it, so the runtime's check stays: the
    # program is built with a capacity the analysis never saw.
    p = _custom_project(tmp_path, "port_counter", "locks", 2, {})
    good = _udp_frames((100,) * 40, first_port=4000)
    frames = [bytearray(f) for f in good]
    frames[-1][36:38] = (60000).to_bytes(2, "big")  # destination port 60000: index out of range
    trace = Trace(np.arange(1, 41, dtype=np.uint64) * np.uint64(1000), np.zeros(40, np.uint16),
                  tuple(bytes(f) for f in frames))
    for frame in trace.frames[:-1]:  # the others count port 53
        assert frame[36:38] == (53).to_bytes(2, "big")
    done, sent = _program(p, trace, tmp_path / "run", "--rx-time", "--ordered", defines=("PORT_CAPACITY=64",))
    assert done.returncode == 3 and "index 60000 out of range" in done.stderr
    assert _stopped(done.stdout) == ["port 0 stopped", "port 1 stopped"]
    assert sum(len(v) for v in sent.values()) >= 1


# ---- steering: flow rules the drivers accept, refusals that say what would work -----------------------

FLOW_RULE_PROBE = r"""
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <rte_flow.h>
#include "nf_parallel.h"
static const char *item(enum rte_flow_item_type type) {
  switch (type) {
    case RTE_FLOW_ITEM_TYPE_ETH: return "eth";
    case RTE_FLOW_ITEM_TYPE_IPV4: return "ipv4";
    case RTE_FLOW_ITEM_TYPE_TCP: return "tcp";
    case RTE_FLOW_ITEM_TYPE_UDP: return "udp";
    default: return "other";
  }
}
/* Print every flow rule nf_flow_rss_rule builds for this plan, one line per rule. */
int main(void) {
  for (unsigned d = 0; d < NF_DEVICES; d++)
    for (unsigned r = 0; r < nf_device_plans[d].flow_rules; r++) {
      struct rte_flow_attr attr;
      struct rte_flow_item pattern[NF_FLOW_ITEMS];
      struct rte_flow_action actions[2];
      struct rte_flow_action_rss rss;
      nf_flow_rss_rule(&nf_device_plans[d].flow_rule[r], &attr, pattern, actions, &rss);
      char items[64] = "";
      unsigned bare = 1, ends = 0;
      for (unsigned i = 0; i < NF_FLOW_ITEMS; i++) {
        if (pattern[i].type == RTE_FLOW_ITEM_TYPE_END) { ends = 1; break; }
        snprintf(items + strlen(items), sizeof items - strlen(items), "%s%s", i ? "/" : "", item(pattern[i].type));
        bare &= pattern[i].spec == NULL && pattern[i].mask == NULL && pattern[i].last == NULL;
      }
      unsigned nactions = 0;
      while (actions[nactions].type != RTE_FLOW_ACTION_TYPE_END) nactions++;
      printf("%u %u items=%s bare=%u ends=%u ingress=%u egress=%u priority=%u group=%u actions=%u "
             "rss_first=%d same_conf=%d func=%d level=%u types=%" PRIu64 " key_len=%u key_set=%d "
             "queue_num=%u queue_set=%d\n",
             d, nf_device_plans[d].flow_rule[r].pattern, items, bare, ends, attr.ingress, attr.egress,
             attr.priority, attr.group, nactions, actions[0].type == RTE_FLOW_ACTION_TYPE_RSS,
             actions[0].conf == &rss, (int)rss.func, rss.level, rss.types, rss.key_len, rss.key != NULL,
             rss.queue_num, rss.queue != NULL);
    }
  return 0;
}
"""
PATTERN_OF = {1: "eth / ipv4 / tcp", 2: "eth / ipv4 / udp", 3: "eth / ipv4"}


def _flow_rules(project_, defines=()):
    """The rules nf_flow_rss_rule builds for a project, as printed by FLOW_RULE_PROBE (compiled with the
    project's runtime against the real rte_flow.h)."""
    from explorer import build
    from explorer.processes import run_child

    folder = Path(project_.folder)
    (folder / "flow_probe.c").write_text(FLOW_RULE_PROBE)
    cflags, libs = build.dpdk_flags()
    binary = folder / "flow_probe"
    sources = ["flow_probe.c", "nf.c", "nf_parallel.c", "nf_plan.c", "nf_trace.c"]
    done = run_child(["gcc", "-O1", "-std=gnu11", "-Wall", "-Wextra", "-Werror", f"-I{folder}", *cflags,
                      *(f"-D{d}" for d in defines), *(str(folder / s) for s in sources), "-include", "nf_parallel.h",
                      str(folder / "nf_state.c"), "-o", str(binary), *libs], timeout=120)
    assert done.returncode == 0, done.stderr
    out = run_child([str(binary)], timeout=30)
    assert out.returncode == 0, out.stderr
    rules = []
    for line in out.stdout.splitlines():
        device, pattern, *fields = line.split()
        rules.append((int(device), int(pattern), dict(f.split("=") for f in fields)))
    return rules


def _as_action(pattern_code: int, f: dict) -> "RssAction":
    from explorer.rss.nic import RssAction

    pattern = PATTERN_OF[pattern_code]
    assert f["items"].replace("/", " / ") == pattern and f["ends"] == "1"
    assert f["rss_first"] == "1" and f["same_conf"] == "1"
    return RssAction(pattern, int(f["func"]), int(f["level"]), int(f["types"]), int(f["key_len"]),
                     f["key_set"] == "1", int(f["queue_num"]), f["queue_set"] == "1", int(f["priority"]),
                     f["ingress"] == "1" and f["egress"] == "0" and f["group"] == "0", f["bare"] == "1",
                     int(f["actions"]))


@pytest.mark.parametrize("nic", ["e810", "x710"])
def test_flow_rules_are_what_ice_and_i40e_accept(tmp_path, nic):
    """Issue 10 item 4: the rules the generated program creates pass the drivers' parsers (as
    explorer.rss.nic.rss_action_problems models them from the DPDK 22.11 sources): the key stays on the
    port, no level, no queue list; and the types select exactly the plan's fields."""
    from explorer import pipeline
    from explorer.codegen import parallel_plan, write_project
    from explorer.rss.nic import hashed_fields, rss_action_problems

    solution = pipeline.solve("sample_nfs/pol.c", cores=2, nic=nic)  # one field: dst_ip on the WAN
    p = write_project(parallel_plan(solution, "sn", 2), tmp_path / f"pol-{nic}")
    rules = _flow_rules(p)
    assert rules, "pol's plan selects fields through flow rules"
    for device, pattern, fields in rules:
        action = _as_action(pattern, fields)
        assert rss_action_problems(nic, action) == ()
        planned = p.plan.device(device).fields
        want = planned if action.pattern != "eth / ipv4" else tuple(f for f in planned if f.endswith("_ip"))
        assert hashed_fields(action.types, action.pattern) == want
    # The rule nfx used to build (the solved key in the action) is one ice refuses:
    faulty = _flow_rules(p, defines=("NF_TEST_FAULT_FLOW_KEY",))
    problems = rss_action_problems(nic, _as_action(faulty[0][1], faulty[0][2]))
    assert len(problems) == 1 and "key_len of 52" in problems[0]


def _null_vdevs(devices=2):
    return [arg for d in range(devices) for arg in ("--vdev", f"net_null{d}")]


def test_a_port_that_cannot_hash_as_planned_stops_the_program(tmp_path):
    """net_null offers RSS but takes no key (hash_key_size 0): an sn plan with sharded state refuses
    to run, says what failed and what would work; --degraded-ok runs anyway, loudly; a locks build
    and a one-core build run without complaint about correctness. (fw's plan selects no fields, so
    another NIC than the E810 alone would be no reason: tests/test_codegen_nics.py.)"""
    sn = project(tmp_path, "fw", "sn", 2)
    done, _ = _program(sn, None, tmp_path / "sn", "--packets", "1000", vdevs=_null_vdevs())
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("nfx-nf: port 0 (net_null) cannot hash as this plan needs: it takes 0-byte RSS keys; "
                              "the plan's hashes need at least the first 16 bytes of its 52-byte key")
    assert "nfx has no NIC profile for net_null" in message
    assert "--strategy locks" in message and "--nic" in message and "--degraded-ok" in message
    assert _stopped(done.stdout) == ["port 0 stopped"]  # port 1 was never started
    done, _ = _program(sn, None, tmp_path / "sn-degraded", "--packets", "1000", "--degraded-ok",
                       vdevs=_null_vdevs())
    assert done.returncode == 0, done.stderr
    assert "******** DEGRADED: port 0 (net_null)" in done.stderr and _totals(done.stdout)["received"] >= 1000
    locks = project(tmp_path, "fw", "locks", 2)
    done, _ = _program(locks, None, tmp_path / "locks", "--packets", "1000", vdevs=_null_vdevs())
    assert done.returncode == 0, done.stderr
    assert "correct with any steering" in done.stderr and "DEGRADED" not in done.stderr
    one = project(tmp_path, "fw", "sn", 1)
    done, _ = _program(one, None, tmp_path / "one", "--packets", "1000", vdevs=_null_vdevs())
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stderr


def test_ports_that_do_not_hash_need_no_steering(tmp_path):
    """net_pcap does not hash (its input is split per queue already): never a refusal."""
    p = project(tmp_path, "fw", "sn", 2)
    trace = microsecond_trace(traffic("mixed", 400))
    done, sent = _program(p, trace, tmp_path / "run", "--rx-time", "--ordered")
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stderr
    assert "does not hash: its input must be split per queue already" in done.stdout
    assert sum(map(len, sent.values())) > 0
