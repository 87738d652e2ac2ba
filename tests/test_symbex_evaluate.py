"""The evaluator (Z3 terms -> numpy) agrees with Z3 on random terms, in bulk and per value."""
from __future__ import annotations

import random

import numpy as np
import pytest
import z3

from explorer.symbex.evaluate import compile_term, evaluate, fields_env, frames_env
from explorer.symbex.bitvec import constants_of, fnv1a, hash_function

WIDTHS = (1, 8, 16, 32, 64, 72)


def _symbol(rng: random.Random, width: int) -> z3.BitVecRef:
    return z3.BitVec(f"x{width}_{rng.randrange(2)}", width)


def _random_bv(rng: random.Random, width: int, depth: int) -> z3.BitVecRef:
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.3:
            return z3.BitVecVal(rng.choice([0, 1, (1 << width) - 1, 1 << (width - 1), rng.getrandbits(width)]), width)
        return _symbol(rng, width)
    choice = rng.randrange(14)
    a = _random_bv(rng, width, depth - 1)
    b = _random_bv(rng, width, depth - 1)
    if choice == 0:
        return a + b
    if choice == 1:
        return a - b
    if choice == 2:
        return a * b
    if choice == 3:
        return rng.choice([z3.UDiv, z3.URem, lambda x, y: x / y, z3.SRem, lambda x, y: x % y])(a, b)
    if choice == 4:
        return rng.choice([lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y])(a, b)
    if choice == 5:
        return rng.choice([lambda x, y: ~x, lambda x, y: -x])(a, b)
    if choice == 6:
        return rng.choice([lambda x, y: x << y, z3.LShR, lambda x, y: x >> y])(a, b)
    if choice == 7 and width > 1:
        split = rng.randrange(1, width)
        return z3.Concat(_random_bv(rng, split, depth - 1),
                         z3.Extract(width - split - 1, 0, _random_bv(rng, 64 if width <= 64 else 72, depth - 1)))
    if choice == 8 and width > 8:
        inner = rng.choice([w for w in WIDTHS if w < width])
        return rng.choice([z3.ZeroExt, z3.SignExt])(width - inner, _random_bv(rng, inner, depth - 1))
    if choice == 9:
        wider = rng.choice([w for w in WIDTHS if w >= width])
        low = rng.randrange(0, wider - width + 1)
        return z3.Extract(low + width - 1, low, _random_bv(rng, wider, depth - 1))
    if choice == 10:
        return z3.If(_random_bool(rng, depth - 1), a, b)
    if choice == 11 and width == 32:
        return hash_function(9)(_random_bv(rng, 72, depth - 1))
    return a


def _random_bool(rng: random.Random, depth: int) -> z3.BoolRef:
    width = rng.choice(WIDTHS)
    a, b = _random_bv(rng, width, max(depth - 1, 0)), _random_bv(rng, width, max(depth - 1, 0))
    choice = rng.randrange(8)
    if choice == 0 and depth > 0:
        return z3.And(_random_bool(rng, depth - 1), _random_bool(rng, depth - 1))
    if choice == 1 and depth > 0:
        return z3.Or(_random_bool(rng, depth - 1), z3.Not(_random_bool(rng, depth - 1)))
    ops = [lambda x, y: x == y, lambda x, y: x != y, z3.ULT, z3.ULE, z3.UGT, z3.UGE,
           lambda x, y: x < y, lambda x, y: x <= y, lambda x, y: x > y, lambda x, y: x >= y]
    return rng.choice(ops)(a, b)


def _z3_value(term: z3.ExprRef, consts: dict[str, z3.BitVecRef], assignment: dict[str, int]) -> int | bool:
    """Z3's value of ``term``; nf_hash, uninterpreted for Z3, is replaced (innermost first) by the
    FNV-1a of its constant argument, as the runtime computes it."""
    subs = [(c, z3.BitVecVal(assignment[name], c.size())) for name, c in consts.items()]
    value = z3.simplify(z3.substitute(term, *subs))
    while not (z3.is_bv_value(value) or z3.is_true(value) or z3.is_false(value)):
        calls = [t for t in _subterms(value) if z3.is_app(t) and t.decl().name().startswith("nf_hash")
                 and z3.is_bv_value(z3.simplify(t.children()[0]))]
        assert calls, value
        arg = z3.simplify(calls[0].children()[0])
        digest = fnv1a(arg.as_long().to_bytes(arg.size() // 8, "big"))
        value = z3.simplify(z3.substitute(value, (calls[0], z3.BitVecVal(digest, 32))))
    return z3.is_true(value) if z3.is_bool(value) else value.as_long()


def _subterms(t: z3.ExprRef) -> list[z3.ExprRef]:
    out = [t]
    for c in t.children():
        out += _subterms(c)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_terms_agree_with_z3(seed: int) -> None:
    rng = random.Random(seed)
    samples = 12
    for _ in range(40):
        term = _random_bool(rng, 3) if rng.random() < 0.4 else _random_bv(rng, rng.choice(WIDTHS), 3)
        consts = constants_of(term)[0]
        assignments = [{name: rng.choice([0, 1, (1 << c.size()) - 1, 1 << (c.size() - 1), rng.getrandbits(c.size())])
                        for name, c in consts.items()} for _ in range(samples)]
        env = {name: np.array([a[name] for a in assignments], dtype=object) for name in consts}
        bulk = np.broadcast_to(compile_term(term)(env), (samples,))
        for k, assignment in enumerate(assignments):
            expected = _z3_value(term, consts, assignment)
            got = bool(bulk[k]) if z3.is_bool(term) else int(bulk[k])
            assert got == expected, f"{term} with {assignment}: {got} != {expected}"


def test_known_answers() -> None:
    x = z3.BitVec("x", 8)
    assert evaluate(z3.Extract(7, 0, z3.ZeroExt(24, x) + 1), {"x": [255, 7]}).tolist() == [0, 8]
    assert evaluate(x / -1 == x, {"x": [0x80]}).tolist() == [True]  # -128 / -1 wraps to -128
    assert evaluate(z3.UDiv(x, 0), {"x": [5]}).tolist() == [255]  # Z3: unsigned division by 0 is all ones
    assert evaluate(z3.URem(x, 0), {"x": [5]}).tolist() == [5]
    wide = z3.Concat(z3.BitVec("a", 64), z3.BitVec("b", 64))
    assert int(evaluate(wide, {"a": [1], "b": [2]})[0]) == (1 << 64) + 2
    assert evaluate(hash_function(1)(x), {"x": [0x61]}).tolist() == [0xE40C292C]


def test_scalars_broadcast_with_arrays() -> None:
    x, y = z3.BitVec("x", 16), z3.BitVec("y", 16)
    assert evaluate(x + y, {"x": 1, "y": [1, 2, 3]}).tolist() == [2, 3, 4]
    with pytest.raises(KeyError, match="no value for symbol y"):
        evaluate(x + y, {"x": 1})


def test_frames_env_reads_fields_where_the_runtime_does() -> None:
    frame = bytes.fromhex("020000000001" "020000000002" "0800" "46" "00" "0032" "1234" "2000" "40" "11" "beef"
                          "0a000001" "c0000201" "00000000" "1f90" "0035" "00000001" "00000002" "50" "12" "fffe"
                          "abcd" "0007")
    env = frames_env([frame], devices=[1], timestamps=[99])
    expected = {"p.ether.dst": 0x020000000001, "p.ether.src": 0x020000000002, "p.ether.type": 0x0800,
                "p.ipv4.version_ihl": 0x46, "p.ipv4.tos": 0, "p.ipv4.total_length": 0x32, "p.ipv4.id": 0x1234,
                "p.ipv4.frag_off": 0x2000, "p.ipv4.ttl": 0x40, "p.ipv4.proto": 17, "p.ipv4.checksum": 0xBEEF,
                "p.ipv4.src": 0x0A000001, "p.ipv4.dst": 0xC0000201, "p.l4.sport": 0x1F90, "p.l4.dport": 0x35,
                "p.tcp.seq": 1, "p.tcp.ack": 2, "p.tcp.data_off": 0x50, "p.tcp.flags": 0x12, "p.tcp.window": 0xFFFE,
                "p.tcp.checksum": 0xABCD, "p.tcp.urgent": 7, "p.len": len(frame), "p.device": 1, "now": 99}
    assert {k: int(v[0]) for k, v in env.items()} == expected


def test_fields_env_keeps_the_accessor_conditions() -> None:
    from explorer.symbex.packet import PacketSymbols
    from explorer.traffic.field_arrays import extract_fields
    from explorer.traffic.generators import generate

    trace = generate("mixed", packets=400, flows=50, seed=2)
    raw = frames_env(trace.frames, trace.devices)
    rebuilt = fields_env(extract_fields(trace.frames), trace.devices)
    packet = PacketSymbols()
    for condition in (packet.ipv4_ok, packet.tcpudp_ok):
        assert np.array_equal(evaluate(condition, raw), evaluate(condition, rebuilt))
    keyed = z3.Concat(packet.fields["p.ipv4.src"], packet.fields["p.l4.dport"])
    mask = evaluate(packet.tcpudp_ok, raw)
    assert np.array_equal(evaluate(keyed, raw)[mask], evaluate(keyed, rebuilt)[mask])


def test_fields_env_makes_a_symbol_only_when_read() -> None:
    from explorer.traffic.field_arrays import extract_fields
    from explorer.traffic.generators import generate

    trace = generate("mixed", packets=50, flows=5, seed=3)
    env = fields_env(extract_fields(trace.frames), trace.devices)
    assert "p.ipv4.src" in env and "p.ipv4.ttl" not in env and "p.tcp.flags" not in env
    assert {"p.len", "p.device"} <= env.keys()
    assert env._values == {}  # asking what it holds made nothing
    assert env["p.device"].tolist() == trace.devices.tolist() and list(env._values) == ["p.device"]
    with pytest.raises(KeyError):
        env["p.ipv4.ttl"]
