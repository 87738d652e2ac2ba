"""Code generation: the ParallelPlan as text (golden files), the NF's AST transformation per
strategy, the project printer's rules, and real compiles with warnings as errors.

Regenerate the golden files with NFX_UPDATE_GOLDEN=1 (then review the diff)."""
from __future__ import annotations

import difflib
import functools
import json
import os
import subprocess
from pathlib import Path

import pytest
from pycparser import c_ast, c_parser

from explorer import build, pipeline
from explorer.codegen import generate, parallel_plan, render, write_project
from explorer.codegen.compile import build_program
from explorer.codegen.planning import plan_from_dict
from explorer.codegen.transform import nf_ast, transform
from explorer.errors import ConfigError, GenerateError

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ("nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb")
SHARED_NOTHING = ("nop", "sbridge", "pol", "fw", "nat", "cl", "psd")
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


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NFX_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}: run with NFX_UPDATE_GOLDEN=1 to create it"
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "generated"))
        pytest.fail(f"{name} differs from its golden file (NFX_UPDATE_GOLDEN=1 to accept):\n{diff}")


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # sample paths in plans are relative, as users type them


# ---- the plan ---------------------------------------------------------------------------------

@pytest.mark.parametrize("nf,strategy", list(cases()))
def test_plan_text_matches_golden(nf, strategy):
    check_golden(f"{nf}-{strategy}.txt", plan(nf, strategy).text())


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
    # ice selects fields through rte_flow: one rule per packet type, keeping the *_ONLY flags
    assert [pattern for pattern, _ in p.steering[0].flow_rules] == ["eth / ipv4 / tcp", "eth / ipv4 / udp", "eth / ipv4"]
    assert not parallel_plan(solution("fw"), "sn", CORES).steering[0].flow_rules  # four fields: no selection needed


def test_seq_runs_on_one_core_and_with_cores_remaps_the_reta():
    seq = plan("fw", "seq")
    assert seq.cores == 1 and set(seq.steering[0].reta) == {0}
    two = plan("fw", "sn").with_cores(2)
    assert set(two.steering[0].reta) == {0, 1}
    with pytest.raises(GenerateError, match="one core"):
        seq.with_cores(2)


def test_plan_refuses_what_cannot_be_generated():
    with pytest.raises(GenerateError, match="cannot run shared-nothing.*p.ether.src"):
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


def test_overrides_are_the_defines_that_differ_from_the_defaults():
    s = pipeline.solve("sample_nfs/fw.c", {"FW_CAPACITY": "1024"}, cores=2)
    p = parallel_plan(s)
    assert p.overrides == (("FW_CAPACITY", "1024"),)
    assert "nf_sn_capacity(1024)" in transform(p).text  # the --define reaches the printed NF


# ---- the NF's transformation ------------------------------------------------------------------

def _parse_back(text: str) -> c_ast.FileAST:
    """Reparse printed C with stand-ins for the names nf.h and nf_parallel.h provide."""
    types = ("uint8_t", "uint16_t", "uint32_t", "uint64_t", "int32_t", "size_t", "nf_time_t", "_Bool")
    prelude = "".join(f"typedef int {t};\n" for t in types if t != "_Bool")
    return c_parser.CParser().parse(prelude + text.replace("_Bool", "int"), "nf.c")


def test_seq_prints_the_nf_unchanged_modulo_printing():
    p = plan("fw", "seq")
    nf = transform(p)
    assert nf.changes == ()
    printed = _parse_back(nf.text)
    names = [e.name for e in printed.ext if isinstance(e, c_ast.FuncDef) for e in [e.decl]]
    assert names == ["nf_init", "expiry_threshold", "from_lan", "from_wan", "nf_process"]
    assert "nf_map_allocate(sizeof(struct flow_key), 65536, &flows)" in nf.text
    assert "struct nf_ipv4_hdr\n{" not in nf.text  # nf.h's declarations are not copied


def test_sn_makes_globals_per_core_and_divides_capacities():
    nf = transform(plan("fw", "sn"))
    for handle in ("flows", "keys", "chain"):
        assert "static _Thread_local struct nf_" in nf.text and f"*{handle};" in nf.text
    assert "nf_map_allocate(sizeof(struct flow_key), nf_sn_capacity(65536), &flows)" in nf.text
    assert "nf_dchain_allocate(nf_sn_capacity(65536), &chain)" in nf.text
    assert "nf_sn_allocate_new_index(chain, &index, now)" in nf.text
    assert any("thread-local" in c and "flows" in c for c in nf.changes)
    sbridge = transform(plan("sbridge", "sn"))  # replicated tables keep their size
    assert "nf_sn_capacity" not in sbridge.text and "_Thread_local" in sbridge.text


def test_locks_reroute_the_calls_a_reader_pass_must_control():
    nf = transform(plan("bridge", "locks"))
    for call in ("nf_par_map_allocate", "nf_par_vector_allocate", "nf_par_dchain_allocate", "nf_par_vector_borrow",
                 "nf_par_vector_return", "nf_par_dchain_rejuvenate_index"):
        assert f"{call}(" in nf.text
    assert "nf_vector_borrow(" not in nf.text.replace("nf_par_vector_borrow(", "")
    assert "_Thread_local" not in nf.text  # one shared copy
    assert transform(plan("bridge", "tm")).text == nf.text  # tm differs in the runtime's locks only


def test_generated_nf_c_matches_golden():
    check_golden("fw-sn-nf.c", render(plan("fw", "sn"))["nf.c"].decode())
    check_golden("bridge-locks-nf.c", render(plan("bridge", "locks"))["nf.c"].decode())


def _nf_file(tmp_path, body: str) -> Path:
    path = tmp_path / "odd.c"
    path.write_text('#include "nf.h"\n' + body)
    return path


ODD_NF = """
static struct nf_map *table;
static struct nf_dchain *chain;
static bool alloc_map(struct nf_map **out) { return nf_map_allocate(4, 64, out); }
bool nf_init(void) { return alloc_map(&table) && nf_dchain_allocate(64, &chain); }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  int index;
  if (!nf_map_get(table, &ip->src_addr, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    nf_map_put(table, &ip->src_addr, index);
  }
  return device == 0 ? 1 : 0;
}
"""


def test_an_allocation_nfx_cannot_attribute_is_an_error_with_a_location(tmp_path, monkeypatch):
    path = _nf_file(tmp_path, ODD_NF)
    monkeypatch.chdir(tmp_path)
    s = pipeline.solve(str(path), cores=2)
    assert s.strategy == "shared-nothing"
    with pytest.raises(GenerateError) as caught:
        transform(parallel_plan(s))
    assert caught.value.location is not None and caught.value.location.file == str(path)
    assert "&<global handle>" in str(caught.value)


def test_taking_a_rewritten_function_s_address_is_refused(tmp_path, monkeypatch):
    """The analyser refuses function pointers; should one reach the printer anyway (here: the file
    changed after the analysis), the rewrite must not miss a call made through it."""
    body = ODD_NF.replace("alloc_map(&table)", "nf_map_allocate(4, 64, &table)")
    path = _nf_file(tmp_path, body)
    monkeypatch.chdir(tmp_path)
    p = parallel_plan(pipeline.solve(str(path), cores=2, strategy="locks"))
    path.write_text(path.read_text().replace(
        "static bool alloc_map(struct nf_map **out) { return nf_map_allocate(4, 64, out); }",
        "static void *(*borrow)(struct nf_vector *, int) = nf_vector_borrow;"))
    with pytest.raises(GenerateError, match="nf_vector_borrow is used other than by calling it") as caught:
        transform(p)
    assert caught.value.location.line == 5


def test_a_changed_source_is_detected(tmp_path, monkeypatch):
    path = _nf_file(tmp_path, ODD_NF.replace("alloc_map(&table)", "nf_map_allocate(4, 64, &table)"))
    monkeypatch.chdir(tmp_path)
    p = parallel_plan(pipeline.solve(str(path), cores=2))
    path.write_text(path.read_text().replace('#include "nf.h"\n', '#include "nf.h"\n#define EXTRA 3\n'))
    with pytest.raises(GenerateError, match="changed since it was analysed"):
        nf_ast(p)


# ---- the project -------------------------------------------------------------------------------

EXPECTED_FILES = {"Makefile", "README.md", "main.c", "nf.c", "nf.h", "nf_config.h", "nf_parallel.c", "nf_parallel.h",
                  "nf_plan.c", "nf_plan.h", "nf_runtime.h", "nf_state.c", "nf_trace.c", "nf_trace.h", "plan.json",
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
    assert "RTE_ETH_RSS_L4_DST_ONLY" in c and "NF_PATTERN_IPV4_TCP" in c and "_Static_assert" in c
    assert "ETH_RSS_" not in c.replace("RTE_ETH_RSS_", "")  # only the RTE_ETH_* names
    readme = first["README.md"].decode()
    assert "4096 of the 16384 entries" in readme and "per-core pools" in readme and "make" in readme
    assert "net_pcap0,rx_pcap=in/dev0-core0.pcap" in readme


# ---- compiles ---------------------------------------------------------------------------------

def _compile_only(folder: Path, source: str) -> subprocess.CompletedProcess:
    cflags, _ = build.dpdk_flags()
    return subprocess.run(["gcc", *build.BASE_FLAGS, f"-I{folder}", *cflags, "-c", str(folder / source), "-o",
                           os.devnull], capture_output=True, text=True)


@pytest.mark.dpdk
def test_every_generated_nf_compiles_with_warnings_as_errors(tmp_path):
    for nf, strategy in cases():
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


def test_unknown_build_target_and_sanitizer_are_config_errors(tmp_path):
    project = write_project(plan("nop", "sn"), tmp_path / "p")
    with pytest.raises(ConfigError, match="unknown target"):
        build_program(project, "kernel")
    with pytest.raises(ConfigError, match="bad sanitizer"):
        build_program(project, "replay", sanitize="thread,address")
