"""Keys, written values and verdicts leave the analysis simplified under their path condition, so
that a key chosen per device with ``?:`` or a helper's ``bool reversed`` shards like if/else."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer import pipeline
from explorer.nf_terms import FIELD_NAMES
from explorer.symbex import analyze
from explorer.symbex.bitvec import symbols_of

NFS = Path(__file__).resolve().parent / "nfs"
FORMS = ("fw_ternary", "fw_reversed", "fw_ifelse")


def _sharding(solution: pipeline.Solution) -> tuple:
    return (solution.strategy, solution.sharding.hashed,
            tuple((o.name, o.decision, o.fields) for o in solution.sharding.objects))


@pytest.fixture(scope="module")
def solutions() -> dict[str, pipeline.Solution]:
    return {nf: pipeline.solve(NFS / f"{nf}.c", quality=False) for nf in FORMS}


@pytest.mark.parametrize("nf", FORMS)
def test_a_key_chosen_per_device_shards_like_if_else(nf: str, solutions: dict[str, pipeline.Solution]) -> None:
    solution = solutions[nf]
    assert solution.strategy == "shared-nothing"
    assert _sharding(solution) == _sharding(solutions["fw_ifelse"])
    flows = solution.sharding.decision("flows")
    assert flows.decision == "shard"
    assert dict(flows.fields) == {0: ("src_ip", "dst_ip", "src_port", "dst_port"),
                                  1: ("src_ip", "dst_ip", "src_port", "dst_port")}


@pytest.mark.parametrize("nf", FORMS)
def test_no_reason_names_a_field_the_key_does_not_depend_on(nf: str, solutions: dict[str, pipeline.Solution]) -> None:
    solution = solutions[nf]
    keyed: dict[str, set[str]] = {}
    for path in solution.analysis.paths:
        for access in path.accesses:
            if access.key is not None:
                keyed.setdefault(access.object, set()).update(symbols_of(access.key))
    assert all("p.device" not in names for names in keyed.values())
    # reasons name fields as people do (src_ip, protocol), the device as "the input device"
    field_words = {"p.len", "now"} | {FIELD_NAMES.get(n, n) for names in keyed.values() for n in names
                                      if n.startswith("p.")}
    for decision in solution.sharding.objects:
        named = {w.strip(",:;()") for w in decision.reason.split()} & (field_words | {"protocol"})
        allowed = {FIELD_NAMES.get(n, n) for n in keyed.get(decision.name, set())}
        assert named <= allowed, (decision.name, decision.reason)
        assert "input device" not in decision.reason, (decision.name, decision.reason)


def test_a_path_both_devices_take_is_split_when_its_key_depends_on_the_device() -> None:
    a = analyze(NFS / "fw_ternary.c")
    found = [p for p in a.paths if any(x.call == "nf_dchain_rejuvenate_index" for x in p.accesses)]
    assert [(p.devices, str(p.verdict)) for p in found] == [((0,), "forward to 1"), ((1,), "forward to 0")]
    assert [p.condition_text.split(" && ")[-1] for p in found] == ["p.device == 0", "p.device == 1"]
    lan, wan = (p.accesses[1].key_text for p in found)
    assert lan == "{local_ip: p.ipv4.src, remote_ip: p.ipv4.dst, local_port: p.l4.sport, remote_port: p.l4.dport, " \
                  "protocol: p.ipv4.proto, pad: 0}"
    assert wan == "{local_ip: p.ipv4.dst, remote_ip: p.ipv4.src, local_port: p.l4.dport, remote_port: p.l4.sport, " \
                  "protocol: p.ipv4.proto, pad: 0}"


def test_an_index_computed_from_the_device_is_a_number_once_the_path_fixes_it() -> None:
    # the rules are RULES[device == LAN ? LAN : WAN][i]; rule i of side s counts in cell 8 * s + i
    a = analyze(NFS / "acl_count.c")
    cells = {(x.key_text, p.devices) for p in a.paths for x in p.accesses if x.object == "hits"}
    assert cells == {(str(i), (0,)) for i in range(8)} | {(str(8 + i), (1,)) for i in range(8)} | \
        {("16", (0,)), ("16", (1,))}


def test_a_verdict_that_depends_on_the_device_is_a_number_per_device(tmp_path: Path) -> None:
    path = tmp_path / "mirror.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  return device == 0 ? 1 : 0;\n}\n")
    a = analyze(path)
    assert [(p.condition_text, p.devices, p.verdict.device) for p in a.paths] == [
        ("p.device == 0", (0,), 1), ("p.device == 1", (1,), 0)]


def test_fields_that_are_plain_data_of_a_key_stay_fields(tmp_path: Path) -> None:
    # the path fixes both the port and the protocol; neither chooses between values, so the key
    # keeps them (and a hashable field is never substituted)
    path = tmp_path / "dns.c"
    path.write_text('#include "nf.h"\nstruct nf_map *m;\nbool nf_init(void) { return nf_map_allocate(2, 4, &m); }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    "  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);\n  if (l4 == NULL) return NF_DROP;\n"
                    "  if (nf_ntohs(l4->dst_port) != 53 || ip->protocol != 17) return NF_DROP;\n"
                    "  uint8_t key[2] = {(uint8_t)(nf_ntohs(l4->dst_port) & 0xFF), ip->protocol};\n"
                    "  nf_map_put(m, key, 0);\n  return 0;\n}\n")
    put = analyze(path).paths[2].accesses[0]
    assert put.key_text == "concat(p.l4.dport[7:0] & 0xff, p.ipv4.proto)"


def test_a_flag_that_chooses_a_key_is_substituted_when_the_path_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "choose.c"
    path.write_text('#include "nf.h"\nstruct nf_map *m;\nbool nf_init(void) { return nf_map_allocate(4, 4, &m); }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    "  bool tcp = ip->protocol == 6;\n  if (!tcp) return NF_DROP;\n"
                    "  uint32_t key = tcp ? ip->src_addr : ip->dst_addr;\n"
                    "  nf_map_put(m, &key, 0);\n  return 0;\n}\n")
    (put,) = [x for p in analyze(path).paths for x in p.accesses]
    assert put.key_text == "p.ipv4.src" and symbols_of(put.key) == {"p.ipv4.src"}  # not If(tcp, src, dst)


def test_key_fields_read_in_the_byte_order_the_code_wrote_them() -> None:
    """A host number in a key (the device, a constant, nf_ntohs() of a port) shows as the number,
    a field copied from the wire as the field: read big-endian, device 1 showed as 256 and the
    port as bswap16(...)."""
    analysis = pipeline.analyze(NFS / "host_order_key.c")
    texts = {(path.devices, a.key_text) for path in analysis.paths for a in path.accesses if a.call == "nf_map_get"}
    assert texts == {((0,), "{port: p.l4.dport + 1, dev: 0, zone: 3, wire: p.l4.sport}"),
                     ((1,), "{port: p.l4.dport + 1, dev: 1, zone: 3, wire: p.l4.sport}")}


def test_a_constant_the_nf_converted_reads_as_the_address_and_port_it_wrote() -> None:
    """``key.addr = nf_htonl(NF_IPV4(192, 0, 2, 1)); key.port = nf_htons(49152)``: the key showed
    the numbers its memory reads as, {addr: 16908480, port: 192}."""
    analysis = pipeline.analyze(NFS / "service_counter.c")
    texts = {a.key_text for path in analysis.paths for a in path.accesses if a.object == "hits"}
    assert texts == {"{addr: 192.0.2.1, port: 49152, pad: 0}"}
    solution = pipeline.solve(analysis, quality=False)
    # what nfx solve and the explorer say names the call and says the key is constant, not its bytes
    reason = solution.sharding.decision("hits").reason
    assert "service_counter.c:57 `nf_map_get(hits, &key, &index)` uses a key built from constants, which depends " \
        "on no packet field" in reason and "{addr:" not in reason, reason
    summary = pipeline.explain(solution, outcome=False)["objects"]["hits"]["summary"]
    assert "`nf_map_get(hits, &key, &index)` always picks the same entry, its key built from constants, whatever " \
        "the packet" in summary and "{addr:" not in summary, summary


def test_a_union_key_shows_its_bytes_once() -> None:
    """Every member of a union is the same bytes: the key showed them once per member,
    {addr: p.ipv4.src, bytes: p.ipv4.src}."""
    analysis = pipeline.analyze(NFS / "host_union.c")
    texts = {a.key_text for path in analysis.paths for a in path.accesses if a.object == "hosts" and a.key_text}
    assert texts == {"{addr: p.ipv4.src}"}


def test_a_cell_that_is_one_integer_reads_as_the_cell(tmp_path: Path) -> None:
    """A ``uint32_t`` cell read as a number showed as ``bswap32(epoch.cell#1)``, a byte swap the
    NF never wrote, and compared with a constant it showed that constant byte-swapped."""
    path = tmp_path / "epoch.c"
    path.write_text(
        '#include "nf.h"\nstatic struct nf_vector *epoch;\nstatic struct nf_vector *slots;\n'
        "bool nf_init(void) {\n"
        "  return nf_vector_allocate(sizeof(uint32_t), 1, &epoch) && nf_vector_allocate(sizeof(uint32_t), 16, &slots);\n"
        "}\n"
        "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
        "  uint32_t *v = nf_vector_borrow(epoch, 0);\n  uint32_t e = *v;\n  *v = e == 5 ? 0 : e + 1;\n"
        "  nf_vector_return(epoch, 0, v);\n"
        "  uint32_t *s = nf_vector_borrow(slots, e % 16);\n  *s += 1;\n  nf_vector_return(slots, e % 16, s);\n"
        "  if (e > 100) return NF_DROP;\n  return device == 0 ? 1 : 0;\n}\n")
    analysis = analyze(path)
    slots = {a.key_text for p in analysis.paths for a in p.accesses if a.object == "slots"}
    assert slots == {"epoch.cell#1 % 16"}
    conditions = {p.condition_text for p in analysis.paths}
    assert any("epoch.cell#1 > 100" in c for c in conditions) and any("epoch.cell#1 <= 100" in c for c in conditions)
    host_union = pipeline.analyze(NFS / "host_union.c")
    texts = [p.condition_text for p in host_union.paths] + [a.key_text for p in host_union.paths for a in p.accesses]
    assert any("used.cell#4 >= 100" in t for t in texts) and not any("bswap" in t for t in texts)


def test_a_raw_cell_compared_with_a_constant_keeps_the_constant(tmp_path: Path) -> None:
    path = tmp_path / "cells.c"
    path.write_text(
        '#include "nf.h"\nstruct one { uint32_t count; };\nstatic struct nf_vector *raw;\n'
        "static struct nf_vector *wrapped;\nbool nf_init(void) {\n"
        "  return nf_vector_allocate(sizeof(uint32_t), 1, &raw) && nf_vector_allocate(sizeof(struct one), 1, &wrapped);\n"
        "}\n"
        "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
        "  uint32_t *v = nf_vector_borrow(raw, 0);\n  uint32_t seen = *v;\n  nf_vector_return(raw, 0, v);\n"
        "  struct one *w = nf_vector_borrow(wrapped, 0);\n  uint32_t count = w->count;\n"
        "  nf_vector_return(wrapped, 0, w);\n"
        "  if (seen == 5 && count == 7) return NF_DROP;\n  return device == 0 ? 1 : 0;\n}\n")
    dropped = [p.condition_text for p in analyze(path).paths if p.verdict.kind == "drop"]
    assert dropped == ["raw.cell#1 == 5 && wrapped.cell#3.count == 7"]


def test_a_zero_field_stays_zero_when_the_nf_converts_zero_elsewhere(tmp_path: Path) -> None:
    """0 is 0 in either byte order: an nf_htonl(0) somewhere must not make a zero key field an
    address (0.0.0.0)."""
    path = tmp_path / "zero.c"
    path.write_text(
        '#include "nf.h"\nstruct key { uint32_t addr; uint32_t zero; };\nstatic struct nf_map *m;\n'
        "bool nf_init(void) { return nf_map_allocate(sizeof(struct key), 4, &m); }\n"
        "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
        "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
        "  ip->src_addr = nf_htonl(0);\n  struct key k;\n  k.addr = ip->dst_addr;\n  k.zero = 0;\n"
        "  nf_map_put(m, &k, 0);\n  return device == 0 ? 1 : 0;\n}\n")
    assert {a.key_text for p in analyze(path).paths for a in p.accesses} == {"{addr: p.ipv4.dst, zero: 0}"}


def test_a_prefix_mask_reads_as_a_mask_on_the_address() -> None:
    """``ip->src_addr & nf_htonl(rules[i].mask)`` in a loop over prefix rules: the key is the address
    as on the wire under the rule's mask; it read ``bswap32(bswap32(p.ipv4.src) & 0xffffff)``. The
    text only: the table still shards on the LAN source address."""
    analysis = pipeline.analyze(NFS / "prefix_counters.c")
    texts = {a.key_text for path in analysis.paths for a in path.accesses if a.object == "nets"}
    assert texts == {"{net: p.ipv4.src & 0xffffff00}", "{net: p.ipv4.src & 0xffff0000}"}
    solution = pipeline.solve(analysis, quality=False)
    nets = solution.sharding.decision("nets")
    assert solution.strategy == "shared-nothing" and nets.decision == "shard"
    assert dict(nets.fields) == {0: ("src_ip",)}


@pytest.mark.parametrize("written,shown", [
    ("nf_htonl(nf_ntohl(ip->dst_addr) & 0xffffff00u)", "p.ipv4.dst & 0xffffff00"),
    ("ip->dst_addr & nf_htonl(0xffffff00u)", "p.ipv4.dst & 0xffffff00"),
    ("ip->dst_addr & 0x00ffffffu", "p.ipv4.dst & 0xffffff00"),
    ("ip->dst_addr | nf_htonl(0xffu)", "p.ipv4.dst | 0xff"),
    ("ip->dst_addr & nf_htonl(0u)", "0"),
])
def test_a_mask_applied_in_either_byte_order_reads_on_the_field(tmp_path: Path, written: str, shown: str) -> None:
    path = tmp_path / "masked.c"
    path.write_text('#include "nf.h"\nstatic struct nf_map *m;\n'
                    "bool nf_init(void) { return nf_map_allocate(4, 16, &m); }\n"
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    f"  uint32_t key = {written};\n  int index;\n"
                    "  return nf_map_get(m, &key, &index) ? 1 : 0;\n}\n")
    assert {a.key_text for p in analyze(path).paths for a in p.accesses} == {shown}
