"""The hostile-input corpus: the real ``nfx`` in a subprocess, fed bad C, bad pcaps, bad options,
symlinks, devices, pipes and a full disk. Every case asserts either one error line (``nfx <command>:
error: ...``, no traceback) or correct output, and that nothing outside its output folder changed:
the case's files, a private temporary folder (TMPDIR) and DPDK's runtime folders. Every ``nfx run``
that succeeds is checked for packet conservation: in = forwarded + dropped + flooded + runts, and
the output pcaps hold what the counts say.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import pytest

from explorer.processes import dpdk_runtime_dirs
from explorer.traffic.pcap import read_pcap, write_pcap

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_nfs"
ETHER = bytes.fromhex("020000000002" "020000000001" "0800")
# A minimal IPv4/UDP frame (what the samples parse), 60 bytes.
UDP = ETHER + bytes.fromhex("4500002e000040004011" "0000" "0a000001" "0a000002" "04d2" "0035" "001a" "0000") + bytes(18)

REFLECT = """\
#include "nf.h"
bool nf_init(void) { return true; }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (len > 14 && packet[14] == 0xff) return NF_FLOOD;
  if (len > 14 && packet[14] == 0xdd) return NF_DROP;
  return device;
}
"""

File = Union[str, bytes, Callable[[Path], None]]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nfx-cache")


def _world(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple]:
    """Every entry under ``root`` (not following links, not under ``skip``): kind, mode, content hash
    or link target."""
    seen: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in dirs + files:
            path = here / name
            if path in skip:
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                seen[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                seen[str(path)] = ("file", info.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                seen[str(path)] = ("other", info.st_mode)
    return seen


@dataclass
class Result:
    code: int
    out: str
    err: str
    pid: int

    def error(self, command: str, words: str) -> str:
        """One line ``nfx <command>: error: ...`` containing ``words``, non-zero exit, no traceback."""
        assert self.code not in (0, None) and "Traceback" not in self.err, self.err
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"nfx {command}: error: "), self.err
        assert words in lines[0], lines[0]
        return lines[0]

    def ok(self) -> "Result":
        assert self.code == 0 and "Traceback" not in self.err, self.err
        return self


class Case:
    """One hostile case: its files under ``tmp_path / "case"``, the folder nfx may write
    (``out``), and the checks that nothing else changed."""

    def __init__(self, tmp_path: Path, cache: Path, files: Optional[dict[str, File]] = None):
        self.root = tmp_path / "case"
        self.root.mkdir(exist_ok=True)
        self.tmp = tmp_path / "tmp"  # nfx's TMPDIR: must be empty afterwards
        self.tmp.mkdir()
        self.cache = cache
        for name, content in (files or {}).items():
            self.add(name, content)

    def add(self, name: str, content: File) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def nfx(self, *args: str, out: Optional[str] = None, stdin: Optional[bytes] = None, timeout: float = 300,
            env: Optional[dict[str, str]] = None) -> Result:
        skip = (self.root / out,) if out else ()
        before = _world(self.root, skip)
        argv = [sys.executable, "-m", "explorer.cli", *(a.replace("{case}", str(self.root)) for a in args)]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=self.root, env={**os.environ, "TMPDIR": str(self.tmp),
                                                       "NFX_CACHE": str(self.cache), **(env or {})})
        try:
            stdout, stderr = process.communicate(stdin, timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        result = Result(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                        process.pid)
        assert _world(self.root, skip) == before, "nfx changed files outside its output folder"
        assert sorted(os.listdir(self.tmp)) == [], f"nfx left temporary files: {os.listdir(self.tmp)}"
        left = [d for d in _dpdk_folders() if f"-{process.pid}-" in d.name]
        assert left == [], f"nfx left DPDK runtime folders: {left}"
        if args[0] == "run" and result.code == 0:
            assert "--json" in args, "every run of the corpus checks packet conservation"
            self.conserved(args, result)
        return result

    def conserved(self, args: tuple[str, ...], result: Result) -> None:
        """in = forwarded + dropped + flooded + runts, and the pcaps written hold what was counted."""
        summary = json.loads(result.out)
        assert summary["in"] == summary["forwarded"] + summary["dropped"] + summary["flooded"] + summary["runts"]
        inputs = [a.split("=", 1)[1] for a in args if "=" in a and a.split("=", 1)[0].isdigit()]
        assert summary["in"] == sum(len(read_pcap(self.root / p)[1]) for p in inputs)
        folder = self.root / args[args.index("--out") + 1]
        for device, count in summary["out"].items():
            assert len(read_pcap(folder / f"dev{device}.pcap")[1]) == count
        devices = len(summary["out"])
        assert sum(summary["out"].values()) == summary["forwarded"] + summary["flooded"] * (devices - 1)


def _dpdk_folders() -> list[Path]:
    found = []
    for parent in {p.parent for p in dpdk_runtime_dirs("x")}:
        if parent.is_dir():
            found.extend(p for p in parent.iterdir() if p.name.startswith("nfx-"))
    return found


def pcap(frames: list[bytes], stamps: Optional[list[int]] = None) -> Callable[[Path], None]:
    return lambda path: write_pcap(path, stamps if stamps is not None else list(range(len(frames))), frames)


@pytest.fixture
def case(tmp_path: Path, cache: Path) -> Callable[..., Case]:
    return lambda files=None: Case(tmp_path, cache, files)


# ---- numbers: one range everywhere ---------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (("solve", "nop.c", "--seed", "-5"), "--seed -5: expected an integer from 0 to 18446744073709551615"),
    (("solve", "nop.c", "--seed", str(1 << 64)), f"--seed {1 << 64}: expected an integer from 0 to"),
    (("solve", "nop.c", "--seed", "1e3"), "--seed 1e3: expected an integer"),
    (("solve", "nop.c", "--cores", "0"), "--cores 0: expected an integer from 1 to 128"),
    (("generate", "nop.c", "-o", "out", "--cores", "129"), "--cores 129: expected an integer from 1 to 128"),
    (("generate", "nop.c", "-o", "out", "--seed", "-1"), "--seed -1: expected an integer from 0 to"),
    (("simulate", "nop.c", "--traffic", "uniform", "--packets", "0"), "--packets 0: expected an integer from 1"),
    (("simulate", "nop.c", "--traffic", "uniform", "--flows", "-3"), "--flows -3: expected an integer from 1"),
    (("simulate", "nop.c", "--traffic", "uniform", "--packets", str((1 << 32) + 1)),
     "--packets 4294967297: expected an integer from 1 to 4294967296"),
    (("sweep", "nop.c", "--cores", "2,200"), "--cores 200: expected an integer from 1 to 128"),
    (("sweep", "nop.c", "--packets", "0"), "--packets 0: expected an integer from 1"),
    (("traffic", "uniform", "--out", "out", "--seed", "-5"), "--seed -5: expected an integer from 0 to"),
    (("traffic", "uniform", "--out", "out", "--packets", "100000000"),
     "--packets 100000000: 100000000 frames in memory would need about"),
    (("traffic", "uniform", "--out", "out", "--packets", "4294967297"), "--packets 4294967297: expected an integer"),
    (("bench", "nop.c", "--cores", "1,0"), "--cores 0: expected an integer from 1 to 128"),
    (("bench", "nop.c", "--packets", "-1"), "--packets -1: expected an integer from 1"),
    (("check", "nop.c", "--in", "0=a.pcap", "--cores", "two"), "--cores two: expected an integer"),
    (("explore", "nop.c", "--port", "70000"), "--port 70000: expected an integer from 1 to 65535"),
])
def test_numbers_have_one_range_everywhere(case, args, words):
    c = case({"nop.c": (SAMPLES / "nop.c").read_text()})
    started = time.monotonic()
    c.nfx(*args, out="out").error(args[0], words)
    assert time.monotonic() - started < 30  # refused up front, before any work


@pytest.mark.parametrize("args,words", [
    (("solve", "nop.c", "--bogus"), "unrecognized arguments: --bogus"),
    (("frobnicate",), "argument command: invalid choice: 'frobnicate'"),
    (("run", "nop.c", "--in", "0=a.pcap"), "the following arguments are required: --out"),
])
def test_bad_options_are_one_line(case, args, words):
    result = case({"nop.c": (SAMPLES / "nop.c").read_text()}).nfx(*args)
    assert result.code == 2 and "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nfx") and words in lines[0] and "--help" in lines[0], result.err


def test_the_pipeline_checks_the_same_ranges():
    from explorer import pipeline
    from explorer.errors import ConfigError

    with pytest.raises(ConfigError, match="seed -5: expected an integer from 0 to"):
        pipeline.solve(SAMPLES / "nop.c", seed=-5)
    with pytest.raises(ConfigError, match="cores 0: expected an integer from 1 to 128"):
        pipeline.solve(SAMPLES / "nop.c", cores=0)
    solution = pipeline.solve(SAMPLES / "nop.c", cores=2, quality=False)
    with pytest.raises(ConfigError, match="packets 0: expected an integer from 1"):
        pipeline.simulate(solution, "uniform", packets=0)
    with pytest.raises(ConfigError, match="seed -1: expected an integer from 0"):
        pipeline.simulate(solution, "uniform", seed=-1)
    with pytest.raises(ConfigError, match="packets 2000000000: 2000000000 synthetic packets would need about"):
        pipeline.check(solution, "bidir", packets=2_000_000_000)


# ---- pipes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("solve", "fw.c"), ("solve", "fw.c", "--json"), ("analyze", "fw.c")])
def test_a_closed_pipe_ends_quietly(case, args):
    c = case({"fw.c": (SAMPLES / "fw.c").read_text()})
    argv = [sys.executable, "-m", "explorer.cli", *args]
    env = {**os.environ, "TMPDIR": str(c.tmp), "NFX_CACHE": str(c.cache)}
    nfx = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=c.root, env=env)
    head = subprocess.run(["head", "-c", "5"], stdin=nfx.stdout, capture_output=True, timeout=300)
    nfx.stdout.close()
    stderr = nfx.stderr.read().decode()
    nfx.wait(timeout=300)
    assert len(head.stdout) == 5
    assert stderr == "" and nfx.returncode in (0, 141)  # 141 = 128 + SIGPIPE, as a Unix tool


# ---- one frame-size rule; odd captures warned about once -------------------------------------------------

@pytest.mark.parametrize("args", [
    ("run", "nop.c", "--in", "0=big.pcap", "--out", "out"),
    ("simulate", "nop.c", "--in", "0=big.pcap"),
    ("check", "nop.c", "--in", "0=big.pcap", "--cores", "2"),
])
def test_every_command_refuses_a_frame_over_65535_bytes(case, args):
    c = case({"nop.c": (SAMPLES / "nop.c").read_text(), "big.pcap": pcap([UDP, UDP + bytes(70000 - len(UDP))])})
    c.nfx(*args, out="out").error(args[0], "big.pcap: packet #1 has 70000 bytes, more than the 65535 an NF takes")


def test_cut_and_out_of_order_packets_are_run_in_file_order_and_warned_once(case):
    frames = [ETHER + bytes([i]) + bytes(45) for i in range(6)]
    c = case({"reflect.c": REFLECT, "lan.pcap": pcap(frames, [50, 10, 60, 20, 70, 80])})
    result = c.nfx("run", "reflect.c", "--in", "0=lan.pcap", "--out", "out", "--json", out="out").ok()
    assert result.err.splitlines() == [
        "nfx run: warning: lan.pcap: 2 of 6 packets have a timestamp earlier than a packet before them; they are "
        "kept in file order, at the latest time before them"]
    stamps, sent = read_pcap(c.root / "out" / "dev0.pcap")
    assert list(sent) == frames and stamps.tolist() == [50, 50, 60, 60, 70, 80]


# ---- files: atomic, never through a symlink, a full disk leaves nothing that looks finished ---------------

# Without the right to mount a small tmpfs, a full disk is simulated: nfx runs with explorer.outputs'
# file handles failing with ENOSPC once the quota is written (the path every output file takes).
SIMULATED_DISK = """
import errno, os, sys
import explorer.outputs as outputs
quota = [int(os.environ["NFX_TEST_QUOTA"])]
class Full:
    def __init__(self, handle): self.handle = handle
    def write(self, data):
        quota[0] -= len(data)
        if quota[0] < 0: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)
    def __getattr__(self, name): return getattr(self.handle, name)
    def __enter__(self): return self
    def __exit__(self, *exc): return self.handle.__exit__(*exc)
class Os:
    def __getattr__(self, name): return getattr(os, name)
    def fdopen(self, *args, **kwargs): return Full(os.fdopen(*args, **kwargs))
outputs.os = Os()
from explorer.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def small_disk(tmp_path):
    """(folder, env): a 128 KiB tmpfs inside the case when it can be mounted, else a simulated one."""
    folder = tmp_path / "case" / "disk"
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield folder, ({} if mounted else {"NFX_TEST_WRAPPER": SIMULATED_DISK, "NFX_TEST_QUOTA": str(128 << 10)})
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def _nfx_on_disk(c: Case, env: dict[str, str], *args: str, out: str) -> Result:
    if not env:
        return c.nfx(*args, out=out)
    # the simulated disk: the same CLI, through the wrapper above
    before = _world(c.root, (c.root / out,))
    done = subprocess.run([sys.executable, "-c", env["NFX_TEST_WRAPPER"], *args], capture_output=True, cwd=c.root,
                          env={**os.environ, "TMPDIR": str(c.tmp), "NFX_CACHE": str(c.cache), **env}, timeout=300)
    assert _world(c.root, (c.root / out,)) == before and os.listdir(c.tmp) == []
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode(), 0)


BIG = [UDP + bytes(1400)] * 200  # 290 KB: more than the small disk holds


@pytest.mark.parametrize("command", ["run", "traffic"])
def test_a_full_disk_leaves_no_folder_that_looks_finished(case, small_disk, command):
    disk, env = small_disk
    c = case({"nop.c": (SAMPLES / "nop.c").read_text(), "lan.pcap": pcap(BIG)})
    args = (("run", "nop.c", "--in", "0=lan.pcap", "--out", "disk/out") if command == "run" else
            ("traffic", "uniform", "--packets", "2000", "--out", "disk/out"))
    result = _nfx_on_disk(c, env, *args, out="disk")
    result.error(command, "No space left on device")
    assert os.listdir(disk) == []  # no folder, no temporary file


def test_a_full_disk_keeps_the_earlier_outputs(case, small_disk):
    disk, env = small_disk
    c = case({"nop.c": (SAMPLES / "nop.c").read_text(), "lan.pcap": pcap([UDP] * 3), "big.pcap": pcap(BIG)})
    c.nfx("run", "nop.c", "--in", "0=lan.pcap", "--out", "disk/out", "--json", out="disk").ok()
    before = _world(disk, ())
    _nfx_on_disk(c, env, "run", "nop.c", "--in", "0=big.pcap", "--out", "disk/out", out="disk").error(
        "run", "No space left on device")
    assert _world(disk, ()) == before  # the earlier run's files as they were, no temporary file


@pytest.mark.parametrize("verdicts,words", [
    ("afile/v.json", "--verdicts afile/v.json: afile is not a folder"),
    ("folder", "refusing to write folder: it exists and is not a regular file"),
    ("link.json", "refusing to write link.json: it is a symbolic link"),
    ("/proc/nfx-verdicts.json", "--verdicts /proc/nfx-verdicts.json: cannot write in /proc"),
    ("/dev/null", "refusing to write /dev/null: it exists and is not a regular file"),
])
def test_an_unwritable_verdicts_path_is_refused_before_the_work(case, verdicts, words):
    c = case({"slow.c": REFLECT.replace("return device;", "return device;\n}\nint never(void) {\n  return 0;"),
              "lan.pcap": pcap([UDP]), "afile": "x", "folder/keep": "x",
              "link.json": lambda p: p.symlink_to(p.parent / "afile")})
    started = time.monotonic()
    c.nfx("run", "slow.c", "--in", "0=lan.pcap", "--out", "out", "--verdicts", verdicts).error("run", words)
    assert time.monotonic() - started < 20 and not (c.root / "out").exists()
    assert not any(c.cache.glob("bin/slow-*"))  # refused before the NF was built


@pytest.mark.parametrize("plant,words", [
    (lambda out, target: (out.mkdir(), (out / "dev0.pcap").symlink_to(target)), "dev0.pcap: it is a symbolic link"),
    (lambda out, target: (out.mkdir(), (out / ".nfx-pcaps.json").symlink_to(target)),
     ".nfx-pcaps.json: it is a symbolic link"),
    (lambda out, target: out.symlink_to(target.parent), "--out out: is a symbolic link"),
    (lambda out, target: (out.mkdir(), (out / "dev1.pcap").mkdir()), "dev1.pcap: it exists and is not a regular file"),
])
@pytest.mark.parametrize("command", ["run", "traffic"])
def test_planted_symlinks_are_never_written_through(case, plant, words, command):
    c = case({"nop.c": (SAMPLES / "nop.c").read_text(), "lan.pcap": pcap([UDP]), "victim/precious.txt": "mine"})
    plant(c.root / "out", c.root / "victim" / "precious.txt")
    args = (("run", "nop.c", "--in", "0=lan.pcap", "--out", "out") if command == "run" else
            ("traffic", "uniform", "--packets", "10", "--out", "out"))
    c.nfx(*args).error(command, words)  # the world check: the victim and the links are untouched


def test_a_forged_marker_removes_and_replaces_nothing(case):
    c = case({"nop.c": (SAMPLES / "nop.c").read_text(), "lan.pcap": pcap([UDP]),
              "out/dev5.pcap": "user data", "out/notes.txt": "mine",
              "out/.nfx-pcaps.json": json.dumps({"files": {"dev5.pcap": "0" * 64, "notes.txt": "1" * 64}}),
              "out/.nfx-run.json": json.dumps({"files": ["dev7.pcap", "notes.txt"]})})
    before = {p.name: p.read_bytes() for p in (c.root / "out").iterdir() if not p.name.startswith(".")}
    c.nfx("run", "nop.c", "--in", "0=lan.pcap", "--out", "out", "--json", out="out").ok()
    after = {p.name: p.read_bytes() for p in (c.root / "out").iterdir() if not p.name.startswith(".")}
    assert {n: after[n] for n in before} == before  # dev5.pcap and notes.txt kept
    assert sorted(after) == ["dev0.pcap", "dev1.pcap", "dev5.pcap", "notes.txt"]
