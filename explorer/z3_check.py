"""A Z3 check that tells the user's Ctrl-C from Z3 giving up.

While it checks, Z3 takes SIGINT for itself: the check stops and answers unknown, and Python's own
handler never runs, so a Ctrl-C (or a terminal's SIGINT to the whole process group, as a sweep's
workers get it) came out as "Z3 could not decide ..." instead of "interrupted". The reason Z3 gives
does not settle it: on an incremental solver a Ctrl-C, the timeout and the resource limit all read
"canceled". So a cancelled check counts as the user's stop when neither limit can have ended it:
its wall-clock limit had not passed, and it spent less than its resource limit.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import z3

KEYBOARD = "interrupted from keyboard"  # what a one-shot (non-incremental) check says on SIGINT
CANCELED = "canceled"
# A timeout fires once its time has passed; what is measured here starts a little before Z3's clock.
_TIMEOUT_SHARE = 0.9


def check(solver: Any, assumptions: Sequence[Any] = (), *, timeout_ms: int, rlimit: int = 0) -> Any:
    """``solver.check(*assumptions)``; raises KeyboardInterrupt when a SIGINT stopped it.
    ``timeout_ms`` and ``rlimit`` are the limits ``solver`` was given (0: none)."""
    started = time.monotonic()
    spent_before = rlimit_count(solver) if rlimit else 0
    if assumptions:
        # without z3.py's sort check of every assumption (Boolean guards by construction): with a
        # few dozen per query, that check was a third of the analysis of an NF of a few hundred paths
        array = (z3.Ast * len(assumptions))(*(a.as_ast() for a in assumptions))
        result = z3.CheckSatResult(z3.Z3_solver_check_assumptions(solver.ctx.ref(), solver.solver,
                                                                   len(assumptions), array))
    else:
        result = solver.check()
    if result == z3.unknown:
        reason = solver.reason_unknown()
        if reason == KEYBOARD or (
                reason == CANCELED
                and time.monotonic() - started < timeout_ms / 1000 * _TIMEOUT_SHARE
                and (not rlimit or rlimit_count(solver) - spent_before < rlimit)):
            raise KeyboardInterrupt
    return result


def rlimit_count(solver: Any) -> int:
    """The resource units ``solver`` has spent so far (Z3 counts them across its checks)."""
    stats = solver.statistics()
    return int(stats.get_key_value("rlimit count")) if "rlimit count" in stats.keys() else 0
