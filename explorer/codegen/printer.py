"""Printing a ParallelPlan as the files of a DPDK project: ``render(plan)`` gives every file's bytes
(pure, sorted, no timestamps); ``explorer.codegen.project`` puts them in a folder.

Fixed C lives in real files: the state runtime and ``nf_parallel.[ch]`` in ``explorer/runtime``,
``main.c``, ``replay.c``, the Makefile and the README skeleton in ``codegen/templates``. Only the NF
(``nf.c``), the configuration (``nf_config.h``), the plan (``nf_plan.[ch]``, ``plan.txt``) and the
README's blanks are printed here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from explorer.codegen.planning import DIVIDED_KINDS, ParallelPlan, share_text
from explorer.codegen.transform import TransformedNF, transform
from explorer.errors import GenerateError
from explorer.rss.nic import PROFILES, RSS_HF_BITS, nic_profile

CODEGEN_DIR = Path(__file__).resolve().parent
TEMPLATES = CODEGEN_DIR / "templates"
RUNTIME_DIR = CODEGEN_DIR.parent / "runtime"
COPIED = {  # project file -> where it comes from
    "nf.h": RUNTIME_DIR / "include" / "nf.h",
    "nf_runtime.h": RUNTIME_DIR / "nf_runtime.h",
    "nf_state.c": RUNTIME_DIR / "nf_state.c",
    "nf_trace.h": RUNTIME_DIR / "nf_trace.h",
    "nf_trace.c": RUNTIME_DIR / "nf_trace.c",
    "nf_parallel.h": RUNTIME_DIR / "nf_parallel.h",
    "nf_parallel.c": RUNTIME_DIR / "nf_parallel.c",
    "nf_pool.h": RUNTIME_DIR / "nf_pool.h",
    "nf_pool.c": RUNTIME_DIR / "nf_pool.c",
    "nf_replica.h": RUNTIME_DIR / "nf_replica.h",
    "nf_replica.c": RUNTIME_DIR / "nf_replica.c",
    "nf_rss.h": RUNTIME_DIR / "nf_rss.h",
    "main.c": TEMPLATES / "main.c",
    "replay.c": TEMPLATES / "replay.c",
    "Makefile": TEMPLATES / "Makefile",
}
_PRINTED = ("nf.c", "nf_config.h", "nf_plan.h", "nf_plan.c", "plan.txt", "plan.json", "README.md")
STRATEGY_MACRO = {"seq": "NF_STRATEGY_SEQ", "sn": "NF_STRATEGY_SN", "locks": "NF_STRATEGY_LOCKS", "tm": "NF_STRATEGY_TM"}
_FIELD_MACRO = {"src_ip": "NF_FIELD_SRC_IP", "dst_ip": "NF_FIELD_DST_IP", "src_port": "NF_FIELD_SRC_PORT",
                "dst_port": "NF_FIELD_DST_PORT"}
_PATTERN_MACRO = {"eth / ipv4 / tcp": "NF_PATTERN_IPV4_TCP", "eth / ipv4 / udp": "NF_PATTERN_IPV4_UDP",
                  "eth / ipv4": "NF_PATTERN_IPV4"}
_TITLES = {"seq": "the sequential NF (seq)", "sn": "shared nothing (sn)", "locks": "shared state behind locks (locks)",
           "tm": "shared state behind transactional locks (tm)"}
_EXPLANATIONS = {
    "seq": "The original NF on one core: the reference the parallel builds are compared with.",
    "sn": "Every core owns the state of the packets RSS sends it: the NF's globals are thread-local, every core "
          "runs `nf_init`, and the RSS keys were solved so that packets that share state land on the same core. "
          "No locks, no shared writes.",
    "locks": "One shared copy of the state behind a big-reader lock (one cache-line token per core). Every packet "
             "first runs as a reader; its first state change aborts that pass and the packet runs again, from its "
             "original bytes, under the write lock (its verdict is the second run's). Refreshing a flow's "
             "timestamp is a read: the time goes to a per-core table that the next writer merges before "
             "anything expires.",
    "tm": "The passes of the locks strategy with DPDK's lock elision (`rte_rwlock_*_tm`): with Intel RTM each "
          "pass is a hardware transaction; without it (`rte_tm_supported()` is 0, as on AMD CPUs) tm runs on "
          "the big-reader lock of the locks strategy, which then keeps the state consistent.",
}


def _comment(text: str) -> str:
    """Text that is safe inside a C block comment: on one line, neither closing it nor opening another
    (gcc's -Wcomment)."""
    return "".join(c if c.isprintable() else "?" for c in text).replace("*/", "* /").replace("/*", "/ *")


def _names(mask: int) -> str:
    """An rss_hf mask as nf_rss.h's NF_RSS_* names (hex for bits without a known name)."""
    names = [name for name, bit in sorted(RSS_HF_BITS.items(), key=lambda kv: kv[1]) if mask & bit]
    rest = mask & ~sum(RSS_HF_BITS[n] for n in names)
    spelled = [_nf_name(n) for n in names] + ([f"UINT64_C(0x{rest:x})"] if rest else [])
    return " | ".join(spelled) or "0"


def _nf_name(dpdk_name: str) -> str:
    """``RTE_ETH_RSS_IPV4`` -> ``NF_RSS_IPV4`` (nf_rss.h)."""
    return "NF_RSS_" + dpdk_name.removeprefix("RTE_ETH_RSS_")


def _config_h(plan: ParallelPlan) -> str:
    values = "\n".join(f" *   {_comment(n)} {_comment(v)}" for n, v in plan.defines if n != "NF_DEVICES")
    overrides = "".join(f"#define {n} {v}\n" for n, v in plan.overrides if n != "NF_DEVICES")
    if overrides:
        overrides = "\n/* The --define values that differ from the NF's own defaults. */\n" + overrides
    return (f"/*\n * nf_config.h: the configuration {_comment(plan.source)} was analysed with (nfx generate); do not "
            "edit.\n * nf.c includes it (through nf_parallel.h) before its own text, so that the values defined here "
            "take\n * the place of the NF's #ifndef defaults. Regenerate with --define NAME=VALUE to change one. "
            f"All values:\n{values or ' *   (none)'}\n */\n"
            f"#ifndef NF_CONFIG_H\n#define NF_CONFIG_H\n\n#define NF_DEVICES {plan.devices}\n{overrides}\n"
            "#endif /* NF_CONFIG_H */\n")


def _plan_h(plan: ParallelPlan) -> str:
    return (f"/* nf_plan.h: how {_comment(plan.nf)} runs in parallel (plan.txt); generated by nfx, do not edit. */\n"
            f"#ifndef NF_PLAN_H\n#define NF_PLAN_H\n\n"
            f"#define NF_STRATEGY {STRATEGY_MACRO[plan.strategy]}\n"
            f"#define NF_STRATEGY_NAME \"{plan.strategy}\"\n"
            f"#define NF_CORES {plan.cores}\n"
            f"#define NF_KEY_BYTES {plan.key_bytes} /* {plan.nic} ({plan.driver}) */\n"
            f"#define NF_RETA_SIZE {plan.reta_size}\n"
            f"#define NF_POOLS {len(plan.pools)} /* pooled dchains (sharding by allocation), see nf_pool.h */\n"
            f"{_nic_h(plan)}{_replicas_h(plan)}\n#endif /* NF_PLAN_H */\n")


def _nic_h(plan: ParallelPlan) -> str:
    """The NIC the plan was solved for, every profile's DPDK driver (main.c names the profile that fits
    a port), and whether correctness depends on the ports hashing as planned (sn with sharded state)."""
    steering = plan.strategy == "sn" and plan.cores > 1 and any(o.decision == "shard" for o in plan.objects)
    table = ", ".join(f'{{"{p.name}", "{p.dpdk_driver}"}}' for p in PROFILES.values())
    return (f"#define NF_NIC \"{plan.nic}\"\n#define NF_NIC_DRIVER \"{nic_profile(plan.nic).dpdk_driver}\"\n"
            f"#define NF_NIC_PROFILES {table}\n#define NF_STEERING_MATTERS {int(steering)}\n")


def _replicas_h(plan: ParallelPlan) -> str:
    """sn with replicated objects that packets write: which ones (allocation order) and how writes
    reach the other cores (nf_replica.h)."""
    if not plan.broadcast:
        return ""
    ordinals = ", ".join(str(o.alloc_index) for o in plan.broadcast)
    names = ", ".join(o.name for o in plan.broadcast)
    return (f"\n/* replicated, writes broadcast: {_comment(names)} */\n"
            f"#define NF_REPLICAS {len(plan.broadcast)}\n"
            f"#define NF_REPLICATED_ORDINALS {{{ordinals}}}\n"
            f"#define NF_REPLICATION NF_REPLICATION_{plan.replication.upper()}\n")


def _rows(values: list[str], per_row: int, indent: str) -> str:
    return ",\n".join(indent + ", ".join(values[i:i + per_row]) for i in range(0, len(values), per_row))


def _plan_c(plan: ParallelPlan) -> str:
    parts = [f"/* nf_plan.c: the RSS plan of every port of {_comment(plan.nf)} (plan.txt); generated by nfx, do not edit. */",
             '#include "nf_parallel.h"', '#include "nf_rss.h"', "",
             "const struct nf_device_plan nf_device_plans[] = {"]
    checks = []
    for d in plan.steering:
        fields = " | ".join(_FIELD_MACRO[f] for f in d.fields) or "0"
        names = " | ".join(d.rss_hf_names) or "0"  # DPDK's names, for messages
        spelled = " | ".join(map(_nf_name, d.rss_hf_names)) or "0"
        rules = ", ".join(f"{{{_PATTERN_MACRO[p]}, {_names(t)}}}" for p, t in d.flow_rules)
        parts += [f"    {{ /* device {d.device}: hashes {', '.join(d.fields) or 'nothing'} */",
                  "        .key = {",
                  _rows([f"0x{b:02x}" for b in d.key], 13, "            "),
                  "        },",
                  f"        .fields = {fields},",
                  f"        .portless_fields = {' | '.join(_FIELD_MACRO[f] for f in d.portless) or '0'},",
                  f"        .rss_hf = {spelled},",
                  f"        .rss_hf_names = \"{names}\",",
                  f"        .port_hf = {_names(d.port_hf)},",
                  "        .reta = {",
                  _rows([str(c) for c in d.reta], 32, "            "),
                  "        },",
                  f"        .flow_rules = {len(d.flow_rules)},",
                  f"        .flow_rule = {{{rules}}},",
                  "    },"]
        checks.append(f"_Static_assert(({spelled}) == UINT64_C(0x{d.rss_hf:x}), "
                      f"\"device {d.device}: rss_hf differs from the plan's\");")
    parts += ["};", "",
              "_Static_assert(sizeof nf_device_plans / sizeof nf_device_plans[0] == NF_DEVICES, "
              "\"one plan per device\");", *checks, ""]
    if plan.pools:
        parts += _pools_c(plan)
    return "\n".join(parts)


def _pools_c(plan: ParallelPlan) -> list[str]:
    """The pools the program must find when it recomputes them from its ports (nf_pool.h)."""
    parts = ['#include "nf_pool.h"', "", "const struct nf_pool_plan nf_pool_plans[NF_POOLS] = {"]
    for p in plan.pools:
        parts += [f"    {{ /* {_comment(p.text())} */",
                  f"        .allocator = \"{p.allocator}\",",
                  f"        .capacity = {p.capacity},",
                  f"        .device = {p.device},",
                  f"        .field = {_FIELD_MACRO[p.field]},",
                  f"        .offset = {p.offset}u,",
                  f"        .stride = {p.stride}u,",
                  "        .sizes = {",
                  _rows([str(s) for s in p.sizes], 16, "            "),
                  "        },",
                  f"        .digest = UINT64_C(0x{p.digest:016x}),",
                  "    },"]
    return parts + ["};", ""]


def _drift(plan: ParallelPlan) -> str:
    if plan.strategy == "seq":
        return "None: this is the sequential NF."
    if plan.strategy in ("locks", "tm"):
        return ("None in the state: there is one shared copy. Packets on different cores race, as in any parallel "
                "NF: a packet may see the state before or after a packet another core processes at the same time. "
                "Every run equals a sequential run of its packets in the order the locks let them through, with "
                "each core's packets in arrival order; `nfx check` rebuilds that order and verifies it.")
    lines = []
    for o in plan.objects:
        if o.per_core != o.capacity:
            lines.append(f"- `{o.name}` ({o.kind}): each core holds {share_text(plan.shares(o.name))} of the "
                         f"{o.capacity} entries, so one core can fill up while the sequential NF would still have "
                         "room.")
        elif o.broadcast:
            lag = ("a write is applied on every core before the packet that made it completes" if
                   plan.replication == "strict" else
                   "other cores apply a write before their next burst, so up to one burst of their packets "
                   "may still see the state before it (replication lag)")
            lines.append(f"- `{o.name}` ({o.kind}): copied on every core (memory x {plan.cores}); the rare packets "
                         f"that write it broadcast their writes: {lag}.")
        elif o.decision == "replicate":
            lines.append(f"- `{o.name}` ({o.kind}): read-only, copied on every core (memory x {plan.cores}).")
        elif o.decision == "shard" and o.kind in DIVIDED_KINDS:
            lines.append(f"- `{o.name}` ({o.kind}): packets name its entries directly (no per-core allocator hands "
                         f"them out), so every core keeps all {o.capacity} (memory x {plan.cores}); RSS sends the "
                         "packets that share an entry to one core, so no entry is split.")
        elif o.kind == "sketch":
            lines.append(f"- `{o.name}` (sketch): each core counts only its own keys; estimates can only be lower "
                         "(fewer collisions) than the sequential NF's.")
    for p in plan.pools:
        lines.append(f"- `{p.allocator}` (dchain): sharded by allocation: each core allocates only the indices whose "
                     f"{p.field} ({p.offset} + i) the NIC steers back to it, its pool ({p.text()}). The program "
                     "recomputes the pools from the key and RETA it reads back from the port and refuses to start "
                     "when they differ from the plan's; a new RETA needs new pools.")
    if any(o.kind == "dchain" and o.per_core != o.capacity for o in plan.objects):
        lines.append("- Indices are allocated per core, from each core's own range: values derived from them (a "
                     "NAT's external ports, for one) come from per-core pools, so the same value can be live on two "
                     "cores for different flows (RSS keeps each flow, both directions, on one core), and the value "
                     "a flow gets differs from the sequential NF's. `nfx check` compares such fields up to a "
                     "consistent renaming per flow.")
    return "\n".join(lines) or "None: no object is divided among cores."


def _fenced(text: str, language: str) -> str:
    """``text`` as a Markdown code block whose fence no line of it can close."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    end = "" if text.endswith("\n") else "\n"
    return f"{fence}{language}\n{text}{end}{fence}"


def _fill(template: str, blanks: dict[str, str]) -> str:
    """The template with every ``@@NAME@@`` replaced (in one pass: values may hold "@@")."""
    parts = template.split("@@")
    if len(parts) % 2 == 0 or any(parts[i] not in blanks for i in range(1, len(parts), 2)):
        raise GenerateError("the README template has a blank nfx does not fill")
    return "".join(blanks[part] if i % 2 else part for i, part in enumerate(parts))


def _readme(plan: ParallelPlan, nf: TransformedNF) -> str:
    vdevs = []
    for d in range(plan.devices):
        rx = ",".join(f"rx_pcap=in/dev{d}-core{c}.pcap" for c in range(plan.cores))
        tx = ",".join(f"tx_pcap=out/dev{d}-core{c}.pcap" for c in range(plan.cores))
        vdevs.append(f"        --vdev 'net_pcap{d},{rx},{tx}' \\\n")
    headers = "".join(f"- `{name}`: the NF's own header{' (edited)' if f'+++ {name}' in nf.diff else ''}.\n"
                      for name, _ in nf.headers)
    blanks = {
        "NF": plan.nf, "STRATEGY_TITLE": _TITLES[plan.strategy], "CORES": str(plan.cores), "SOURCE": plan.source,
        "NIC": plan.nic, "KEY_BYTES": str(plan.key_bytes), "RETA_SIZE": str(plan.reta_size),
        "STRATEGY_TEXT": _EXPLANATIONS[plan.strategy], "DEVICES": str(plan.devices),
        "LAST_CORE": str(plan.cores - 1), "VDEVS": "".join(vdevs), "DRIFT": _drift(plan),
        "CHANGES": "; ".join(nf.changes) if nf.changes else "none", "HEADERS": headers,
        "DIFF": _fenced(nf.diff, "diff"),
    }
    return _fill((TEMPLATES / "README.md").read_text(), blanks)


@dataclass(frozen=True)
class Rendered:
    """Every file of a project, and what the strategy changed in the NF."""

    files: dict[str, bytes]  # by name, sorted
    diff: str  # the NF's changes for the strategy, as a unified diff against its source


def render(plan: ParallelPlan) -> dict[str, bytes]:
    """Every file of the project, by name (sorted)."""
    return rendered(plan).files


def rendered(plan: ParallelPlan) -> Rendered:
    """``render``, with the NF's diff."""
    nf = transform(plan)
    files = {name: source.read_bytes() for name, source in COPIED.items()}
    for name, text in nf.headers:
        if name in files or name in _PRINTED:
            raise GenerateError(f"{plan.source} includes its own {name}, a name the project needs for its own file; "
                                "rename the NF's header")
        files[name] = text.encode("utf-8", "surrogateescape")
    files.update({
        "nf.c": nf.text.encode("utf-8", "surrogateescape"),
        "nf_config.h": _config_h(plan).encode(),
        "nf_plan.h": _plan_h(plan).encode(),
        "nf_plan.c": _plan_c(plan).encode(),
        "plan.txt": plan.text().encode(),
        "plan.json": (json.dumps(plan.to_dict(), indent=1, sort_keys=True) + "\n").encode(),
        "README.md": _readme(plan, nf).encode("utf-8", "surrogateescape"),
    })
    return Rendered(dict(sorted(files.items())), nf.diff)
