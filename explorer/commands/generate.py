"""``nfx generate NF.c -o DIR [--strategy auto|seq|sn|locks|tm] [--nic P] [--cores N] [--define K=V]
[--force] [--override OBJ=shard|replicate|lock ...]``: write the parallel DPDK project of an NF (see explorer.codegen)."""
from __future__ import annotations

import shlex

from explorer.codegen import generate
from explorer.commands.options import check_cores, parse_defines, solve_nf


def main(args) -> int:
    defines = parse_defines(args.define)
    check_cores(args.cores)
    solve_as = args.strategy if args.strategy in ("sn", "locks", "tm") else "auto"
    solution = solve_nf(args, defines, solve_as)
    project = generate(solution, args.out, strategy=args.strategy, force=args.force, replication=args.replication)
    plan = project.plan
    written = [name for name in project.changed if name in project.files]
    print(f"{plan.nf}: {plan.strategy} on {plan.cores} core{'s' if plan.cores != 1 else ''}, NIC {plan.nic}: "
          f"wrote {len(written)} of {len(project.files)} files in {project.folder} "
          f"({len(project.files) - len(written) - len(project.kept)} unchanged)")
    for name in project.kept:
        print(f"kept {project.folder / name}: nfx did not write it, or it changed since; the new version is "
              f"{project.folder / (name + '.new')}")
    for name in project.removed:
        print(f"removed {project.folder / name}: an earlier generation wrote it, this one does not")
    print(plan.text().rstrip())
    print(f"build with: make -C {shlex.quote(str(project.folder))}")  # a line to paste into a shell
    return 0
