"""State handles kept the ways C programmers keep them: members of a global struct set through a
pointer to it, arrays of handles filled in a loop, handles handed to helpers. The analysis names
each object by the handle's C lvalue (``st.flows``, ``tables[1]``), generate finds the allocation
of each again (by its argument, or by its location when a loop or a helper allocates it), and the
parallel build stays equivalent (tests/nfs/handle_struct.c, tests/nfs/handle_array.c)."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan
from explorer.codegen.transform import transform
from explorer.errors import UnsupportedError
from explorer.explain import field_name
from explorer.graph import access_graph
from explorer.verify.equivalence import check

import codegen_fixtures as fixtures

ROOT = Path(__file__).resolve().parent.parent
NFS = ROOT / "tests" / "nfs"


def test_members_of_a_global_struct_name_the_objects():
    analysis = pipeline.analyze(NFS / "handle_struct.c")
    assert [o.name for o in analysis.objects] == ["st.flows", "st.keys", "st.chain"]
    reused = next(a for p in analysis.paths for a in p.accesses if a.call == "nf_dchain_rejuvenate_index")
    assert reused.object == "st.chain" and reused.key_text.startswith("st.flows.value#")
    assert field_name(reused.key_text) == "a value from st.flows"
    edges = [line for line in access_graph(analysis).splitlines() if "index of" in line]
    assert any(line.startswith('  "obj:st.flows" -> "obj:st.chain"') for line in edges), edges


def test_the_struct_shards_like_separate_globals():
    struct = pipeline.solve(NFS / "handle_struct.c", cores=4)
    plain = pipeline.solve(NFS / "fw_ifelse.c", cores=4)
    assert struct.strategy == plain.strategy == "shared-nothing"
    assert [(o.name, o.decision, o.reason.replace("st.", "")) for o in struct.sharding.objects] == \
        [("st." + o.name, o.decision, o.reason) for o in plain.sharding.objects]


def test_arrays_of_handles_filled_in_a_loop_name_each_element():
    analysis = pipeline.analyze(NFS / "handle_array.c")
    assert [o.name for o in analysis.objects] == ["tables[0]", "counts[0]", "chains[0]",
                                                  "tables[1]", "counts[1]", "chains[1]"]
    assert {a.object for p in analysis.paths if p.devices == (1,) for a in p.accesses} == \
        {"tables[1]", "counts[1]", "chains[1]"}


@pytest.mark.parametrize("declared,argument,where", [
    ("static uint64_t raw;", "(struct nf_map **)&raw", "a uint64_t"),
    ("static struct { uint32_t a, b; } pair;", "(struct nf_map **)&pair", "two uint32_t"),
    ("static union { struct nf_map *m; uint64_t raw; } u;", "&u.m", "a union's member"),
])
def test_a_handle_stored_where_no_pointer_is_named_is_refused_with_its_location(tmp_path, declared, argument,
                                                                                 where):
    nf = tmp_path / "odd_handle.c"
    nf.write_text(f'#include "nf.h"\n{declared}\nbool nf_init(void) {{\n'
                  f'  return nf_map_allocate(4, 4, {argument});\n}}\n'
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) { return 0; }\n")
    with pytest.raises(UnsupportedError, match="must store the handle in a global pointer variable or a pointer "
                                               "member") as caught:
        pipeline.analyze(nf)
    assert (caught.value.location.line, caught.value.location.col) == (4, 10), where


def test_a_nat_with_its_handles_in_a_struct_shards_by_allocation_like_cone_nat():
    struct = pipeline.solve(NFS / "handle_nat.c", cores=4)
    plain = pipeline.solve(NFS / "cone_nat.c", cores=4)
    assert [(o.name, o.decision, o.fields) for o in struct.sharding.objects] == \
        [("nat." + o.name, o.decision, o.fields) for o in plain.sharding.objects]
    plan = parallel_plan(struct, "sn", 2)
    assert plan.object("nat.ports").pool >= 0
    assert "nf_pool_dchain_allocate(0, CONE_CAPACITY, out)" in transform(plan).text  # in the helper


@pytest.mark.dpdk
@pytest.mark.parametrize("nf", ["handle_struct", "handle_array", "handle_nat"])
@pytest.mark.parametrize("cores", [2, 3])
def test_handles_in_structs_and_arrays_stay_equivalent(nf, cores):
    solution = pipeline.solve(NFS / f"{nf}.c", cores=cores)
    report = check(solution, fixtures.traffic("bidir", 4000, 1, packets_per_flow=20), cores)
    assert report.verdict == "equivalent", report.render()
