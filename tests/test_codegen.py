"""Code generation: the ParallelPlan as text (golden files), the project printer's rules, and real
compiles with warnings as errors (the NF's edits: test_codegen_transform; writing: test_codegen_writes).

Regenerate the golden files with NFX_UPDATE_GOLDEN=1 (then review the diff)."""
from __future__ import annotations

import functools
from collections import Counter
import json
import os
import subprocess
from pathlib import Path

import pytest

from explorer import build, pipeline
from explorer.codegen import generate, parallel_plan, render, write_project
from explorer.codegen.compile import build_program
from explorer.codegen.planning import plan_from_dict
from explorer.errors import ConfigError, GenerateError
from golden import compare

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ("nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb")
SHARED_NOTHING = ("nop", "sbridge", "pol", "fw", "nat", "cl", "psd", "lb")
GOLDEN = Path(__file__).parent / "golden" / "codegen"
CORES = 4


@functools.lru_cache(maxsize=None)
def solution(nf: str, locks: bool = False, cores: int = CORES):
    return pipeline.solve(f"sample_nfs/{nf}.c", cores=cores, strategy="locks" if locks else "auto")


def plan(nf: str, strategy: str, cores: int = CORES):
    return parallel_plan(solution(nf, strategy in ("locks", "tm"), cores), strategy, None if strategy == "seq" else cores)


def cases():
    for nf in SAMPLES:
        for strategy in ("seq", "sn", "locks", "tm"):
            if strategy != "sn" or nf in SHARED_NOTHING:
                yield nf, strategy


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # sample paths in plans are relative, as users type them


# ---- the plan ---------------------------------------------------------------------------------

@pytest.mark.parametrize("nf,strategy", list(cases()))
def test_plan_text_matches_golden(nf, strategy):
    compare(plan(nf, strategy).text(), GOLDEN / f"{nf}-{strategy}.txt")


def test_plan_divides_sharded_tables_only_for_sn():
    sn = plan("fw", "sn")
    assert [(o.name, o.capacity, o.per_core) for o in sn.objects] == [
        ("flows", 65536, 16384), ("keys", 65536, 16384), ("chain", 65536, 16384)]
    assert all(o.per_core == o.capacity for o in plan("fw", "locks").objects)
    sbridge = plan("sbridge", "sn")  # replicated: a full copy on every core
    assert all(o.decision == "replicate" and o.per_core == o.capacity for o in sbridge.objects)
    cl = plan("cl", "sn")  # a sketch's width is not an entry count
    assert cl.object("connections").per_core == cl.object("connections").capacity
    assert plan("fw", "sn").with_cores(3).object("flows").per_core == 21846  # rounded up


def test_plan_steering_comes_from_the_solution():
    s = solution("nat")
    p = parallel_plan(s, "sn", CORES)
    for d, steering in zip(s.plan.devices, p.steering):
        assert steering.key == d.key and steering.fields == d.fields and steering.rss_hf == d.rss_hf
        assert steering.reta == tuple(c % CORES for c in d.reta)
    assert p.key_bytes == 52 and p.reta_size == 512
    # ice selects fields through rte_flow: one rule per packet type, keeping the *_ONLY flags (the WAN
    # hashes the external port only: sharding by allocation)
    assert [pattern for pattern, _ in p.steering[1].flow_rules] == ["eth / ipv4", "eth / ipv4 / tcp", "eth / ipv4 / udp"]
    assert not parallel_plan(solution("fw"), "sn", CORES).steering[0].flow_rules  # four fields: no selection needed


@pytest.mark.parametrize("nf", ["fw", "nat"])
def test_a_plan_on_another_core_count_deals_the_reta_again(nf):
    """A 4-core solution built for 3 cores dealt entry % 3 (0,1,2,0: core 0 took half the traffic),
    and a 2-core solution built for 4 left cores 2 and 3 idle (bench builds every count it measures
    from one solution)."""
    for solved, built in ((4, 3), (2, 4), (4, 2)):
        p = parallel_plan(solution(nf, cores=solved), "sn", built)
        for steering in p.steering:
            entries = Counter(steering.reta)
            assert sorted(entries) == list(range(built)) and max(entries.values()) - min(entries.values()) <= 1
        assert len({s.reta for s in p.steering}) == 1  # one table for every device keeps the pair constraints
    same = parallel_plan(solution(nf), "sn", CORES)
    assert all(s.reta == d.reta for s, d in zip(same.steering, solution(nf).plan.devices))


def test_seq_runs_on_one_core_and_with_cores_remaps_the_reta():
    seq = plan("fw", "seq")
    assert seq.cores == 1 and set(seq.steering[0].reta) == {0}
    two = plan("fw", "sn").with_cores(2)
    assert set(two.steering[0].reta) == {0, 1}
    with pytest.raises(GenerateError, match="one core"):
        seq.with_cores(2)


def test_plan_refuses_what_cannot_be_generated():
    with pytest.raises(GenerateError, match="cannot run shared-nothing: macs: bridge.c:68 `nf_map_get.*src_mac"):
        parallel_plan(solution("bridge"), "sn")
    with pytest.raises(GenerateError, match="unknown strategy"):
        parallel_plan(solution("fw"), "fast")
    bad = pipeline.solve("sample_nfs/fw.c", cores=2, overrides={"flows": {0: ("src_ip",), 1: ("src_ip",)}})
    assert not bad.valid
    with pytest.raises(GenerateError, match="not correct"):
        parallel_plan(bad)


def test_plan_round_trips_through_json():
    p = plan("nat", "sn")
    assert plan_from_dict(json.loads(json.dumps(p.to_dict()))) == p


# ---- the project -------------------------------------------------------------------------------

EXPECTED_FILES = {"Makefile", "README.md", "main.c", "nf.c", "nf.h", "nf_config.h", "nf_parallel.c", "nf_parallel.h",
                  "nf_plan.c", "nf_plan.h", "nf_pool.c", "nf_pool.h", "nf_replica.c", "nf_replica.h", "nf_rss.h", "nf_runtime.h",
                  "nf_state.c", "nf_trace.c", "nf_trace.h", "plan.json",
                  "plan.txt", "replay.c"}


def test_render_is_deterministic_and_complete():
    first, second = render(plan("nat", "sn")), render(plan("nat", "sn"))
    assert first == second and set(first) == EXPECTED_FILES
    text = b"".join(first.values()).decode()
    for clock in ("2026", "2025", "UTC", "generated at"):
        assert clock not in text  # no timestamps
    header = first["nf_plan.h"].decode()
    assert "#define NF_STRATEGY NF_STRATEGY_SN" in header and "#define NF_CORES 4" in header
    assert "#define NF_KEY_BYTES 52" in header and "#define NF_RETA_SIZE 512" in header
    c = first["nf_plan.c"].decode()
    assert "NF_RSS_L4_DST_ONLY" in c and "NF_PATTERN_IPV4_TCP" in c and "_Static_assert" in c
    assert "#include <rte_" not in c  # the plan's tables need none of DPDK's headers (0.7 s of gcc)
    assert '.rss_hf = NF_RSS_IPV4 | ' in c and '.rss_hf_names = "RTE_ETH_RSS_IPV4 | ' in c  # messages: DPDK's names
    readme = first["README.md"].decode()
    assert "4096 of the 16384 entries" in readme and "per-core pools" in readme and "make" in readme
    assert "net_pcap0,rx_pcap=in/dev0-core0.pcap" in readme


# ---- compiles ---------------------------------------------------------------------------------

@pytest.mark.dpdk
def test_nf_rss_h_holds_the_solvers_values_and_dpdks(tmp_path):
    """nf_rss.h's NF_RSS_* names carry the values the planner computes with (RSS_HF_BITS), and
    DPDK's: a generated nf_plan.c asserts the first for the names it uses, main.c the second."""
    from explorer.codegen.printer import COPIED
    from explorer.rss.nic import RSS_HF_BITS

    checks = "".join(f"_Static_assert(NF_RSS_{n.removeprefix('RTE_ETH_RSS_')} == UINT64_C({bit}) && "
                     f"NF_RSS_{n.removeprefix('RTE_ETH_RSS_')} == {n}, \"{n}\");\n" for n, bit in RSS_HF_BITS.items())
    probe = tmp_path / "probe.c"
    probe.write_text(f'#include <rte_ethdev.h>\n#include "nf_rss.h"\n{checks}')
    cflags, _ = build.dpdk_flags()
    done = subprocess.run(["gcc", *build.BASE_FLAGS, f"-I{COPIED['nf_rss.h'].parent}", *cflags, "-c", str(probe),
                           "-o", os.devnull], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _compile_only(folder: Path, source: str) -> subprocess.CompletedProcess:
    cflags, _ = build.dpdk_flags()
    return subprocess.run(["gcc", *build.BASE_FLAGS, f"-I{folder}", *cflags, "-c", str(folder / source), "-o",
                           os.devnull], capture_output=True, text=True)


@pytest.mark.dpdk
@pytest.mark.parametrize("nf,strategy", list(cases()))
def test_every_generated_nf_compiles_with_warnings_as_errors(tmp_path, nf, strategy):
    folder = write_project(plan(nf, strategy), tmp_path / f"{nf}-{strategy}").folder
    for source in ("nf.c", "nf_plan.c"):
        done = _compile_only(folder, source)
        assert done.returncode == 0, f"{nf} {strategy} {source}:\n{done.stderr}"


@pytest.mark.dpdk
@pytest.mark.parametrize("nf,strategy", [("nat", "seq"), ("nat", "sn"), ("bridge", "locks"), ("lb", "tm")])
def test_both_programs_build_with_warnings_as_errors(tmp_path, nf, strategy):
    project = write_project(plan(nf, strategy), tmp_path / "p")
    for target in ("replay", "nf"):
        binary = build_program(project, target)
        assert binary.is_file() and os.access(binary, os.X_OK)
    info = subprocess.run([str(build_program(project, "replay")), "--info"], capture_output=True, text=True)
    assert info.stdout.split() == ["NF_DEVICES=2", f"NF_CORES={project.plan.cores}", f"NF_STRATEGY={strategy}"]


@pytest.mark.dpdk
def test_the_generated_makefile_builds_the_project(tmp_path):
    project = generate(solution("fw", cores=2), tmp_path / "p", cores=2)
    done = subprocess.run(["make", "-s", "-j2", "-C", str(project.folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (project.folder / "nfx-nf").is_file() and (project.folder / "nfx-replay").is_file()


@pytest.mark.dpdk
def test_the_makefile_and_nfx_build_the_nf_with_the_same_flags(tmp_path):
    """The Makefile is copied as is, so it spells the NF's flags out again: they must stay nfx's
    (``build.NF_FLAGS``), or a project would build under nfx and fail under make, or the reverse."""
    from explorer import build

    project = generate(solution("fw", cores=2), tmp_path / "p", cores=2)
    done = subprocess.run(["make", "-n", "-B", "-C", str(project.folder), "nf.o"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if " -c -o nf.o nf.c" in x)
    flags = [f for f in line.split() if f.startswith(("-Wno-", "-Werror"))]
    assert flags == ["-Werror", *build.NF_FLAGS]


def test_unknown_build_target_and_sanitizer_are_config_errors(tmp_path):
    project = write_project(plan("nop", "sn"), tmp_path / "p")
    with pytest.raises(ConfigError, match="unknown target"):
        build_program(project, "kernel")
    with pytest.raises(ConfigError, match="bad sanitizer"):
        build_program(project, "replay", sanitize="thread,address")
