"""nf-explorer's engine: analyse a sequential NF, shard its state, solve RSS keys, generate parallel
DPDK code and simulate per-core load. Pure Python; never imports Jupyter or plotting libraries."""

import sys

__version__ = "0.1.0"

# pycparser descends once per nesting level and the analysis some five frames per `else if` of a
# chain: Python's default 1,000 frames refused a 200-rule chain. Raised once, when the engine is
# imported, so that what parses and what analyses never depends on what the process ran before
# (Python-to-Python calls use no C stack in 3.11; explorer threads may analyse, so it is never lowered).
RECURSION_LIMIT = 4000
if sys.getrecursionlimit() < RECURSION_LIMIT:
    sys.setrecursionlimit(RECURSION_LIMIT)
