"""``nfx simulate``: per-core load and sharding violations of an RSS plan on traffic."""
from __future__ import annotations

import json

from explorer import pipeline
from explorer.commands.options import parse_defines, parse_device_values
from explorer.errors import ConfigError
from explorer.sharding.decisions import parse_overrides
from explorer.traffic.pcap import parse_input


def main(args) -> int:
    if bool(args.inputs) == bool(args.traffic):
        raise ConfigError("give either --in DEV=PCAP (repeatable) or --traffic KIND")
    analysis = pipeline.analyze(args.nf, parse_defines(args.define))
    solution = pipeline.solve(analysis, nic=args.nic, cores=args.cores, seed=args.seed,
                              overrides=parse_overrides(args.override, analysis), quality=False)
    traffic = dict(parse_input(spec) for spec in args.inputs) if args.inputs else args.traffic
    report = pipeline.simulate(solution, traffic, packets=args.packets, flows=args.flows, seed=args.seed,
                               keys=parse_device_values(args.key, "--key"), rebalance=args.rebalance)
    data = report.to_dict()
    data["nf"] = analysis.nf
    data["keys"] = {str(d.device): d.key.hex() for d in pipeline.with_keys(
        solution.plan, parse_device_values(args.key, "--key")).devices}
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(render(data))
    return 0


def render(data: dict) -> str:
    lines = [f"{data['nf']}: {data['packets']} packets on {data['cores']} cores, "
             f"imbalance (max/mean) {data['imbalance']:.3f}"]
    lines.append("packets per core: " + " ".join(str(x) for x in data["per_core"]))
    lines.append("flows per core:   " + " ".join(str(x) for x in data["flows_per_core"]))
    v = data["violations"]
    lines.append(f"sharding violations: {v['count']} state keys touched from more than one core")
    for ex in v["examples"]:
        lines.append(f"  {ex['object']} key {ex['key']}: cores {ex['cores']}, packets {ex['packets']}")
    for u in data["unchecked"]:
        lines.append(f"  not checked: {u}")
    if data.get("rebalanced"):
        r = data["rebalanced"]
        lines.append(f"rebalanced RETA: imbalance {data['imbalance']:.3f} -> {r['imbalance']:.3f}, "
                     f"violations {r['violations']}")
        lines.append("  packets per core: " + " ".join(str(x) for x in r["per_core"]))
    return "\n".join(lines)
