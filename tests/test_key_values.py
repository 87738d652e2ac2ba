"""A simulated violation's key read back as the packet fields it was made of (explorer.simulate.key_values)
instead of its raw bytes; the CLI and the explorer show that text."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import z3

from explorer import pipeline
from explorer.simulate.key_values import read_key
from test_sharding import DPORT, DST, SPORT, SRC, fw_like
from widgets.simulator import violations_html

ROOT = Path(__file__).resolve().parent.parent
PROTO = z3.BitVec("p.ipv4.proto", 8)
LAN = z3.Concat(SRC, DST, SPORT, DPORT, PROTO, z3.BitVecVal(0, 24))  # fw.c's struct flow_key
WAN = z3.Concat(DST, SRC, DPORT, SPORT, PROTO, z3.BitVecVal(0, 24))
# 10.202.6.8:33184 -> 98.39.235.143:123 UDP, padding 0: the bytes simulate printed before
FW_KEY = int("0aca06086227eb8f81a0007b11000000", 16)


def test_a_five_tuple_key_reads_as_its_fields_with_addresses_dotted_and_ports_as_numbers():
    fields = read_key(FW_KEY, [(LAN, (0,))])
    assert fields.text == "{src_ip: 10.202.6.8, dst_ip: 98.39.235.143, src_port: 33184, dst_port: 123, protocol: 17}"
    assert fields.device is None


def test_devices_that_build_the_key_from_other_fields_name_the_lowest_devices_view():
    fields = read_key(FW_KEY, [(WAN, (1,)), (LAN, (0,))])
    assert fields.text == ("{src_ip: 10.202.6.8, dst_ip: 98.39.235.143, src_port: 33184, dst_port: 123, "
                           "protocol: 17} (fields of a device 0 packet)")
    assert read_key(FW_KEY, [(WAN, (1,))]).text == (
        "{dst_ip: 10.202.6.8, src_ip: 98.39.235.143, dst_port: 33184, src_port: 123, protocol: 17}")


def test_a_port_the_nf_converted_to_host_order_reads_as_the_port():
    host = z3.Concat(z3.Extract(7, 0, DPORT), z3.Extract(15, 8, DPORT))  # nf_ntohs(port) stored little-endian
    assert read_key(int.from_bytes((443).to_bytes(2, "little"), "big"), [(host, (0,))]).text == "{dst_port: 443}"
    device = z3.BitVec("p.device", 16)
    by_device = z3.Concat(z3.Extract(7, 0, device), z3.Extract(15, 8, device), SRC)  # {uint16_t dev; uint32_t addr}
    assert read_key(0x0100C0000201, [(by_device, (0, 1))]).text == "{device: 1, src_ip: 192.0.2.1}"


def test_a_prefix_key_reads_as_the_prefix_and_constant_bits_must_match():
    prefix = z3.Concat(z3.Extract(31, 8, SRC), z3.BitVecVal(0, 8))
    assert read_key(0x0A010200, [(prefix, (0,))]).text == "{src_ip/24: 10.1.2.0}"
    assert read_key(0x0A010201, [(prefix, (0,))]) is None  # no term could have made it
    assert read_key(FW_KEY | 1, [(LAN, (0,))]) is None  # padding that is not 0


def test_a_key_with_bits_the_analysis_cannot_trace_or_only_constants_has_no_fields():
    hashed = z3.URem(SRC * 2654435761, 16)
    assert read_key(5, [(hashed, (0,))]) is None
    assert read_key(7, [(z3.BitVecVal(7, 32), (0,))]) is None  # one entry for every packet: its bytes say it


def test_simulated_violations_carry_the_fields_of_their_key_bytes():
    fw = pipeline.solve(fw_like(), cores=16)
    report = pipeline.simulate(fw, "bidir", packets=20_000, flows=2_000, keys={1: bytes(range(52))})
    assert report.violations
    for v in report.violations:
        raw = bytes.fromhex(v.key)
        expected = (f"{{src_ip: {'.'.join(map(str, raw[0:4]))}, dst_ip: {'.'.join(map(str, raw[4:8]))}, "
                    f"src_port: {int.from_bytes(raw[8:10], 'big')}, dst_port: {int.from_bytes(raw[10:12], 'big')}}} "
                    "(fields of a device 0 packet)")
        assert v.key_text == expected
        entry = v.to_dict()
        assert entry["key"] == v.key and entry["key_text"] == expected and entry["fields_device"] == 0
        assert [f["name"] for f in entry["fields"]] == ["src_ip", "dst_ip", "src_port", "dst_port"]


def test_cli_simulate_prints_the_key_as_fields_and_json_keeps_the_bytes():
    args = [sys.executable, "-m", "explorer.cli", "simulate", "sample_nfs/fw.c", "--traffic", "bidir",
            "--packets", "5000", "--flows", "500", "--cores", "4", "--key", "1=" + "6d5a" * 26]
    data = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, cwd=ROOT, check=True).stdout)
    example = data["violations"]["examples"][0]
    raw = bytes.fromhex(example["key"])
    assert len(raw) == 16 and raw[13:] == bytes(3)  # struct flow_key, with its padding
    values = [".".join(map(str, raw[0:4])), ".".join(map(str, raw[4:8])), str(int.from_bytes(raw[8:10], "big")),
              str(int.from_bytes(raw[10:12], "big")), str(raw[12])]
    assert example["fields"] == [{"name": n, "value": v} for n, v in
                                 zip(["src_ip", "dst_ip", "src_port", "dst_port", "protocol"], values)]
    text = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert (f"  flows key {{src_ip: {values[0]}, dst_ip: {values[1]}, src_port: {values[2]}, dst_port: {values[3]}, "
            f"protocol: {values[4]}}} (fields of a device 0 packet): cores {example['cores']}, "
            f"packets {example['packets']}") in text.splitlines()
    assert example["key"] not in text


def test_the_explorer_shows_the_engines_key_text_and_the_bytes_without_it():
    example = {"object": "flows", "key": "0a000001c0000207", "key_text": "{src_ip: 10.0.0.1, dst_ip: 192.0.2.7}",
               "cores": [1, 3], "packets": [4, 9]}
    out = violations_html({"count": 1, "examples": [example]}, {})
    assert "<code>{src_ip: 10.0.0.1, dst_ip: 192.0.2.7}</code>" in out and "0a000001c0000207" not in out
    assert "<code>0a000001c0000207</code>" in violations_html(
        {"count": 1, "examples": [dict(example, key_text="")]}, {})
