"""NIC profiles, the field sets each driver can select, and rss_hf masks against the real headers."""
from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from explorer.errors import ConfigError, ShardingError
from explorer.rss.hash_input import FIELD_NAMES
from explorer.rss.nic import PROFILES, RSS_HF_BITS, flow_rule_types, nic_profile, rss_hf

ALL_SUBSETS = [tuple(f for i, f in enumerate(FIELD_NAMES) if mask >> i & 1) for mask in range(1, 16)]


def test_profiles():
    e810, x710, cx5, ixgbe = (nic_profile(n) for n in ("e810", "x710", "cx5", "82599"))
    assert (e810.driver, e810.key_bytes, e810.reta_size, e810.field_selection) == ("ice", 52, 512, True)
    assert (x710.driver, x710.key_bytes, x710.reta_size, x710.field_selection) == ("i40e", 52, 512, True)
    assert (cx5.driver, cx5.key_bytes, cx5.reta_size, cx5.field_selection) == ("mlx5", 40, 512, True)
    assert (ixgbe.driver, ixgbe.key_bytes, ixgbe.reta_size, ixgbe.field_selection) == ("ixgbe", 40, 128, False)
    assert e810.reta_sizes == (128, 512, 2048) and e810.index_bits == 9 and ixgbe.index_bits == 7
    for p in PROFILES.values():
        assert p.reta_size in p.reta_sizes
        assert p.to_dict()["name"] == p.name


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        nic_profile("e1000")
    assert "e1000" in str(info.value)
    for name in ("e810", "x710", "cx5", "82599"):
        assert name in str(info.value)


def test_with_reta_size():
    assert nic_profile("e810").with_reta_size(2048).index_bits == 11
    with pytest.raises(ConfigError, match="128"):
        nic_profile("82599").with_reta_size(512)


def test_selectable_field_sets():
    ice, mlx5, ixgbe = nic_profile("e810"), nic_profile("cx5"), nic_profile("82599")
    intel_ok = {("src_ip",), ("dst_ip",), ("src_ip", "dst_ip"), ("src_port",), ("dst_port",),
                ("src_ip", "src_port"), ("src_ip", "dst_port"), ("dst_ip", "src_port"), ("dst_ip", "dst_port"),
                FIELD_NAMES}
    assert {s for s in ALL_SUBSETS if ice.can_hash(s)} == intel_ok
    assert {s for s in ALL_SUBSETS if nic_profile("x710").can_hash(s)} == intel_ok
    assert {s for s in ALL_SUBSETS if mlx5.can_hash(s)} == {s for s in ALL_SUBSETS if "src_ip" in s or "dst_ip" in s}
    assert {s for s in ALL_SUBSETS if ixgbe.can_hash(s)} == {FIELD_NAMES}


def test_select_fields_is_smallest_superset():
    ice, mlx5, ixgbe = nic_profile("e810"), nic_profile("cx5"), nic_profile("82599")
    assert ice.select_fields(["dst_ip"]) == ("dst_ip",)
    assert ice.select_fields(["src_ip", "dst_ip", "src_port"]) == FIELD_NAMES
    assert mlx5.select_fields(["src_ip", "dst_ip", "src_port"]) == ("src_ip", "dst_ip", "src_port")
    assert mlx5.select_fields(["dst_port"]) == ("src_ip", "dst_port")
    assert ixgbe.select_fields(["dst_ip"]) == FIELD_NAMES
    assert ice.select_fields([]) == FIELD_NAMES
    for profile, wanted in itertools.product(PROFILES.values(), ALL_SUBSETS):
        chosen = profile.select_fields(wanted)
        assert set(wanted) <= set(chosen) and profile.can_hash(chosen)


def test_rss_hf_masks():
    assert rss_hf(FIELD_NAMES).names == ("RTE_ETH_RSS_IPV4", "RTE_ETH_RSS_NONFRAG_IPV4_TCP",
                                         "RTE_ETH_RSS_NONFRAG_IPV4_UDP")
    assert rss_hf(FIELD_NAMES).mask == 0b110100
    assert rss_hf(("dst_ip",)).names == ("RTE_ETH_RSS_IPV4", "RTE_ETH_RSS_L3_DST_ONLY")
    assert rss_hf(("dst_ip",)).mask == (1 << 2) | (1 << 62)
    assert rss_hf(("src_ip", "dst_ip")).names == ("RTE_ETH_RSS_IPV4",)
    assert rss_hf(("src_ip", "src_port")).mask == 0b110100 | (1 << 63) | (1 << 61)
    assert rss_hf(("dst_port",)).names[-1] == "RTE_ETH_RSS_L4_DST_ONLY"
    assert rss_hf(("src_ip", "dst_ip", "dst_port"), "cx5").mask == 0b110100 | (1 << 60)
    assert rss_hf((), "e810").mask == 0
    assert rss_hf(FIELD_NAMES, "82599").c_expression == \
        "RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP"


def test_rss_hf_refuses_what_the_driver_cannot_hash():
    with pytest.raises(ShardingError, match="nearest"):
        rss_hf(("dst_ip",), "82599")
    with pytest.raises(ShardingError):
        rss_hf(("src_ip", "dst_ip", "src_port"), "e810")
    with pytest.raises(ShardingError):
        rss_hf(("src_port",), "cx5")
    with pytest.raises(ConfigError, match="not an RSS field"):
        rss_hf(("src_mac",))


def test_the_generic_ipv4_rule_is_created_before_the_tcp_and_udp_rules():
    """ice's "eth / ipv4" profile spans every IPv4 packet type; the TCP/UDP profiles must come after
    it (as in ice_rss_hash_set), or a port hashing dst_port alone (nat's WAN) could hash its TCP/UDP
    frames on the addresses. It came last."""
    rules = flow_rule_types(rss_hf(("dst_port",)).mask)
    assert [pattern for pattern, _ in rules] == ["eth / ipv4", "eth / ipv4 / tcp", "eth / ipv4 / udp"]


def test_flow_rule_types_split_per_pattern():
    ipv4, tcp, udp = (RSS_HF_BITS[n] for n in ("RTE_ETH_RSS_IPV4", "RTE_ETH_RSS_NONFRAG_IPV4_TCP",
                                              "RTE_ETH_RSS_NONFRAG_IPV4_UDP"))
    l3_dst, l4_src = RSS_HF_BITS["RTE_ETH_RSS_L3_DST_ONLY"], RSS_HF_BITS["RTE_ETH_RSS_L4_SRC_ONLY"]
    assert dict(flow_rule_types(rss_hf(("dst_ip",)).mask)) == {
        "eth / ipv4 / tcp": ipv4 | l3_dst, "eth / ipv4 / udp": ipv4 | l3_dst, "eth / ipv4": ipv4 | l3_dst}
    assert dict(flow_rule_types(rss_hf(("dst_ip", "src_port")).mask)) == {
        "eth / ipv4 / tcp": tcp | l3_dst | l4_src, "eth / ipv4 / udp": udp | l3_dst | l4_src,
        "eth / ipv4": ipv4 | l3_dst}
    assert flow_rule_types(0) == ()


def _compile_and_run(tmp_path, source: str) -> str:
    path = tmp_path / "probe.c"
    path.write_text(source)
    flags = subprocess.run(["pkg-config", "--cflags", "libdpdk"], check=True, capture_output=True, text=True).stdout
    binary = tmp_path / "probe"
    subprocess.run([shutil.which("gcc") or "gcc", "-O0", "-Wall", "-Wextra", "-Werror", str(path), "-o", str(binary),
                    *flags.split()], check=True)
    return subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout


@pytest.mark.dpdk
def test_rss_hf_values_match_installed_headers(tmp_path):
    masks = {fields: rss_hf(fields, "cx5") for fields in ALL_SUBSETS if nic_profile("cx5").can_hash(fields)}
    masks.update({fields: rss_hf(fields, "e810") for fields in ALL_SUBSETS if nic_profile("e810").can_hash(fields)})
    lines = [f'  printf("%s %" PRIu64 "\\n", "{name}", (uint64_t)({name}));' for name in RSS_HF_BITS]
    exprs = sorted({hf.c_expression for hf in masks.values()})
    lines += [f'  printf("expr%d %" PRIu64 "\\n", {i}, (uint64_t)({e}));' for i, e in enumerate(exprs)]
    out = _compile_and_run(tmp_path, "#include <stdio.h>\n#include <inttypes.h>\n#include <rte_ethdev.h>\n"
                                     "int main(void) {\n" + "\n".join(lines) + "\n  return 0;\n}\n")
    values = dict(line.split() for line in out.splitlines())
    for name, bit in RSS_HF_BITS.items():
        assert int(values[name]) == bit, name
    by_expr = {hf.c_expression: hf.mask for hf in masks.values()}
    for i, e in enumerate(exprs):
        assert int(values[f"expr{i}"]) == by_expr[e], e


def test_cores_stop_at_the_queues_a_nic_spreads_over():
    """82599/X540 RETA entries hold 4 bits, so RSS feeds 16 queues whatever the RETA's 128 entries
    say: a plan for more cores would name queues the NIC cuts to their low bits. Before, nfx solved
    and simulated 64 cores on it without a word."""
    from explorer import pipeline

    assert nic_profile("82599").max_cores == 16 and nic_profile("e810").max_cores == 512
    root = Path(__file__).resolve().parents[1]
    assert pipeline.solve(root / "sample_nfs/nop.c", nic="82599", cores=16, quality=False).plan.cores == 16
    with pytest.raises(ConfigError, match=r"82599 \(Intel 82599/X540\) takes 1 to 16 cores \(the 16 queues its RSS "
                                          r"spreads over\), not 17"):
        pipeline.solve(root / "sample_nfs/nop.c", nic="82599", cores=17, quality=False)


@pytest.mark.parametrize("command", ["solve", "simulate", "generate"])
def test_x710_stops_at_the_64_queues_of_its_traffic_class(tmp_path, command):
    """An i40e PF spreads RSS over traffic class 0, at most 64 queues (I40E_MAX_Q_PER_TC); solve,
    simulate and generate took 65 to 128 cores on x710 and planned RETAs naming queues it cuts to
    their low 6 bits. Now each says so in one line; 64 cores still work."""
    import sys

    root = Path(__file__).resolve().parents[1]
    assert nic_profile("x710").max_cores == 64 and nic_profile("x710").with_reta_size(128).max_cores == 64
    extra = {"simulate": ["--traffic", "uniform", "--packets", "1000"], "generate": ["-o", str(tmp_path / "p")],
             "solve": []}[command]
    done = subprocess.run([sys.executable, "-m", "explorer.cli", command, "sample_nfs/nop.c", "--nic", "x710",
                           "--cores", "65", *extra], capture_output=True, text=True, cwd=root)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"nfx {command}: error: x710 (Intel X710/XL710) takes 1 to 64 cores "
                                                "(the 64 queues its RSS spreads over), not 65"]
    done = subprocess.run([sys.executable, "-m", "explorer.cli", command, "sample_nfs/nop.c", "--nic", "x710",
                           "--cores", "64", *extra], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
