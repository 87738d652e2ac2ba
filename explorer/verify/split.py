"""Pre-splitting a trace per (device, core) exactly as RSS would, for DPDK ports that do not hash
(net_pcap: one ``rx_pcap`` per queue). The core of every packet comes from the NIC model of
``explorer.simulate.steering`` (the same rule as nf_rss_core in the generated C, which the tests
check packet by packet), with the plan's keys and RETAs.

    python -m explorer.verify.split PROJECT 0=lan.pcap 1=wan.pcap OUT

writes ``OUT/dev<d>-core<c>.pcap`` for every device and core of the generated project PROJECT.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from explorer.codegen.planning import ParallelPlan
from explorer.errors import NfxError, TrafficError
from explorer.rss.nic import nic_profile
from explorer.rss.key_solver import DevicePlan, RssPlan
from explorer.simulate.steering import steer
from explorer.traffic.field_arrays import fields_of
from explorer.traffic.pcap import write_pcap
from explorer.traffic.trace import Trace


def rss_plan(plan: ParallelPlan) -> RssPlan:
    """The parallel plan's steering as an RssPlan, for the simulator's NIC model."""
    nic = nic_profile(plan.nic)
    if nic.reta_size != plan.reta_size:
        nic = nic.with_reta_size(plan.reta_size)
    devices = tuple(DevicePlan(d.device, d.key, d.fields, d.rss_hf, d.rss_hf_names, d.reta, 0) for d in plan.steering)
    return RssPlan(devices, nic, plan.cores, 0.0, plan.seed)


def cores_of(plan: ParallelPlan, trace: Trace) -> np.ndarray:
    """The core of every packet of ``trace``."""
    if len(trace) == 0:
        return np.zeros(0, dtype=np.int64)
    return steer(rss_plan(plan), fields_of(trace), np.asarray(trace.devices, dtype=np.int64)).cores


def split_trace(plan: ParallelPlan, trace: Trace, folder: str | Path) -> dict[tuple[int, int], Path]:
    """Write ``dev<d>-core<c>.pcap`` (nanosecond pcaps; empty ones too) for every device and core;
    returns ``{(device, core): path}``."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrafficError(f"{out}: cannot create folder: {error.strerror or error}") from None
    cores = cores_of(plan, trace)
    paths = {}
    for device in range(plan.devices):
        for core in range(plan.cores):
            picked = np.flatnonzero((trace.devices == device) & (cores == core))
            path = out / f"dev{device}-core{core}.pcap"
            write_pcap(path, trace.timestamps[picked], [trace.frames[i] for i in picked])
            paths[(device, core)] = path
    return paths


def plan_from_project(folder: Path) -> ParallelPlan:
    """The ParallelPlan a generated project was written from (its plan.json)."""
    from explorer.codegen.planning import plan_from_dict
    from explorer.codegen.project import MARKER

    if not (folder / MARKER).is_file():
        raise TrafficError(f"{folder} was not written by nfx generate (no {MARKER})")
    try:
        return plan_from_dict(json.loads((folder / "plan.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TrafficError(f"{folder}: cannot read its plan.json ({error})") from None


def main(argv: list[str] | None = None) -> int:
    from explorer.run import load_trace

    parser = argparse.ArgumentParser(prog="python -m explorer.verify.split",
                                     description="split pcaps per device and core as the project's NICs would")
    parser.add_argument("project", help="a folder written by nfx generate")
    parser.add_argument("inputs", nargs="+", metavar="DEV=PCAP")
    parser.add_argument("out", help="folder for dev<d>-core<c>.pcap")
    args = parser.parse_args(argv)
    try:
        split_trace(plan_from_project(Path(args.project)), load_trace(args.inputs), args.out)
    except NfxError as error:
        print(f"split: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
