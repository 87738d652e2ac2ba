"""The simulator's violation count checked against a brute-force oracle (issue 10 item 11).

Over a small trace the oracle lists, packet by packet, the state keys the NF's C code looks up
(written here from the C source, not taken from the analysis) and the core the generated replay
harness really ran that packet on; a key looked up from two cores or more is a violation. The
simulator, given the same RSS keys, must report exactly that many, and its examples must be among
the oracle's. Wrong keys are planted on purpose (``ParallelPlan.with_keys``) so that the counts are
large and different per case; the solved keys give zero on both sides.
"""
from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.traffic.field_arrays import fields_of
from explorer.traffic.generators import generate
from explorer.verify.replay import run_replay

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.dpdk
CORES = 4


def _fw_keys(fields, devices, i):
    """fw.c: a TCP/UDP packet looks its LAN-side 5-tuple up in ``flows`` (a WAN packet reversed)."""
    if not fields.is_l4[i]:
        return ()
    ends = (int(fields.src_ip[i]), int(fields.src_port[i])), (int(fields.dst_ip[i]), int(fields.dst_port[i]))
    lan, wan = ends if devices[i] == 0 else ends[::-1]
    return (("flows", (lan, wan, int(fields.proto[i]))),)


def _host_bytes_keys(fields, devices, i):
    """tests/nfs/host_bytes.c: an IPv4 packet looks its LAN host up in ``hosts`` (LAN: the source
    address, WAN: the destination address)."""
    if not fields.is_ipv4[i]:
        return ()
    return (("hosts", int(fields.src_ip[i] if devices[i] == 0 else fields.dst_ip[i])),)


CASES = {
    "fw": ("sample_nfs/fw.c", {}, _fw_keys),
    "host_bytes": ("tests/nfs/host_bytes.c", {"HB_CAPACITY": "4096"}, _host_bytes_keys),
}


def _oracle(trace, cores: np.ndarray, keys_of) -> dict[tuple, set[int]]:
    """Every state key looked up from more than one core, with those cores."""
    fields = fields_of(trace)
    seen: dict[tuple, set[int]] = defaultdict(set)
    for i in range(len(trace)):
        for obj, key in keys_of(fields, trace.devices, i):
            seen[(obj, key)].add(int(cores[i]))
    return {k: v for k, v in seen.items() if len(v) > 1}


def _wrong_keys(plan, seed: int, devices: tuple[int, ...]) -> dict[int, bytes]:
    rng = random.Random(seed)
    return {d: bytes(rng.getrandbits(8) for _ in range(plan.key_bytes)) for d in devices}


@pytest.mark.parametrize("nf", sorted(CASES))
@pytest.mark.parametrize("broken", [(), (1,), (0, 1)], ids=["solved", "wan-key", "both-keys"])
def test_the_simulator_counts_exactly_the_keys_the_replay_touches_from_two_cores(tmp_path, nf, broken):
    source, defines, keys_of = CASES[nf]
    solution = pipeline.solve(str(ROOT / source), defines, cores=CORES)
    assert solution.strategy == "shared-nothing"
    trace = generate("mixed", packets=3000, flows=300, seed=11)
    plan = parallel_plan(solution, "sn", CORES)
    keys = _wrong_keys(plan, 7 + len(broken), broken)
    project = write_project(plan.with_keys(keys), tmp_path / "project")

    run = run_replay(project, trace)
    truth = _oracle(trace, run.cores, keys_of)
    report = pipeline.simulate(solution, trace, keys=keys)

    assert report.packets == len(trace)
    assert report.violation_count == len(truth)
    if broken:
        assert len(truth) > 10  # a wrong key must really split keys, or the test proves nothing
    for example in report.violations:  # each example is a key the replay really ran on those cores
        assert tuple(sorted(truth[_named(example, nf)])) == example.cores


def _named(example, nf: str) -> tuple:
    """The oracle's name for a simulator example (the key's bytes as the C struct lays them out)."""
    raw = bytes.fromhex(example.key)
    assert len(raw) == {"host_bytes": 4, "fw": 16}[nf]  # struct host_key; struct flow_key with padding
    if nf == "host_bytes":
        return ("hosts", int.from_bytes(raw[:4], "big"))
    src, dst = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    sport, dport = int.from_bytes(raw[8:10], "big"), int.from_bytes(raw[10:12], "big")
    return ("flows", ((src, sport), (dst, dport), raw[12]))
