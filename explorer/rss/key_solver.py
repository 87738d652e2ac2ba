"""Solve RSS keys for a ``KeyProblem``: one key per device such that related packets reach the
same RETA entry, and the RETA index spreads everything else as widely as it can.

Toeplitz is linear, so every constraint is a set of XOR equations between key bits: for input bit
i and hash bit j, the coefficient is key bit ``i + 31 - j``, and only the RETA-index bits
``j < log2(reta_size)`` matter. The related bits of a constraint fall into classes (bits forced equal
to each other); per class and per index bit, the XOR of the members' key bits must be 0. A class of
one bit (an unconstrained bit) forces its key bits to 0.

The equations are homogeneous, so the all-zero key always satisfies them; the solver asks Z3 for a
key whose RETA index is not constant on any device that hashes something, with every constraint and
every such requirement tracked, so that an unsat core names what conflicts. Free key bits are drawn
from ``random.Random(seed)`` after Gaussian elimination over GF(2), keys whose RETA index has less
than full rank or ignores a field the constraints let it use are redrawn, and Z3 fixes the rest
under the drawn bits as assumptions. Every plan is checked without Z3 (GF(2) algebra and numpy
hashing of random related packet pairs) before it is returned.
"""
from __future__ import annotations

import ipaddress
import random
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import z3

from explorer import z3_check
from explorer.errors import ConfigError, ShardingError, SolverError
from explorer.rss import gf2
from explorer.rss.hash_input import FIELD_BITS, FIELD_NAMES, L3_FIELDS, InputLayout, input_layout
from explorer.rss.nic import NicProfile, rss_hf
from explorer.rss.problem import KeyProblem, PairConstraint
from explorer.rss.reta import deal
from explorer.rss.quality import (
    dependence, dependence_mask, describe_dependence, field_ranks, low_bits_rank, reta_rank, reta_rows)
from explorer.rss.toeplitz import hash_fields, z3_toeplitz
from explorer.wording import count

MAX_DRAWS = 64  # redraws of the free key bits before settling for the best key seen
VERIFY_PAIRS = 512  # random related packet pairs hashed per constraint when verifying a plan
Z3_TIMEOUT_MS = 20_000


# ---- results -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DevicePlan:
    device: int
    key: bytes
    fields: tuple[str, ...]  # hashed, in hash-input order
    rss_hf: int
    rss_hf_names: tuple[str, ...]
    reta: tuple[int, ...]  # RETA entry -> core
    rank: int  # GF(2) rank of the RETA-index bits: 2**rank entries are reachable

    @property
    def depends(self) -> tuple[tuple[str, int], ...]:
        """What the RETA index depends on: per field, the mask of its bits that can change it (see
        ``quality.dependence``). ``fields`` is what the NIC hashes; the key may zero more."""
        return dependence(self.key, self.fields, len(self.reta)) if self.fields else ()

    @property
    def depends_text(self) -> str:
        return describe_dependence(self.depends)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "key": self.key.hex(), "fields": list(self.fields), "rss_hf": self.rss_hf,
                "rss_hf_names": list(self.rss_hf_names), "reta": list(self.reta), "reta_size": len(self.reta),
                "rank": self.rank, "depends_on": self.depends_text,
                "depends": {name: f"{bits:0{FIELD_BITS[name] // 4}x}" for name, bits in self.depends}}


@dataclass(frozen=True)
class RssPlan:
    devices: tuple[DevicePlan, ...]
    nic: NicProfile
    cores: int
    seconds: float = field(default=0.0, compare=False)
    seed: int = 0

    def device(self, device: int) -> DevicePlan:
        for d in self.devices:
            if d.device == device:
                return d
        raise ConfigError(f"the RSS plan has no device {device} (devices: "
                          f"{', '.join(str(d.device) for d in self.devices)})")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (solve time left out so that output is reproducible)."""
        return {"nic": self.nic.name, "reta_size": self.nic.reta_size, "cores": self.cores, "seed": self.seed,
                "devices": {str(d.device): {**d.to_dict(), "portless_fields": list(self.nic.portless_fields(d.fields))}
                            for d in self.devices}}


@dataclass(frozen=True)
class ConflictPart:
    """One constraint of an unsat core and what it demands."""

    origin: str
    dev1: int
    dev2: int
    related: tuple[tuple[str, str], ...]  # (p1 field, p2 field) pairs it relates
    ignored: tuple[tuple[int, tuple[str, ...]], ...]  # per device: hashed fields it must ignore entirely

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "dev1": self.dev1, "dev2": self.dev2,
                "related": [list(p) for p in self.related], "ignored": {str(d): list(f) for d, f in self.ignored}}


@dataclass(frozen=True)
class Conflict:
    """Why no key exists: these devices' RETA index would be constant under these constraints."""

    devices: tuple[int, ...]
    parts: tuple[ConflictPart, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"devices": list(self.devices), "constraints": [p.to_dict() for p in self.parts]}


@dataclass(frozen=True)
class Counterexample:
    """Two packets a constraint relates that the plan sends to different cores."""

    origin: str
    p1: dict[str, Any]  # {"device", "src_ip" (dotted), "dst_ip", "src_port", "dst_port"}
    p2: dict[str, Any]
    reta_index: tuple[int, int]
    cores: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        # By the sharding stage's convention an origin starts with "<object>: ".
        return {"object": self.origin.split(":", 1)[0], "origin": self.origin, "p1": dict(self.p1),
                "p2": dict(self.p2), "reta_index": list(self.reta_index), "cores": list(self.cores)}


# ---- the equations of a constraint ------------------------------------------------------------------

Term = tuple[int, int]  # (device, input bit position in that device's layout)


def _classes(c: PairConstraint) -> list[list[tuple[int, str, int]]]:
    """The classes of bits a constraint makes equal; members are (side, field, i), side 1 or 2.
    Every RSS bit of both packets is in exactly one class (unrelated bits alone)."""
    parent: dict[tuple[int, str, int], tuple[int, str, int]] = {}

    def find(x):
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in c.equal:
        ra, rb = find((1, a[0], a[1])), find((2, b[0], b[1]))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[tuple[int, str, int], list[tuple[int, str, int]]] = {}
    for side in (1, 2):
        for name in FIELD_NAMES:
            for i in range(FIELD_BITS[name]):
                node = (side, name, i)
                groups.setdefault(find(node), []).append(node)
    return [groups[k] for k in sorted(groups)]


def _class_terms(c: PairConstraint, layouts: Mapping[int, InputLayout]) -> list[list[Term]]:
    """Per class, the hashed input bits whose RETA columns must XOR to zero (a bit counted twice, as
    when both packets' copies of a field meet on one device, cancels)."""
    out = []
    for members in _classes(c):
        counts: Counter = Counter()
        for side, name, i in members:
            dev = c.dev1 if side == 1 else c.dev2
            layout = layouts[dev]
            if name in layout.fields:
                counts[(dev, layout.position(name, i))] += 1
        terms = sorted(t for t, n in counts.items() if n % 2)
        if terms:
            out.append(terms)
    return out


def _ignored(c: PairConstraint, layouts: Mapping[int, InputLayout]) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """Per device of ``c``: hashed fields none of whose bits ``c`` relates on that side."""
    related = {1: {a[0] for a, _ in c.equal}, 2: {b[0] for _, b in c.equal}}
    out: dict[int, set[str]] = {}
    for side, dev in ((1, c.dev1), (2, c.dev2)):
        out.setdefault(dev, set()).update(f for f in layouts[dev].fields if f not in related[side])
    return tuple((d, tuple(f for f in FIELD_NAMES if f in fs)) for d, fs in sorted(out.items()))


# ---- the solver ----------------------------------------------------------------------------------

class _Encoding:
    """Variables: key bit k of device number t is GF(2) variable ``t * K + (K - 1 - k)``, so a
    solution's bits, shifted by ``t * K``, read as the device's key integer (big-endian bytes)."""

    def __init__(self, problem: KeyProblem):
        self.problem = problem
        self.devices = tuple(sorted(problem.devices))
        self.index = {d: t for t, d in enumerate(self.devices)}
        self.key_bits = problem.nic.key_bytes * 8
        self.m = problem.nic.index_bits
        self.fields = {d: _hashable(problem.nic, problem.fields_of(d), d) for d in self.devices}
        self.layouts = {d: input_layout(self.fields[d]) for d in self.devices}
        for d in self.devices:
            if self.layouts[d].bits + 32 > self.key_bits:
                raise ConfigError(f"device {d}: a {problem.nic.key_bytes}-byte key cannot hash "
                                  f"{self.layouts[d].bytes} input bytes")
        self.count = len(self.devices) * self.key_bits

    def var(self, dev: int, key_bit: int) -> int:
        return self.index[dev] * self.key_bits + (self.key_bits - 1 - key_bit)

    def rows(self, terms: Sequence[Term]) -> list[int]:
        out = []
        for j in range(self.m):
            row = 0
            for dev, pos in terms:
                row ^= 1 << self.var(dev, pos + 31 - j)
            out.append(row)
        return out

    def index_key_bits(self, dev: int, positions: Iterable[int]) -> set[int]:
        """Key bits that the RETA index reads for these input positions."""
        return {pos + 31 - j for pos in positions for j in range(self.m)}

    def key_of(self, solution: int, dev: int) -> bytes:
        value = (solution >> (self.index[dev] * self.key_bits)) & ((1 << self.key_bits) - 1)
        return value.to_bytes(self.key_bits // 8, "big")


def _hashable(nic: NicProfile, fields: tuple[str, ...], dev: int) -> tuple[str, ...]:
    """The fields the NIC will hash for a device: the requested ones, widened to the nearest set
    the NIC can select (the key then makes the extra fields irrelevant)."""
    if nic.can_hash(fields):
        return fields
    return nic.select_fields(fields)


class _Z3Model:
    """The same equations over one Z3 bit-vector per device key (its most significant bit is key
    bit 0), each constraint and each spreading requirement tracked for unsat cores."""

    def __init__(self, enc: _Encoding):
        self.enc = enc
        self.keys = {d: z3.BitVec(f"key.dev{d}", enc.key_bits) for d in enc.devices}
        self.solver = z3.Solver()
        self.solver.set("timeout", Z3_TIMEOUT_MS)
        self.solver.set("core.minimize", True)
        self.tracked: dict[str, tuple[str, int]] = {}
        self.formulas: dict[tuple[str, int], z3.BoolRef] = {}

    def window(self, dev: int, pos: int) -> z3.BitVecRef:
        """The m key bits the RETA index reads for input bit ``pos`` (hash bit m-1 first)."""
        k, m = self.enc.key_bits, self.enc.m
        first = pos + 32 - m
        return z3.Extract(k - 1 - first, k - 1 - (pos + 31), self.keys[dev])

    def track(self, name: str, what: tuple[str, int], formula: z3.BoolRef) -> None:
        self.tracked[name] = what
        self.formulas[what] = formula
        self.solver.assert_and_track(formula, z3.Bool(name))

    def add_constraint(self, number: int, classes: list[list[Term]]) -> None:
        eqs = []
        for terms in classes:
            total = self.window(*terms[0])
            for t in terms[1:]:
                total = total ^ self.window(*t)
            eqs.append(total == 0)
        self.track(f"constraint#{number}", ("constraint", number), z3.And(eqs) if eqs else z3.BoolVal(True))

    def add_spread(self, dev: int) -> None:
        """The RETA index of ``dev`` is not constant: some key bit it reads is 1."""
        k, m, n = self.enc.key_bits, self.enc.m, self.enc.layouts[dev].bits
        first, last = 32 - m, n - 1 + 31  # key bits read for input bits 0 .. n-1
        bits = z3.Extract(k - 1 - first, k - 1 - last, self.keys[dev])
        self.track(f"spread#dev{dev}", ("spread", dev), bits != 0)

    def check(self, *assumptions: z3.BoolRef) -> z3.CheckSatResult:
        try:
            return z3_check.check(self.solver, assumptions, timeout_ms=Z3_TIMEOUT_MS)
        except z3.Z3Exception as error:
            raise SolverError(f"Z3 failed: {error}") from None

    def core(self) -> list[tuple[str, int]]:
        return self._first_spread(sorted(self.tracked[str(b)] for b in self.solver.unsat_core()))

    def _first_spread(self, core: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Where the core's constraints keep either of several devices from spreading, Z3 names one
        as the ids of its terms fall, which depends on what the process asked before (dns_guard
        blamed device 0 alone, device 1 after lb): the lowest device whose spreading they forbid
        alone, so that an NF's conflict is told the same way in every process."""
        spreads = [n for kind, n in core if kind == "spread"]
        if len(spreads) != 1:
            return core
        rest = [part for part in core if part[0] != "spread"]
        for dev in sorted(n for kind, n in self.formulas if kind == "spread"):
            if dev >= spreads[0]:
                break
            alone = z3.Solver()
            alone.set("timeout", Z3_TIMEOUT_MS)
            alone.add(*(self.formulas[part] for part in rest), self.formulas[("spread", dev)])
            if z3_check.check(alone, timeout_ms=Z3_TIMEOUT_MS) == z3.unsat:
                return sorted([*rest, ("spread", dev)])
        return core


def solve_keys(problem: KeyProblem) -> RssPlan:
    """One key per device (see the module docstring); raises ShardingError with a ``.conflict``
    when some device's packets cannot be spread at all."""
    started = time.perf_counter()
    enc = _Encoding(problem)
    constraints = problem.constraints
    per_constraint = [_class_terms(c, enc.layouts) for c in constraints]

    model = _Z3Model(enc)
    for number, classes in enumerate(per_constraint):
        model.add_constraint(number, classes)
    spreading = [d for d in enc.devices if enc.layouts[d].bits]
    for dev in spreading:
        model.add_spread(dev)
    result = model.check()
    if result == z3.unsat:
        raise _conflict_error(problem, enc, model.core())
    if result != z3.sat:
        raise SolverError(f"Z3 could not decide the key problem ({model.solver.reason_unknown()})")

    echelon = gf2.Echelon(row for classes in per_constraint for terms in classes for row in enc.rows(terms))
    live = {d: _live_positions(enc, echelon, d) for d in enc.devices}
    narrowed = _narrowed(problem, enc, live)
    if narrowed is not None:  # the equations zero whole fields: hash only the fields that matter
        return solve_keys(replace(problem, hashed=narrowed))
    solution = _draw(problem, enc, echelon, live)
    keys = _z3_keys(enc, model, echelon, solution)

    devices = tuple(_device_plan(problem, enc.fields[d], d, keys[d]) for d in enc.devices)
    devices = _dealt(devices, problem.nic.reta_size, problem.cores)
    plan = RssPlan(devices, problem.nic, problem.cores, 0.0, problem.seed)
    verify_plan(plan, constraints, seed=problem.seed)
    return replace(plan, seconds=time.perf_counter() - started)


def _live_positions(enc: _Encoding, echelon: gf2.Echelon, dev: int) -> int:
    """The hashed input bits of ``dev`` that some solution lets reach the RETA index, as a mask
    over the layout's bits (most significant = input bit 0): a bit is dead when the equations force
    every key bit its RETA column reads to 0."""
    n = enc.layouts[dev].bits
    mask = 0
    for pos in range(n):
        if not all(echelon.implies_zero(enc.var(dev, k)) for k in enc.index_key_bits(dev, (pos,))):
            mask |= 1 << (n - 1 - pos)
    return mask


def _narrowed(problem: KeyProblem, enc: _Encoding, live: Mapping[int, int]):
    """On a NIC that selects fields: the hashed fields without those every bit of which is dead,
    for every device where the NIC can hash fewer fields (None when nothing narrows)."""
    if not problem.nic.field_selection:
        return None
    hashed, changed = [], False
    for dev in enc.devices:
        layout = enc.layouts[dev]
        wanted = [f for f in layout.fields if live[dev] & layout.field_mask(f)]
        fields = enc.fields[dev]
        if wanted and set(wanted) != set(fields):
            smaller = problem.nic.select_fields(wanted)
            if len(smaller) < len(fields):
                fields, changed = smaller, True
        hashed.append((dev, fields))
    return tuple(hashed) if changed else None


def _draw(problem: KeyProblem, enc: _Encoding, echelon: gf2.Echelon, live: Mapping[int, int]) -> int:
    """Random solutions of the equations, from the seed, until one has full RETA rank on every
    device, lets every field the constraints allow affect the index and gives every live input bit
    a non-zero RETA column (so that what the plan says it depends on is exactly what it depends
    on); else the best seen."""
    # A field may be ignored only if the equations force all key bits its RETA columns read to 0.
    usable: dict[int, list[str]] = {
        dev: [name for name in enc.layouts[dev].fields if live[dev] & enc.layouts[dev].field_mask(name)]
        for dev in enc.devices}
    rng = random.Random(problem.seed)
    best, best_score = 0, None
    for _ in range(MAX_DRAWS):
        candidate = echelon.solve(rng.getrandbits(enc.count))
        score = _score(problem, enc, candidate, usable, live)
        if best_score is None or score > best_score:
            best, best_score = candidate, score
        if all(goals[0] for goals in score):
            break
    return best


def _score(problem: KeyProblem, enc: _Encoding, solution: int, usable: Mapping[int, list[str]],
           live: Mapping[int, int]):
    """Per device: (all goals met, rank, usable fields that matter, spread inside one /16, live bits
    with a non-zero RETA column). The spread goal beats Maestro's keys, whose RETA index read only
    the top bits of an address."""
    score = []
    for dev in enc.devices:
        layout = enc.layouts[dev]
        if not layout.fields:
            score.append((True, 0, 0, 0, 0))
            continue
        key = enc.key_of(solution, dev)
        size = problem.nic.reta_size
        rank = reta_rank(key, layout.fields, size)
        influence = field_ranks(key, layout.fields, size)
        used = sum(1 for name in usable[dev] if influence[name] > 0)
        addresses = [name for name in usable[dev] if name in L3_FIELDS]
        prefix = min((low_bits_rank(key, layout.fields, size, name) for name in addresses), default=enc.m)
        reached = (dependence_mask(key, layout.fields, size) & live[dev]).bit_count()
        full = (rank >= min(enc.m, layout.bits) and used == len(usable[dev]) and prefix >= enc.m
                and reached == live[dev].bit_count())
        score.append((full, rank, used, prefix, reached))
    return tuple(score)


def _z3_keys(enc: _Encoding, model: _Z3Model, echelon: gf2.Echelon, solution: int) -> dict[int, bytes]:
    """Z3 fixes the pivot bits under the drawn free bits; the result must equal the GF(2) solution."""
    free_mask = 0
    for v in echelon.free(enc.count):
        free_mask |= 1 << v
    assumptions = []
    width_mask = (1 << enc.key_bits) - 1
    for dev in enc.devices:
        shift = enc.index[dev] * enc.key_bits
        mask = (free_mask >> shift) & width_mask
        value = (solution >> shift) & mask
        flag = z3.Bool(f"draw#dev{dev}")
        model.solver.add(z3.Implies(flag, model.keys[dev] & mask == value))
        assumptions.append(flag)
    if model.check(*assumptions) != z3.sat:
        raise SolverError("Z3 rejected the drawn key bits that GF(2) elimination accepted")
    result = model.solver.model()
    keys = {}
    for dev in enc.devices:
        value = result.eval(model.keys[dev], model_completion=True).as_long()
        keys[dev] = value.to_bytes(enc.key_bits // 8, "big")
        if keys[dev] != enc.key_of(solution, dev):
            raise SolverError(f"Z3 and GF(2) elimination disagree on the key of device {dev}")
    return keys


def _device_plan(problem: KeyProblem, fields: tuple[str, ...], dev: int, key: bytes) -> DevicePlan:
    nic = problem.nic
    hf = rss_hf(fields, nic)
    reta = tuple(i % problem.cores for i in range(nic.reta_size))
    rank = reta_rank(key, fields, nic.reta_size) if fields else 0
    return DevicePlan(dev, key, fields, hf.mask, hf.names, reta, rank)


def _dealt(devices: tuple[DevicePlan, ...], reta_size: int, cores: int) -> tuple[DevicePlan, ...]:
    """The devices with one RETA, dealt out over the index directions that follow the bits real
    traffic varies (``explorer.rss.reta``); one table for every device keeps the pair constraints,
    which relate RETA indices, true."""
    reta = deal([(d.key, d.fields) for d in devices if d.fields], reta_size, cores)
    return tuple(replace(d, reta=reta) for d in devices)


def _fixed_reta(devices: tuple[DevicePlan, ...], reta: Sequence[int], nic: NicProfile,
                cores: int) -> tuple[DevicePlan, ...]:
    """The devices with the user's RETA (one table for all of them, as the solver's)."""
    table = tuple(int(c) for c in reta)
    if len(table) != nic.reta_size:
        raise ConfigError(f"the RETA has {len(table)} entries, {nic.name} ({nic.driver}) has {nic.reta_size}")
    wrong = next((c for c in table if not 0 <= c < cores), None)
    if wrong is not None:
        raise ConfigError(f"the RETA names core {wrong}, which is not one of the {cores} cores (0-{cores - 1})")
    return tuple(replace(d, reta=table) for d in devices)


def _conflict_error(problem: KeyProblem, enc: _Encoding, core: list[tuple[str, int]]) -> ShardingError:
    devices = tuple(sorted(n for kind, n in core if kind == "spread"))
    parts = []
    for kind, number in core:
        if kind != "constraint":
            continue
        c = problem.constraints[number]
        parts.append(ConflictPart(c.origin, c.dev1, c.dev2, c.related_fields(), _ignored(c, enc.layouts)))
    conflict = Conflict(devices, tuple(parts))
    lines = [f"no RSS key spreads the packets of device{'s' if len(devices) > 1 else ''} "
             f"{', '.join(map(str, devices))} over cores: together these constraints leave "
             f"{'their RETA indices' if len(devices) > 1 else 'its RETA index'} constant"]
    for p in parts:
        related = ", ".join(a if a == b else f"{a}~{b}" for a, b in p.related) or "no field"
        ignored = "; ".join(f"device {d} must ignore {', '.join(fs)}" for d, fs in p.ignored if fs)
        lines.append(f"  - {p.origin} (device {p.dev1} ~ device {p.dev2}): relates {related}"
                     + (f"; {ignored}" if ignored else ""))
    return ShardingError("\n".join(lines), conflict=conflict)


# ---- checks without Z3 ------------------------------------------------------------------------------

def verify_plan(plan: RssPlan, constraints: Iterable[PairConstraint], seed: int = 0,
                pairs: int = VERIFY_PAIRS) -> None:
    """Check every constraint twice, independently of Z3: the RETA-index columns of each class of
    related bits XOR to zero (GF(2) algebra on the concrete keys), and random related packet pairs
    hash to the same RETA entry (numpy). Raises SolverError on the first failure."""
    reta_size = plan.nic.reta_size
    rng = np.random.default_rng(seed)
    for c in constraints:
        p1, p2 = plan.device(c.dev1), plan.device(c.dev2)
        layouts = {p1.device: input_layout(p1.fields), p2.device: input_layout(p2.fields)}
        columns = {d.device: _columns(d, reta_size) for d in (p1, p2)}
        for terms in _class_terms(c, layouts):
            total = 0
            for dev, pos in terms:
                total ^= columns[dev][pos]
            if total:
                raise SolverError(f"plan check failed for {c.origin}: related bits {terms} reach different "
                                  f"RETA entries")
        a, b = _related_pairs(c, pairs, rng)
        i1, i2 = _reta_index(p1, a, reta_size), _reta_index(p2, b, reta_size)
        if not np.array_equal(i1, i2):
            raise SolverError(f"plan check failed for {c.origin}: "
                              f"{int(np.count_nonzero(i1 != i2))} of {pairs} related packet pairs hash apart")


def _columns(d: DevicePlan, reta_size: int) -> list[int]:
    """The RETA-index column of each hashed input bit, as an integer over the index bits."""
    if not d.fields:
        return []
    n = input_layout(d.fields).bits
    rows = reta_rows(d.key, d.fields, reta_size)
    return [sum(((row >> (n - 1 - i)) & 1) << j for j, row in enumerate(rows)) for i in range(n)]


def _related_pairs(c: PairConstraint, count: int, rng: np.random.Generator):
    """``count`` random packet pairs satisfying the constraint's equalities, as per-field arrays."""
    packets = {side: {name: rng.integers(0, 1 << FIELD_BITS[name], count, dtype=np.uint64)
                      for name in FIELD_NAMES} for side in (1, 2)}
    for members in _classes(c):
        if len(members) < 2:
            continue
        side, name, i = members[0]
        bit = (packets[side][name] >> np.uint64(FIELD_BITS[name] - 1 - i)) & np.uint64(1)
        for side, name, i in members[1:]:
            shift = np.uint64(FIELD_BITS[name] - 1 - i)
            arr = packets[side][name]
            packets[side][name] = (arr & ~(np.uint64(1) << shift)) | (bit << shift)
    return packets[1], packets[2]


def _reta_index(d: DevicePlan, arrays: Mapping[str, np.ndarray], reta_size: int) -> np.ndarray:
    count = len(next(iter(arrays.values())))
    if not d.fields:
        return np.zeros(count, dtype=np.uint32)
    return hash_fields(d.key, d.fields, arrays) & np.uint32(reta_size - 1)


# ---- user keys and counterexamples ---------------------------------------------------------------

def plan_with_keys(problem_or_plan: Union[KeyProblem, RssPlan],
                   keys: Mapping[int, Union[bytes, str]], reta: Optional[Sequence[int]] = None) -> RssPlan:
    """A plan whose given devices use the user's keys (bytes or hex). Other devices keep the plan's
    keys, or, from a problem, get solved ones. Nothing is verified: a user key may break
    constraints, which ``find_counterexample`` shows.

    The RETA is dealt again for the keys the plan ends up with, as ``solve_keys`` deals it for its
    own: the round robin, or a table dealt for other keys, splits the cores on index bits that a key
    keeping only a port's top bits may never set (port_blocks' solved keys over the round robin put
    all of bidir on one core of 2). ``reta`` (entry -> core, for every device) fixes the table instead."""
    started = time.perf_counter()
    if isinstance(problem_or_plan, KeyProblem):
        problem = problem_or_plan
        unknown = sorted(set(keys) - set(problem.devices))
        if unknown:
            raise ConfigError(f"a key is given for device {unknown[0]}, which is not one of "
                              f"{', '.join(map(str, problem.devices))}")
        if set(keys) >= set(problem.devices):
            enc = _Encoding(problem)
            devices = tuple(_device_plan(problem, enc.fields[d], d, _key_bytes(keys[d], d, problem.nic))
                            for d in enc.devices)
            return plan_with_reta(RssPlan(devices, problem.nic, problem.cores, time.perf_counter() - started,
                                          problem.seed), reta)
        base = solve_keys(problem)
    else:
        base = problem_or_plan
    known = {d.device for d in base.devices}
    for dev in keys:
        if dev not in known:
            raise ConfigError(f"a key is given for device {dev}, which is not one of "
                              f"{', '.join(map(str, sorted(known)))}")
    devices = []
    for d in base.devices:
        if d.device in keys:
            key = _key_bytes(keys[d.device], d.device, base.nic)
            rank = reta_rank(key, d.fields, base.nic.reta_size) if d.fields else 0
            d = DevicePlan(d.device, key, d.fields, d.rss_hf, d.rss_hf_names, d.reta, rank)
        devices.append(d)
    plan = RssPlan(tuple(devices), base.nic, base.cores, base.seconds + time.perf_counter() - started, base.seed)
    return plan_with_reta(plan, reta) if keys or reta is not None else plan


def plan_with_reta(plan: RssPlan, reta: Optional[Sequence[int]] = None) -> RssPlan:
    """``plan`` with ``reta`` (entry -> core) on every device, or without one, the RETA dealt for the
    plan's keys and hashed fields as ``solve_keys`` deals it (after a user replaced either)."""
    devices = (_dealt(plan.devices, plan.nic.reta_size, plan.cores) if reta is None
               else _fixed_reta(plan.devices, reta, plan.nic, plan.cores))
    return replace(plan, devices=devices)


def _key_bytes(key: Union[bytes, str], dev: int, nic: NicProfile) -> bytes:
    if isinstance(key, str):
        text = key.strip().lower().removeprefix("0x").replace(":", "")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ConfigError(f"device {dev}: the key {text!r} is not hexadecimal") from None
    key = bytes(key)
    if len(key) != nic.key_bytes:
        raise ConfigError(f"device {dev}: the key has {count(len(key), 'byte')}, {nic.name} ({nic.driver}) "
                          f"needs {nic.key_bytes}")
    return key


def find_counterexample(plan: RssPlan, constraints: Iterable[PairConstraint]) -> Optional[Counterexample]:
    """Two packets that some constraint relates but the plan sends to different cores (through its
    RETA), found by Z3 with the keys fixed and both packets symbolic, and confirmed by numpy
    hashing; None when every constraint holds."""
    for c in constraints:
        example = _counterexample(plan, c)
        if example is not None:
            return example
    return None


def _counterexample(plan: RssPlan, c: PairConstraint) -> Optional[Counterexample]:
    d1, d2 = plan.device(c.dev1), plan.device(c.dev2)
    m = plan.nic.index_bits
    pk = {side: {name: z3.BitVec(f"p{side}.{name}", FIELD_BITS[name]) for name in FIELD_NAMES} for side in (1, 2)}
    solver = z3.Solver()
    solver.set("timeout", Z3_TIMEOUT_MS)
    for (f1, i1), (f2, i2) in c.equal:
        b1, b2 = FIELD_BITS[f1] - 1 - i1, FIELD_BITS[f2] - 1 - i2
        solver.add(z3.Extract(b1, b1, pk[1][f1]) == z3.Extract(b2, b2, pk[2][f2]))
    indices = []
    for side, d in ((1, d1), (2, d2)):
        if d.fields:
            data = z3.Concat(*[pk[side][f] for f in d.fields]) if len(d.fields) > 1 else pk[side][d.fields[0]]
            indices.append(z3.Extract(m - 1, 0, z3_toeplitz(d.key, data)))
        else:
            indices.append(z3.BitVecVal(0, m))
    # Cheap first: if the RETA indices cannot differ, neither can the cores.
    solver.push()
    solver.add(indices[0] != indices[1])
    result = _check(solver)
    solver.pop()
    if result == z3.unsat:
        return None
    solver.add(_reta_term(d1.reta, indices[0]) != _reta_term(d2.reta, indices[1]))
    result = _check(solver)
    if result == z3.unsat:
        return None
    if result != z3.sat:
        raise SolverError(f"Z3 could not decide whether {c.origin} holds ({solver.reason_unknown()})")
    model = solver.model()
    values = {side: {name: model.eval(pk[side][name], model_completion=True).as_long() for name in FIELD_NAMES}
              for side in (1, 2)}
    # Confirm with the numpy hash, independently of the Z3 twin.
    found = []
    for side, d in ((1, d1), (2, d2)):
        arrays = {name: np.array([values[side][name]], dtype=np.uint64) for name in FIELD_NAMES}
        index = int(_reta_index(d, arrays, plan.nic.reta_size)[0])
        found.append((index, d.reta[index]))
    if found[0][1] == found[1][1]:
        raise SolverError(f"the Z3 twin and the numpy hash disagree on a counterexample for {c.origin}")
    return Counterexample(c.origin, _packet(c.dev1, values[1]), _packet(c.dev2, values[2]),
                          (found[0][0], found[1][0]), (found[0][1], found[1][1]))


def _check(solver: z3.Solver) -> z3.CheckSatResult:
    try:
        return z3_check.check(solver, timeout_ms=Z3_TIMEOUT_MS)
    except z3.Z3Exception as error:
        raise SolverError(f"Z3 failed: {error}") from None


def _reta_term(reta: Sequence[int], index: z3.BitVecRef) -> z3.BitVecRef:
    """``reta[index]`` as a chain of Ifs (Z3 handles it far faster than an array of stores)."""
    term = z3.BitVecVal(reta[-1], 16)
    for i in range(len(reta) - 2, -1, -1):
        if reta[i] != reta[-1]:
            term = z3.If(index == i, z3.BitVecVal(reta[i], 16), term)
    return term


def _packet(device: int, values: Mapping[str, int]) -> dict[str, Any]:
    return {"device": device, "src_ip": str(ipaddress.IPv4Address(values["src_ip"])),
            "dst_ip": str(ipaddress.IPv4Address(values["dst_ip"])),
            "src_port": values["src_port"], "dst_port": values["dst_port"]}
