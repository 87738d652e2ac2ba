"""explorer.outputs: atomic writes that never follow a symlink, never leave half a file, and keep
the OS's words in their errors."""
from __future__ import annotations

import errno
import os

import pytest

from explorer.errors import OutputError
from explorer.outputs import atomic_file, file_digest, refuse_system_folder, staged_folder, write_atomic


def test_write_atomic_creates_and_replaces(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_atomic(target, "one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_never_writes_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "out.pcap"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        write_atomic(link, "evil")
    assert victim.read_text() == "keep" and link.is_symlink()


def test_refuses_a_folder_or_fifo_in_place_of_a_file(tmp_path):
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "f")
    for name in ("d", "f"):
        with pytest.raises(OutputError, match="not a regular file"):
            write_atomic(tmp_path / name, "x")


def test_a_failure_inside_the_block_leaves_the_old_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as handle:
            handle.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_full_disk_keeps_the_os_words(tmp_path, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_atomic(tmp_path / "a", "x")
    assert list(tmp_path.iterdir()) == []


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    with staged_folder(tmp_path / "proj") as staging:
        (staging / "x").write_text("1")
    assert (tmp_path / "proj" / "x").read_text() == "1"
    with pytest.raises(RuntimeError):
        with staged_folder(tmp_path / "other") as staging:
            (staging / "x").write_text("1")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_system_folders_are_refused(tmp_path):
    for folder in ("/", "/etc", "/usr"):
        with pytest.raises(OutputError, match="system folder"):
            refuse_system_folder(folder)
    assert refuse_system_folder(tmp_path / "mine") == tmp_path / "mine"


def test_file_digest_ignores_links(tmp_path):
    (tmp_path / "a").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "a")
    assert file_digest(tmp_path / "a") is not None
    assert file_digest(tmp_path / "l") is None and file_digest(tmp_path / "missing") is None


# ---- files the user names ---------------------------------------------------------------------

def test_write_output_replaces_only_what_nfx_wrote_unchanged(tmp_path, monkeypatch):
    from explorer.outputs import claim_output, write_output
    monkeypatch.setenv("NFX_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "graph.dot"
    write_output(target, "one", "--dot")
    write_output(target, "two", "--dot")  # its own, unchanged: replaced
    assert target.read_text() == "two"
    target.write_text("two, and the user's line")
    with pytest.raises(OutputError, match=r"refusing to overwrite .*graph.dot \(--dot\): it changed since nfx wrote it"):
        write_output(target, "three", "--dot")
    mine = tmp_path / "mine.csv"
    mine.write_text("user data")
    with pytest.raises(OutputError, match=r"mine.csv \(--csv\): nfx did not write it \(remove it or name another"):
        claim_output(mine, "--csv")
    assert mine.read_text() == "user data" and target.read_text() == "two, and the user's line"
    # another nfx cache (another user, a cleared cache) knows nothing of it: refused, never lost
    write_output(tmp_path / "new.dot", "x", "--dot")
    monkeypatch.setenv("NFX_CACHE", str(tmp_path / "other-cache"))
    with pytest.raises(OutputError, match="nfx did not write it"):
        write_output(tmp_path / "new.dot", "y", "--dot")


def test_write_output_never_writes_over_an_input_even_through_a_link(tmp_path, monkeypatch):
    from explorer.outputs import write_output
    monkeypatch.setenv("NFX_CACHE", str(tmp_path / "cache"))
    nf = tmp_path / "fw.c"
    nf.write_text("int x;")
    os.link(nf, tmp_path / "hard.c")
    for path in (nf, tmp_path / "hard.c", tmp_path / "." / "fw.c"):
        with pytest.raises(OutputError, match=r"\(--dot\): it is one of this command's inputs"):
            write_output(path, "digraph {}", "--dot", [nf])
    assert nf.read_text() == "int x;"
    with pytest.raises(OutputError, match="--dot: name a file"):
        write_output("", "x", "--dot")
