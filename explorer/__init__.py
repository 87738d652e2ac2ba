"""nf-explorer's engine: analyse a sequential NF, shard its state, solve RSS keys, generate parallel
DPDK code and simulate per-core load. Pure Python; never imports Jupyter or plotting libraries."""

__version__ = "0.1.0"
