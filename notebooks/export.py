# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Export: generate the parallel DPDK project, then check it
#
# `pipeline.generate` writes a DPDK 22.11 project for a solution; `pipeline.check` builds it and the
# sequential NF, runs both on the same seeded trace, and compares every packet's verdict and bytes.

# %%
import os
from pathlib import Path

from explorer import pipeline
from explorer.errors import GenerateError

NFS = Path("../sample_nfs")  # relative: outputs name no machine-specific path
OUT = Path(os.environ.get("NFX_OUT", "../out")).resolve()

fw = pipeline.solve(NFS / "fw.c", cores=2, quality=False)
project = pipeline.generate(fw, OUT / "fw-sn")  # a folder nfx did not create is refused, never overwritten
print(project.folder.name)
for name in project.files:
    print(" ", name)
assert {"Makefile", "main.c", "nf.c", "nf_plan.c", "nf_plan.h", "README.md"} <= set(project.files)

# %% [markdown]
# The plan the program starts with: the strategy and core count, and each port's solved key.

# %%
plan_h = (project.folder / "nf_plan.h").read_text()
print(plan_h)
assert "#define NF_STRATEGY NF_STRATEGY_SN" in plan_h and "#define NF_CORES 2" in plan_h

plan_c = "".join((project.folder / "nf_plan.c").read_text().split())  # without whitespace
for device, port in sorted(fw.to_dict()["devices"].items()):
    key = bytes.fromhex(port["key"])
    assert ",".join(f"0x{b:02x}" for b in key) in plan_c, f"device {device}'s key is not in nf_plan.c"

# %% [markdown]
# ## Check: the parallel build against the sequential NF
#
# Two cores, bidirectional traffic: every reply must find the flow its request recorded, on its core.

# %%
report = pipeline.check(fw, "bidir", cores=2)
print(report.render())
assert report.equivalent and report.packets > 0 and len(report.per_core) == 2

# %% [markdown]
# An NF with global state that only rare packets write keeps a copy of it on every core, and those
# writes are broadcast to the other cores: the load balancer, on heartbeat and client traffic, with
# strict replication (every write is on every core before the packet that made it completes).

# %%
lb = pipeline.solve(NFS / "lb.c", cores=2, quality=False)
report = pipeline.check(lb, "heartbeat", cores=2, replication="strict")
print("\n".join(report.render().splitlines()[:2]))
assert report.strategy == "sn" and report.equivalent and report.writes > 0 and report.lag_differences == 0

# %% [markdown]
# An NF whose state cannot be sharded is generated with locks and checked the same way: the
# learning bridge keys its table by MAC addresses, which RSS cannot hash.

# %%
bridge = pipeline.solve(NFS / "bridge.c", cores=2, quality=False)
report = pipeline.check(bridge, "uniform", cores=2)
print(report.strategy, report.verdict)  # how often the cores raced differs from run to run: not shown
assert report.strategy == "locks" and report.equivalent

# %% [markdown]
# A solution the solver showed to be wrong (an override that splits the flow table) is never exported:

# %%
split = pipeline.solve(NFS / "fw.c", cores=2, quality=False, overrides={"flows": {0: ("src_ip",), 1: ("src_ip",)}})
try:
    pipeline.generate(split, OUT / "fw-split")
    raise AssertionError("an incorrect sharding must not be generated")
except GenerateError as error:
    print("refused:", error)
assert not (OUT / "fw-split").exists()
