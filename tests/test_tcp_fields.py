"""TCP's fields after the ports (nf.h's nf_tcp_fields, ``p.tcp.*``): syn_guard.c, a SYN-flood guard
that counts WAN SYNs per source and clears URG on other segments, through analyze, solve, paths
traffic and check; UDP frames and frames too short for a TCP header never reach its TCP paths."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.cli import main
from explorer.run import run_trace
from explorer.symbex.evaluate import evaluate, frames_env
from explorer.symbex.packet import PacketSymbols
from explorer.traffic.pcap import load_inputs
from explorer.traffic.replies import l4_start
from explorer.traffic.trace import Trace
from explorer.verify.coverage import match_paths
from explorer.verify.renaming import update_checksums
from explorer.verify.witnesses import build_frame

ROOT = Path(__file__).resolve().parent.parent
SYN_GUARD = ROOT / "tests" / "nfs" / "syn_guard.c"
SYN, ACK, URG = 0x02, 0x10, 0x20
NEW_SOURCE = "p.device != 0 && p.is_ipv4 && p.is_tcp && (p.tcp.flags & 0x12) == 2 && !sources.found#2 && chain.ok#3"
URG_CLEARED = "p.device != 0 && p.is_ipv4 && p.is_tcp && (p.tcp.flags & 0x12) != 2 && (p.tcp.flags & 0x20) != 0"
NOT_TCP = "p.device != 0 && p.is_ipv4 && !p.is_tcp"


@functools.lru_cache(maxsize=None)
def _analysis(max_syns: str = "8"):
    return pipeline.analyze(SYN_GUARD, {"SG_MAX_SYNS": max_syns})


def _cli(capsys, *argv) -> tuple[int, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out


def _frame(proto: int, flags: int, length: int = 60, src: int = 0x0A000001, ihl: int = 5) -> bytes:
    """A WAN frame from ``src`` whose byte 13 of the L4 header is ``flags`` (TCP's flags byte, or a
    UDP payload byte)."""
    return build_frame({"p.ether.type": 0x0800, "p.ipv4.version_ihl": 0x40 | ihl, "p.ipv4.ttl": 64,
                        "p.ipv4.proto": proto, "p.ipv4.src": src, "p.ipv4.dst": 0xAC100001, "p.l4.sport": 40000,
                        "p.l4.dport": 80, "p.tcp.data_off": 0x50, "p.tcp.flags": flags, "p.tcp.window": 0xFFFF},
                       length)


def test_paths_are_conditioned_on_the_tcp_flags(capsys):
    status, out = _cli(capsys, "analyze", str(SYN_GUARD))
    assert status == 0 and "9 paths, 2 devices" in out
    assert "fields read: p.ether.type, p.ipv4.frag_off, p.ipv4.proto, p.ipv4.src, p.ipv4.version_ihl, " \
           "p.tcp.flags\n" in out
    for condition in (NOT_TCP, NEW_SOURCE, URG_CLEARED):
        assert f": {condition}\n" in out, out
    for path in _analysis().paths:  # no path reads the flags without the header
        decided = path.condition_text.split(" && ")
        if any(d.startswith("p.tcp.") for d in decided):
            assert "p.is_tcp" in decided, path.condition_text


def test_clearing_a_flag_is_a_field_write(capsys):
    [path] = [p for p in _analysis().paths if p.condition_text == URG_CLEARED]
    writes = {w.field: w for w in path.writes}
    assert set(writes) == {"p.tcp.flags", "p.ipv4.checksum", "p.tcp.checksum"}  # both checksums recomputed
    assert writes["p.tcp.flags"].location.line == 45 and writes["p.ipv4.checksum"].value is None
    assert writes["p.tcp.checksum"].value is None and writes["p.tcp.checksum"].location.line == 46
    # a path that has not decided the packet is TCP has no TCP checksum field to list (UDP's is not one)
    assert not any(w.field == "p.tcp.checksum" for p in _analysis().paths for w in p.writes
                   if "p.is_tcp" not in p.condition_text.split(" && "))
    status, out = _cli(capsys, "analyze", str(SYN_GUARD), "--json")
    [flags] = [w for p in json.loads(out)["paths"] for w in p["writes"] if w["field"] == "p.tcp.flags"]
    assert status == 0 and "p.tcp.flags & 0xdf" in json.dumps(flags)
    others = [p for p in _analysis().paths if p.condition_text != URG_CLEARED]
    assert not any(w.field.startswith("p.tcp.") for p in others for w in p.writes)


def test_solve_shards_the_syn_counts_by_source(capsys):
    status, out = _cli(capsys, "solve", str(SYN_GUARD), "--cores", "4", "--json")
    solved = json.loads(out)
    assert status == 0 and solved["strategy"] == "shared-nothing", solved
    hashed = {d["device"]: tuple(d["fields"]) for d in solved["devices"].values()}
    assert hashed[1] == ("src_ip",)


def test_the_frame_builder_puts_tcp_fields_after_the_ports_and_ip_options():
    for ihl in (5, 6):
        frame = _frame(6, SYN | URG, ihl=ihl)
        l4 = 14 + 4 * ihl
        assert l4_start(frame) == l4 and frame[l4 + 12] == 0x50 and frame[l4 + 13] == SYN | URG
        assert frame[l4 + 2:l4 + 4] == (80).to_bytes(2, "big") and frame == update_checksums(frame)


def test_the_tcp_condition_needs_tcp_and_the_whole_tcp_header():
    frames = [_frame(6, SYN), _frame(17, SYN), _frame(6, SYN, length=14 + 20 + 19), _frame(6, SYN, length=54)]
    packet = PacketSymbols()
    env = frames_env(frames)
    assert evaluate(packet.tcp_ok, env).tolist() == [True, False, False, True]
    assert evaluate(packet.tcpudp_ok, env).tolist() == [True, True, False, True]


@pytest.mark.dpdk
def test_udp_and_short_frames_never_reach_the_tcp_paths():
    """With SG_MAX_SYNS 2, a source's third SYN is dropped: a UDP frame whose byte 13 after the
    ports reads SYN, and a TCP SYN one byte short of the TCP header, pass without counting."""
    analysis = _analysis("2")
    frames = [_frame(6, SYN), _frame(17, SYN), _frame(6, SYN, length=14 + 20 + 19), _frame(6, SYN, length=54),
              _frame(6, SYN), _frame(6, ACK | URG)]
    trace = Trace(np.arange(1, len(frames) + 1, dtype=np.uint64) * np.uint64(1000),
                  np.ones(len(frames), dtype=np.uint16), tuple(frames))
    result = run_trace(SYN_GUARD, trace, {"SG_MAX_SYNS": "2"}, calls=True)
    assert [v.verdict for v in result.verdicts] == [0, 0, 0, 0, -1, 0]
    followed = [analysis.paths[p].condition_text for p in match_paths(analysis, trace, result).path_of.tolist()]
    counted = NEW_SOURCE.replace("!sources.found#2 && chain.ok#3", "sources.found#2 && counts.cell#3 < 2")
    assert followed == [NEW_SOURCE, NOT_TCP, NOT_TCP, counted, counted.replace("< 2", ">= 2"), URG_CLEARED]
    [(_, _, cleared)] = [o for o in result.outputs if o[0] == 5]
    assert cleared[47] == ACK and cleared == update_checksums(frames[5][:47] + bytes([ACK]) + frames[5][48:])
    assert [o[2] for o in result.outputs if o[0] in (1, 2)] == frames[1:3]  # untouched


@pytest.mark.dpdk
@pytest.mark.slow
def test_paths_traffic_follows_the_flag_paths_and_the_parallel_build_is_equivalent(tmp_path, capsys):
    """``nfx traffic paths`` solves frames for every path, SYNs and URG segments included; the
    table is too big for the search to fill (the one path that needs it full is not reached), so
    ``nfx check`` at 2 cores compares every packet."""
    defines = ["-D", "SG_MAX_SYNS=3", "-D", "SG_CAPACITY=65536"]
    status, out = _cli(capsys, "traffic", "paths", "--nf", str(SYN_GUARD), *defines, "--out", str(tmp_path / "t"))
    assert status == 0 and "8 of 9 paths followed" in out and "path 2 not reached: needs chain full" in out, out
    inputs = [f"0={tmp_path / 't' / 'dev0.pcap'}", f"1={tmp_path / 't' / 'dev1.pcap'}"]
    trace = load_inputs(inputs)
    flags = [f[l4 + 13] for f, d in zip(trace.frames, trace.devices.tolist())
             if d == 1 and (l4 := l4_start(f)) is not None and f[23] == 6]
    assert flags.count(SYN) > 3 and any(f & URG for f in flags) and any(f & (SYN | ACK) != SYN for f in flags)
    status, out = _cli(capsys, "check", str(SYN_GUARD), *defines, *[a for s in inputs for a in ("--in", s)],
                       "--cores", "2", "--json")
    report = json.loads(out)
    assert status == 0 and report["equivalent"] is True, json.dumps(report, indent=1)[:3000]
