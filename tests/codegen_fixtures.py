"""Solutions, traces and generated projects shared by the code-generation tests (cached: solving
and generating traffic once per argument set keeps those test files fast). Paths are relative to
the repository root, which the tests make their working directory."""
from __future__ import annotations

import functools

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.traffic.generators import generate
from explorer.traffic.trace import Trace


@functools.lru_cache(maxsize=None)
def solution(nf: str, strategy: str = "auto", cores: int = 4, defines: tuple = ()):
    return pipeline.solve(f"sample_nfs/{nf}.c", dict(defines), cores=cores, strategy=strategy)


@functools.lru_cache(maxsize=None)
def traffic(kind: str = "mixed", packets: int = 5000, seed: int = 3, packets_per_flow: int = 10) -> Trace:
    """Seeded traffic; ``mixed`` has every generator kind, non-IP frames, fragments and IP options,
    ``heartbeat`` lb.c's clients and backends (the generator's defaults match lb.c's)."""
    return generate(kind, packets=packets, flows=packets // packets_per_flow, seed=seed)


def project(tmp_path, nf: str, strategy: str, cores: int):
    """The generated project of a sample NF for ``strategy`` on ``cores`` cores."""
    plan = parallel_plan(solution(nf, "locks" if strategy in ("locks", "tm") else "auto"), strategy,
                         None if strategy == "seq" else cores)
    return write_project(plan, tmp_path / f"{nf}-{strategy}-{cores}")


def pcap_vdevs(plan, trace: Trace, folder) -> list[str]:
    """EAL ``--vdev`` arguments giving each device of ``plan`` one net_pcap rx/tx pair per core: the
    trace split by the plan's software RSS into ``folder/in``, outputs to ``folder/out``."""
    from explorer.verify.split import split_trace

    split_trace(plan, trace, folder / "in")
    (folder / "out").mkdir(parents=True, exist_ok=True)
    vdevs = []
    for d in range(plan.devices):
        rx = ",".join(f"rx_pcap={folder / 'in' / f'dev{d}-core{c}.pcap'}" for c in range(plan.cores))
        tx = ",".join(f"tx_pcap={folder / 'out' / f'dev{d}-core{c}.pcap'}" for c in range(plan.cores))
        vdevs += ["--vdev", f"net_pcap{d},{rx},{tx}"]
    return vdevs
