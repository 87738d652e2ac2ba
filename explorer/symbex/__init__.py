"""The path explorer: ``analyze(path, defines) -> explorer.ir.Analysis``.

It owns everything between the parsed C and the ``ir`` values: the C semantics (``ctype``,
``values``, ``memory``, ``literals``), the interpreter (``interpreter`` composing the visitors in
``statements``, ``expressions``, ``lvalues``, ``initializers``, ``static_types`` over one
``machine``), the models of nf.h's functions (``models``, one class per call), the search over
paths (``path_search``, ``state``, ``path_solver``, ``merging`` of paths that end a statement in the
same state), and turning finished paths into ``ir`` (``call_paths``, ``render``, ``fixed_values``
for terms simplified under their path, ``allocations`` for allocated values written into packets).
``bitvec`` and ``evaluate`` are the Z3 term helpers that later stages (sharding, simulation,
checking) reuse.

nf_init runs concretely (learning the state objects); nf_process runs symbolically over Z3
bit-vectors named after packet fields, forking at every branch both sides of which are feasible and
merging the paths through a statement that end in the same state.
"""
from explorer.symbex.path_search import analyze, analyze_parsed

__all__ = ["analyze", "analyze_parsed"]
