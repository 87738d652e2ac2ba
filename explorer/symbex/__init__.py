"""The path explorer: ``analyze(path, defines) -> explorer.ir.Analysis``.

nf_init runs concretely (learning the state objects); nf_process runs symbolically over Z3
bit-vectors named after packet fields, forking at every branch both sides of which are feasible.
"""
from explorer.symbex.path_search import analyze, analyze_parsed

__all__ = ["analyze", "analyze_parsed"]
