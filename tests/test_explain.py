"""explorer.explain: the analysis and the solution in the NF author's words (source lines, C calls,
field names), realistic counterexample packets checked against an independent Toeplitz hash, and
what the sequential NF does to them."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from explorer import explain, pipeline
from explorer.rss.toeplitz import toeplitz_hash
from explorer.wire import RSS_BITS

ROOT = Path(__file__).resolve().parent.parent
FW = ROOT / "sample_nfs" / "fw.c"
SUBNETS = ROOT / "tests" / "nfs" / "subnet_quota.c"
SPLIT = {"flows": {0: ("src_ip",), 1: ("src_ip",)}}


@pytest.fixture(scope="module")
def fw():
    return pipeline.solve(FW, quality=False)


@pytest.fixture(scope="module")
def split(fw):
    return pipeline.solve(fw.analysis, quality=False, overrides=SPLIT)


def test_call_text_spans_lines_and_ignores_parentheses_in_literals(tmp_path):
    source = tmp_path / "x.c"
    source.write_text('int a;\n  if (nf_map_get(flows,\n        &key, ")(", \')\')) {\n')
    assert explain.call_text(str(source), 2, 7) == "nf_map_get(flows, &key, \")(\", ')')"
    assert explain.call_text(str(source), 9, 1) == ""  # no such line
    assert explain.call_text(str(tmp_path / "none.c"), 1, 1) == ""


def test_key_fields_follow_the_key_order_on_each_device(fw):
    layouts = explain.key_layouts(fw.analysis)
    assert layouts["flows"] == {"0": [["src_ip", "dst_ip", "src_port", "dst_port", "protocol"]],
                                "1": [["dst_ip", "src_ip", "dst_port", "src_port", "protocol"]]}
    assert layouts["keys"] == {"0": [["an index from chain"]]}


def test_a_key_of_part_of_a_field_is_named_with_its_prefix_length():
    solution = pipeline.solve(SUBNETS, quality=False)
    assert explain.key_layouts(solution.analysis)["subnets"] == {"0": [["src_ip/24"]]}
    words = pipeline.explain(solution)
    subnets = words["objects"]["subnets"]
    assert "subnet_quota.c:52 `nf_map_get(subnets, &key, &index)` looks up subnets" in subnets["summary"]
    assert "(src_ip/24)" in subnets["summary"]
    assert words["objects"]["indices"]["summary"].startswith("No packet field names its entries")
    quotas = words["objects"]["quotas"]
    assert quotas["inherited"] and quotas["fields"] == {"0": ["src_ip"]} and quotas["follows"] == ["indices", "subnets"]


def test_the_firewalls_flow_table_is_explained_with_its_source_lines(fw):
    words = pipeline.explain(fw)
    flows = words["objects"]["flows"]
    assert flows["decision"] == "shard" and not flows["broken"] and not flows["inherited"]
    assert ("fw.c:101 `nf_map_get(flows, &key, &index)` looks up flows by device 1 packets' "
            "(dst_ip, src_ip, dst_port, src_port, protocol)") in flows["summary"]
    assert "share an entry when they have addresses and ports swapped (a reply)" in flows["summary"]
    assert "p.ipv4" not in flows["summary"] and "path " not in flows["summary"]  # engine terms stay in details
    assert flows["details"].startswith("entries are touched only by packets that agree on")
    assert [s["where"] for s in flows["sites"]] == ["fw.c:76", "fw.c:83", "fw.c:101"]
    chain = words["objects"]["chain"]
    assert chain["inherited"] and chain["fields"] == flows["fields"] and chain["follows"] == ["flows"]
    assert words["strategy"]["summary"].startswith("Shared-nothing") and words["counterexample"] is None


def test_rarely_written_state_is_explained_as_replicated_with_its_writers():
    lb = pipeline.explain(pipeline.solve(ROOT / "sample_nfs" / "lb.c", quality=False))
    backends = lb["objects"]["backends"]
    assert backends["decision"] == "replicate"
    assert backends["summary"].startswith("Written only by rare packets (device 0, protocol == 17 (UDP), "
                                          "dst_port == 9999; at lb.c:149)")
    assert "broadcasts its write" in backends["summary"] and "p.l4" not in backends["summary"]
    assert lb["objects"]["cht"]["summary"].startswith("Packets only read it")


def test_locks_are_explained_by_the_line_that_forces_them():
    lb = pipeline.explain(pipeline.solve(ROOT / "sample_nfs" / "lb.c", quality=False,
                                         overrides={"active": "lock"}))
    assert lb["objects"]["active"]["summary"].startswith("Shared by all cores behind a lock: lb.c:203 "
                                                        "`nf_cht_find_backend(")
    assert "walks them" in lb["objects"]["active"]["summary"]
    assert "cht's backend (lb.c:203), which no packet field decides" in lb["objects"]["backend_info"]["summary"]
    bridge = pipeline.explain(pipeline.solve(ROOT / "sample_nfs" / "bridge.c", quality=False))
    assert "keyed by src_mac, which the NIC cannot hash" in bridge["objects"]["macs"]["summary"]
    assert bridge["strategy"]["summary"].startswith("locks: macs, keys, ports, chain cannot be split")


def test_a_broken_override_says_so_and_shows_two_realistic_packets(split):
    words = pipeline.explain(split)
    flows = words["objects"]["flows"]
    assert flows["broken"].startswith("Broken by the override: a device 0 packet and a device 1 packet with "
                                      "addresses and ports swapped (a reply) share an entry of flows")
    assert "device 0: src_ip; device 1: src_ip" in flows["broken"]
    assert words["strategy"]["summary"].startswith("Not correct: the override breaks flows")
    example = words["counterexample"]
    request, reply = example["packets"]
    assert example["object"] == "flows" and example["relation"] == "addresses and ports swapped (a reply)"
    assert (request["device"], reply["device"]) == (0, 1)
    assert (reply["src_ip"], reply["dst_ip"], reply["src_port"], reply["dst_port"]) == \
        (request["dst_ip"], request["src_ip"], request["dst_port"], request["src_port"])
    assert ipaddress.IPv4Address(request["src_ip"]) in ipaddress.IPv4Network("10.0.0.0/8")  # a LAN client
    assert not ipaddress.IPv4Address(request["dst_ip"]).is_private  # a public server
    assert request["src_port"] >= 32768 and 0 < request["dst_port"] < 10_000  # ephemeral -> a service port
    assert request["core"] != reply["core"]
    for packet in (request, reply):  # the cores, recomputed with the byte-wise hash
        plan = split.plan.device(packet["device"])
        data = b"".join(int(ipaddress.IPv4Address(packet[f])).to_bytes(4, "big") if f.endswith("_ip")
                        else packet[f].to_bytes(RSS_BITS[f] // 8, "big") for f in plan.fields)
        index = toeplitz_hash(plan.key, data) & (len(plan.reta) - 1)
        assert (index, plan.reta[index]) == (packet["reta_index"], packet["core"])
    assert "_headers" not in example


def test_what_happens_runs_the_firewall_on_the_two_packets(split):
    outcome = pipeline.explain(split)["counterexample"]["outcome"]
    assert (outcome["first"], outcome["second"]) == (0, 1)  # the request first, then its reply
    assert outcome["sequential"] == 0 and outcome["parallel"] == -1 and outcome["differs"]
    assert "fw forwards it to device 0" in outcome["text"] and "fw drops it" in outcome["text"]


def test_a_split_that_changes_no_verdict_says_the_state_split():
    solution = pipeline.solve(SUBNETS, quality=False, overrides={"subnets": {0: ("src_ip", "dst_ip")}})
    words = pipeline.explain(solution)
    example = words["counterexample"]
    assert example["relation"] == "the same src_ip/24"
    first, second = example["packets"]
    assert first["src_ip"].rsplit(".", 1)[0] == second["src_ip"].rsplit(".", 1)[0]
    assert not example["outcome"]["differs"] and "the state has split" in example["outcome"]["text"]
    assert words["objects"]["subnets"]["broken"].startswith("Broken by the override: two device 0 packets "
                                                            "with the same src_ip/24 share an entry of subnets")


def test_relation_words():
    class C:
        def __init__(self, equal):
            self.equal = equal

    full = lambda f: [(i, i) for i in range(RSS_BITS[f])]  # noqa: E731
    same = C([((f, i), (f, j)) for f in ("src_ip", "dst_port") for i, j in full(f)])
    assert explain.relation(same) == "the same src_ip, dst_port"
    assert explain.relation(C([(("dst_ip", i), ("src_ip", i)) for i in range(32)])) == "addresses swapped (a reply)"
    assert explain.relation(C([(("src_ip", i), ("dst_ip", i)) for i in range(16)])) == \
        "the second's dst_ip/16 equal to the first's src_ip/16"
    assert explain.relation(C([])) == "nothing the NIC can hash in common"


def test_under_a_locks_build_every_object_is_locked_and_says_what_it_could_be_alone():
    """Two tables no single RSS key shards together: the build is locks, so neither is "broken" (the
    locks build is correct whatever the NIC hashes), each is "lock", and says it could shard alone
    and why not together; asking for locks on a shardable NF says so instead."""
    words = pipeline.explain(pipeline.solve(ROOT / "tests" / "nfs" / "two_keys.c", quality=False))
    for name in ("by_src", "by_dst"):
        entry = words["objects"][name]
        assert entry["decision"] == "lock" and not entry["broken"]
        assert entry["summary"].startswith("Could shard alone, but the locks build runs every object behind its "
                                           "lock (on device 0 its packets agree only on ")
    assert "by_src's on none of those" in words["objects"]["by_dst"]["summary"]
    assert words["strategy"]["summary"].startswith("locks: no RSS configuration keeps every shared entry")
    # why, once, in the NF's terms: each table's lines and fields, on both devices; no engine terms
    why = words["strategy"]["summary"]
    assert ("The packets of devices 0 and 1 that share an entry of by_dst (two_keys.c:27, two_keys.c:30) agree "
            "only on dst_ip, dst_port; those that share an entry of by_src (two_keys.c:26, two_keys.c:30) agree "
            "only on src_ip") in why
    assert "{" not in why and "needs" not in why
    fw = pipeline.explain(pipeline.solve(ROOT / "sample_nfs" / "fw.c", quality=False, strategy="tm"))
    assert fw["strategy"]["summary"].startswith("tm, as asked: the state is shared behind locks")
    assert fw["objects"]["flows"]["summary"].startswith("Could shard alone, but the tm build runs every object "
                                                        "behind its lock (tm was asked for). Alone: fw.c:76")


def test_an_object_no_key_shards_even_alone_is_not_said_to_shard_alone(tmp_path):
    """One table keyed by the source address for some packets and by the destination for others
    (tags keep the keys apart): the packets that share an entry agree on no one field, so no RSS
    key shards it even alone, and neither the explorer's words nor the CLI say it could."""
    from explorer.commands.solve import render

    nf = tmp_path / "two_sides.c"
    nf.write_text((ROOT / "tests" / "nfs" / "two_keys.c").read_text()
                  .replace("nf_map_get(by_dst, &d, &v)", "nf_map_get(by_src, &d, &v)")
                  .replace("nf_map_put(by_dst, &d, 1)", "nf_map_put(by_src, &d, 1)"))
    solution = pipeline.solve(nf, quality=False)
    words = pipeline.explain(solution)
    assert solution.strategy == "locks"
    assert words["objects"]["by_src"]["summary"].startswith("Could not shard even alone (the packets that share its "
                                                            "entries agree on no RSS field on device")
    row = next(line for line in render(solution.to_dict()).splitlines() if line.startswith("  by_src "))
    assert "by_src       map     lock      could not shard even alone" in row
    assert "no field; device 1: no field" not in row and row.count("(") == 1  # its reason once, not twice


def test_a_lock_by_the_input_device_is_explained_by_the_device():
    solution = pipeline.solve(ROOT / "tests" / "nfs" / "device_counters.c", quality=False)
    summary = pipeline.explain(solution, outcome=False)["objects"]["per_port"]["summary"]
    assert summary == ("Shared by all cores behind a lock: device_counters.c:31 `nf_vector_borrow(per_port, device)` "
                       "picks the entry by the input device, not by a packet field: the packets of a device that get "
                       "there share one entry, whatever their flow, and the NIC spreads each device's packets over "
                       "every core.")


def test_a_lock_by_a_table_read_at_the_devices_index_names_the_device_and_the_table():
    solution = pipeline.solve(ROOT / "tests" / "nfs" / "zone_counters.c", quality=False)
    summary = pipeline.explain(solution, outcome=False)["objects"]["frames"]["summary"]
    assert summary.startswith("Shared by all cores behind a lock: zone_counters.c:51 `nf_vector_borrow(frames, zone)` "
                              "picks the entry by the input device (through zone_of, which it reads at the device's "
                              "index; packets only read zone_of, so every core has a copy), not by a packet field")


def test_a_key_read_from_a_const_table_at_a_field_is_computed_from_that_field():
    """CLASS[ip->tos] is one constant per run of equal entries: several ways to build the key, none
    naming a field. Taking them for one key whose fields come "in either order" read the last field
    of an empty list, an IndexError that left the explorer's page on a traceback."""
    solution = pipeline.solve(ROOT / "tests" / "nfs" / "tos_lut.c", quality=False)
    words = pipeline.explain(solution, outcome=False)
    assert words["keys"]["counts"] == {"0": [["computed from ipv4_tos"]], "1": [["computed from ipv4_tos"]]}
    assert words["objects"]["counts"]["summary"] == (
        "Shared by all cores behind a lock: tos_lut.c:42 `nf_vector_borrow(counts, c)` is keyed by ipv4_tos, "
        "which the NIC cannot hash (RSS hashes only IP addresses and ports).")


def test_a_conflict_only_the_key_solver_finds_is_told_once_in_the_nfs_terms():
    """dns_guard: each object shards alone, but pending pairs a query with its reply while clients
    and unasked leave each device only src_ip. The solver's unsat core (path numbers, columns, the
    absolute path the explorer analyses) stays in details; the strategy says once which object, which
    lines, which fields and devices, who forbids them, and the override checked to get around it;
    each object says its own part, not the whole story."""
    solution = pipeline.solve((ROOT / "tests" / "nfs" / "dns_guard.c").resolve(), quality=False)
    assert solution.strategy == "locks" and solution.conflict is not None
    assert solution.remedies == ("clients=replicate", "unasked=replicate")
    words = pipeline.explain(solution, outcome=False)
    why = words["strategy"]["summary"]
    assert "sends all packets of device 0 to one core" in why
    assert ("pending (dns_guard.c:73, dns_guard.c:78, dns_guard.c:90, dns_guard.c:94) puts a device 0 packet and a "
            "device 1 packet in one entry when they have addresses and ports swapped (a reply): device 0's src_ip, "
            "dst_ip, src_port would have to steer as device 1's dst_ip, src_ip, dst_port do") in why
    assert "device 0 may hash only src_ip, all that the packets sharing an entry of clients (dns_guard.c:56" in why
    assert "device 1 may hash only src_ip, all that the packets sharing an entry of unasked (dns_guard.c:87" in why
    assert "--override clients=replicate or --override unasked=replicate" in why
    for engine in ("path 6", "nf_map_get at", str(ROOT), "must ignore", "RETA index"):
        assert engine not in why
    assert "path 6 nf_map_get" in words["strategy"]["details"]  # the engine's terms, for whoever wants them
    summaries = {name: o["summary"] for name, o in words["objects"].items()}
    for name, summary in summaries.items():
        assert "path 6" not in summary and str(ROOT) not in summary and "pending (dns_guard.c:73" not in summary
    assert "(it lets device 0 hash only src_ip, which leaves pending's packets no field hashed alike)" in summaries["clients"]
    assert "(it lets device 1 hash only src_ip, which leaves pending's packets" in summaries["unasked"]
    assert "need a field hashed alike on devices 0 and 1, and clients and unasked leave none" in summaries["pending"]
    assert "(no RSS key shards pending, clients and unasked together" in summaries["budgets"]


def test_nfx_solve_says_why_in_the_nfs_terms_and_json_keeps_both():
    """``nfx solve``'s why line is the words, not the solver's unsat core; --json carries the words
    (why), the overrides checked (remedies) and the engine's own text (explanation, conflict)."""
    from explorer.commands.solve import render

    data = pipeline.solve(ROOT / "tests" / "nfs" / "dns_guard.c", quality=False).to_dict()
    assert data["remedies"] == ["clients=replicate", "unasked=replicate"]
    assert data["conflict"]["devices"] == [0] and data["conflict"]["constraints"][0]["origin"].startswith("pending: ")
    assert "must ignore" in data["explanation"] and "must ignore" not in data["why"]
    why = next(line for line in render(data).splitlines() if line.startswith("why: "))
    assert why == "why: " + data["why"] and "pending (dns_guard.c:73" in why
    bridge = pipeline.solve(ROOT / "sample_nfs" / "bridge.c", quality=False).to_dict()
    assert bridge["why"] == ("macs: bridge.c:68 `nf_map_get(macs, &src, &index)` is keyed by src_mac, which the NIC "
                             "cannot hash (RSS hashes only IP addresses and ports). keys, ports and chain are found "
                             "through it.")
    assert "why" not in pipeline.solve(ROOT / "sample_nfs" / "fw.c", quality=False).to_dict()


def test_nfx_solve_text_names_packet_fields_as_the_explorer_does():
    """The CLI's rows and why lines said p.ether.src and p.l4.dport == 9999 (the engine's symbols);
    the text names them src_mac and dst_port == 9999, and so do --json's reasons (its write_class
    keeps the engine's symbols)."""
    from explorer.commands.solve import render

    bridge = pipeline.solve(ROOT / "sample_nfs" / "bridge.c", quality=False).to_dict()
    assert "keyed by src_mac" in bridge["objects"][0]["reason"]
    macs = next(line for line in render(bridge).splitlines() if line.startswith("  macs "))
    assert "keyed by src_mac, which RSS cannot hash" in macs and "p.ether" not in macs
    lb = render(pipeline.solve(ROOT / "sample_nfs" / "lb.c", quality=False).to_dict())
    assert "protocol == 17 (UDP), dst_port == 9999" in lb and "p.l4." not in lb and "p.ipv4." not in lb


def test_shared_nothing_asked_of_a_conflicting_nf_fails_in_the_nfs_terms():
    """--strategy sn (or an override's fields, which ask for shared-nothing) on dns_guard stopped on the
    solver's unsat core (path 6 nf_map_get at ...:90:8, 'must ignore src_ip'); it names pending's
    lines and the objects that leave its reply no field instead, and keeps the core on the error."""
    from explorer.errors import ShardingError
    from explorer.sharding.decisions import parse_overrides

    nf = ROOT / "tests" / "nfs" / "dns_guard.c"
    analysis = pipeline.analyze(nf)
    for kwargs, head in (({"strategy": "sn"}, "dns_guard cannot run shared-nothing: every RSS key"),
                         ({"overrides": parse_overrides(["budgets:0=src_ip"], analysis)},
                          "dns_guard cannot run shared-nothing with these overrides: every RSS key")):
        with pytest.raises(ShardingError) as caught:
            pipeline.solve(analysis, quality=False, **kwargs)
        message = str(caught.value)
        assert message.startswith(head) and "pending (dns_guard.c:73" in message
        assert "clients (dns_guard.c:56" in message and "unasked (dns_guard.c:87" in message
        assert "path 6" not in message and "must ignore" not in message
        assert caught.value.conflict.devices == (0,)


def test_a_wrong_override_says_what_it_breaks_in_the_nfs_terms():
    """nfx solve --override pending:1=src_ip on dns_guard said 'device 0: no RSS field is common to every
    sharded object (clients needs {src_ip}, pending needs {dst_ip})' and dumped the solver's pair as
    JSON with its engine origin ('clients: path 9 nf_map_get at ...:56:8'); it now says which fields
    the override leaves each object on device 0, and where, what each split entry's packets share,
    and the two packets with the cores they reach (the engine's terms stay in --json)."""
    from explorer.commands.solve import render
    from explorer.sharding.decisions import parse_overrides

    analysis = pipeline.analyze(ROOT / "tests" / "nfs" / "dns_guard.c")
    data = pipeline.solve(analysis, quality=False, overrides=parse_overrides(["pending:1=src_ip"], analysis)).to_dict()
    assert not data["valid"] and "needs {" in data["explanation"]
    assert data["why"].startswith("With the override, device 0 would have to hash only src_ip for clients "
                                  "(dns_guard.c:56, dns_guard.c:58) and dst_ip for pending (dns_guard.c:73")
    assert ("Two device 0 packets with the same src_ip share an entry of clients (dns_guard.c:56, dns_guard.c:58), "
            "but the NIC now hashes device 0: src_ip, dst_ip, src_port, dst_port") in data["why"]
    assert "{" not in data["why"] and "path " not in data["why"]
    text = render(data)
    example, (c1, c2) = data["counterexample"], data["counterexample"]["cores"]
    p1 = example["p1"]
    line = next(ln for ln in text.splitlines() if ln.startswith("counterexample: "))
    assert line.startswith("counterexample: these share an entry of clients: device 0 "
                           f"{p1['src_ip']}:{p1['src_port']} -> {p1['dst_ip']}:{p1['dst_port']} reaches core {c1}")
    assert f"core {c2} (RETA entry" in line and "path 9" not in text and "nf_map_get at" not in text


def test_a_replication_chosen_for_frequently_written_state_is_not_called_rare():
    """nfx solve fw.c --override flows=replicate said 'only rare packets write them (device 0; device
    0; device 1)': flows is written by half of uniform traffic, and each object's packet classes were
    joined whole, repeating device 0. It now says the choice, who writes, and each class once."""
    solution = pipeline.solve(ROOT / "sample_nfs" / "fw.c", overrides={"flows": "replicate"}, quality=False)
    why = solution.to_dict()["replication"]
    assert why.startswith("flows, keys, chain are replicated on every core, by choice: packets that no header field "
                          "singles out as rare write flows")
    assert "only rare" not in why and "(device 0; device 1)" in why
    lb = pipeline.solve(ROOT / "sample_nfs" / "lb.c", quality=False).to_dict()["replication"]
    assert "only rare packets write them (device 0, protocol == 17 (UDP), dst_port == 9999)" in lb


def test_a_lock_decided_after_the_keys_is_not_called_a_hash_of_fields():
    """byte_quota's chain is locked because a reused index hands a new entry its last holder's usage
    cell, and scrambled_nat's wan_map because one access names entries by a port computed from chain's
    index and another by dst_port; the explorer said of both 'two packets that share no hashable
    field can reach the same entry (its key is a hash or a sum of fields)'. Each now says its own
    cause, with the NF's file by name even when the explorer analyses it by its absolute path."""
    quota = pipeline.explain(pipeline.solve((ROOT / "tests" / "nfs" / "byte_quota.c").resolve(), quality=False),
                             outcome=False)
    chain = quota["objects"]["chain"]["summary"]
    assert "hash or a sum" not in chain and "computes with usage's cell" in chain
    assert "byte_quota.c:58 `nf_dchain_allocate_new_index(chain, &index, now)`" in chain and str(ROOT) not in chain
    nat = pipeline.explain(pipeline.solve(ROOT / "tests" / "nfs" / "scrambled_nat.c", quality=False), outcome=False)
    wan = nat["objects"]["wan_map"]["summary"]
    assert "hash or a sum" not in wan and "names an entry by a value from chain (no packet field)" in wan
    assert "names entries by dst_port" in wan and "p.l4" not in wan and "#" not in wan
    mgmt = pipeline.explain(pipeline.solve(ROOT / "tests" / "nfs" / "mgmt_config.c", quality=False), outcome=False)
    assert "its key is a hash or a sum of fields" in mgmt["objects"]["cfg"]["summary"]  # where it is so


def test_a_conflict_is_told_the_same_way_whatever_the_process_solved_before():
    """Z3's unsat core named device 0 or device 1 as the one whose packets could not spread, as the
    ids of its terms fell: dns_guard alone blamed device 0, after lb and two_keys device 1 (the
    fresh-clone CI's order). The lowest device the conflict's constraints forbid to spread is named."""
    alone = pipeline.solve((ROOT / "tests" / "nfs" / "dns_guard.c").resolve(), quality=False)
    for other in ("sample_nfs/lb.c", "tests/nfs/two_keys.c"):
        pipeline.solve(ROOT / other, quality=False)
    after = pipeline.solve((ROOT / "tests" / "nfs" / "dns_guard.c").resolve(), quality=False)
    assert alone.conflict == after.conflict and alone.conflict.devices == (0,)
    assert pipeline.explain(after, outcome=False)["strategy"]["summary"] == \
        pipeline.explain(alone, outcome=False)["strategy"]["summary"]


# Engine names that must never reach what nfx solve prints or the explorer says: term ids
# (cht.backend#4), bit slices ([15:0]), an engine path and helper (path 3 nf_vector_borrow at),
# terms (concat(...)), packet-field symbols (p.ipv4.src) and a struct key's bytes ({addr: ...}).
ENGINE_NAMES = re.compile(r"#\d|\[\d+:\d+\]|\bpath \d+ (nf_|at )|concat\(|\bp\.(ipv4|l4|ether)\.|\{[a-z_]+: ")


def _engine_names(text: str) -> list[str]:
    return [m.group(0) for m in ENGINE_NAMES.finditer(text)]


@pytest.mark.parametrize("nf, says", [
    ("tests/nfs/backend_bytes.c", "backend_bytes.c:66 `nf_vector_borrow(sent, backend)` uses cht's backend "
                                  "(backend_bytes.c:63) as its key, which no packet field decides"),
    ("tests/nfs/ring_slots.c", "ring_slots.c:63 `nf_vector_borrow(slots, slot)` uses a value computed from ring's "
                               "index (ring_slots.c:57) as its key: it is the same for different values"),
    ("sample_nfs/nat.c", "by allocation: its entries are keyed by a value computed from an index i that chain hands "
                         "out (nat.c:143 writes src_port = 1024 + i)"),
    ("sample_nfs/bridge.c", "bridge.c:68 `nf_map_get(macs, &src, &index)` is keyed by src_mac, which RSS cannot hash"),
    ("tests/nfs/cell_memo.c", "(cell_memo.c:30 `nf_vector_return(infos, i, in)` stores the low 6 bits of dst_port)"),
    ("tests/nfs/service_counter.c", "service_counter.c:57 `nf_map_get(hits, &key, &index)` uses a key built from "
                                    "constants"),
    # the why names the stage's own cause: an expiry whose age the protocol picks, a hash of fields
    # (it said 'keyed by protocol, which the NIC cannot hash' of both)
    ("tests/nfs/mixed_timeout.c", "why: flows: mixed_timeout.c:31 `nf_expire_items(chain, keys, flows, now > age ? "
                                  "now - age : 0)` expires chain at a time that depends on protocol"),
    ("tests/nfs/hash_buckets.c", "why: buckets: hash_buckets.c:36 `nf_vector_borrow(buckets, b)` is keyed by a mix "
                                 "of dst_ip, src_ip and protocol"),
])
def test_solve_and_the_explorer_name_state_in_the_nfs_terms(nf, says):
    """nfx solve's object rows, its --json reasons and the explorer's words named engine terms: a
    consistent-hash pick as 'cht.backend#4', a ring's ticket as 'ring.index#2 & 0x3f', a NAT's port
    as '1024 + chain.index#3[15:0]', a place as 'path 0 nf_map_get at sample_nfs/bridge.c:68:7', a
    stored value as 'concat(0, p.l4.dport[5:0])' and a constant key by its bytes. Each now names the
    NF's line and call, the object and what its call returned, and the packet field."""
    from explorer.commands.solve import render

    solution = pipeline.solve(ROOT / nf, cores=4, quality=False)
    data = solution.to_dict()
    text = render(data)
    assert says in text, text
    assert _engine_names(text) == [], text
    words = [o["reason"] for o in data["objects"]] + [data.get(k) or "" for k in ("why", "replication", "allocation")]
    assert _engine_names(" ".join(words)) == [], words
    explained = pipeline.explain(solution, outcome=False)
    summaries = " ".join(o["summary"] + o["broken"] for o in explained["objects"].values())
    assert _engine_names(summaries + explained["strategy"]["summary"]) == [], summaries


def test_remedies_reuse_what_the_analysis_alone_decides(monkeypatch):
    """nfx solve checks each remedy (OBJ=replicate) by sharding again: every object's own decision,
    its writers' packet classes and the cell bits its paths read were all computed again per
    remedy (dns_guard: 1.3 CPU-s of solve, 0.5 now). They depend on the analysis alone: the
    decisions are made once per solve, the classes and bits once per analysis (none when this
    process already solved it); the remedies found are the same."""
    from explorer.sharding import decisions, writers

    calls = {"decide": 0, "packet_class": 0}
    decide, packet_class = decisions._decide, writers.packet_class

    def counted_decide(*args, **kwargs):
        calls["decide"] += 1
        return decide(*args, **kwargs)

    def counted_class(*args, **kwargs):
        calls["packet_class"] += 1
        return packet_class(*args, **kwargs)

    monkeypatch.setattr(decisions, "_decide", counted_decide)
    monkeypatch.setattr(writers, "packet_class", counted_class)
    analysis = pipeline.analyze((ROOT / "tests" / "nfs" / "dns_guard.c").resolve())
    solution = pipeline.solve(analysis, quality=False)
    assert solution.remedies == ("clients=replicate", "unasked=replicate")
    assert calls["decide"] == len(analysis.objects)  # once per object, for the solve and its remedies
    writing = {w.path for ws in writers.writers_of(analysis).values() for w in ws.writes}
    assert calls["packet_class"] <= len(writing)
