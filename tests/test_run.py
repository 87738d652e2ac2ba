"""explorer.run's API, ``nfx run`` end to end (and every bad input it must refuse cleanly), and the
DPDK forwarder checked against run_trace on the same traffic."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from explorer import build
from explorer.processes import dpdk_runtime_dirs
from explorer.errors import ConfigError, RunError, TrafficError
from explorer.run import PacketVerdict, StateCall, load_trace, read_outputs, run_trace
from explorer.traffic.pcap import read_pcap, write_pcap
from explorer.traffic.trace import Trace

pytestmark = pytest.mark.dpdk  # every run links the runtime with DPDK

ROOT = Path(__file__).resolve().parents[1]
NFS = ROOT / "tests" / "nfs"
HTTP_PCAP = "/usr/share/doc/python3-dpkt/examples/data/http.pcap"
ETHER = bytes.fromhex("020000000002" "020000000001" "88b5")
EAL = ["--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-l", "0", "-m", "512", "--log-level=error"]


@pytest.fixture(scope="module", autouse=True)
def build_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("nfx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NFX_CACHE", str(cache))
        yield cache


def frame(tag: int, size: int = 60) -> bytes:
    """A non-IP frame; reflect.c floods tag 0xff and drops tag 0xdd."""
    return ETHER + bytes([tag]) + bytes(range(size - 15))


def nfx(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ})


def sha16(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


# ---- the API ----------------------------------------------------------------------------------------

def test_run_trace_reports_verdicts_outputs_and_summary():
    frames = [frame(1), frame(0xFF), frame(0xDD), ETHER[:9], frame(2), frame(0xFF)]
    trace = Trace(np.arange(6, dtype=np.uint64), np.array([0, 0, 1, 1, 1, 1], dtype=np.uint16), tuple(frames))
    result = run_trace(NFS / "reflect.c", trace)
    assert result.verdicts == (
        PacketVerdict(0, 0, 0, sha16(frames[0])), PacketVerdict(1, 0, -2, sha16(frames[1])),
        PacketVerdict(2, 1, -1, ""), PacketVerdict(3, 1, -1, ""),
        PacketVerdict(4, 1, 1, sha16(frames[4])), PacketVerdict(5, 1, -2, sha16(frames[5])))
    assert result.outputs == ((0, 0, frames[0]), (1, -2, frames[1]), (4, 1, frames[4]), (5, -2, frames[5]))
    assert result.output_frames(0) == [frames[0], frames[5]]  # a flood leaves by every other device
    assert result.output_frames(1) == [frames[1], frames[4]]
    assert result.calls == () and result.runts == (3,) and result.devices == 2
    assert result.summary() == {"in": 6, "out": {"0": 2, "1": 2}, "forwarded": 2, "dropped": 1,
                                "flooded": 2, "runts": 1}


def test_a_runs_output_out_of_step_is_refused_by_the_program_that_wrote_it():
    record = struct.Struct("<IiH")
    good = record.pack(0, 1, 3) + b"abc" + record.pack(1, -1, 0)
    codes, frames = read_outputs(good, 2, "the replay")
    assert codes.tolist() == [1, -1] and frames == (b"abc", None)
    for data, packets, words in ((good[:-1], 2, "the replay's output is truncated: it processed 1 of 2 packets"),
                                 (good, 3, "the replay's output is truncated: it processed 2 of 3 packets"),
                                 (record.pack(1, 1, 0), 1, "the replay's output is out of step at packet 0"),
                                 (record.pack(0, 1, 9) + b"abc", 1, "out of step at packet 0"),
                                 (good + b"x", 2, "the replay wrote more records than the trace has packets")):
        with pytest.raises(RunError, match=words):
            read_outputs(data, packets, "the replay")


def test_state_call_parsing():
    assert StateCall.parse("3 1 nf_dchain_allocate_new_index - 01 00000002") == \
        StateCall(3, 1, "nf_dchain_allocate_new_index", None, ("01", "00000002"))
    assert StateCall.parse("0 0 nf_map_put 0a000001") == StateCall(0, 0, "nf_map_put", "0a000001", ())


def test_load_trace_merges_devices_by_time(tmp_path):
    write_pcap(tmp_path / "lan.pcap", [10, 30], [frame(1), frame(2)])
    write_pcap(tmp_path / "wan.pcap", [20, 30], [frame(3), frame(4)])
    trace = load_trace([f"0={tmp_path / 'lan.pcap'}", f"1={tmp_path / 'wan.pcap'}"])
    assert trace.timestamps.tolist() == [10, 20, 30, 30]
    assert trace.devices.tolist() == [0, 1, 0, 1]
    assert trace.frames == (frame(1), frame(3), frame(2), frame(4))


@pytest.mark.parametrize("spec, error, message", [
    ("lan.pcap", ConfigError, "expected DEV=PCAP"),
    ("x=lan.pcap", ConfigError, "is not a number"),
    ("0=missing.pcap", TrafficError, "no such file"),
    ("0=garbage.pcap", TrafficError, "bad magic"),
])
def test_load_trace_rejects_bad_inputs(tmp_path, monkeypatch, spec, error, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.pcap").write_bytes(b"this is not a capture")
    with pytest.raises(error, match=message):
        load_trace([spec])


def test_a_trace_on_a_device_the_nf_lacks_is_a_config_error():
    trace = Trace(np.zeros(1, np.uint64), np.array([2], np.uint16), (frame(1),))
    with pytest.raises(ConfigError, match=r"the trace has packets on device 2, but .*reflect\.c has 2 devices \(0\.\.1\)"):
        run_trace(NFS / "reflect.c", trace)


def test_an_error_only_the_compiler_sees_is_a_build_error_at_its_place(tmp_path):
    from explorer.errors import BuildError

    nf = tmp_path / "nf.c"
    nf.write_text((NFS / "reflect.c").read_text().replace("bool nf_init(void) {", "bool nf_init(void) {\n  g();"))
    with pytest.raises(BuildError) as caught:
        build.build_nf(nf)
    assert str(caught.value).startswith(f"{nf}:") and "implicit declaration of function 'g'" in str(caught.value)


def test_frames_longer_than_the_runtime_takes_are_refused():
    trace = Trace(np.zeros(1, np.uint64), np.zeros(1, np.uint16), (bytes(65536),))
    with pytest.raises(TrafficError, match="packet 0 has 65536 bytes"):
        run_trace(NFS / "reflect.c", trace)


# ---- nfx run ----------------------------------------------------------------------------------------

def test_nfx_run_on_a_real_capture(tmp_path):
    out = tmp_path / "out"
    done = nfx("run", str(NFS / "rewrite.c"), "--in", f"0={HTTP_PCAP}", "--out", str(out), "--json",
               "--verdicts", str(tmp_path / "verdicts.json"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"in": 43, "out": {"0": 0, "1": 0, "2": 43}, "forwarded": 43,
                                       "dropped": 0, "flooded": 0, "runts": 0}
    assert sorted(p.name for p in out.iterdir()) == [".nfx-pcaps.json", "dev0.pcap", "dev1.pcap", "dev2.pcap"]
    stamps, frames = read_pcap(HTTP_PCAP)
    expected = run_trace(NFS / "rewrite.c", load_trace([f"0={HTTP_PCAP}"]))
    got_stamps, got = read_pcap(out / "dev2.pcap")
    assert list(got) == expected.output_frames(2) and got_stamps.tolist() == stamps.tolist()
    assert all(f[26:30] == bytes([10, 9, 8, 7]) for f in got)  # really rewritten
    assert read_pcap(out / "dev0.pcap")[1] == () and read_pcap(out / "dev1.pcap")[1] == ()
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    assert verdicts[0] == {"index": 0, "device": 0, "verdict": 2, "digest": sha16(got[0])}
    assert len(verdicts) == 43


def test_nfx_run_two_inputs_with_floods_and_a_readable_summary(tmp_path):
    write_pcap(tmp_path / "lan.pcap", [10, 30, 50], [frame(1), frame(0xFF), frame(0xDD)])
    write_pcap(tmp_path / "wan.pcap", [20, 40], [frame(2), frame(0xFF, 70)])
    out = tmp_path / "out"
    done = nfx("run", str(NFS / "reflect.c"), "--in", "0=lan.pcap", "--in", "1=wan.pcap", "--out", "out",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{NFS / 'reflect.c'}: 5 packets in: 2 forwarded, 2 flooded, 1 dropped, 0 runts",
        "  device 0 sent 2 frames -> out/dev0.pcap",
        "  device 1 sent 2 frames -> out/dev1.pcap",
    ]
    stamps0, dev0 = read_pcap(out / "dev0.pcap")
    stamps1, dev1 = read_pcap(out / "dev1.pcap")
    assert (stamps0.tolist(), list(dev0)) == ([10, 40], [frame(1), frame(0xFF, 70)])
    assert (stamps1.tolist(), list(dev1)) == ([20, 30], [frame(2), frame(0xFF)])


def test_nfx_run_replaces_only_its_own_files(tmp_path):
    write_pcap(tmp_path / "in.pcap", [1], [frame(1)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert nfx("run", str(NFS / "rewrite.c"), "--in", f"0={tmp_path / 'in.pcap'}", "--out", str(out)).returncode == 0
    assert (out / "dev2.pcap").is_file()
    # again, with an NF of two devices: its files are replaced and dev2.pcap, now stale, removed
    assert nfx("run", str(NFS / "reflect.c"), "--in", f"0={tmp_path / 'in.pcap'}", "--out", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == [".nfx-pcaps.json", "dev0.pcap", "dev1.pcap", "notes.txt"]
    assert read_pcap(out / "dev0.pcap")[1] == (frame(1),)
    assert (out / "notes.txt").read_text() == "mine"
    # a dev1.pcap that nfx did not write is never overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "dev1.pcap").write_bytes(b"precious")
    done = nfx("run", str(NFS / "reflect.c"), "--in", f"0={tmp_path / 'in.pcap'}", "--out", str(other))
    assert done.returncode == 1
    assert done.stderr == f"nfx run: error: refusing to overwrite {other / 'dev1.pcap'}: nfx did not write it " \
                          "(remove it or choose another --out)\n"
    assert sorted(p.name for p in other.iterdir()) == ["dev1.pcap"]
    assert (other / "dev1.pcap").read_bytes() == b"precious"


@pytest.mark.parametrize("nf, extra, message", [
    ("bad_syntax.c", [], "bad_syntax.c:6:11: expected expression before ';' token"),
    ("no_process.c", [], "no_process.c does not define nf_process"),
    ("reflect.c", ["--define", "CAPACITY=3"], "unknown define CAPACITY"),
    ("reflect.c", ["--define", "1X=3"], "bad define '1X=3'"),
    ("reflect.c", ["--define", "X=1", "--define", "X=2"], "define X is given twice"),
    ("missing.c", [], "missing.c: no such NF source file"),
    ("init_fails.c", [], "init_fails.c: nf_init failed (returned false)"),
    ("reflect.c", ["--in", "0=missing.pcap"], "missing.pcap: no such file"),
    ("reflect.c", ["--in", "0=garbage.pcap"], "garbage.pcap: bad magic"),
    ("reflect.c", ["--in", "0=empty.pcap"], "empty.pcap: empty file"),
    ("reflect.c", ["--in", "5=good.pcap"], "the trace has packets on device 5"),
    ("reflect.c", ["--in", "good.pcap"], "expected DEV=PCAP"),
    ("reflect.c", ["--in", "0=good.pcap", "--in", "0=good.pcap"], "device 0 is given twice"),
    ("reflect.c", ["--out", "afile"], "--out afile: exists and is not a folder"),
])
def test_nfx_run_bad_inputs_fail_cleanly(tmp_path, nf, extra, message):
    write_pcap(tmp_path / "good.pcap", [1], [frame(1)])
    (tmp_path / "garbage.pcap").write_bytes(b"this is not a capture")
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "afile").write_text("x")
    ins = [] if "--in" in extra else ["--in", "0=good.pcap"]
    outs = [] if "--out" in extra else ["--out", "out"]
    before = sorted(p.name for p in tmp_path.iterdir())
    done = nfx("run", str(NFS / nf), *ins, *outs, *extra, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nfx run: error: ") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even half


# ---- the DPDK forwarder ---------------------------------------------------------------------------

def forward(binary: Path, folder: Path, inputs: list[Path], *app: str, timeout: float = 60):
    """Run the forwarder with one net_pcap port per input pcap; returns (process, output pcaps)."""
    args, outputs = [], []
    for port, rx in enumerate(inputs):
        outputs.append(folder / f"out{port}.pcap")
        args += ["--vdev", f"net_pcap{port},rx_pcap={rx},tx_pcap={outputs[-1]}"]
    argv = [str(binary), *EAL, f"--file-prefix=nfx-test-{os.getpid()}", *args, "--", *app]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout), outputs


def test_dpdk_forwarder_matches_the_sequential_run(tmp_path):
    empty = tmp_path / "empty.pcap"
    write_pcap(empty, [], [])
    binary = build.build_nf(NFS / "rewrite.c", kind="dpdk")
    done, outputs = forward(binary, tmp_path, [Path(HTTP_PCAP), empty, empty], "--idle-ms", "300")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nfx-dpdk: received 43, sent 43, dropped 0, runts 0, tx failures 0"
    expected = run_trace(NFS / "rewrite.c", load_trace([f"0={HTTP_PCAP}"]))
    for device, path in enumerate(outputs):
        assert list(read_pcap(path)[1]) == expected.output_frames(device), device


def test_dpdk_forwarder_floods_and_drops_like_the_sequential_run(tmp_path):
    frames = [frame(1), frame(0xFF), frame(0xDD), frame(2, 100), frame(0xFF, 64)]
    lan, wan = tmp_path / "lan.pcap", tmp_path / "wan.pcap"
    write_pcap(lan, range(len(frames)), frames)
    write_pcap(wan, [], [])
    binary = build.build_nf(NFS / "reflect.c", kind="dpdk")
    done, outputs = forward(binary, tmp_path, [lan, wan], "--idle-ms", "300", "--calls", str(tmp_path / "calls"))
    assert done.returncode == 0, done.stderr
    expected = run_trace(NFS / "reflect.c", load_trace([f"0={lan}"]))
    for device, path in enumerate(outputs):
        assert list(read_pcap(path)[1]) == expected.output_frames(device), device
    assert (tmp_path / "calls").read_text() == ""  # reflect.c has no state


def test_dpdk_forwarder_stops_after_n_packets(tmp_path):
    empty = tmp_path / "empty.pcap"
    write_pcap(empty, [], [])
    binary = build.build_nf(NFS / "rewrite.c", kind="dpdk")
    done, outputs = forward(binary, tmp_path, [Path(HTTP_PCAP), empty, empty], "--packets", "10")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("nfx-dpdk: received 10, sent 10,")
    expected = run_trace(NFS / "rewrite.c", load_trace([f"0={HTTP_PCAP}"]))
    assert list(read_pcap(outputs[2])[1]) == expected.output_frames(2)[:10]


def test_dpdk_forwarder_shuts_down_cleanly_on_sigterm(tmp_path):
    empty = tmp_path / "empty.pcap"
    write_pcap(empty, [], [])
    binary = build.build_nf(NFS / "reflect.c", kind="dpdk")
    out = [tmp_path / "o0.pcap", tmp_path / "o1.pcap"]
    argv = [str(binary), *EAL, f"--file-prefix=nfx-test-{os.getpid()}",
            "--vdev", f"net_pcap0,rx_pcap={empty},tx_pcap={out[0]}",
            "--vdev", f"net_pcap1,rx_pcap={empty},tx_pcap={out[1]}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not all(p.exists() for p in out) and time.monotonic() < deadline:  # ports started
            time.sleep(0.05)
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert stdout.startswith("nfx-dpdk: received 0,")
    assert all(read_pcap(p)[1] == () for p in out)  # valid, flushed, empty


def test_dpdk_forwarder_needs_one_port_per_device(tmp_path):
    empty = tmp_path / "empty.pcap"
    write_pcap(empty, [], [])
    binary = build.build_nf(NFS / "rewrite.c", kind="dpdk")
    done, _ = forward(binary, tmp_path, [empty, empty], "--idle-ms", "100")
    assert done.returncode == 1
    assert "nfx-dpdk: the NF has 3 devices but DPDK found 2 ports" in done.stderr


# ---- processes: the harness dies with nfx and leaves no EAL runtime folder --------------------------------

def test_the_harness_uses_the_eal_prefix_nfx_gives_it(tmp_path, monkeypatch):
    from explorer import processes, run as run_module
    from explorer.run import encode_trace

    binary = build.build_nf(NFS / "reflect.c")
    trace_file = tmp_path / "trace.bin"
    trace_file.write_bytes(encode_trace(Trace(np.zeros(1, np.uint64), np.zeros(1, np.uint16), (frame(1),))))
    prefix = f"nfx-test-{os.getpid()}-harness"
    folders = processes.dpdk_runtime_dirs(prefix)
    done = subprocess.run([str(binary), "--eal-prefix", prefix, str(trace_file), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not any(f.exists() for f in folders)  # the harness removes EAL's folder when it exits
    used = []

    def recording(tag):
        context = processes.eal_prefix(tag)
        used.append(context)
        return context

    monkeypatch.setattr(run_module, "eal_prefix", recording)
    run_trace(NFS / "reflect.c", load_trace([f"0={HTTP_PCAP}"]))
    assert len(used) == 1  # ... and run_trace names it and removes it
    leftovers = [p for parent in {f.parent for f in folders} if parent.is_dir()
                 for p in parent.iterdir() if p.name.startswith(f"nfx-seq-{os.getpid()}-")]
    assert leftovers == []


SPIN = """\
#include "nf.h"
bool nf_init(void) { return true; }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet; (void)len; (void)now;
  for (volatile uint64_t i = 0; i < 4000000000ULL; i++) {}
  return device;
}
"""


def _processes_running(path_part: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path_part.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_stops_the_harness_and_removes_its_folders(tmp_path, signum, status):
    nf = tmp_path / "spin.c"
    nf.write_text(SPIN)
    binary = build.build_nf(nf)  # built before: the signal lands while the harness runs
    write_pcap(tmp_path / "in.pcap", range(3), [frame(1)] * 3)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "explorer.cli", "run", str(nf), "--in", f"0={tmp_path / 'in.pcap'}",
                                "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "TMPDIR": str(private_tmp)})
    # The harness is the process reading a trace from the run's private TMPDIR (whatever build cache
    # path it was started from: under xdist that once differed from the one this test built into).
    harness = str(private_tmp / "nfx-run-")
    try:
        deadline = time.monotonic() + 240  # a loaded CI machine took over 60 s to start Python, check and run
        while not _processes_running(harness) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = process.poll() is not None
        assert _processes_running(harness), f"the harness did not start ({process.stderr.read() if ended else 'yet'})"
        time.sleep(0.3)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == status and stderr.strip().startswith("nfx run: ") and "Traceback" not in stderr
    time.sleep(0.2)
    assert _processes_running(harness) == [] and _processes_running(str(binary)) == []
    assert os.listdir(private_tmp) == [] and not (tmp_path / "out").exists()
    leftovers = [p for parent in {f.parent for f in dpdk_runtime_dirs("x")} if parent.is_dir()
                 for p in parent.iterdir() if p.name.startswith(f"nfx-seq-{process.pid}-")]
    assert leftovers == []


def test_no_output_is_written_over_the_commands_inputs_or_a_users_file(tmp_path):
    """run's captures and verdict log, analyze's DOT graph: never over the NF, an input capture (even
    one nfx wrote in the same folder), one of run's own captures, or a file nfx did not write."""
    nf = tmp_path / "reflect.c"
    nf.write_text((NFS / "reflect.c").read_text())
    folder = tmp_path / "traffic"
    assert nfx("run", str(nf), "--in", f"0={tmp_path / 'no.pcap'}", "--out", str(folder)).returncode == 1
    write_pcap(tmp_path / "in.pcap", [1], [frame(1)])
    assert nfx("run", str(nf), "--in", f"0={tmp_path / 'in.pcap'}", "--out", str(folder)).returncode == 0
    captured = (folder / "dev0.pcap").read_bytes()
    done = nfx("run", str(nf), "--in", f"0={folder / 'dev0.pcap'}", "--out", str(folder))
    assert done.returncode == 1 and "it is one of this command's inputs" in done.stderr
    for verdicts, says in ((nf, "is one of this command's inputs"), (folder / "dev0.pcap", "is one of this command's inputs"),
                           (tmp_path / "out" / "dev1.pcap", "names one of the captures --out")):
        done = nfx("run", str(nf), "--in", f"0={folder / 'dev0.pcap'}", "--out", str(tmp_path / "out"),
                   "--verdicts", str(verdicts))
        assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr
    assert (folder / "dev0.pcap").read_bytes() == captured and nf.read_text() == (NFS / "reflect.c").read_text()
    nf = tmp_path / "nop.c"  # one the analysis takes
    nf.write_text((ROOT / "sample_nfs" / "nop.c").read_text())
    done = nfx("analyze", str(nf), "--dot", str(nf))
    assert done.returncode == 1 and "refusing to write" in done.stderr and "(--dot)" in done.stderr
    (tmp_path / "mine.dot").write_text("mine")
    done = nfx("analyze", str(nf), "--dot", str(tmp_path / "mine.dot"))
    assert done.returncode == 1 and "nfx did not write it" in done.stderr
    assert nf.read_text() == (ROOT / "sample_nfs" / "nop.c").read_text() and (tmp_path / "mine.dot").read_text() == "mine"
    assert nfx("analyze", str(nf), "--dot", str(tmp_path / "g.dot")).returncode == 0
    assert nfx("analyze", str(nf), "--dot", str(tmp_path / "g.dot")).returncode == 0  # its own: replaced
