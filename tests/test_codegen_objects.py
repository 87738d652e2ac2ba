"""A generated project's objects in the build cache, keyed by their preprocessed text: the replay
and DPDK programs of one plan share seven of them, plans that differ only in comments share all,
and a change that reaches the code (a define, a macro) compiles anew."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.codegen.compile import COMMON, build_program
from explorer.errors import BuildError

pytestmark = pytest.mark.dpdk


@pytest.fixture
def objects(tmp_path, monkeypatch):
    """The names of the object entries in a private cache (a function: it reads the folder each call)."""
    monkeypatch.setenv("NFX_CACHE", str(tmp_path / "cache"))
    return lambda: sorted(p.name.rpartition("-")[0] for p in (tmp_path / "cache" / "obj").iterdir())


@pytest.fixture
def project(tmp_path):
    plan = parallel_plan(pipeline.solve("sample_nfs/fw.c", cores=2), "sn", 2)
    return write_project(plan, tmp_path / "fw").folder


def info(program: Path) -> list[str]:
    return subprocess.run([str(program), "--info"], capture_output=True, text=True, check=True).stdout.split()


def test_the_dpdk_program_compiles_only_its_driver_after_the_replay(project, objects):
    build_program(project, "replay")
    assert objects() == sorted(["replay", *(Path(s).stem for s in COMMON)])
    build_program(project, "nf")
    assert objects() == sorted(["main", "replay", *(Path(s).stem for s in COMMON)])


def test_a_plan_that_differs_in_comments_reuses_every_object_and_still_runs(project, objects, tmp_path):
    first = build_program(project, "replay")
    other = tmp_path / "other"
    shutil.copytree(project, other)
    config = other / "nf_config.h"
    config.write_text("/* a longer comment\n   over two lines */\n" + config.read_text())
    second = build_program(other, "replay")
    assert second != first  # a program of its own (the whole-program key covers every byte)...
    assert len(objects()) == 8  # ...linked from the same objects
    assert info(second) == info(first) == ["NF_DEVICES=2", "NF_CORES=2", "NF_STRATEGY=sn"]


def test_a_define_or_a_macro_that_reaches_the_code_compiles_anew(project, objects):
    build_program(project, "replay")
    build_program(project, "replay", defines=["NF_TEST_FAULT_NO_WRITE_LOCK"])
    assert len(objects()) > 8
    before = len(objects())
    plan_h = project / "nf_plan.h"
    plan_h.write_text(plan_h.read_text().replace("#define NF_CORES 2\n", "#define NF_CORES 3\n"))
    assert "NF_CORES=3" in info(build_program(project, "replay"))
    assert len(objects()) > before


def test_an_error_in_a_generated_file_names_it_by_its_full_path(project, objects):
    with (project / "nf_pool.c").open("a") as handle:
        handle.write("\nint broken(void) { return nothing_here; }\n")
    with pytest.raises(BuildError) as raised:
        build_program(project, "replay")
    assert raised.value.location is not None and raised.value.location.file == str(project / "nf_pool.c")
    assert "nothing_here" in str(raised.value)
