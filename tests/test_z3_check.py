"""A Ctrl-C during a Z3 check comes out as KeyboardInterrupt; Z3's own limits still read unknown.

Z3 takes SIGINT for itself while it checks, and on an incremental solver its answer reads
"canceled" alike for a Ctrl-C, a timeout and an exhausted resource limit: a sweep's Ctrl-C once
came out as "Z3 could not decide a path condition (canceled)" (CI, test_signals)."""

import os
import signal
import threading

import pytest
import z3

from explorer import z3_check

# Two 64-bit primes drawn at random: factoring their product takes Z3 far longer than any test
# waits (primes near a power of two are found in seconds).
P, Q = 10808818712792617177, 10430779633273967791


def _hard(rlimit: int = 0) -> tuple[z3.Solver, z3.BoolRef]:
    """A solver and a guard that switches factoring on (a check under it as an assumption takes
    Z3's incremental solver, whose stops all read "canceled")."""
    solver = z3.Solver()
    solver.set("timeout", 20_000)
    if rlimit:
        solver.set("rlimit", rlimit)
    a, b = z3.BitVecs("a b", 128)
    guard = z3.Bool("factor")
    solver.add(z3.ULT(1, a), z3.ULT(1, b), z3.ULT(a, 2 ** 64), z3.ULT(b, 2 ** 64))
    solver.add(z3.Implies(guard, a * b == P * Q))
    return solver, guard


def _ctrl_c_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("incremental", [True, False])
def test_a_sigint_during_a_check_raises_keyboard_interrupt(incremental):
    solver, guard = _hard()
    if not incremental:  # a one-shot check says "interrupted from keyboard"
        solver.add(guard)
    timer = _ctrl_c_after(0.3)
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            z3_check.check(solver, [guard] if incremental else [], timeout_ms=20_000)
    finally:
        timer.join()
    # raised by the check for the stopped solver, not by Python's handler before or after it
    assert raised.traceback[-1].statement.lines[-1].strip() == "raise KeyboardInterrupt"


def test_a_timeout_still_reads_unknown():
    solver, guard = _hard()
    solver.set("timeout", 300)
    assert z3_check.check(solver, [guard], timeout_ms=300) == z3.unknown
    assert solver.reason_unknown() == z3_check.CANCELED


def test_an_exhausted_resource_limit_still_reads_unknown():
    solver, guard = _hard(rlimit=1_000_000)
    assert z3_check.check(solver, [guard], timeout_ms=20_000, rlimit=1_000_000) == z3.unknown
    assert solver.reason_unknown() == z3_check.CANCELED
    assert z3_check.rlimit_count(solver) >= 1_000_000


def test_answers_are_unchanged():
    solver, guard = _hard()
    x = z3.BitVec("x", 8)
    solver.add(z3.Implies(z3.Bool("small"), x * x == 49))
    assert z3_check.check(solver, [z3.Bool("small")], timeout_ms=20_000) == z3.sat
    assert z3_check.check(solver, [z3.Bool("small"), x == 3], timeout_ms=20_000) == z3.unsat
    assert z3_check.check(solver, timeout_ms=20_000) == z3.sat
