"""Why a key that copies no RSS field bit locks its object, in the words ``nfx solve`` prints."""
from __future__ import annotations

from pathlib import Path

from explorer import pipeline

ROOT = Path(__file__).resolve().parent.parent


def test_a_hashed_key_is_named_as_a_mix_not_by_its_unhashable_field():
    """nf_hash(src, dst, proto) % 64: the reason named only p.ipv4.proto, as if dropping it from
    the key would let RSS shard the counters; the hash of the addresses alone locks them too."""
    reason = pipeline.solve(ROOT / "tests" / "nfs" / "hash_buckets.c", quality=False).sharding.decision("buckets").reason
    assert "keyed by a mix of dst_ip, src_ip, protocol" in reason
    assert "(protocol: not hashable at all)" in reason


def test_a_key_of_unhashable_fields_alone_says_so():
    reason = pipeline.solve(ROOT / "tests" / "nfs" / "mac_counter.c", quality=False).sharding.decision("stations").reason
    assert "mac_counter.c:49 `nf_map_get(stations, &key, &index)` is keyed by src_mac, which RSS cannot hash" in reason


def test_writers_on_one_device_are_not_said_to_be_any_packet():
    """Only device 2 (a management port) writes the config table: the reason names that class and
    says what it lacks to count as rare, instead of "paths that any packet may take"."""
    reason = pipeline.solve(ROOT / "tests" / "nfs" / "mgmt_config.c", quality=False).sharding.decision("cfg").reason
    assert "any packet" not in reason
    assert "written on paths whose packets no header field narrows" in reason and "packet class: device 2;" in reason


def test_a_connection_erased_when_its_slot_is_freed_keeps_no_freed_slot(tmp_path):
    """conn_close.c erases a closed connection from its map and frees its slot on the same path:
    the map keeps no freed index, so the slots shard (they were locked as if the map kept them).
    Freed without the erase, a later packet of the connection finds the freed slot: locked, and
    the reason says what is missing (it said "its expiry does not clear", of an NF with no expiry)."""
    source = ROOT / "tests" / "nfs" / "conn_close.c"
    solution = pipeline.solve(source, quality=False)
    assert solution.strategy == "shared-nothing"
    assert {o.name: o.decision for o in solution.sharding.objects} == {
        "conns": "shard", "conn_keys": "shard", "packets": "shard", "slots": "shard"}
    kept = tmp_path / "conn_kept.c"
    text = source.read_text()
    assert text.count("      nf_map_erase(conns, &c);\n") == 1
    kept.write_text(text.replace("      nf_map_erase(conns, &c);\n", ""))
    slots = pipeline.solve(kept, quality=False).sharding.decision("slots")
    assert slots.decision == "lock"
    assert slots.reason.startswith("conns keeps indices of slots that it does not erase when nf_dchain_free_index "
                                   "frees them (conn_kept.c:")
