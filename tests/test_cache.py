"""The build cache: entries that appear whole and are checked on every lookup, LRU eviction to a
size bound, ``nfx cache clean``, and builds that recover from a corrupt entry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from explorer import build, cache
from explorer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NFS = ROOT / "tests" / "nfs"
KEY = "0123456789abcdef0123"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NFX_CACHE", str(folder))
    monkeypatch.delenv("NFX_CACHE_SIZE", raising=False)
    return folder


def entry(name: str, size: int = 1000, used: float | None = None) -> Path:
    """Publish a fake entry of ``size`` bytes, last used at ``used`` (seconds since the epoch)."""
    with cache.scratch() as work:
        (work / "blob").write_bytes(os.urandom(size))
        folder = cache.publish("bin", f"{name}-{KEY}", {"blob": work / "blob"})
    if used is not None:
        os.utime(folder / cache.MANIFEST, (used, used))
    return folder


def test_an_entry_appears_whole_with_its_manifest(private_cache):
    folder = entry("one")
    assert folder == private_cache / "bin" / f"one-{KEY}"
    manifest = json.loads((folder / cache.MANIFEST).read_text())
    assert list(manifest["files"]) == ["blob"] and manifest["files"]["blob"][0] == 1000
    assert cache.lookup("bin", f"one-{KEY}") == folder
    assert [p.name for p in private_cache.iterdir()] == ["bin"]  # no scratch left behind


@pytest.mark.parametrize("damage", [
    lambda f: (f / "blob").write_bytes((f / "blob").read_bytes()[:500]),  # truncated
    lambda f: (f / "blob").write_bytes(bytes(1000)),  # same size, other bytes
    lambda f: (f / cache.MANIFEST).unlink(),  # half-written: no manifest
    lambda f: (f / cache.MANIFEST).write_text("{not json"),
    lambda f: ((f / "blob").unlink(), (f / "blob").symlink_to("/etc/hostname")),
])
def test_a_corrupt_or_half_written_entry_is_removed_on_lookup(damage):
    folder = entry("one")
    damage(folder)
    assert cache.lookup("bin", f"one-{KEY}") is None
    assert not folder.exists()


def test_a_corrupt_build_is_rebuilt():
    from explorer.run import nf_devices

    binary = build.build_nf(NFS / "reflect.c")
    good = binary.read_bytes()
    binary.write_bytes(good[: len(good) // 2])  # a crash mid-write, a full disk, a bad sector
    again = build.build_nf(NFS / "reflect.c")
    assert again == binary and again.read_bytes() == good and nf_devices(again) == 2
    (binary.parent / cache.MANIFEST).unlink()  # an entry of an older nfx
    assert build.build_nf(NFS / "reflect.c").read_bytes() == good


def test_the_least_recently_used_entries_go_first(monkeypatch):
    now = time.time()
    old = [entry(f"e{i}", used=now - 1000 + i) for i in range(4)]  # e0 is the least recently used
    cache.lookup("bin", f"e0-{KEY}")  # ... until it is used again
    monkeypatch.setenv("NFX_CACHE_SIZE", "2500")
    removed = cache.evict()
    assert removed == [old[1], old[2]]
    assert [e.path for e in cache.entries()] == [old[3], old[0]]
    assert sum(e.size for e in cache.entries()) <= 2500


def test_publishing_keeps_the_cache_bounded_but_spares_recent_entries(monkeypatch):
    monkeypatch.setenv("NFX_CACHE_SIZE", "3k")
    now = time.time()
    for i in range(5):
        entry(f"old{i}", used=now - 3600)
    fresh = [entry(f"new{i}") for i in range(4)]  # each publish evicts what it can
    names = {e.path.name for e in cache.entries()}
    assert names == {f.name for f in fresh}  # over the bound only by entries used this minute


def test_clean_removes_entries_and_nothing_else(private_cache):
    entry("a")
    entry("b")
    private_cache.joinpath("notes.txt").write_text("mine")
    (private_cache / "bin" / "mytool").mkdir()
    stale = private_cache / f"{cache.SCRATCH_PREFIX}old"
    stale.mkdir()
    os.utime(stale, (time.time() - 7200,) * 2)
    running = private_cache / f"{cache.SCRATCH_PREFIX}now"  # another nfx is building here
    running.mkdir()
    size = sum(e.size for e in cache.entries())
    assert size > 2000 and cache.clean() == (2, size)  # the blobs and their manifests
    assert sorted(p.name for p in private_cache.iterdir()) == [f"{cache.SCRATCH_PREFIX}now", "bin", "notes.txt"]
    assert [p.name for p in (private_cache / "bin").iterdir()] == ["mytool"]


@pytest.mark.parametrize("text,size", [("", 2 << 30), ("1024", 1024), ("500M", 500 << 20), ("2G", 2 << 30),
                                       ("1.5GiB", 3 << 29), ("64k", 64 << 10)])
def test_the_size_bound_is_read_from_the_environment(monkeypatch, text, size):
    monkeypatch.setenv("NFX_CACHE_SIZE", text)
    assert cache.size_limit() == size


@pytest.mark.parametrize("text", ["lots", "-5M", "1X"])
def test_a_bad_size_bound_is_a_config_error(monkeypatch, text):
    monkeypatch.setenv("NFX_CACHE_SIZE", text)
    with pytest.raises(ConfigError, match="NFX_CACHE_SIZE"):
        cache.size_limit()


def test_concurrent_builds_of_one_nf_agree(tmp_path):
    nf = tmp_path / "nf.c"
    nf.write_text((NFS / "reflect.c").read_text())
    with ThreadPoolExecutor(3) as pool:
        binaries = list(pool.map(lambda _: build.build_nf(nf), range(3)))
    assert len(set(binaries)) == 1 and cache.lookup("bin", binaries[0].parent.name) is not None


def test_the_cache_command(private_cache):
    entry("a")
    env = {**os.environ, "NFX_CACHE": str(private_cache)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "explorer.cli", "cache", *args], capture_output=True,
                                       text=True, env=env, timeout=120)
    info = run()
    assert info.returncode == 0 and info.stdout == f"{private_cache}: 1 entry, 0.0 MiB of at most 2048.0 MiB " \
                                                   "(NFX_CACHE_SIZE)\n"
    done = run("clean")
    assert done.returncode == 0 and done.stdout == f"{private_cache}: removed 1 entry (0.0 MiB)\n"
    assert cache.entries() == []
    bad = subprocess.run([sys.executable, "-m", "explorer.cli", "cache"], capture_output=True, text=True,
                         env={**env, "NFX_CACHE_SIZE": "huge"}, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("nfx cache: error: NFX_CACHE_SIZE='huge'")


def test_style_warnings_of_the_nf_are_shown_on_every_build_cached_or_not(tmp_path):
    """gcc lets style warnings about the NF's own code through (a signed comparison): they come as
    BuildWarnings at the NF's file:line:col, from a fresh build and from the cached one."""
    text = (NFS / "port_counter.c").read_text()
    assert "nf_time_t now) {\n" in text
    text = text.replace("nf_time_t now) {\n", "nf_time_t now) {\n  int signed_count = -5;\n"
                        "  if (now > signed_count) {\n    now = now + 0;\n  }\n", 1)
    nf = tmp_path / "warned.c"
    nf.write_text(text)
    line = text.splitlines().index("  if (now > signed_count) {") + 1
    for _ in ("built", "cached"):
        with pytest.warns(build.BuildWarning) as caught:
            build.build_nf(nf)
        assert [str(w.message) for w in caught] == [
            f"{nf}:{line}:11: comparison of integer expressions of different signedness: "
            "'nf_time_t' {aka 'long unsigned int'} and 'int' [-Wsign-compare]"]
    assert len(list((tmp_path / "cache" / "bin").iterdir())) == 1


def test_a_build_asked_again_reads_its_files_instead_of_preprocessing_and_sees_any_change(tmp_path, monkeypatch):
    """A check runs the NF once per round of its closed loop: the second build of the same NF costs
    a digest of the files it read. A header changed to the same size (within one clock tick: no
    mtime to go by), or one added beside the NF that shadows nf.h, builds anew."""
    from explorer.run import nf_devices

    (tmp_path / "devices.h").write_text("#define NF_DEVICES 2\n")
    nf = tmp_path / "nf.c"
    nf.write_text('#include "devices.h"\n' + (NFS / "reflect.c").read_text())
    runs = []
    real = build.preprocess
    monkeypatch.setattr(build, "preprocess", lambda *a, **k: (runs.append(a[0]), real(*a, **k))[1])
    first = build.build_nf(nf)
    assert len(runs) == 1 and nf_devices(first) == 2
    assert build.build_nf(nf) == first and len(runs) == 1
    (tmp_path / "devices.h").write_text("#define NF_DEVICES 3\n")
    third = build.build_nf(nf)
    assert len(runs) == 2 and third != first and nf_devices(third) == 3
    (tmp_path / "nf.h").write_text('#include_next "nf.h"\n')  # another header: the folder's names changed
    build.build_nf(nf)
    assert len(runs) == 3
