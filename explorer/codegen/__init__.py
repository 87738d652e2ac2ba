"""Parallel code generation: a ParallelPlan collected from a Solution, then printed as a DPDK project
(``generate``), replayed on traces (``run_replay``), checked against the sequential NF (``check``)
and benchmarked (``bench``)."""
from explorer.codegen.plan import STRATEGIES, ParallelPlan, parallel_plan
from explorer.codegen.project import GeneratedProject, render, write_project

__all__ = ["STRATEGIES", "GeneratedProject", "ParallelPlan", "generate", "parallel_plan", "render",
           "write_project"]


def generate(solution, out, strategy: str = "auto", cores=None, force: bool = False) -> GeneratedProject:
    """Write the DPDK project of ``solution`` for ``strategy`` into ``out`` (see write_project)."""
    return write_project(parallel_plan(solution, strategy, cores), out, force=force)
