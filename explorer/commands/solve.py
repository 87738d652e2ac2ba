"""``nfx solve``: sharding decisions and RSS keys for an NF."""
from __future__ import annotations

import json

from explorer.commands.options import parse_defines, solve_nf
from explorer.explain import alone, in_words
from explorer.wording import count


def main(args) -> int:
    defines = parse_defines(args.define)
    solution = solve_nf(args, defines, args.strategy, quality=True)
    data = solution.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0 if solution.valid else 2
    print(render(data))
    return 0 if solution.valid else 2


def pool_text(p: dict) -> str:
    sizes = p["sizes"]
    if min(sizes) == max(sizes):
        return f"{p['allocator']}: {sizes[0]} indices per core on {len(sizes)} cores ({p['capacity']} in all)"
    return (f"{p['allocator']}: {'UNEVEN ' if p['uneven'] else ''}{min(sizes)} to {max(sizes)} indices per core, "
            f"largest/mean {p['imbalance']:.3f} (sizes {' '.join(map(str, sizes))})")


def counterexample_text(example: dict) -> str:
    """The key solver's two packets that share an entry but reach different cores, as packets
    (``device 0 10.0.0.1:1234 -> 8.8.8.8:53``); the constraint's engine terms stay in --json."""
    def packet(p: dict) -> str:
        return f"device {p['device']} {p['src_ip']}:{p['src_port']} -> {p['dst_ip']}:{p['dst_port']}"

    (c1, c2), (r1, r2) = example["cores"], example["reta_index"]
    return (f"these share an entry of {example['object']}: {packet(example['p1'])} reaches core {c1} (RETA entry "
            f"{r1}), {packet(example['p2'])} core {c2} (RETA entry {r2})")


def render(data: dict) -> str:
    """A readable report of ``Solution.to_dict()``: packet fields by the names the explorer uses
    (``src_mac``, ``dst_port == 9999``), as --json keeps the engine's (``p.ether.src``)."""
    lines = [f"{data['nf']}: {data['strategy']} on {count(data['cores'], 'core')}, NIC {data['nic']}"
             + ("" if data["valid"] else "  (NOT VALID: the requested sharding breaks correctness)")]
    lines.append("objects:")
    width = max([12] + [len(o["name"]) for o in data["objects"]])
    locked = data["strategy"] in ("locks", "tm")
    for o in data["objects"]:
        fields = "; ".join(f"dev {d}: {', '.join(f) or '-'}" for d, f in sorted(o["fields"].items()))
        decision, reason = o["decision"], o["reason"]
        if locked and decision != "lock":  # what it could be alone; the build runs it under the lock
            could = alone(decision, o["fields"])  # "could not shard even alone (...)" says its reason already
            decision, reason = "lock", (f"{could if could.startswith('could not') else f'{could} ({reason})'}; the "
                                        f"{data['strategy']} build runs every object under its lock")
        lines.append(f"  {o['name']:<{width}} {o['kind']:<7} {decision:<9} {in_words(reason)}"
                     + (f"  [{fields}]" if fields else ""))
    shares = data.get("write_shares") or {}
    if shares:
        lines.append("write share on uniform traffic (packets that may take a path writing it): " + ", ".join(
            f"{name} {share:.1%}" for name, share in sorted(shares.items())))
    lines.append("devices:")
    for dev, d in sorted(data["devices"].items(), key=lambda kv: int(kv[0])):
        hashed = ", ".join(d["fields"]) or "nothing"
        depends = d.get("depends_on", hashed)
        what = f"hash {hashed}" if depends == hashed else f"hash {hashed}; the index depends on {depends}"
        lines.append(f"  {dev}: {what}  rank {d.get('rank')}  reta {d.get('reta_size')}")
        portless = d.get("portless_fields", [])
        if not set(portless) <= set(d["fields"]):  # the NIC hashes more of them than of TCP/UDP frames
            lines.append(f"     frames without ports (ICMP, fragments, other IPv4) hash {', '.join(portless)}")
        lines.append(f"     key {d['key']}")
        lines.append(f"     rss_hf {' | '.join(d.get('rss_hf_names', [])) or hex(d.get('rss_hf', 0))}")
    if data.get("allocation"):
        lines.append(f"sharded by allocation: {data['allocation']}")
    for pools in data.get("pools", []):
        lines.append(f"pools: {pool_text(pools)}")
    if data.get("replication"):
        lines.append(f"why: {in_words(data['replication'])}")
    if data.get("why") or data.get("explanation"):  # the engine's own terms only where no words were made
        lines.append(f"why: {data.get('why') or in_words(data['explanation'])}")
    if data.get("counterexample"):
        lines.append(f"counterexample: {counterexample_text(data['counterexample'])}")
    for note in data.get("warnings", []):
        lines.append(f"warning: {note}")
    secs = data.get("seconds", {})
    lines.append("time: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in secs.items()))
    return "\n".join(lines)
