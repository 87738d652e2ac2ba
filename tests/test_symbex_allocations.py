"""Values the NF allocates and writes into packets (issue 14, item 1): the NAT's external port, a port
translator's even ports, and what does not count."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer import ir
from explorer.graph import access_graph
from explorer.symbex import analyze
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.evaluate import compile_term

ROOT = Path(__file__).resolve().parent.parent
NAT = ROOT / "sample_nfs" / "nat.c"
PORT_ALLOC = ROOT / "tests" / "nfs" / "port_alloc.c"


def _values(field: ir.AllocatedField, indices: list[int]) -> list[int]:
    assert symbols_of(field.value) == {f"{field.allocator}.index"} and field.value.size() == 16
    return [int(v) for v in compile_term(field.value)({f"{field.allocator}.index": indices})]


@pytest.fixture(scope="module")
def nat() -> ir.Analysis:
    return analyze(NAT)


def test_the_nat_external_port_is_an_allocated_value(nat: ir.Analysis) -> None:
    (port,) = nat.allocated
    assert (port.allocator, port.field, port.reply_field) == ("chain", "p.l4.sport", "p.l4.dport")
    assert (port.devices, port.out_devices, port.via) == ((0,), (1,), ("internal",))
    assert port.value_text == "1024 + chain.index[15:0]"
    assert _values(port, [0, 5, 16383]) == [1024, 1029, 17407]  # NAT_START_PORT + index
    assert port.text == "device 1 p.l4.dport is 1024 + chain.index[15:0], allocated by chain on device-0 paths"
    # the LAN paths that forward a frame: the one that allocates, and the one that finds its flow
    forwarding = [p.index for p in nat.paths if p.devices == (0,) and p.verdict.device == 1]
    assert port.paths == tuple(forwarding) and len(forwarding) == 2
    assert [(loc.line, loc.col) for loc in port.allocated_at] == [(122, 10)]  # nf_dchain_allocate_new_index
    assert [(loc.line, loc.col) for loc in port.written_at] == [(143, 3)]  # l4->src_port = external_port(index)


def test_the_nat_reads_the_allocated_port_back_into_its_wan_key(nat: ir.Analysis) -> None:
    (port,) = nat.allocated
    wan_reads = [p.index for p in nat.paths if p.devices == (1,) and any(a.object == "external" for a in p.accesses)]
    assert port.reply_keys == (ir.KeyedBy("external", (1,), tuple(wan_reads)),)
    keyed = {k.object: k for k in port.keyed}
    allocating = [p.index for p in nat.paths if any(a.op == ir.Op.CREATE for a in p.accesses)
                  and p.verdict.kind == "forward"]
    assert keyed["external"] == ir.KeyedBy("external", (0,), tuple(allocating))  # ekey.external_port


def test_a_port_pool_of_even_ports_through_a_shift() -> None:
    a = analyze(PORT_ALLOC)
    (port,) = a.allocated
    assert (port.allocator, port.field, port.reply_field, port.via) == ("pool", "p.l4.sport", "p.l4.dport", ("flows",))
    assert _values(port, [0, 1, 8191]) == [40000, 40002, 56382]
    assert [k.object for k in port.reply_keys] == ["ports"] and port.reply_keys[0].devices == (1,)
    assert "ports" in {k.object for k in port.keyed}


def _nf(tmp_path: Path, write: str) -> ir.Analysis:
    path = tmp_path / "alloc.c"
    path.write_text('#include "nf.h"\nstruct nf_dchain *ids;\n'
                    "bool nf_init(void) { return nf_dchain_allocate(64, &ids); }\n"
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    "  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);\n  if (l4 == NULL) return NF_DROP;\n"
                    "  int id;\n  if (!nf_dchain_allocate_new_index(ids, &id, now)) return NF_DROP;\n"
                    f"  {write}\n  return 1;\n}}\n")
    return analyze(path)


def test_a_field_no_reply_mirrors_carries_the_value_out_only(tmp_path: Path) -> None:
    (tos,) = _nf(tmp_path, "ip->tos = (uint8_t)(id + 1);").allocated
    assert (tos.field, tos.reply_field, tos.reply_keys) == ("p.ipv4.tos", None, ())
    assert tos.text == "p.ipv4.tos is ids.index[7:0] + 1 on the way out (allocated by ids on device-0,1 paths)"


@pytest.mark.parametrize("write", [
    "l4->src_port = nf_htons((uint16_t)(id + nf_ntohs(l4->dst_port)));",  # mixed with a packet field
    "(void)id;",  # allocated but never written
])
def test_values_that_are_not_a_function_of_the_index_alone_do_not_count(write: str, tmp_path: Path) -> None:
    assert _nf(tmp_path, write).allocated == ()


@pytest.mark.parametrize("nf", ["fw", "lb", "psd", "bridge"])
def test_nfs_that_write_no_allocated_value_have_none(nf: str) -> None:
    assert analyze(ROOT / "sample_nfs" / f"{nf}.c").allocated == ()


def test_the_json_and_the_graph_show_it(nat: ir.Analysis) -> None:
    (entry,) = nat.to_dict()["allocated"]
    wan_paths = list(nat.allocated[0].reply_keys[0].paths)
    assert entry["reply_keys"] == [{"object": "external", "devices": [1], "paths": wan_paths}]
    assert entry["value"] == "1024 + chain.index[15:0]" and entry["text"] == nat.allocated[0].text
    edges = [line for line in access_graph(nat).splitlines() if "allocates" in line]
    assert edges == ['  "obj:chain" -> "field:p.l4.dport" [label="allocates 1024 + chain.index[15:0]\\nwritten as '
                     'p.l4.sport (dev 0; 2 paths),\\nback as p.l4.dport (dev 1)", style=bold, color="#2ca02c", '
                     'fontcolor="#2ca02c"];']
    highlighted = [line for line in access_graph(nat, "chain").splitlines() if "allocates" in line]
    assert highlighted[0].endswith('penwidth=2.5, fontcolor="#d62728"];')
