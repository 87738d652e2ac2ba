"""Writing a generated project: only what nfx wrote is ever replaced or removed (content hashes in
.nfx-generated), never through a symlink, never into a system folder, never over the input NF or a
file the user edited; a new folder appears whole, and a full disk keeps the OS's words."""
from __future__ import annotations

import errno
import functools
import json
import os
import shutil
from pathlib import Path

import pytest

from explorer import pipeline
from explorer.cli import main
from explorer.codegen import parallel_plan, render, write_project
from explorer.codegen.compile import build_program
from explorer.codegen.project import MARKER, is_complete, read_marker
from explorer.errors import BuildError, GenerateError, OutputError
from explorer.outputs import digest

ROOT = Path(__file__).resolve().parent.parent
FILES = {"Makefile", "README.md", "main.c", "nf.c", "nf.h", "nf_config.h", "nf_parallel.c", "nf_parallel.h",
         "nf_plan.c", "nf_plan.h", "nf_pool.c", "nf_pool.h", "nf_replica.c", "nf_replica.h", "nf_rss.h", "nf_runtime.h",
         "nf_state.c", "nf_trace.c", "nf_trace.h", "plan.json", "plan.txt", "replay.c"}


@functools.lru_cache(maxsize=None)
def plan(cores: int = 2):
    return parallel_plan(pipeline.solve(str(ROOT / "sample_nfs" / "fw.c"), cores=4), "sn", cores)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry under ``folder``, links as their target's name (so a test sees any change)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        out[key] = b"-> " + os.readlink(path).encode() if path.is_symlink() else (
            path.read_bytes() if path.is_file() else b"<dir>")
    return out


def full_disk_after(monkeypatch, calls: int, name: str = "replace"):
    """Let ``calls`` renames through, then fail the way a full disk does."""
    real = getattr(os, name)
    count = {"n": 0}

    def fake(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, fake)


# ---- a new folder ------------------------------------------------------------------------------

def test_a_new_folder_appears_whole_with_every_file_s_hash(tmp_path):
    out = tmp_path / "deep" / "proj"
    project = write_project(plan(), out)
    assert set(project.changed) == FILES == set(project.files) and project.kept == ()
    marker = json.loads((out / MARKER).read_text())
    assert marker["complete"] is True
    assert marker["files"] == {name: [digest((out / name).read_bytes())] for name in FILES}
    assert sorted(p.name for p in out.parent.iterdir()) == ["proj"]  # no staging folder left


def test_a_full_disk_leaves_no_folder_and_keeps_the_os_words(tmp_path, monkeypatch):
    full_disk_after(monkeypatch, 5)
    with pytest.raises(OutputError, match="No space left on device"):
        write_project(plan(), tmp_path / "proj")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_the_final_rename_leaves_nothing(tmp_path, monkeypatch):
    full_disk_after(monkeypatch, 0, "rename")
    with pytest.raises(OutputError, match="No space left on device"):
        write_project(plan(), tmp_path / "proj")
    assert list(tmp_path.iterdir()) == []


# ---- an existing folder ------------------------------------------------------------------------

def test_rewriting_the_same_project_touches_nothing(tmp_path):
    out = tmp_path / "proj"
    write_project(plan(), out)
    stamps = {f: (out / f).stat().st_mtime_ns for f in [*FILES, MARKER]}
    again = write_project(plan(), out)
    assert again.changed == () and again.kept == () and again.removed == ()
    assert {f: (out / f).stat().st_mtime_ns for f in [*FILES, MARKER]} == stamps
    other = write_project(plan(4), out)
    assert set(other.changed) == {"nf_plan.h", "nf_plan.c", "plan.txt", "plan.json", "README.md"}
    assert json.loads((out / MARKER).read_text())["files"]["plan.txt"] == [digest(render(plan(4))["plan.txt"])]


def test_a_folder_nfx_did_not_create_needs_force_and_keeps_the_user_s_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    (tmp_path / "Makefile").write_text("all:\n\techo mine\n")
    with pytest.raises(GenerateError, match="not empty and nfx did not create it"):
        write_project(plan(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "mine.txt"]
    project = write_project(plan(), tmp_path, force=True)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert (tmp_path / "Makefile").read_text() == "all:\n\techo mine\n"  # not ours: kept
    assert project.kept == ("Makefile",) and (tmp_path / "Makefile.new").read_bytes() == render(plan())["Makefile"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(GenerateError, match="not a folder"):
        write_project(plan(), tmp_path / "file")


def test_a_file_the_user_edited_is_never_clobbered(tmp_path):
    out = tmp_path / "proj"
    write_project(plan(), out)
    edited = (out / "nf.c").read_text() + "/* my change */\n"
    (out / "nf.c").write_text(edited)
    before = snapshot(out)
    # what a caller (the explorer) asks about before it writes: the edits, before and after a forced write
    assert pipeline.project_in(out) == {"nf": "fw", "strategy": "sn", "edited": ["nf.c"]}
    with pytest.raises(GenerateError, match=r"nf.c changed since nfx wrote it.*--force.*nf.c.new"):
        write_project(plan(4), out)
    assert snapshot(out) == before  # refused before writing anything
    project = write_project(plan(4), out, force=True)
    assert project.kept == ("nf.c",) and "nf.c.new" in project.changed
    assert (out / "nf.c").read_text() == edited
    assert (out / "nf.c.new").read_bytes() == render(plan(4))["nf.c"]
    assert (out / "plan.txt").read_bytes() == render(plan(4))["plan.txt"]  # the others are updated
    assert pipeline.project_in(out)["edited"] == ["nf.c"]  # kept, with nf.c.new recorded beside it
    # the user takes the new version: nf.c.new, which nfx wrote, goes
    (out / "nf.c").unlink()
    again = write_project(plan(4), out)
    assert again.kept == () and again.removed == ("nf.c.new",) and not (out / "nf.c.new").exists()
    assert pipeline.project_in(out)["edited"] == []
    assert (out / "nf.c").read_bytes() == render(plan(4))["nf.c"]


def test_a_name_nfx_needs_for_the_new_version_is_not_clobbered_either(tmp_path):
    out = tmp_path / "proj"
    write_project(plan(), out)
    (out / "nf.c").write_text("mine\n")
    (out / "nf.c.new").write_text("also mine\n")
    with pytest.raises(GenerateError, match="nf.c.new exists and nfx did not write it"):
        write_project(plan(), out, force=True)
    assert (out / "nf.c.new").read_text() == "also mine\n"


@pytest.mark.parametrize("name", [MARKER, "nf.c", "Makefile"])
def test_a_symlink_planted_in_the_project_is_refused(tmp_path, name):
    out = tmp_path / "proj"
    write_project(plan(), out)
    victim = tmp_path / "victim"
    victim.write_text('{"files": {}}\n')
    (out / name).unlink()
    (out / name).symlink_to(victim)
    before = snapshot(out)
    for force in (False, True):
        with pytest.raises(OutputError, match="symbolic link"):
            write_project(plan(4), out, force=force)
        assert victim.read_text() == '{"files": {}}\n' and snapshot(out) == before


def test_a_folder_where_a_project_file_belongs_is_refused(tmp_path):
    out = tmp_path / "proj"
    write_project(plan(), out)
    (out / "plan.txt").unlink()
    (out / "plan.txt").mkdir()
    with pytest.raises(OutputError, match="not a regular file"):
        write_project(plan(4), out, force=True)


def test_a_forged_marker_deletes_nothing(tmp_path):
    out = tmp_path / "proj"
    write_project(plan(), out)
    outside = tmp_path / "outside.c"
    outside.write_text("int keep;\n")
    (out / "notes.txt").write_text("mine\n")
    (out / "old.c").write_text("int old;\n")
    names = ["notes.txt", "../outside.c", str(outside), "old.c", "", ".", ".."]
    for forged in ({"files": names}, {"files": {n: ["0" * 64] for n in names}}, {"files": {n: "x" for n in names}}):
        (out / MARKER).write_text(json.dumps(forged))
        write_project(plan(), out, force=True)
        assert outside.read_text() == "int keep;\n"
        assert (out / "notes.txt").read_text() == "mine\n" and (out / "old.c").read_text() == "int old;\n"


def test_only_files_whose_hash_matches_the_marker_are_removed(tmp_path):
    out = tmp_path / "proj"
    write_project(plan(), out)
    marker = json.loads((out / MARKER).read_text())
    (out / "old.c").write_text("int old;\n")  # written by an earlier generation, unchanged since
    (out / "older.c").write_text("int older; /* edited */\n")  # written by nfx, edited since
    marker["files"]["old.c"] = [digest(b"int old;\n")]
    marker["files"]["older.c"] = [digest(b"int older;\n")]
    (out / MARKER).write_text(json.dumps(marker))
    project = write_project(plan(), out)
    assert project.removed == ("old.c",) and not (out / "old.c").exists()
    assert (out / "older.c").read_text() == "int older; /* edited */\n"
    assert set(read_marker(out)) == FILES


def test_a_full_disk_during_an_update_is_finished_by_the_next_run(tmp_path, monkeypatch):
    out = tmp_path / "proj"
    write_project(plan(), out)
    with monkeypatch.context() as patch:
        full_disk_after(patch, 3)  # the in-progress marker and two files, then the disk is full
        with pytest.raises(OutputError, match="No space left on device"):
            write_project(plan(4), out)
    assert not is_complete(out)
    with pytest.raises(BuildError, match="not completely written"):
        build_program(out)
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    project = write_project(plan(4), out)  # no --force needed: the half-written files are nfx's
    assert project.kept == () and is_complete(out)
    assert {f: (out / f).read_bytes() for f in FILES} == render(plan(4))


# ---- where a project may go --------------------------------------------------------------------

def test_system_folders_are_refused_even_with_force(tmp_path, monkeypatch):
    def no_writes(*_args, **_kwargs):
        raise AssertionError("tried to write into a system folder")

    monkeypatch.setattr("explorer.codegen.project.write_atomic", no_writes)
    monkeypatch.setattr("explorer.codegen.project.staged_folder", no_writes)
    for folder in ("/", "/etc", "/usr", "/tmp/../usr/"):
        for force in (False, True):
            with pytest.raises(OutputError, match="system folder"):
                write_project(plan(), folder, force=force)


def test_cli_refuses_the_root_folder(capsys, monkeypatch):
    monkeypatch.setattr("explorer.codegen.project.write_atomic", None)  # any write would be a TypeError
    assert main(["generate", str(ROOT / "sample_nfs" / "nop.c"), "-o", "/", "--force"]) == 1
    err = capsys.readouterr().err
    assert "system folder" in err and "Traceback" not in err


def test_force_in_the_nf_s_own_folder_never_overwrites_the_input(tmp_path, monkeypatch, capsys):
    nf = tmp_path / "nf.c"  # an NF named like the project's own nf.c
    shutil.copy(ROOT / "sample_nfs" / "fw.c", nf)
    (tmp_path / "README.md").write_text("my notes\n")
    original = nf.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "nf.c", "-o", ".", "--cores", "2"]) == 1
    assert "not empty and nfx did not create it" in capsys.readouterr().err
    assert main(["generate", "nf.c", "-o", ".", "--cores", "2", "--force"]) == 0
    out = capsys.readouterr().out
    assert "kept nf.c" in out and "nf.c.new" in out and "kept README.md" in out
    assert nf.read_bytes() == original and (tmp_path / "README.md").read_text() == "my notes\n"
    assert (tmp_path / "nf.c.new").is_file() and (tmp_path / "plan.txt").is_file()
    # even when the marker vouches for the input's bytes, the input is not replaced
    marker = json.loads((tmp_path / MARKER).read_text())
    marker["files"]["nf.c"] = [digest(original)]
    (tmp_path / MARKER).write_text(json.dumps(marker))
    assert main(["generate", "nf.c", "-o", ".", "--cores", "4", "--force"]) == 0
    assert nf.read_bytes() == original


def test_cli_generate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["generate", "sample_nfs/fw.c", "-o", str(tmp_path / "p"), "--cores", "2"]) == 0
    out = capsys.readouterr().out
    assert "fw: sn on 2 cores" in out and f"wrote {len(FILES)} of {len(FILES)} files" in out and "make -C" in out
    assert main(["generate", "sample_nfs/fw.c", "-o", str(tmp_path / "p"), "--cores", "2"]) == 0
    assert f"wrote 0 of {len(FILES)} files" in capsys.readouterr().out
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "x").write_text("x")
    assert main(["generate", "sample_nfs/fw.c", "-o", str(tmp_path / "q")]) == 1
    assert "use --force" in capsys.readouterr().err
    assert main(["generate", "sample_nfs/bridge.c", "-o", str(tmp_path / "r"), "--strategy", "sn"]) == 1
    assert "cannot run shared-nothing" in capsys.readouterr().err
    assert main(["generate", "sample_nfs/nat.c", "-o", str(tmp_path / "s"), "--strategy", "seq",
                 "--define", "NAT_CAPACITY=2048"]) == 0
    assert "#define NF_CORES 1" in (tmp_path / "s" / "nf_plan.h").read_text()
    assert "#define NAT_CAPACITY 2048\n" in (tmp_path / "s" / "nf_config.h").read_text()


# ---- the NF's headers in subfolders ------------------------------------------------------------

def _split_fw(folder: Path, header: str = "inc/ports.h"):
    """fw with its device numbers in a header of a subfolder; its sn plan on 2 cores."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "sample_nfs" / "fw.c").read_text()
    if header:
        (folder / header).parent.mkdir(parents=True, exist_ok=True)
        (folder / header).write_text("#define LAN 0\n#define WAN 1\n")
        text = text.replace("#define LAN 0\n#define WAN 1\n", f'#include "{header}"\n')
    (folder / "fw.c").write_text(text)
    return parallel_plan(pipeline.solve(str(folder / "fw.c"), cores=2), "sn", 2)


def test_a_header_in_a_subfolder_is_written_recorded_and_removed_with_its_folder(tmp_path):
    out = tmp_path / "proj"
    project = write_project(_split_fw(tmp_path / "nf"), out)
    assert "inc/ports.h" in project.files and (out / "inc" / "ports.h").read_text() == "#define LAN 0\n#define WAN 1\n"
    assert set(read_marker(out)) == FILES | {"inc/ports.h"}
    project = write_project(_split_fw(tmp_path / "nf", header=""), out)  # the NF no longer includes it
    assert project.removed == ("inc/ports.h",) and not (out / "inc").exists()
    assert set(read_marker(out)) == FILES


def test_a_symlinked_subfolder_is_never_written_through_nor_emptied(tmp_path):
    split = _split_fw(tmp_path / "nf")
    out = tmp_path / "proj"
    write_project(split, out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ports.h").write_bytes((out / "inc" / "ports.h").read_bytes())
    shutil.rmtree(out / "inc")
    (out / "inc").symlink_to(elsewhere)
    for force in (False, True):
        with pytest.raises(OutputError, match="symbolic link"):
            write_project(split, out, force=force)
    # An earlier generation's header behind the link is not removed either.
    write_project(_split_fw(tmp_path / "nf", header=""), out)
    assert (elsewhere / "ports.h").read_text() == "#define LAN 0\n#define WAN 1\n"


def test_the_build_hint_can_be_pasted_into_a_shell_whatever_the_folder_s_name(tmp_path, capsys, monkeypatch):
    """`-o "my projects/fw ü"` printed `build with: make -C my projects/fw ü`, which a shell splits."""
    import shlex

    monkeypatch.chdir(tmp_path)
    assert main(["generate", str(ROOT / "sample_nfs" / "nop.c"), "-o", "my projects/fw ü", "--cores", "2"]) == 0
    hint = [line for line in capsys.readouterr().out.splitlines() if line.startswith("build with: ")]
    assert len(hint) == 1 and shlex.split(hint[0].removeprefix("build with: ")) == ["make", "-C", "my projects/fw ü"]
