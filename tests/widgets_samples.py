"""Hand-written engine results, shaped like the engine's ``to_dict()`` values (docs/design.md and
``explorer/pipeline.py``), for testing the widgets without running the engine; and a fake engine that
returns them and records how it was called."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from explorer.errors import GenerateError

TINY_NF = """\
#include "nf.h"

struct nf_map *flows;

bool nf_init(void) {
  return nf_map_allocate(12, 1024, &flows);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int value;
  if (nf_map_get(flows, packet, &value)) {
    return 1;
  }
  nf_map_put(flows, packet, 0);
  return 0;
}
"""
GET_LINE, PUT_LINE = 11, 14
KEY0 = "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa" + "00" * 12
KEY1 = "0123456789abcdef" * 6 + "01234567"


def analysis_dict(source: str) -> dict[str, Any]:
    def access(op: str, call: str, line: int, col: int) -> dict[str, Any]:
        return {"object": "flows", "related": [], "op": op, "call": call, "key": "p.ipv4.src ++ p.ipv4.dst",
                "results": [], "location": {"file": source, "line": line, "col": col}}

    get = access("READ", "nf_map_get", GET_LINE, 7)
    put = access("WRITE", "nf_map_put", PUT_LINE, 3)
    return {
        "nf": "tiny", "source": source, "defines": {}, "devices": 2,
        "objects": [{"name": "flows", "kind": "map", "alloc_index": 0, "capacity": 1024, "size": 12,
                     "layout": "", "extra": {}, "location": None},
                    {"name": "config", "kind": "vector", "alloc_index": 1, "capacity": 4, "size": 4,
                     "layout": "", "extra": {}, "location": None}],
        "paths": [
            {"index": 0, "condition": "flows.found#1 != 0", "devices": [0, 1], "accesses": [get],
             "writes": [], "verdict": {"kind": "forward", "device": 1, "device_text": ""}},
            {"index": 1, "condition": "flows.found#1 == 0", "devices": [0], "accesses": [get, put],
             "writes": [], "verdict": {"kind": "forward", "device": 0, "device_text": ""}},
            {"index": 2, "condition": "device == 1", "devices": [1], "accesses": [],
             "writes": [], "verdict": {"kind": "drop", "device": None, "device_text": ""}},
        ],
        "fields_read": ["p.ipv4.dst", "p.ipv4.src"],
    }


SOLUTION = {
    "nf": "tiny", "strategy": "shared-nothing", "valid": True, "nic": "e810", "cores": 4, "seed": 0,
    "seconds": {"analysis": 0.1, "solve": 0.02},
    "objects": [
        {"name": "flows", "kind": "map", "decision": "shard", "reason": "keyed by the 4-tuple",
         "fields": {"0": ["src_ip", "dst_ip", "src_port", "dst_port"], "1": ["src_ip", "dst_ip", "src_port", "dst_port"]},
         "accesses": 3, "constraints": 2, "overridden": False},
        {"name": "config", "kind": "vector", "decision": "replicate", "reason": "only read by nf_process",
         "fields": {}, "accesses": 0, "constraints": 0, "overridden": False},
    ],
    "devices": {
        "0": {"key": KEY0, "fields": ["src_ip", "dst_ip", "src_port", "dst_port"], "reta_size": 8,
              "rss_hf": 0x3AFBC, "rss_hf_names": ["RTE_ETH_RSS_NONFRAG_IPV4_TCP", "RTE_ETH_RSS_NONFRAG_IPV4_UDP"],
              "rank": 3},
        "1": {"key": KEY1, "fields": ["src_ip", "dst_ip", "src_port", "dst_port"], "reta_size": 8,
              "rss_hf": 0x3AFBC, "rss_hf_names": ["RTE_ETH_RSS_NONFRAG_IPV4_TCP"], "rank": 3},
    },
    "conflicts": [],
    "quality": {"uniform": 1.03, "prefix": 1.08},
}

COUNTEREXAMPLE = {
    "object": "flows", "origin": "flows: path 0 nf_map_get (device 1) ~ path 1 nf_map_put (device 0)",
    "p1": {"device": 0, "src_ip": "10.0.0.1", "dst_ip": "192.0.2.7", "src_port": 1000, "dst_port": 80},
    "p2": {"device": 1, "src_ip": "192.0.2.7", "dst_ip": "10.0.0.1", "src_port": 80, "dst_port": 1000},
    "cores": [3, 1],
}

SIMULATION = {
    "per_core": [30, 10, 20, 40], "flows_per_core": [3, 1, 2, 4], "imbalance": 1.6,
    "buckets": [10, 5, 10, 20, 20, 5, 10, 20], "reta": [0, 1, 2, 3, 0, 1, 2, 3],
    "violations": {"count": 2, "examples": [{"object": "flows", "key": "0a000001c0000207", "cores": [1, 3],
                                             "packets": [4, 9]}]},
    "rebalanced": None,
}
REBALANCED = {**SIMULATION, "violations": {"count": 0, "examples": []},
              "rebalanced": {"reta": [0, 1, 2, 3, 2, 1, 1, 0], "per_core": [30, 20, 20, 30], "imbalance": 1.2}}


WORDS = {
    "nf": "tiny",
    "objects": {
        "flows": {"name": "flows", "kind": "map", "decision": "shard", "inherited": False, "follows": [],
                  "fields": {"0": ["src_ip", "dst_ip", "src_port", "dst_port"],
                             "1": ["src_ip", "dst_ip", "src_port", "dst_port"]},
                  "summary": "tiny.c:11 `nf_map_get(flows, packet, &value)` looks up flows by device 0 packets' "
                             "(src_ip, dst_ip)", "broken": "", "details": "keyed by the 4-tuple",
                  "sites": [{"where": "tiny.c:11", "code": "nf_map_get(flows, packet, &value)", "keys": {"0": ["src_ip"]}}]},
        "config": {"name": "config", "kind": "vector", "decision": "replicate", "inherited": False, "follows": [],
                   "fields": {}, "summary": "Packets only read it: every core gets its own copy.", "broken": "",
                   "details": "only read by nf_process", "sites": []},
    },
    "keys": {"flows": {"0": [["src_ip", "dst_ip", "src_port", "dst_port", "protocol"]],
                       "1": [["dst_ip", "src_ip", "dst_port", "src_port", "protocol"]]}, "config": {}},
    "strategy": {"name": "shared-nothing", "valid": True, "summary": "Shared-nothing: every core owns its state.",
                 "details": ""},
    "counterexample": None,
}
REQUEST = {"device": 0, "src_ip": "10.1.2.3", "dst_ip": "93.184.216.34", "src_port": 40000, "dst_port": 443,
           "protocol": "TCP", "reta_index": 7, "core": 3}
REPLY = {"device": 1, "src_ip": "93.184.216.34", "dst_ip": "10.1.2.3", "src_port": 443, "dst_port": 40000,
         "protocol": "TCP", "reta_index": 1, "core": 1}
BROKEN_WORDS = {
    **WORDS,
    "objects": {**WORDS["objects"], "flows": {**WORDS["objects"]["flows"],
                                              "broken": "Broken by the override: a request and its reply split."}},
    "strategy": {"name": "shared-nothing", "valid": False, "summary": "Not correct: the override breaks flows.",
                 "details": "the override of flows breaks ..."},
    "counterexample": {"object": "flows", "relation": "addresses and ports swapped (a reply)",
                       "packets": [REQUEST, REPLY], "details": "flows: path 0 ~ path 1",
                       "sites": [{"where": "tiny.c:11", "code": "nf_map_get(flows, packet, &value)"}],
                       "outcome": {"first": 0, "second": 1, "sequential": 0, "parallel": -1, "differs": True,
                                   "text": "The second packet reaches core 1, but the flows entry lives on core 3."}},
}
PACKETS = {4: {"number": 4, "device": 0, "src_ip": "10.0.0.1", "dst_ip": "192.0.2.7", "src_port": 1000,
               "dst_port": 80, "protocol": "TCP"},
           9: {"number": 9, "device": 1, "src_ip": "192.0.2.7", "dst_ip": "10.0.0.1", "src_port": 80,
               "dst_port": 1000, "protocol": "TCP"}}


@dataclass(frozen=True)
class Result:
    """Stands for any engine result value: all the widgets may use is ``to_dict()`` (and ``files``)."""

    data: dict[str, Any]
    files: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


@dataclass
class FakeEngine:
    """``explorer.pipeline``'s functions, answering with the samples above; ``calls`` records
    (function, args, kwargs); set ``fail[name]`` to an exception to make that function raise it."""

    source: str
    calls: list[tuple[str, tuple, dict]] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)
    solution: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SOLUTION))
    on_call: Optional[Callable[[str], None]] = None

    def _call(self, name: str, args: tuple, kwargs: dict) -> None:
        self.calls.append((name, args, kwargs))
        if self.on_call:
            self.on_call(name)
        if name in self.fail:
            raise self.fail[name]

    def last(self, name: str) -> tuple[tuple, dict]:
        for called, args, kwargs in reversed(self.calls):
            if called == name:
                return args, kwargs
        raise AssertionError(f"{name} was never called")

    def analyze(self, nf, defines=None):
        self._call("analyze", (nf,), {"defines": defines})
        return Result(analysis_dict(self.source))

    def graph(self, analysis, highlight=None):
        self._call("graph", (analysis,), {"highlight": highlight})
        emphasis = f' "{highlight}" [color=red];' if highlight is not None else ""
        return f"digraph tiny {{ flows; config;{emphasis} }}"

    def solve(self, nf, defines=None, nic="e810", cores=16, seed=0, overrides=None, strategy="auto"):
        self._call("solve", (nf,), {"defines": defines, "nic": nic, "cores": cores, "seed": seed,
                                    "overrides": overrides, "strategy": strategy})
        data = copy.deepcopy(self.solution)
        if overrides:
            data["valid"] = False
            data["counterexample"] = COUNTEREXAMPLE
            for obj in data["objects"]:
                for dev, fields in overrides.get(obj["name"], {}).items():
                    obj["fields"][str(dev)] = list(fields)
                    obj["overridden"] = True
        return Result(data)

    def explain(self, result, outcome=True):
        self._call("explain", (result,), {})
        return copy.deepcopy(BROKEN_WORDS if result.to_dict().get("valid") is False else WORDS)

    def simulate(self, solution, traffic="uniform", packets=100_000, flows=10_000, seed=0, keys=None,
                 rebalance=False, **params):
        self._call("simulate", (solution,), {"traffic": traffic, "packets": packets, "flows": flows,
                                             "seed": seed, "rebalance": rebalance, **params})
        return Result(REBALANCED if rebalance else SIMULATION)

    def packets_of(self, traffic, numbers, packets=100_000, flows=10_000, seed=0, **params):
        self._call("packets_of", (traffic, list(numbers)), {"packets": packets, "flows": flows, "seed": seed})
        return {n: PACKETS[n] for n in numbers if n in PACKETS}

    def project_in(self, folder):
        self._call("project_in", (folder,), {})
        marker = Path(folder) / ".nfx-generated"
        return json.loads(marker.read_text()) if marker.is_file() else None

    def generate(self, solution, out_dir, strategy="auto", force=False):
        self._call("generate", (solution, out_dir), {"strategy": strategy, "force": force})
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()) and not (out / ".nfx-generated").is_file() and not force:
            raise GenerateError(f"{out}: not empty and not made by nfx (tick replace to overwrite)")
        (out / "src").mkdir(parents=True, exist_ok=True)
        files = {"Makefile": "all:\n\tgcc -O2 main.c\n", "src/main.c": "int main(void) { return 0; }\n"}
        for name, text in files.items():
            (out / name).write_text(text)
        (out / ".nfx-generated").write_text(json.dumps({"nf": "tiny", "strategy": "sn"}))
        return Result({"files": sorted(files)}, tuple(out / name for name in sorted(files)))

    def check(self, solution, traffic, cores=2, packets=20_000, flows=2_000, wrong_on_purpose=False):
        self._call("check", (solution, traffic), {"cores": cores, "packets": packets, "flows": flows,
                                                   "wrong_on_purpose": wrong_on_purpose})
        if wrong_on_purpose:
            return Result({"equivalent": False, "verdict": "not equivalent", "packets": 1234, "unexplained": 1,
                           "strategy": "sn", "cores": cores,
                           "differences": [{"packet": 9, "device": 1, "core": 0, "sequential": 0, "parallel": -1,
                                            "why": "its flows entry is on core 1"}]})
        return Result({"equivalent": True, "packets": 1234, "differences": []})
