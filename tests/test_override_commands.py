"""``--override`` on generate and check, not only on solve and simulate.

``nfx solve NF --override cfg=replicate`` chose a build that no command could then write or verify:
generate and check re-solved the NF without the user's choice (tests/nfs/mgmt_config.c, whose
config table only a management port writes: locks unless the user says its writers are rare).
"""
from __future__ import annotations

import json
from pathlib import Path

from explorer.cli import main

ROOT = Path(__file__).resolve().parent.parent
MGMT = str(ROOT / "tests" / "nfs" / "mgmt_config.c")


def test_generate_writes_the_build_the_override_chooses(tmp_path, capsys):
    assert main(["generate", MGMT, "-o", str(tmp_path / "auto"), "--cores", "2"]) == 0
    assert "mgmt_config: locks on 2 cores" in capsys.readouterr().out
    assert main(["generate", MGMT, "-o", str(tmp_path / "rep"), "--cores", "2", "--override", "cfg=replicate"]) == 0
    assert "mgmt_config: sn on 2 cores" in capsys.readouterr().out
    assert "#define NF_REPLICAS 1" in (tmp_path / "rep" / "nf_plan.h").read_text()


def test_check_takes_the_override_and_refuses_a_bad_one_cleanly(capsys):
    status = main(["check", MGMT, "--traffic", "bidir", "--packets", "100", "--override", "nope=lock"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "override names 'nope', which is not a state object of mgmt_config (objects: cfg)" in err
    fw = str(ROOT / "sample_nfs" / "fw.c")
    status = main(["check", fw, "--traffic", "bidir", "--packets", "100", "--override", "flows:0=src_ip",
                   "--override", "flows:1=src_ip", "--json"])
    assert status == 1 and "the requested sharding is not correct" in capsys.readouterr().err


def test_an_object_given_twice_is_refused_not_overwritten(capsys):
    """``--override flows:0=src_ip --override flows:0=dst_ip`` solved for dst_ip alone, and
    ``flows=lock --override flows=replicate`` replicated: the second silently won, as --define and
    --in refuse to let happen."""
    fw = str(ROOT / "sample_nfs" / "fw.c")
    for overrides, words in ((("flows:0=src_ip", "flows:0=dst_ip"),
                              "override 'flows:0=dst_ip': flows on device 0 is already given fields src_ip; list "
                              "them all in one override"),
                             (("flows=lock", "flows=replicate"),
                              "override 'flows=replicate': flows is already chosen to be lock")):
        argv = ["solve", fw, "--cores", "2"] + [a for o in overrides for a in ("--override", o)]
        assert main(argv) == 1
        assert words in capsys.readouterr().err
    assert main(["solve", fw, "--cores", "2", "--override", "flows:0=src_ip", "--override", "flows:1=dst_ip"]) == 0
