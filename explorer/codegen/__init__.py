"""Parallel code generation: a ParallelPlan collected from a Solution (``planning``), the NF rewritten
for the strategy (``transform``), printed as the files of a DPDK project (``printer``), written to
a folder without clobbering anything nfx did not write (``project``) and built with gcc
(``compile``). Running, checking and measuring the project live in ``explorer.verify`` and
``explorer.bench``."""
from explorer.codegen.planning import STRATEGIES, ParallelPlan, parallel_plan
from explorer.codegen.printer import render
from explorer.codegen.project import GeneratedProject, write_project

__all__ = ["STRATEGIES", "GeneratedProject", "ParallelPlan", "generate", "parallel_plan", "render",
           "write_project"]


def generate(solution, out, strategy: str = "auto", cores=None, force: bool = False,
             replication: str = "lagged") -> GeneratedProject:
    """Write the DPDK project of ``solution`` for ``strategy`` into ``out`` (see write_project)."""
    return write_project(parallel_plan(solution, strategy, cores, replication), out, force=force)
