"""``nfx analyze``: the readable summary, JSON, DOT output, --define, and errors without tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.commands.analyze import parse_defines
from explorer.errors import AnalysisWarning, ConfigError
from explorer.symbex import analyze

ROOT = Path(__file__).resolve().parent.parent
FW = "tests/nfs_analysis/fw_small.c"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_summary_lists_objects_and_every_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", FW]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"fw_small ({FW}): 7 paths, 2 devices"
    assert out[1] == "defines: CAPACITY=1024, EXPIRY_NS=(10 * NF_NS_PER_SEC), NF_DEVICES=2"
    assert out[3].split() == ["0", "flows", "map", "capacity", "1024,", "key", "16", "B", "(struct", "flow_key)",
                              f"{FW}:23:10"]
    assert "path 3 (devices 1): p.is_ipv4 && p.is_tcpudp && p.device != 0 && flows.found#2" in out
    assert ("    3. chain UPDATE nf_dchain_rejuvenate_index [flows.value#2] -> chain.ok#3   "
            f"{FW}:59:3") in out
    assert out.count("    verdict: drop") == 3


def test_json_is_the_analysis_as_a_dict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", FW, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(analyze(FW).to_dict()))


def test_defines_and_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dot = tmp_path / "fw.dot"
    assert main(["analyze", FW, "--define", "CAPACITY=8", "-D", "NF_DEVICES=3", "--json", "--dot", str(dot)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["defines"]["CAPACITY"] == "8" and printed["devices"] == 3
    assert [o["capacity"] for o in printed["objects"]] == [8, 8, 8]
    assert dot.read_text().startswith('digraph "fw_small" {')


@pytest.mark.parametrize("args,message", [
    (["--define", "NOPE=1"], "unknown define NOPE"),
    (["--define", "=3"], "expected NAME=VALUE"),
    (["--define", "CAPACITY=1", "--define", "CAPACITY=2"], "given twice"),
])
def test_bad_defines_are_reported_without_a_traceback(args: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", FW] + args) == 1
    err = capsys.readouterr().err
    assert err.startswith("nfx analyze: error: ") and message in err and "Traceback" not in err


def test_a_bare_define_means_one() -> None:
    assert parse_defines(["DEBUG", "A=b=c"]) == {"DEBUG": "1", "A": "b=c"}
    with pytest.raises(ConfigError):
        parse_defines([" =1"])


def test_unsupported_code_is_reported_with_its_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.c"
    bad.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                   "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                   "  return mystery();\n}\n")
    done = subprocess.run([sys.executable, "-m", "explorer.cli", "analyze", str(bad)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"nfx analyze: error: {bad}:4:10: call to unknown function mystery()")
    assert "Traceback" not in done.stderr


def test_an_unwritable_dot_file_is_a_config_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    assert main(["analyze", FW, "--dot", str(tmp_path / "afile" / "dir" / "x.dot")]) == 1
    assert f"--dot {tmp_path}/afile/dir/x.dot: {tmp_path}/afile is not a folder" in capsys.readouterr().err
    assert main(["analyze", FW, "--dot", str(tmp_path / "new" / "x.dot")]) == 0  # missing folders are made
    assert (tmp_path / "new" / "x.dot").read_text().startswith("digraph")


MGMT_PORT = ROOT / "tests" / "nfs" / "mgmt_port.c"  # tests for device 2 with the default two devices


def test_a_test_for_a_device_the_nf_does_not_have_is_a_warning_with_its_location(tmp_path: Path) -> None:
    nf = tmp_path / "ports.c"
    nf.write_text(MGMT_PORT.read_text())
    done = subprocess.run([sys.executable, "-m", "explorer.cli", "analyze", str(nf)], capture_output=True, text=True)
    assert done.returncode == 0 and "2 devices" in done.stdout
    line = next(n for n, text in enumerate(MGMT_PORT.read_text().splitlines(), 1) if text.strip() == "case MGMT:")
    assert done.stderr.splitlines() == [
        f"nfx analyze: warning: {nf}:{line}:5: this tests for device 2, but the NF has 2 devices (0..1), so that "
        'branch never runs; if the NF has more ports, #define NF_DEVICES 3 before #include "nf.h"']
    nf.write_text(MGMT_PORT.read_text().replace('#include "nf.h"', '#define NF_DEVICES 3\n#include "nf.h"'))
    done = subprocess.run([sys.executable, "-m", "explorer.cli", "analyze", str(nf)], capture_output=True, text=True)
    assert done.returncode == 0 and "3 devices" in done.stdout and done.stderr == ""


def test_a_negative_expiry_define_is_a_warning_at_the_comparison_it_breaks() -> None:
    """``now > FW_EXPIRATION_NS`` with -5 compares with 2^64 - 5: it never holds, nothing expires."""
    fw = ROOT / "sample_nfs" / "fw.c"
    done = subprocess.run([sys.executable, "-m", "explorer.cli", "analyze", str(fw), "-D", "FW_EXPIRATION_NS=-5"],
                          capture_output=True, text=True)
    line = next(n for n, text in enumerate(fw.read_text().splitlines(), 1) if "now > FW_EXPIRATION_NS" in text)
    assert done.returncode == 0 and done.stderr.splitlines() == [
        f"nfx analyze: warning: {fw}:{line}:10: -5 is compared with an unsigned 64-bit value, so C reads it as "
        f"{(1 << 64) - 5}; if it came from a define (an expiry, a capacity), give a value of 0 or more"]


@pytest.mark.parametrize("nf", sorted(str(p) for p in (ROOT / "sample_nfs").glob("*.c")) + [
    str(ROOT / "tests" / "nfs" / "dns_limit.c"), str(ROOT / "tests" / "nfs" / "ctl_dscp.c")])
def test_no_device_warning_for_nfs_that_test_only_their_own_devices(nf: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnalysisWarning)
        analyze(nf)


@pytest.mark.parametrize("verdict", ["1 - device", "device ^ 1", "(device + 1) % NF_DEVICES"])
def test_no_device_warning_for_a_verdict_computed_from_the_device(tmp_path: Path, verdict: str) -> None:
    """The analysis' own test of the verdict (is it NF_DROP, -1?) is no test the NF wrote: ``return
    1 - device`` must not read as a test for device 2."""
    nf = tmp_path / "other_port.c"
    nf.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  f"  return {verdict};\n}}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnalysisWarning)
        assert len(analyze(nf).paths) == 2


def test_solve_lists_every_object_of_a_locks_build_as_locked_and_what_it_could_be_alone() -> None:
    """two_keys' tables could each shard alone, but no key shards both: the build locks both, and
    the objects lines must say so, not "shard"."""
    done = subprocess.run([sys.executable, "-m", "explorer.cli", "solve", str(ROOT / "tests" / "nfs" / "two_keys.c"),
                           "--cores", "4"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("two_keys: locks on 4 cores")
    objects = [line.split() for line in lines if line.startswith(("  by_src ", "  by_dst "))]
    assert [o[:3] for o in objects] == [["by_src", "map", "lock"], ["by_dst", "map", "lock"]]
    assert all("could shard alone" in line and "the locks build runs every object under its lock" in line
               for line in lines if line.startswith(("  by_src ", "  by_dst ")))
    why = next(line for line in lines if line.startswith("why: "))  # in the NF's terms: which fields each table's
    assert "by_dst (two_keys.c:27" in why and "agree only on dst_ip, dst_port" in why  # sharers agree on
    assert "by_src (two_keys.c:26" in why and "agree only on src_ip" in why and "no key keeps every object" in why


def test_every_option_of_every_command_says_what_it_is_for() -> None:
    """``nfx CMD --help`` is a new user's first reference: no argument is listed without a sentence."""
    import argparse

    from explorer.cli import build_parser
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    bare = [f"nfx {name} {'/'.join(action.option_strings) or action.dest}"
            for name, command in sorted(commands.items()) for action in command._actions
            if not isinstance(action, argparse._HelpAction) and not action.help]
    assert len(commands) == 11 and bare == []


def test_a_command_prints_each_warning_once(capsys: pytest.CaptureFixture[str]) -> None:
    """check and bench build the NF more than once; gcc's warnings about it are printed once."""
    import warnings

    from explorer.cli import _show_warning
    from explorer.errors import BuildWarning
    show = _show_warning("check")
    for text in ("nf.c:3:5: unused variable 'x'", "nf.c:3:5: unused variable 'x'", "nf.c:9:1: other"):
        show(BuildWarning(text), BuildWarning, "build.py", 1)
    assert capsys.readouterr().err.splitlines() == ["nfx check: warning: nf.c:3:5: unused variable 'x'",
                                                    "nfx check: warning: nf.c:9:1: other"]
    assert warnings.showwarning is not show  # main() installs one per command run
