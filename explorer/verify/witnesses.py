"""Packets that make every feasible path of an NF run: a frame from each path's condition (a Z3
model) and the state that reaches it (a prefix of packets that creates it).

The search is concolic, with the real sequential runtime as the oracle:

* a main trace grows in rounds. Each round runs it (with the state-call log), sees which path every
  packet followed (``explorer.verify.coverage``), reads back what the state holds (``StateFacts``:
  keys present in each map and their values, indices a dchain has handed out, vector cells whose
  content is known, sketch counts), and appends, for every path not covered yet, a packet solved
  from the path's condition *and* those facts: a path that needs a map hit gets a key the map
  holds, one that needs a miss gets a fresh key. A path whose condition conflicts with what a
  vector cell or a map value holds gets two packets instead: one of a path that writes the object,
  solved together with the path's own so that it stores the value the path then reads at the same
  index or key (a configuration cell that only a management frame sets), then the path's packet;
* then branches of the main trace try what one more packet cannot do: fill a dchain to capacity
  with variants of a packet that allocates (for "table full" paths), pump a packet's state with
  variants that keep its hit keys and refresh its miss keys (counters and token buckets past a
  threshold), and jump in time (expiry);
* a path none of this reaches is reported with the reason the search has (its condition conflicts
  with the state every prefix built, or its candidates followed other paths). Only the analysis
  claims feasibility; whether a path is truly unreachable is for a person to name, but for two
  cases the search names at once: a hit in a map nothing fills, and a value found in a map that
  no nf_map_put stores (a negative index where every put stores a dchain's index).

The result is a handful of traces; every packet of each follows some path, and together they say
which packets reach which path (``Witnesses.hits``). For a seed, the traces are the same in every
fresh process that did the same before the search (``nfx traffic paths`` builds the NF before it
asks Z3 anything); a second search in one process may differ in fields the path leaves free (a
length, an address), because Z3's models depend on what the process did before: the names Z3
makes up are numbered process-wide, and which terms Python's garbage collector freed when (a build
that ran or did not) changes them. Each packet is solved in a Z3 context of its own and within a
resource budget, never a clock, so neither the analysis before nor the machine's load matters.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np
import z3

from explorer import ir, z3_check
from explorer.ir import result_parts
from explorer.run import RunResult, StateCall, run_trace
from explorer.symbex.bitvec import (conjoined, conjuncts, constants_of, disjoined, equalities, implies, subterms,
                                    symbols_of)
from explorer.symbex.evaluate import compile_term, frames_env
from explorer.traffic.replies import reply_frame
from explorer.traffic.trace import Trace
from explorer.verify.coverage import Coverage, PathMatch, calls_by_packet, match_paths
from explorer.verify.renaming import update_checksums
from explorer.wire import ETHER_LEN, PACKET_FIELDS, frame_offset
from explorer.wording import count

START_NS = 1_000_000_000  # traces start at 1 s, so that "now - AGE" expiry thresholds stay at 0
STEP_NS = 1_000  # packets of a round are 1 us apart: nothing expires between them
JUMPS_NS = (1_000_000, 100_000_000, 1_000_000_000, 2_000_000_000, 5_000_000_000, 10_000_000_000,
            30_000_000_000, 61_000_000_000, 300_000_000_000, 601_000_000_000, 3_601_000_000_000,
            86_401_000_000_000)
FACT_LIMIT = 512  # facts per object given to Z3 (the most recent)
PUMP_LIMIT = 4096
PUMP_DEFAULT = 256  # repetitions when the threshold is not a constant (a token bucket)
FILL_LIMIT = 20_000  # entries a fill branch adds at most (each costs a call-log line or ten per run)
# A check's fill draws on up to this many times the variants the search keeps (twice the room),
# where those hold too few of a core's share (``balanced_fills``): nat's pools of 27, 21 and 16
# ports on 3 cores drew 17% of the variants on the core of 27. Made only then: a pool of 8 times
# 2 x 16,384 frames takes seconds.
FILL_SPARES = 8
ROUNDS = 6
WRITE_TRIES = 8  # questions about a writer packet and a reader packet, per path and start
RLIMIT = 50_000_000  # Z3 resource units per check (see _solver)
TIMEOUT_MS = 120_000  # the wall-clock backstop per check
# Packets asked of Z3 in one search at most: the samples take 15-80; an NF whose paths hide behind
# hashes and thresholds (a count-min sketch of 81 paths) asked for thousands, an hour's work, and
# the search stops instead, naming what it did not reach. A count, not a clock: deterministic.
QUESTION_LIMIT = 1_000
FIELD_ORDER = ("p.ipv4.src", "p.ipv4.dst", "p.l4.sport", "p.l4.dport", "p.ether.src", "p.ether.dst")
_INPUTS = {"p.device", "p.len", "now"}
_STORES = {"nf_vector_borrow": "nf_vector_return", "nf_map_get": "nf_map_put"}  # a read -> the write it finds
_FIELDS = {f.name: f for f in PACKET_FIELDS}


# ---- what the state holds after a run -------------------------------------------------------------

@dataclass
class StateFacts:
    """The state of the NF after a run, as far as its call log tells (per object name)."""

    maps: dict[str, dict[int, tuple[bool, Optional[int]]]] = field(default_factory=dict)  # key -> (present, value)
    allocated: dict[str, dict[int, int]] = field(default_factory=dict)  # dchain index -> last stamp
    cells: dict[str, dict[int, Optional[int]]] = field(default_factory=dict)  # vector index -> content
    written: dict[str, set[int]] = field(default_factory=dict)  # vector indices ever written
    touches: dict[str, dict[int, int]] = field(default_factory=dict)  # sketch key -> touches
    last_time: int = START_NS

    @staticmethod
    def of(analysis: ir.Analysis, trace: Trace, calls: list[list[StateCall]], match: PathMatch) -> "StateFacts":
        names = {o.alloc_index: o.name for o in analysis.objects}
        facts = StateFacts(last_time=int(trace.timestamps[-1]) if len(trace) else START_NS)
        for i, mine in enumerate(calls):
            path = analysis.paths[match.path_of[i]] if match.path_of[i] >= 0 else None
            stamp = int(trace.timestamps[i])
            borrowed: dict[tuple[str, int], Optional[int]] = {}
            for j, c in enumerate(mine):
                name = names.get(c.object, str(c.object))
                key = int(c.key, 16) if c.key is not None else None
                results = [int(r, 16) for r in c.results]
                if c.call == "nf_map_get":
                    facts.maps.setdefault(name, {})[key] = (bool(results[0]), results[1] if results[0] else None)
                elif c.call == "nf_map_put":
                    facts.maps.setdefault(name, {})[key] = (True, None)
                elif c.call == "nf_map_erase":
                    facts.maps.setdefault(name, {})[key] = (False, None)
                elif c.call == "nf_dchain_allocate_new_index" and results[0]:
                    facts.allocated.setdefault(name, {})[results[1]] = stamp
                elif c.call == "nf_dchain_rejuvenate_index" and results[0]:
                    facts.allocated.setdefault(name, {})[key] = stamp
                elif c.call == "nf_dchain_free_index" and results[0]:
                    facts.allocated.setdefault(name, {}).pop(key, None)
                elif c.call in ("nf_expire_items", "nf_expire_items2") and results and results[0]:
                    chain = facts.allocated.setdefault(name, {})  # the oldest indices go
                    for index in sorted(chain, key=lambda k: (chain[k], k))[:results[0]]:
                        del chain[index]
                elif c.call == "nf_vector_borrow":
                    borrowed[(name, key)] = results[0]
                elif c.call == "nf_vector_return":
                    op = path.accesses[j].op if path is not None and j < len(path.accesses) else ir.Op.WRITE
                    cells = facts.cells.setdefault(name, {})
                    if op is ir.Op.READ:
                        cells[key] = borrowed.get((name, key))
                    else:  # changed: its content shows at the next borrow
                        cells[key] = None
                        facts.written.setdefault(name, set()).add(key)
                elif c.call == "nf_sketch_touch":
                    counts = facts.touches.setdefault(name, {})
                    counts[key] = counts.get(key, 0) + 1
        return facts


def _recent(mapping: dict) -> list:
    return list(mapping.items())[-FACT_LIMIT:]


def _facts_for(path: ir.CallPath, analysis: ir.Analysis, facts: StateFacts,
               small_step: bool) -> list[tuple[str, Any]]:
    """(label, constraint) pairs tying the path's state results to what the state holds, and to
    what the packet itself changed earlier on the path (a key it put, an index it allocated, a
    cell it wrote). Expiry is assumed to free nothing when the packet comes ``small_step`` later."""
    out: list[tuple[str, Any]] = []
    filled = {o.name for o in analysis.objects if o.kind == "map"} - {
        a.object for p in analysis.paths for a in p.accesses if a.call in ("nf_map_put", "nf_map_erase")}
    puts: dict[str, list] = {}  # map -> key terms the packet put (and erased, as ("erase", key))
    allocated: dict[str, list] = {}  # dchain -> index terms the packet allocated
    written: dict[str, list] = {}  # vector -> index terms the packet wrote
    touched: dict[str, list] = {}  # sketch -> key terms the packet touched
    for access in path.accesses:
        obj = analysis.object(access.object)
        name = obj.name
        results = [z3.BitVec(r, _result_bits(r, obj)) for r in access.results]
        key = access.key
        if access.op is ir.Op.EXPIRE:
            if small_step and results:
                out.append((f"expire:{name}", results[0] == 0))
        elif access.call == "nf_map_get" and name not in filled:
            entries = _recent(facts.maps.get(name, {}))
            hit = disjoined(equalities(key, [k for k, (here, _) in entries if here], numeral_first=True)
                            + [z3.BoolVal(False)])
            for kind, term in puts.get(name, []):  # the packet's own puts and erases, later ones last
                hit = z3.If(key == term, z3.BoolVal(kind == "put"), hit)
            out.append((f"map:{name}", (results[0] == 1) == hit))
            mine = z3.Or(*[key == term for _, term in puts.get(name, [])], z3.BoolVal(False))
            known = [(k, value) for k, (here, value) in entries if here and value is not None]
            if known:
                other = z3.Not(mine)
                seen = equalities(key, [k for k, _ in known], numeral_first=True)
                found = equalities(results[1], [value for _, value in known])
                out += [(f"value:{name}", implies(conjoined([s, other]), f)) for s, f in zip(seen, found)]
        elif access.call == "nf_map_get":  # filled by nf_init, which the log does not show: what was seen
            entries = _recent(facts.maps.get(name, {}))
            seen = equalities(key, [k for k, _ in entries], numeral_first=True)
            present = equalities(results[0], [1 if here else 0 for _, (here, _) in entries])
            for (_, (_, value)), s, p in zip(entries, seen, present):
                out.append((f"map:{name}", implies(s, p)))
                if value is not None:
                    out.append((f"value:{name}", implies(s, equalities(results[1], [value])[0])))
        elif access.call in ("nf_map_put", "nf_map_erase"):
            puts.setdefault(name, []).append(("put" if access.call == "nf_map_put" else "erase", key))
        elif access.call == "nf_dchain_allocate_new_index":
            chain = facts.allocated.get(name, {})
            taken = len(chain) + len(allocated.get(name, []))
            room = taken < obj.capacity
            out.append((f"alloc:{name}", results[0] == (1 if room else 0)))
            if room and not allocated.get(name):
                lowest = next(i for i in range(obj.capacity + 1) if i not in chain)
                out.append((f"alloc:{name}", results[1] == lowest))
            allocated.setdefault(name, []).append(z3.If(results[0] == 1, results[1], z3.BitVecVal(-1, 32)))
        elif access.call in ("nf_dchain_rejuvenate_index", "nf_dchain_is_index_allocated", "nf_dchain_free_index"):
            live = [k for k, _ in _recent(facts.allocated.get(name, {}))]
            held = disjoined(equalities(key, live) + [key == t for t in allocated.get(name, [])] + [z3.BoolVal(False)])
            out.append((f"index:{name}", (results[0] == 1) == held))
        elif access.call == "nf_vector_borrow":
            mine = z3.Or(*[key == t for t in written.get(name, [])], z3.BoolVal(False))
            other = z3.Not(mine)
            known = [(k, content) for k, content in _recent(facts.cells.get(name, {})) if content is not None]
            seen = equalities(key, [k for k, _ in known])
            found = equalities(results[0], [content for _, content in known])
            out += [(f"cell:{name}", implies(conjoined([s, other]), f)) for s, f in zip(seen, found)]
            ever = facts.written.get(name, set())
            if len(ever) <= FACT_LIMIT and not dict(obj.extra).get("init_cells"):  # nf_init's cells are no zeros
                fresh = conjoined(equalities(key, ever, differ=True) + [other])
                out.append((f"cell:{name}", implies(fresh, results[0] == 0)))
        elif access.call == "nf_vector_return" and access.op is ir.Op.WRITE:
            written.setdefault(name, []).append(key)
        elif access.call == "nf_sketch_estimate":
            total = z3.BitVecVal(0, 32)  # no collisions: a key's estimate is its own touches
            for k, n in _recent(facts.touches.get(name, {})):
                total = z3.If(key == z3.BitVecVal(k, key.size()), z3.BitVecVal(n, 32), total)
            for term in touched.get(name, []):
                total = total + z3.If(key == term, z3.BitVecVal(1, 32), z3.BitVecVal(0, 32))
            out.append((f"sketch:{name}", results[0] == total))
        elif access.call == "nf_sketch_touch":
            touched.setdefault(name, []).append(key)
    return out


def _result_bits(symbol: str, obj: ir.StateObject) -> int:
    what = result_parts(symbol)[1]
    if what in ("found", "ok"):
        return 8
    if what == "cell":
        return 8 * obj.size
    return 32


# ---- frames from models ---------------------------------------------------------------------------

def _template(rng: random.Random) -> dict[str, int]:
    """Plausible values for every header field (a unicast TCP/UDP frame between random hosts)."""
    return {
        "p.ether.dst": 0x020000000000 | rng.getrandbits(40), "p.ether.src": 0x020000000000 | rng.getrandbits(40),
        "p.ether.type": 0x0800, "p.ipv4.version_ihl": 0x45, "p.ipv4.tos": 0, "p.ipv4.id": rng.getrandbits(16),
        "p.ipv4.frag_off": 0x4000, "p.ipv4.ttl": 64, "p.ipv4.proto": 17,
        "p.ipv4.src": (10 << 24) | rng.getrandbits(24), "p.ipv4.dst": (172 << 24) | (16 << 16) | rng.getrandbits(16),
        "p.l4.sport": 1024 + rng.getrandbits(15), "p.l4.dport": 1 + rng.getrandbits(10),
    }


# TCP's fields after the ports, for a path that reads them: a plain 20-byte header (no options)
# around the values the path's condition asks for (other paths' frames are built as before).
_TCP_TEMPLATE = {"p.tcp.seq": 1, "p.tcp.ack": 0, "p.tcp.data_off": 0x50, "p.tcp.flags": 0x10,
                 "p.tcp.window": 0xFFFF, "p.tcp.checksum": 0, "p.tcp.urgent": 0}


def build_frame(values: dict[str, int], length: int, keep_checksum: bool = False) -> bytes:
    """A frame of ``length`` bytes with every header field at the offset nf.h's structs give it
    (the L4 ports, and TCP's fields after them, past the IPv4 header and its options), checksums
    computed unless kept."""
    frame = bytearray(max(length, ETHER_LEN))
    ihl = values.get("p.ipv4.version_ihl", 0x45) & 0x0F
    for name, f in _FIELDS.items():
        if name not in values or (name == "p.ipv4.total_length"):
            continue
        start = frame_offset(f, ETHER_LEN + 4 * ihl)
        if start + f.size <= len(frame):
            frame[start:start + f.size] = (values[name] & ((1 << f.bits) - 1)).to_bytes(f.size, "big")
    if len(frame) >= 18:
        total = values.get("p.ipv4.total_length", len(frame) - ETHER_LEN)
        frame[16:18] = (total & 0xFFFF).to_bytes(2, "big")
    out = bytes(frame[:length]) if length >= ETHER_LEN else bytes(frame)
    return out if keep_checksum else update_checksums(out)


@dataclass(frozen=True)
class Candidate:
    device: int
    frame: bytes
    time: int
    values: dict  # the model's value of every symbol of the path's condition


def _solve(analysis: ir.Analysis, path: ir.CallPath, facts: Optional[StateFacts], now: Optional[int],
           earliest: int, rng: random.Random, forget: tuple[str, ...] = ()) -> tuple[Optional[Candidate], set[str]]:
    """A packet that satisfies ``path``'s condition and the state facts (but those whose label
    starts with one of ``forget``), at time ``now`` (free, at or after ``earliest``, when None).
    Returns it, or the labels of the facts that conflict.

    Z3 is asked in a context of its own, made for this question, so that the ids its terms get
    (which a model's free choices follow) do not depend on what else the process asked; and each
    check has a resource budget (a count, not a clock)."""
    ctx = z3.Context()
    p_len, device, clock = (z3.BitVec(n, w, ctx) for n, w in (("p.len", 16), ("p.device", 16), ("now", 64)))
    hard = [path.condition.translate(ctx), z3.UGE(p_len, ETHER_LEN), z3.ULE(p_len, 9018),
            z3.ULT(device, analysis.devices),
            clock == now if now is not None else z3.And(z3.UGE(clock, earliest), z3.ULE(clock, earliest + 10 ** 14))]
    tracked = [(f"fact|{label}", c.translate(ctx)) for label, c in (
        _facts_for(path, analysis, facts, now is not None) if facts else []) if not label.startswith(forget)]
    nice = _niceties(ctx)
    found, outcome, learned = _ask(ctx, hard, tracked, nice, lambda values: _candidate(path, values, rng))
    if outcome != "unsat":
        return found, ({"the solver gave up"} if outcome == "unknown" else set())
    # Which facts conflict: an unsat core over them.
    solver = _solver(ctx)
    solver.add(*hard, *learned)
    for n, (label, constraint) in enumerate(tracked):
        solver.assert_and_track(constraint, z3.Bool(f"{label}|{n}", ctx))
    if _check(solver) != z3.unsat:
        return None, {"the solver gave up"}
    return None, {str(c).rsplit("|", 1)[0].split("|", 1)[1] for c in solver.unsat_core()}


def _niceties(ctx: z3.Context, prefix: str = "") -> list[tuple[str, Any]]:
    """What makes a frame ordinary (a length a NIC sends, a plain IPv4 header, a unicast source),
    asked for only where the path allows it."""
    p_len = z3.BitVec(f"{prefix}p.len", 16, ctx)
    return [(f"nice|{prefix}len", z3.And(z3.UGE(p_len, 60), z3.ULE(p_len, 1514))),
            (f"nice|{prefix}ihl", z3.BitVec(f"{prefix}p.ipv4.version_ihl", 8, ctx) == 0x45),
            (f"nice|{prefix}unicast", z3.Extract(40, 40, z3.BitVec(f"{prefix}p.ether.src", 48, ctx)) == 0)]


def _ask(ctx: z3.Context, hard: list, tracked: list[tuple[str, Any]], nice: list[tuple[str, Any]],
         build: Callable[[dict[str, int]], tuple[Optional[Any], Any]],
         nicer: tuple[tuple[str, Any], ...] = ()) -> tuple[Optional[Any], str, list]:
    """What ``build`` makes of a model of ``hard`` and ``tracked`` (with ``nice`` if they fit, and
    first with ``nicer`` too, if given), how the search ended ("sat"; "unsat"; "unknown": the solver
    gave up; "guesses": every model guessed nf_hash wrong) and the facts learned on the way:
    ``build`` returns what it made, or a constraint ruling out the model's wrong guess."""
    learned: list[Any] = []
    for _ in range(16):
        model = None
        tiers = ([tracked + nice + list(nicer)] if nicer else []) + [tracked + nice, tracked]
        for wanted in tiers:  # with the niceties if they fit, else without
            solver = _solver(ctx)
            solver.add(*hard, *learned, *[c for _, c in wanted])
            result = _check(solver)
            if result == z3.sat:
                model = solver.model()
                break
            if result != z3.unsat:
                return None, "unknown", learned
        if model is None:
            return None, "unsat", learned
        made, wrong = build(_model_values(model))
        if wrong is None:
            return made, "sat", learned
        learned.append(wrong.translate(ctx))  # a lazily added fact: a function (nf_hash) the solver guessed wrong
    return None, "guesses", learned


WRITER = "writer|"  # the prefix of the writer packet's symbols in a question about two packets


def _solve_after_write(analysis: ir.Analysis, writer: ir.CallPath, write: ir.Access, reader: ir.CallPath,
                       read: ir.Access, facts: StateFacts, now: int,
                       rng: random.Random) -> Optional[tuple[Candidate, Candidate]]:
    """Two packets: one that follows ``writer`` at ``now`` and stores, with ``write``, the value
    that ``read`` of the next packet (``reader``, a step later) then finds at the same cell or key.
    For a path that needs state no packet has stored yet (a configuration cell that only a
    management packet sets): one question over both packets, the writer's symbols renamed apart,
    with the state facts for both but those about the object written (the write changes them)."""
    name = write.object
    obj = analysis.object(name)
    consts: dict[str, Any] = {}
    for term in [writer.condition, *(t for a in writer.accesses for t in (a.key, a.value) if t is not None)]:
        consts.update(constants_of(term)[0])
    for access in writer.accesses:
        consts.update({r: z3.BitVec(r, _result_bits(r, analysis.object(access.object))) for r in access.results})
    for symbol, bits in (("p.len", 16), ("p.device", 16), ("now", 64)):
        consts[symbol] = z3.BitVec(symbol, bits)
    renames = [(c, z3.BitVec(WRITER + symbol, c.size())) for symbol, c in sorted(consts.items())]

    ctx = z3.Context()

    def renamed(term: Any) -> Any:
        return z3.substitute(term, *renames).translate(ctx)

    stored = z3.substitute(write.value, *renames)
    if read.call == "nf_vector_borrow":
        found = [z3.BitVec(read.results[0], 8 * obj.size) == stored]
    else:  # nf_map_get after nf_map_put: a hit on the stored value
        found = [z3.BitVec(read.results[0], 8) == 1, z3.BitVec(read.results[1], 32) == stored]
    link = z3.And(read.key == z3.substitute(write.key, *renames), *found)
    hard = [reader.condition.translate(ctx), renamed(writer.condition), link.translate(ctx)]
    for prefix, at in (("", now + STEP_NS), (WRITER, now)):
        p_len, device = z3.BitVec(f"{prefix}p.len", 16, ctx), z3.BitVec(f"{prefix}p.device", 16, ctx)
        hard += [z3.UGE(p_len, ETHER_LEN), z3.ULE(p_len, 9018), z3.ULT(device, analysis.devices),
                 z3.BitVec(f"{prefix}now", 64, ctx) == at]
    changed = (f"cell:{name}", f"value:{name}", f"map:{name}")
    tracked = [(f"fact|{label}", renamed(c)) for label, c in _facts_for(writer, analysis, facts, True)]
    tracked += [(f"fact|{label}", c.translate(ctx)) for label, c in _facts_for(reader, analysis, facts, True)
                if label not in changed]
    nice = _niceties(ctx, WRITER) + _niceties(ctx)
    # The keys' fields, which the link ties together, as a random template has them where the
    # paths allow it: Z3 would make them 0 (hosts 0.0.0.0, port 0), and a fill that varies such a
    # packet makes keys that the facts' window (the most recent FACT_LIMIT) forgets, and a later
    # packet solved for a miss hits them.
    template = _template(rng)
    keyed = {s for path in (writer, reader) for a in path.accesses if a.key is not None for s in symbols_of(a.key)}
    nicer = tuple((f"nice|{prefix}{name}", z3.BitVec(prefix + name, _FIELDS[name].bits, ctx) == template[name])
                  for name in FIELD_ORDER if name in keyed for prefix in (WRITER, ""))

    def build(values: dict[str, int]) -> tuple[Optional[tuple[Candidate, Candidate]], Any]:
        mine = {k[len(WRITER):]: v for k, v in values.items() if k.startswith(WRITER)}
        first, wrong = _candidate(writer, mine, rng, frozenset(symbols_of(write.value)))
        if wrong is not None:
            return None, z3.substitute(wrong, *renames)
        second, wrong = _candidate(reader, {k: v for k, v in values.items() if not k.startswith(WRITER)}, rng)
        return (None, wrong) if wrong is not None else ((first, second), None)

    return _ask(ctx, hard, tracked, nice, build, nicer)[0]


def _solver(ctx: Optional[z3.Context] = None) -> z3.Solver:
    """A solver with a resource budget per check (Z3's rlimit, over ten times what the hardest
    question of the samples and test NFs takes: the answer never depends on the machine's load),
    and a wall-clock limit far past it, as a backstop."""
    solver = z3.Solver(ctx=ctx)
    solver.set("rlimit", RLIMIT)
    solver.set("timeout", TIMEOUT_MS)
    return solver


def _check(solver: z3.Solver, *assumptions: Any) -> Any:
    """``solver.check(*assumptions)`` for a solver of ``_solver``; a Ctrl-C raises KeyboardInterrupt."""
    return z3_check.check(solver, assumptions, timeout_ms=TIMEOUT_MS, rlimit=RLIMIT)


def _model_values(model: z3.ModelRef) -> dict[str, int]:
    """The value of every constant of ``model`` (but the tracking literals)."""
    values = {}
    for d in model.decls():
        if d.arity() == 0 and not d.name().startswith(("fact|", "nice|")):
            value = model[d]
            if z3.is_bv_value(value):
                values[d.name()] = value.as_long()
    return values


def _candidate(path: ir.CallPath, values: dict[str, int], rng: random.Random,
               stored: frozenset[str] = frozenset()) -> tuple[Optional[Candidate], Any]:
    """The frame of a model's ``values``, checked against the condition with the runtime's own
    semantics (real FNV-1a for nf_hash). Returns it, or a constraint that rules out the model's
    wrong guess. The fields in ``stored`` (what a writer packet stores: a TOS byte a management
    frame sets in a vector cell) take the model's values too, though the condition leaves them free."""
    fields = _template(rng)
    relevant = set(symbols_of(path.condition))
    for access in path.accesses:
        if access.key is not None:
            relevant |= symbols_of(access.key)
    if relevant & _TCP_TEMPLATE.keys():
        fields.update(_TCP_TEMPLATE)
    # A field the template lacks (total_length) and the model left free stays out.
    for name in (relevant | stored) & set(_FIELDS):
        if name in values:
            fields[name] = values[name]
    length = values.get("p.len", 60) if "p.len" in relevant else max(60, values.get("p.len", 60))
    frame = build_frame(fields, length, keep_checksum="p.ipv4.checksum" in relevant)
    device = values.get("p.device", 0)
    time = values.get("now", START_NS)
    env = {**frames_env([frame], np.array([device]), np.array([time], dtype=np.uint64))}
    for symbol in symbols_of(path.condition):
        if symbol not in env:
            env[symbol] = np.array([values.get(symbol, 0)], dtype=object if values.get(symbol, 0) >= 1 << 64
                                   else np.uint64)
    if bool(np.all(compile_term(path.condition)(env))):
        return Candidate(device, frame, time, values), None
    return None, _hash_facts(path.condition, env)


def _hash_facts(term: Any, env: dict) -> Any:
    """For every nf_hash application in ``term``: its real value at the argument the packet gives it."""
    facts = []
    for t in subterms(term):
        if z3.is_app(t) and t.decl().name().startswith("nf_hash") and t.num_args() == 1:
            argument = int(np.asarray(compile_term(t.arg(0))(env)).ravel()[0])
            real = int(np.asarray(compile_term(t)(env)).ravel()[0])
            facts.append(z3.Implies(t.arg(0) == argument, t == real))
    return z3.And(*facts) if facts else z3.BoolVal(False)


# ---- variants: many packets that take the same path ------------------------------------------------

def varied_fields(path: ir.CallPath, keep: set[str]) -> list[str]:
    """The packet fields that make the keys of ``path``'s objects outside ``keep`` new while the
    keys of objects in ``keep`` stay: the fields of a flow first (FIELD_ORDER: addresses, ports,
    MACs), then the other header fields keys are made of (a TOS, a TTL), by name."""
    kept_fields, varied = set(), set()
    for access in path.accesses:
        if access.key is None:
            continue
        names = {s for s in symbols_of(access.key) if s in _FIELDS}
        (kept_fields if access.object in keep else varied).update(names)
    varied -= kept_fields
    return [f for f in FIELD_ORDER if f in varied] + sorted(varied - set(FIELD_ORDER))


def field_choices(changing: list[str]) -> list[list[str]]:
    """The fields a set of variants may change, in the order to try them: one is enough to make
    every changed key new; all together where no one keeps the path."""
    return [[name] for name in changing] + ([changing] if len(changing) > 1 else [])


def variants(analysis: ir.Analysis, path: ir.CallPath, frame: bytes, device: int, results: dict[str, Any],
             count: int, keep: set[str], start: int, limit: int = FILL_LIMIT,
             fields: Optional[list[str]] = None) -> list[tuple[int, int, bytes]]:
    """Up to ``count`` copies of ``frame`` (which follows ``path`` given the state results
    ``results``) in which the packet fields of the keys of objects outside ``keep`` are changed,
    so that those keys are new, and the keys of objects in ``keep`` stay. They are checked against
    the path's condition (with the same results) and each other (no two share a changed key).
    The fields changed are the first of ``field_choices`` that keeps the path, or ``fields``."""
    return variants_of(path, frame, device, results, count, keep, start, limit, fields)[1]


def variants_of(path: ir.CallPath, frame: bytes, device: int, results: dict[str, Any], count: int, keep: set[str],
                start: int, limit: int = FILL_LIMIT,
                fields: Optional[list[str]] = None) -> tuple[list[str], list[tuple[int, int, bytes]]]:
    """``variants`` and the fields they change (none: plain copies)."""
    changing = varied_fields(path, keep)
    n = min(count, limit)
    if not changing:  # every key stays: plain copies (a flow that keeps sending)
        return [], _copies(frame, device, n, start)
    if fields is not None:
        return fields, _varied(path, frame, device, results, n, fields, start)
    # One field is enough to make every changed key new; the first that keeps the path, else all.
    choices = field_choices(changing)
    for fields in choices:
        out = _varied(path, frame, device, results, n, fields, start)
        if len(out) >= n * 9 // 10 or fields == choices[-1]:
            return fields, out
    return [], []


def _copies(frame: bytes, device: int, n: int, start: int) -> list[tuple[int, int, bytes]]:
    return [(start + STEP_NS * (k + 1), device, frame) for k in range(n)]


def _varied(path: ir.CallPath, frame: bytes, device: int, results: dict[str, Any], n: int, changing: list[str],
            start: int) -> list[tuple[int, int, bytes]]:
    # Each variant adds its own offset to every changing field: past the widest field's range the
    # values come round again (a TOS byte has 255 others), and a repeated key takes no new entry.
    n = min(n, (1 << max(_FIELDS[name].bits for name in changing)) - 1)
    base = frames_env([frame])
    env = {name: np.repeat(base[name], n) for name in base}
    offsets = np.arange(1, n + 1, dtype=np.uint64)
    for name in changing:
        bits = _FIELDS[name].bits
        env[name] = (env[name] + offsets) & np.uint64((1 << bits) - 1)
    env["p.device"] = np.full(n, device, dtype=np.uint64)
    env["now"] = np.full(n, results.get("now", start), dtype=np.uint64)  # the time the results held
    env["p.len"] = np.full(n, len(frame), dtype=np.uint64)
    for symbol, value in results.items():
        env.setdefault(symbol, np.full(n, value, dtype=object if value >= 1 << 64 else np.uint64))
    try:
        # A result the path itself decides (a cell it wrote and reads back: nested_key's meter,
        # whose id is the packet's own key) follows each variant's fields, not the first packet's.
        for symbol, term in _decided_results(path.condition):
            env[symbol] = np.broadcast_to(compile_term(term)(env), (n,))
        ok = np.broadcast_to(compile_term(path.condition)(env), (n,))
    except KeyError:
        return []
    out = []
    for k in np.flatnonzero(ok).tolist():
        values = {name: int(env[name][k]) for name in changing}
        out.append((start + STEP_NS * (len(out) + 1), device, _patched(frame, values)))
    return out


_DECIDED: dict[int, tuple[Any, list[tuple[str, Any]]]] = {}


def _decided_results(condition: Any) -> list[tuple[str, Any]]:
    """(symbol, term) for each conjunct ``result == term`` of ``condition`` whose term names no
    later-decided result of its own: the state results the path's own packet fixes (a borrowed
    cell that holds what the path wrote into it earlier), in the order to compute them."""
    hit = _DECIDED.get(condition.get_id())
    if hit is not None:
        return hit[1]
    out: list[tuple[str, Any]] = []
    for t in conjuncts(condition):
        if not z3.is_eq(t) or not z3.is_bv(t.arg(0)):
            continue
        for side, term in ((t.arg(0), t.arg(1)), (t.arg(1), t.arg(0))):
            if z3.is_const(side) and not z3.is_bv_value(side) and result_parts(str(side))[1] \
                    and str(side) not in symbols_of(term) and not z3.is_bv_value(term):
                out.append((str(side), term))
                break
    _DECIDED[condition.get_id()] = (condition, out)
    return out


def _patched(frame: bytes, values: dict[str, int]) -> bytes:
    out = bytearray(frame)
    ihl = frame[14] & 0x0F if len(frame) > 14 else 5
    for name, value in values.items():
        f = _FIELDS[name]
        start = frame_offset(f, ETHER_LEN + 4 * ihl)
        if start + f.size <= len(out):
            out[start:start + f.size] = value.to_bytes(f.size, "big")
    fixed = update_checksums(bytes(out))
    return fixed if update_checksums(frame) == frame else bytes(out)


# ---- the search -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fill:
    """How a "fill" trace filled dchain ``chain``: its packets ``start`` to ``start + count`` are
    variants of one allocating packet, each taking an index; ``spares`` are more such variants
    (device, frame) that the trace did not need, and ``allocated`` the positions of the packets
    before ``start`` that took an index. A shared-nothing build gives each core a share of the
    chain, so a check can pick, from variants and spares, a fill that fills every core's share
    when the sequential table fills (``balanced_fills``)."""

    trace: int
    chain: str
    start: int
    count: int
    spares: tuple[tuple[int, bytes], ...]
    allocated: tuple[int, ...]
    # How the variants were made, to make more of them (``pool``): the packet varied, the path it
    # follows with the state results it had, the fields changed (none: copies), the first time.
    path: int = -1
    frame: bytes = b""
    device: int = 0
    results: tuple[tuple[str, int], ...] = ()
    fields: tuple[str, ...] = ()
    at: int = 0

    def pool(self, analysis: ir.Analysis, scale: int) -> list[tuple[int, bytes]]:
        """The spares (device, frame) after the trace's ``count`` variants: those kept for ``scale``
        1, else made again, the variants and spares ``scale`` times as many in all (variants are
        numbered, so the first ones are the same)."""
        if scale == 1 or self.path < 0:
            return list(self.spares)
        path = analysis.paths[self.path]
        n = min((self.count + len(self.spares)) * scale, FILL_SPARES * FILL_LIMIT)
        made = (_varied(path, self.frame, self.device, dict(self.results), n, list(self.fields), self.at)
                if self.fields else _copies(self.frame, self.device, n, self.at))
        return [(d, f) for _, d, f in made[self.count:]]


CONFLICTS = "its condition conflicts with the state every prefix built"
OTHER_PATHS = "the packets solved for it followed other paths"


@dataclass(frozen=True)
class Cause:
    """Why path ``path`` was not reached: ``reason``, the labels of the state facts its condition
    conflicted with (``map:flows``, ``cell:row0``), and whether the search stopped at its budget of
    questions (QUESTION_LIMIT) before it."""

    path: int
    reason: str
    conflict: tuple[str, ...] = ()
    stopped: bool = False

    def text(self) -> str:
        why = f"{self.reason} ({', '.join(self.conflict)})" if self.conflict else self.reason
        if self.stopped:
            return (f"the search stopped after asking the solver for {QUESTION_LIMIT:,} packets, before reaching "
                    f"it; so far {why}")
        return why


@dataclass(frozen=True)
class Witnesses:
    """Traces that together run every path the search reached: ``hits[p]`` is (trace, packet) of
    the first packet that followed path p, None when none did (``unreached`` says why)."""

    nf: str
    traces: tuple[Trace, ...]
    hits: tuple[Optional[tuple[int, int]], ...]
    unreached: tuple[tuple[int, str], ...]
    coverage: Coverage
    kinds: tuple[str, ...] = ()  # per trace: "main", "fill" (a table filled), "sweep", "pump" or "jump"
    fills: tuple[Fill, ...] = ()
    causes: tuple[Cause, ...] = ()  # why each unreached path was not, as parts (``unreached_lines``)

    def combined(self, gap_ns: int = 3_600_000_000_000, kinds: Optional[tuple[str, ...]] = None) -> Trace:
        """The traces (of ``kinds``, by default all) one after the other, ``gap_ns`` apart (by
        default an hour: state with expiry is gone between them)."""
        stamps, devices, frames = [], [], []
        offset = 0
        for trace, kind in zip(self.traces, self.kinds):
            if kinds is not None and kind not in kinds:
                continue
            if not len(trace):
                continue
            shift = offset - int(trace.timestamps[0]) + (gap_ns if stamps else 0)
            stamps.append(trace.timestamps.astype(np.uint64) + np.uint64(shift) if shift >= 0
                          else trace.timestamps - np.uint64(-shift))
            devices.append(trace.devices)
            frames.extend(trace.frames)
            offset = int(stamps[-1][-1])
        if not frames:
            return Trace(np.zeros(0, np.uint64), np.zeros(0, np.uint16), ())
        return Trace(np.concatenate(stamps), np.concatenate(devices).astype(np.uint16), tuple(frames))


class _Search:
    def __init__(self, analysis: ir.Analysis, defines: dict[str, str], seed: int) -> None:
        self.analysis = analysis
        self.defines = defines
        self.rng = random.Random(seed)
        # Writer and reader packets draw their templates from a generator of their own: a question
        # about two packets that fails leaves the other packets of the search as they were.
        self.write_rng = random.Random(f"writes:{seed}")
        self.hits: dict[int, tuple[int, int]] = {}
        self.traces: list[Trace] = []
        self.counts = np.zeros(len(analysis.paths), dtype=np.int64)
        self.last_counts = np.zeros(len(analysis.paths), dtype=np.int64)
        self.conflicts: dict[int, set[str]] = {}
        self.last: dict[int, Candidate] = {}  # the latest packet solved for each path
        self.probed: set[int] = set()  # paths that got a packet solved without the state facts
        self.wrote: set[int] = set()  # paths that got a writer packet solved before theirs
        self.questions = 0  # packets asked of Z3 so far (QUESTION_LIMIT)
        self.exhausted = False  # it asked QUESTION_LIMIT: no path is left to search for
        self.examples: dict[int, tuple[int, bytes, dict[str, int]]] = {}  # path -> a packet that followed it
        self.needs: dict[int, dict[str, bool]] = {}
        self.skipped: dict[int, str] = {}  # paths the search gave up on, and why
        self.kinds: list[str] = []  # per kept trace: "main", "fill", "pump" or "jump"
        self.fills: list[Fill] = []
        self.kind = "main"  # the branch being run

    def run(self, events: list[tuple[int, int, bytes]]) -> tuple[Trace, list[list[StateCall]], PathMatch, RunResult]:
        trace = Trace(np.array([t for t, _, _ in events], dtype=np.uint64),
                      np.array([d for _, d, _ in events], dtype=np.uint16), tuple(f for _, _, f in events))
        result = run_trace(self.analysis.source, trace, self.defines, calls=True)
        calls = calls_by_packet(result, len(trace))
        return trace, calls, match_paths(self.analysis, trace, result, calls), result

    def keep(self, trace: Trace, match: PathMatch) -> None:
        """Record the trace if it reaches a path no kept trace reached."""
        followed = match.path_of[match.path_of >= 0]
        new = {int(p) for p in followed.tolist()} - set(self.hits)
        if not new:
            return
        last = self.traces[-1] if self.traces else None
        if last is not None and self.kinds[-1] == self.kind and len(last) <= len(trace) \
                and last.frames == trace.frames[:len(last)] \
                and np.array_equal(last.timestamps, trace.timestamps[:len(last)]):
            # The same packets and more: the longer trace replaces it (its prefix runs the same).
            self.traces.pop()
            self.kinds.pop()
            self.counts -= self.last_counts
        self.traces.append(trace)
        self.kinds.append(self.kind)
        self.last_counts = np.bincount(followed, minlength=len(self.analysis.paths))
        self.counts += self.last_counts
        for p in sorted(new):
            i = int(np.flatnonzero(match.path_of == p)[0])
            self.hits[p] = (len(self.traces) - 1, i)
            self.examples[p] = (int(trace.devices[i]), trace.frames[i], _results_at(match, self.analysis.paths[p], i))

    def uncovered(self) -> list[int]:
        """The paths still to search for (none once the questions ran out)."""
        return [] if self.exhausted else self.remaining()

    def remaining(self) -> list[int]:
        return [p for p in range(len(self.analysis.paths)) if p not in self.hits and p not in self.skipped]

    def ask(self) -> bool:
        """Whether one more packet may be asked of Z3 (and count it). At QUESTION_LIMIT the search
        ends: the packets of the round under way still run, every branch stops."""
        if self.questions >= QUESTION_LIMIT:
            self.exhausted = True
            return False
        self.questions += 1
        return True

    def extend(self, events: list, facts: Optional[StateFacts], step: int = STEP_NS) -> list:
        """One packet per uncovered path, solved against ``facts``, appended after ``events``."""
        now = int(events[-1][0]) if events else START_NS
        added = []
        for p in self.uncovered():
            if not self.ask():
                break
            now += step
            candidate, conflict = _solve(self.analysis, self.analysis.paths[p], facts, now, now, self.rng)
            if candidate is None:
                self.conflicts.setdefault(p, set()).update(conflict)
                pair = self.written_first(p, conflict, facts, now) if facts is not None else None
                if pair is not None:  # a packet that stores what p reads, then p's
                    writer, candidate = pair
                    added.append((now, writer.device, writer.frame))
                    now += step
                    self.last[p] = candidate
                    added.append((now, candidate.device, candidate.frame))
                    continue
                if p in self.probed:
                    continue
                # Once, a packet of the path's shape regardless of the state: where it goes shows
                # what stands in the way, and it is what the pump branch repeats.
                self.probed.add(p)
                if not self.ask():
                    break
                candidate, _ = _solve(self.analysis, self.analysis.paths[p], None, now, now, self.rng)
                if candidate is None:
                    continue
            self.last[p] = candidate
            added.append((now, candidate.device, candidate.frame))
        return added

    def written_first(self, p: int, conflict: set[str], facts: StateFacts,
                      now: int) -> Optional[tuple[Candidate, Candidate]]:
        """For path p, whose condition conflicts with what a vector cell or a map value holds: a
        packet of a path that writes that object, solved to store what p reads, and p's packet
        after it. Once per path and start, and at most ``WRITE_TRIES`` (writer, write, read)
        questions."""
        # Contents, not presence: a path that needs a key present gets it from the packets of the
        # paths that put it, round after round, as the main trace grows.
        objects = {label.split(":", 1)[1] for label in conflict if label.startswith(("cell:", "value:"))}
        if not objects or p in self.wrote:
            return None
        self.wrote.add(p)
        reader = self.analysis.paths[p]
        tries = 0
        for read in reader.accesses:
            if read.object not in objects or read.call not in _STORES:
                continue
            for writer in self.analysis.paths:
                for write in writer.accesses:
                    if write.object != read.object or write.call != _STORES[read.call] or write.value is None:
                        continue
                    if tries == WRITE_TRIES:
                        return None
                    tries += 1
                    if not self.ask():
                        return None
                    pair = _solve_after_write(self.analysis, writer, write, reader, read, facts, now, self.write_rng)
                    if pair is not None:
                        return pair
        return None

    def rounds(self, events: list, limit: int, fresh: Optional[set[int]] = None) -> tuple[list, Optional[tuple]]:
        """Up to ``limit`` rounds of extending ``events``; returns them and the last run's state.
        Each round also answers what the previous round's packets made the NF send (closed-loop
        replies reach return paths and tables keyed by what the NF wrote)."""
        state = None
        fresh = fresh or set()  # positions of the packets solved in the previous round
        for round_ in range(limit + 1):
            if events:
                trace, calls, match, result = self.run(events)
                self.keep(trace, match)
                facts = StateFacts.of(self.analysis, trace, calls, match)
                state = (trace, calls, match, result, facts)
            else:
                facts = StateFacts()
            if not self.uncovered() or round_ == limit:
                break
            added = self.extend(events, facts)
            if state is not None:
                last = int((added or events)[-1][0]) + STEP_NS  # after every added packet (some paths got none)
                answers = [(last + STEP_NS * k, verdict, reply_frame(frame))
                           for k, (index, verdict, frame) in enumerate(
                               o for o in state[3].outputs if o[0] in fresh and o[1] >= 0)]
            else:
                answers = []
            if not added and not answers:
                break
            fresh = set(range(len(events), len(events) + len(added)))
            events = events + added + answers
        return events, state

    def _smaller(self, chain: str) -> str:
        """How to make ``chain`` small enough to fill: the macro that sets its capacity, if one does."""
        capacity = str(self.analysis.object(chain).capacity)
        names = [name for name, value in self.analysis.defines if value.strip("() ") == capacity]
        if len(names) == 1:
            return f"a smaller {names[0]} (e.g. {names[0]}=1000) lets the search fill it"
        return "a smaller capacity lets the search fill it"

    def branch_fill(self, events: list, state: tuple) -> None:
        """For paths that need a full dchain: fill it with variants of a packet that allocates."""
        trace, calls, match, _, facts = state
        chains = sorted({label.split(":", 1)[1] for p in self.uncovered() for label in self.conflicts.get(p, ())
                         if label.startswith("alloc:")})
        for chain in chains:
            if self.exhausted:
                return
            room = self.analysis.object(chain).capacity - len(facts.allocated.get(chain, {}))
            if room > FILL_LIMIT:  # too many packets to pay for: say so, and stop trying
                for p in self.uncovered():
                    if f"alloc:{chain}" in self.conflicts.get(p, ()):
                        self.skipped[p] = (f"needs {chain} full: {self.analysis.object(chain).capacity} entries, more "
                                           f"than the search fills ({FILL_LIMIT}); {self._smaller(chain)}")
                continue
            filler = self._allocating_packet(trace, calls, match, chain)
            if filler is None or room <= 0:
                continue
            index, path = filler
            # Twice the room: the spares let a check fill every core's share when the table fills
            # (``Fill.pool`` makes more).
            args = (path, trace.frames[index], int(trace.devices[index]), _results_at(match, path, index), 2 * room,
                    set(), int(events[-1][0]), 2 * FILL_LIMIT)
            fields, made = variants_of(*args)
            while True:
                more = made[:room]
                self.kind = "fill"
                _, after = self.rounds(events + more, 2)
                full = after is not None and self._full(after[-1], chain)
                other = None if full or self.exhausted else self._other_filling_variants(events, args, fields, chain,
                                                                                          room)
                # A fill that a better choice follows is not one a check balances (its variants
                # did not each take an index).
                if other is None and self.kinds and self.kinds[-1] == "fill" and \
                        self.traces[-1].frames[len(events):len(events) + len(more)] == tuple(f for _, _, f in more):
                    taken = tuple(i for i in range(len(events)) if self._allocated(calls, match, i, chain))
                    self.fills.append(Fill(len(self.traces) - 1, chain, len(events), len(more),
                                           tuple((d, f) for _, d, f in made[room:]), taken, path.index,
                                           trace.frames[index], int(trace.devices[index]),
                                           tuple(sorted(args[3].items())), tuple(fields), args[6]))
                if other is None:
                    break
                fields, made = other

    def _full(self, facts: StateFacts, chain: str) -> bool:
        return len(facts.allocated.get(chain, {})) >= self.analysis.object(chain).capacity

    def _other_filling_variants(self, events: list, args: tuple, tried: list[str], chain: str,
                                room: int) -> Optional[tuple[list[str], list[tuple[int, int, bytes]]]]:
        """When the fill's first choice of fields (``variants``: the first that keeps the path
        condition, which holds the state results fixed) did not fill ``chain``, the first other
        choice whose first ``room`` variants do when run: changing the source address alone keeps
        a destination that a per-destination limit stops after a few frames; a TOS byte alone is
        what a (TOS, TTL) table needs; every field that keeps the path on its own, together, is what
        two tables filled by one frame need when a protocol byte among their fields breaks the path
        and one source has a budget (svc_src: sources and services at once). None if no choice does."""
        choices = field_choices(varied_fields(args[0], set()))
        made_by = {tuple(fields): variants_of(*args, fields=fields)[1] for fields in choices}
        keeping = [fields[0] for fields in choices if len(fields) == 1 and len(made_by[tuple(fields)]) >= room]
        if len(keeping) > 1 and keeping not in choices:
            choices.insert(len(choices) - 1, keeping)
            made_by[tuple(keeping)] = variants_of(*args, fields=keeping)[1]
        for fields in choices:
            made = made_by[tuple(fields)]
            if fields == tried or len(made) < room:
                continue
            filled, calls, match, _ = self.run(events + made[:room])
            if self._full(StateFacts.of(self.analysis, filled, calls, match), chain):
                return fields, made
        return None

    def _allocating_packet(self, trace: Trace, calls, match: PathMatch, chain: str) -> Optional[tuple[int, ir.CallPath]]:
        """The last packet of ``trace`` that took an index of ``chain``, and its path."""
        for i in range(len(trace) - 1, -1, -1):
            if self._allocated(calls, match, i, chain):
                return i, self.analysis.paths[int(match.path_of[i])]
        return None

    def _allocated(self, calls, match: PathMatch, i: int, chain: str) -> bool:
        """Whether packet i took an index of ``chain`` (its log says the allocation succeeded)."""
        p = int(match.path_of[i])
        return p >= 0 and any(
            access.object == chain and access.call == "nf_dchain_allocate_new_index" and j < len(calls[i])
            and calls[i][j].results[:1] == ("01",) for j, access in enumerate(self.analysis.paths[p].accesses))

    def map_needs(self, p: int) -> dict[str, bool]:
        """For each map path p looks up first: whether its condition needs a hit (True) or a miss."""
        if p not in self.needs:
            path, needs = self.analysis.paths[p], {}
            seen = set()
            for access in path.accesses:
                if access.call != "nf_map_get" or access.object in seen:
                    continue
                seen.add(access.object)
                found = z3.BitVec(access.results[0], 8)
                solver = _solver()
                solver.add(path.condition)
                can = {v for v in (0, 1) if _check(solver, found == v) == z3.sat}
                if len(can) == 1:
                    needs[access.object] = can == {1}
            self.needs[p] = needs
        return self.needs[p]

    def branch_pump(self, events: list) -> None:
        """For paths behind a threshold (a counter, a token bucket): take a packet of the covered
        path that agrees most with the path's hits and misses, and repeat it with its hit keys kept
        and its miss keys new, as often as the threshold the path compares state with; each path in
        a branch of its own."""
        for p in self.uncovered():
            if self.exhausted:
                return
            count, compared = _threshold(self.analysis.paths[p].condition)
            need = self.map_needs(p)
            # Most agreement on hits and misses first, then on the objects compared with the
            # threshold; then the fewest refusals (a full table).
            scored = sorted((-sum(1 for o, v in need.items() if self.map_needs(q).get(o) == v),
                             -len(compared & {a.object for a in self.analysis.paths[q].accesses if a.key is not None}),
                             sum(1 for name, value in self.examples[q][2].items() if ".ok#" in name and not value), q)
                            for q in self.examples)
            if not scored or not count or p in self.hits:
                continue
            q = scored[0][-1]
            device, frame, results = self.examples[q]
            start = int(events[-1][0]) + STEP_NS if events else START_NS
            keep = {o for o, v in need.items() if v} | compared
            pumped = [(start, device, frame)] + variants(self.analysis, self.analysis.paths[q], frame, device,
                                                          results, count, keep, start)
            self.kind = "pump"
            self.rounds(events + pumped, 2)

    def branch_sweep(self, events: list) -> None:
        """For paths that need a hit in a table nf_init filled (the call log never shows its keys):
        when the key is one packet field of at most 16 bits, the path's packet with every value of
        that field."""
        filled = _unwritten_maps(self.analysis)
        for p in self.uncovered():
            if self.exhausted:
                return
            path, candidate = self.analysis.paths[p], self.last.get(p)
            if candidate is None:
                continue
            for access in path.accesses:
                if access.call != "nf_map_get" or access.object not in filled or not self.map_needs(p).get(access.object):
                    continue
                fields = [s for s in symbols_of(access.key) if s in _FIELDS]
                if len(fields) != 1 or _FIELDS[fields[0]].bits > 16:
                    continue
                results = {name: candidate.values.get(name, 0) for a in path.accesses for name in a.results}
                results["now"] = candidate.time
                start = int(events[-1][0]) + STEP_NS if events else START_NS
                swept = _varied(path, candidate.frame, candidate.device, results, (1 << _FIELDS[fields[0]].bits) - 1,
                                fields, start)
                self.kind = "sweep"
                swept = [(start, candidate.device, candidate.frame)] + swept
                self.rounds(events + swept, 1, fresh=set(range(len(events), len(events) + len(swept))))
                if p in self.hits:
                    break

    def branch_jump(self, events: list, facts: Optional[StateFacts]) -> None:
        """For paths that need time to pass (expiry): each one's last candidate again, later and
        later; then the same with a packet of every covered path resent before each jump, which
        keeps what they refresh alive while the rest expires (a backend that still sends
        heartbeats, next to one that stopped)."""
        start = int(events[-1][0]) if events else START_NS
        for p in self.uncovered():
            # What the state holds, but which indices are live: that is what time changes.
            if not self.ask():
                return
            candidate, _ = _solve(self.analysis, self.analysis.paths[p], facts, None, start, self.rng,
                                  forget=("index:", "alloc:", "expire:"))
            candidate = candidate or self.last.get(p)
            if candidate is None:
                continue
            others = [self.examples[q][:2] for q in sorted(self.examples)]
            for resend in ([], others):
                jumps = []
                for k in range(len(JUMPS_NS)):
                    now = start + sum(JUMPS_NS[:k + 1])
                    jumps += [(now - STEP_NS * (len(resend) - r), device, frame)
                              for r, (device, frame) in enumerate(resend)]
                    jumps.append((now, candidate.device, candidate.frame))
                self.kind = "jump"
                trace, _, match, _ = self.run(events + jumps)
                self.keep(trace, match)
                if p in self.hits:
                    break


def _unwritten_maps(analysis: ir.Analysis) -> set[str]:
    """Maps nf_process never puts in nor erases from: what nf_init left in them is all they hold."""
    return {o.name for o in analysis.objects if o.kind == "map"} - {
        a.object for p in analysis.paths for a in p.accesses if a.call in ("nf_map_put", "nf_map_erase")}


def _skip_hits_in_empty_maps(analysis: ir.Analysis, uncovered: Callable[[], list[int]],
                             skipped: dict[int, str]) -> None:
    """A path that needs a hit in a map nothing ever fills cannot run: say so at once, instead of
    searching (and sweeping every key) for it."""
    empty = {name for name in _unwritten_maps(analysis) if not dict(analysis.object(name).extra).get("init_entries")}
    for p in uncovered():
        path = analysis.paths[p]
        lookups = [a for a in path.accesses if a.call == "nf_map_get" and a.object in empty]
        if not lookups:
            continue
        solver = _solver()
        solver.add(path.condition)
        hit = next((a for a in lookups if _check(solver, z3.BitVec(a.results[0], 8) == 0) != z3.sat), None)
        if hit is not None:  # this lookup must find its key
            skipped[p] = (f"needs a hit in {hit.object}, which is always empty: nf_init puts nothing in it "
                          "and nf_process never does")


def _skip_values_no_put_stores(analysis: ir.Analysis, uncovered: Callable[[], list[int]],
                                skipped: dict[int, str]) -> None:
    """A path that needs a map's value outside what every nf_map_put into that map stores (an
    index of a dchain, below its capacity: macro_meter's ``idx < 0`` after a hit) cannot run:
    say which condition, and what the puts store, instead of searching for it."""
    for name in sorted({a.object for p in analysis.paths for a in p.accesses if a.call == "nf_map_put"}):
        if dict(analysis.object(name).extra).get("init_entries"):
            continue
        bound = _put_bound(analysis, name)
        if bound is None:
            continue
        limit, what = bound
        for p in uncovered():
            path = analysis.paths[p]
            gets = [a for a in path.accesses if a.call == "nf_map_get" and a.object == name]
            if not gets:
                continue
            # The conjuncts that name the values are enough to decide (and a smaller question
            # than the whole condition: pol's token arithmetic took 0.35 s a path).
            # Asked in a context of its own, as _solve asks: the search's models stay as they were.
            values = {a.results[1] for a in gets}
            named = values | {a.results[0] for a in gets}
            ctx = z3.Context()
            solver = _solver(ctx)
            solver.add(*[t.translate(ctx) for t in conjuncts(path.condition) if symbols_of(t) & named])
            for a in gets:
                solver.add(z3.Implies(z3.BitVec(a.results[0], 8, ctx) != 0,
                                      z3.ULT(z3.BitVec(a.results[1], 32, ctx), limit)))
            if _check(solver) != z3.unsat:
                continue
            needs = " && ".join(part for part in path.condition_text.split(" && ")
                                if any(v in part for v in values)) or ", ".join(sorted(values))
            skipped[p] = (f"unreachable from packets: its condition needs {needs}, "
                          f"a value found in {name}, and every nf_map_put into {name} stores {what}, "
                          f"0 to {limit - 1}")


def _put_bound(analysis: ir.Analysis, name: str) -> Optional[tuple[int, str]]:
    """The capacity that every value put into map ``name`` stays below (on its path's
    condition) when each is an index a dchain handed out, and that dchain's name; None otherwise."""
    bound, owners = 0, set()
    for path in analysis.paths:
        for a in path.accesses:
            if a.call != "nf_map_put" or a.object != name:
                continue
            owner, what = result_parts(str(a.value)) if a.value is not None and z3.is_const(a.value) else ("", "")
            if what != "index":
                return None
            capacity = analysis.object(owner).capacity
            ctx = z3.Context()
            solver = _solver(ctx)  # the conjuncts that name the index decide it
            solver.add(*[t.translate(ctx) for t in conjuncts(path.condition) if str(a.value) in symbols_of(t)])
            if _check(solver, z3.UGE(a.value.translate(ctx), capacity)) != z3.unsat:
                return None
            bound = max(bound, capacity)
            owners.add(owner)
    return (bound, "an index of " + " or ".join(sorted(owners))) if bound else None


def _results_at(match: PathMatch, path: ir.CallPath, index: int) -> dict[str, int]:
    """The state results bound for packet ``index`` on ``path``."""
    env = match.environments[path.index]
    return {name: int(np.asarray(value).ravel()[index]) for name in [*(r for a in path.accesses for r in a.results), "now"]
            for value in [env[name]]}


_COMPARISONS = {z3.Z3_OP_ULEQ, z3.Z3_OP_UGEQ, z3.Z3_OP_ULT, z3.Z3_OP_UGT, z3.Z3_OP_SLEQ, z3.Z3_OP_SGEQ,
                z3.Z3_OP_SLT, z3.Z3_OP_SGT}


def _threshold(condition: Any) -> tuple[int, set[str]]:
    """How many packets a pump needs for ``condition``, and the objects whose results it compares:
    2 more than the largest constant it compares a state result with (a counter's limit), a
    default when it compares state results with packet values (a token bucket against the frame
    length), 0 when it compares none."""
    best, objects = 0, set()
    for t in subterms(condition):
        if z3.is_app(t) and t.decl().kind() in _COMPARISONS and t.num_args() == 2 and z3.is_bv(t.arg(0)):
            # State the NF keeps (cells, estimates, values, backends), not bookkeeping (hit or
            # miss, refusals, expiry counts, allocated indices).
            results = {result_parts(name)[0] for name in symbols_of(t)
                       if result_parts(name)[1] not in ("", "found", "ok", "count", "index")}
            constants = [side.as_long() for side in (t.arg(0), t.arg(1)) if z3.is_bv_value(side)]
            # A bound of 0, 1 or past any pump is a range the analysis knows (an index below the
            # capacity), not a limit the NF counts towards.
            if results and all(1 < c <= PUMP_LIMIT for c in constants):
                objects |= results
                best = max([best, *constants])
    if not objects:
        return 0, objects
    return (min(PUMP_LIMIT, best + 2) if best > 1 else PUMP_DEFAULT), objects


def find_witnesses(analysis: ir.Analysis, defines: Optional[dict[str, str]] = None, *, seed: int = 0,
                   rounds: int = ROUNDS, prefix: Optional[Trace] = None) -> Witnesses:
    """Traces that run every path of ``analysis`` the search can reach (see the module docstring).
    The search starts from the empty state; for the paths it does not reach, again after
    ``prefix`` (a few hundred packets of ordinary traffic, say), whose state the search can reuse:
    hits in a table that nf_init filled, which the call log never shows being filled."""
    search = _Search(analysis, dict(defines or {}), seed)
    _skip_hits_in_empty_maps(analysis, search.uncovered, search.skipped)
    _skip_values_no_put_stores(analysis, search.uncovered, search.skipped)
    starts = [[]] if prefix is None else [[], [(int(t), int(d), f) for t, d, f in zip(
        prefix.timestamps.tolist(), prefix.devices.tolist(), prefix.frames)]]
    for start in starts:
        if not search.uncovered():
            break
        search.probed.clear()
        search.wrote.clear()
        search.kind = "main"
        events, state = search.rounds(start, rounds)
        if search.uncovered() and state is not None:
            search.branch_fill(events, state)
        if search.uncovered():
            search.branch_sweep(events)
        if search.uncovered():
            search.branch_pump(events)
        if search.uncovered():
            search.branch_jump(events, state[-1] if state is not None else None)
    causes = [Cause(p, why) for p, why in search.skipped.items()]
    for p in search.remaining():
        conflict = tuple(sorted(search.conflicts.get(p, ())))
        causes.append(Cause(p, CONFLICTS if conflict else OTHER_PATHS, conflict, search.exhausted))
    causes.sort(key=lambda c: c.path)
    hits = tuple(search.hits.get(p) for p in range(len(analysis.paths)))
    return Witnesses(analysis.nf, tuple(search.traces), hits, tuple((c.path, c.text()) for c in causes),
                     Coverage(analysis.nf, tuple(int(c) for c in search.counts)), tuple(search.kinds),
                     tuple(search.fills), tuple(causes))


def _ranges(paths: list[int]) -> str:
    """``1-6, 9, 11-14``: sorted path numbers, runs joined."""
    runs: list[list[int]] = []
    for p in sorted(paths):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def unreached_lines(witnesses: Witnesses) -> list[str]:
    """Why paths went unreached, one line per reason rather than per path: a count-min sketch left
    79 paths whose reasons differ only in which of its rows conflicted, 79 lines that said the same.
    Paths with one reason share a line (their numbers as ranges); the facts that conflicted are
    named once, as "some of" them where the paths differ in which (``unreached`` keeps each
    path's own). When the search stopped at its budget of questions, a line says so first."""
    causes = witnesses.causes or tuple(Cause(p, why) for p, why in witnesses.unreached)
    lines = []
    stopped = [c for c in causes if c.stopped]
    if stopped:
        lines.append(f"the search stopped after asking the solver for {QUESTION_LIMIT:,} packets, before reaching "
                     f"{count(len(stopped), 'path')} (so far, why each was not reached:)")
    groups: dict[str, list[Cause]] = {}
    for c in causes:
        groups.setdefault(c.reason, []).append(c)
    for reason, members in groups.items():
        paths = [c.path for c in members]
        where = f"path {paths[0]}" if len(paths) == 1 else f"{len(paths)} paths ({_ranges(paths)})"
        facts = sorted({label for c in members for label in c.conflict})
        if facts:
            some = "" if all(set(c.conflict) == set(facts) for c in members) else "some of "
            reason = f"{reason} ({some}{', '.join(facts)})"
        same = ", each for the same reason" if len(paths) > 1 else ""  # reasons speak of one path: "its condition"
        lines.append(f"{where} not reached{same}: {reason}")
    return lines


def balanced_fills(witnesses: Witnesses, analysis: ir.Analysis, defines: dict[str, str],
                   cores_of: Callable[[Trace], np.ndarray], shares: dict[str, tuple[int, ...]]) -> Witnesses:
    """``witnesses`` with each fill of a chain split into per-core ``shares`` (entries of core 0, 1,
    ...: ``ParallelPlan.shares``; uneven pools, or 22 21 21 of 64) redone so that every core's
    share fills when the sequential table does: the variants (and spares) are taken in order
    while their core (``cores_of``) still has room, up to the table's room; where they run out
    first, from a pool of more variants (``Fill.pool``, up to FILL_SPARES times). Otherwise a core
    whose hash drew more variants runs out early, and the packets after that go uncompared
    (capacity drift) instead of testing the "table full" paths on both builds. A redone trace is
    kept only when the sequential NF still follows every path the original trace did."""
    traces = list(witnesses.traces)
    for fill in witnesses.fills:
        share = shares.get(fill.chain)
        if share is None or fill.count == 0:
            continue
        trace = traces[fill.trace]
        before = cores_of(trace)[list(fill.allocated)] if fill.allocated else np.zeros(0, dtype=np.int64)
        own = [(int(trace.devices[i]), trace.frames[i]) for i in range(fill.start, fill.start + fill.count)]
        for scale in (1, FILL_SPARES // 2, FILL_SPARES):
            pool = own + fill.pool(analysis, scale)
            picked = _picked(pool, cores_of, share, before, fill.count)
            if len(picked) == fill.count or fill.path < 0:
                break
        if picked == list(range(fill.count)):
            continue  # the trace's own fill is already even
        end = fill.start + fill.count
        chosen = [pool[k] for k in picked]
        frames = trace.frames[:fill.start] + tuple(f for _, f in chosen) + trace.frames[end:]
        devices = np.concatenate([trace.devices[:fill.start], np.array([d for d, _ in chosen], dtype=np.uint16),
                                  trace.devices[end:]])
        stamps = np.concatenate([trace.timestamps[:fill.start + len(chosen)], trace.timestamps[end:]])
        redone = Trace(stamps.astype(np.uint64), devices.astype(np.uint16), frames)
        if _paths_followed(analysis, defines, redone) >= _paths_followed(analysis, defines, trace):
            traces[fill.trace] = redone
    return replace(witnesses, traces=tuple(traces))


def _picked(pool: list[tuple[int, bytes]], cores_of: Callable[[Trace], np.ndarray], share: tuple[int, ...],
            before: np.ndarray, count: int) -> list[int]:
    """Positions in ``pool`` of up to ``count`` packets, taken in order while their core has room
    in its ``share`` (less the indices ``before`` took there)."""
    stamps = np.zeros(len(pool), dtype=np.uint64)
    pool_cores = cores_of(Trace(stamps, np.array([d for d, _ in pool], dtype=np.uint16), tuple(f for _, f in pool)))
    room = dict(enumerate(share))
    for core in before.tolist():
        room[int(core)] -= 1
    picked = []
    for k, core in enumerate(pool_cores.tolist()):
        if len(picked) == count:
            break
        if room.get(int(core), 0) > 0:
            room[int(core)] -= 1
            picked.append(k)
    return picked


def _paths_followed(analysis: ir.Analysis, defines: dict[str, str], trace: Trace) -> set[int]:
    result = run_trace(analysis.source, trace, defines, calls=True)
    match = match_paths(analysis, trace, result, calls_by_packet(result, len(trace)))
    return {int(p) for p in match.path_of[match.path_of >= 0].tolist()}
