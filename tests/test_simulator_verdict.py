"""The simulator's verdict in words (``explorer.simulate.verdict``) and in the explorer's findings:
an object the simulator could not check is named beside the count, in the CLI line and the page
alike, and a plan that is not sharded by allocation says what each core's own allocator did."""
from __future__ import annotations

from explorer.simulate.verdict import allocation_text, unchecked_text, violations_line
from widgets.simulator import pools_html, violations_html

EXTERNAL = {"object": "external", "symbol": "chain.index#3", "allocator": "chain"}
OWN_CHAIN = {"allocator": "chain", "sizes": [4096] * 4, "allocated": [117, 133, 120, 130], "exhausted": 0,
             "wanted": [117, 133, 120, 130], "replies": 10000, "violations": 378, "stray": 7559, "examples": [],
             "notes": [], "pooled": False, "field": "dst_port", "formula": "1024 + i", "objects": ["external"]}


def test_unchecked_objects_are_named_with_why():
    assert unchecked_text([]) == ""
    assert unchecked_text([EXTERNAL, {"object": "flows", "symbol": "now", "allocator": ""},
                           {"object": "flows", "symbol": "table.value#2", "allocator": ""}]) == (
        "external unchecked: its key holds an index that chain allocates (chain.index#3), which the packets alone "
        "do not give; flows unchecked: its key uses now and uses table.value#2, which the packets alone do not give")


def test_the_summary_line_is_never_a_bare_count_when_an_object_went_unchecked():
    clean = {"violations": {"count": 0, "examples": []}, "unchecked_objects": []}
    assert violations_line(clean) == "sharding violations: 0 state keys touched from more than one core"
    line = violations_line({**clean, "unchecked_objects": [EXTERNAL]})
    assert line == ("sharding violations: 0 state keys touched from more than one core among the checked objects; "
                    "external unchecked: its key holds an index that chain allocates (chain.index#3), which the "
                    "packets alone do not give")
    assert violations_line({"violations": {"count": 2}}).startswith("sharding violations: 2 state keys")  # older dicts


def test_the_summary_line_tells_split_flows_from_state_keys():
    """cone_nat under a broken plan: 246 vector and dchain cells read from several cores, and 378
    flows whose replies went elsewhere (the pools' count): one number, said what it is made of."""
    data = {"violations": {"count": 624}, "pools": [OWN_CHAIN]}
    assert violations_line(data) == ("sharding violations: 624 (246 state keys touched from more than one core, 378 "
                                     "flows whose replies reached another core than the one that allocated their "
                                     "value)")
    red = violations_html({"count": 624, "examples": []}, {}, split=378)
    assert "246 state entries were reached from more than one core, and 378 flows whose replies reached another " \
           "core than the one that allocated their value</b>" in red
    only = violations_html({"count": 378, "examples": []}, {}, split=378)  # nat: no key of its own splits
    assert "<b>378 flows whose replies reached another core than the one that allocated their value</b>" in only


def test_each_cores_own_allocator_is_told_apart_from_pools():
    own = allocation_text(OWN_CHAIN)
    assert own == ("chain: not sharded by allocation, so each core's own chain hands out its indices from 0 (replies "
                   "carry dst_port = 1024 + i): 10000 replies addressed to what their flow's core allocated, 7559 "
                   "reached another core (378 flows split: external there has no entry for them); 0 new flows found "
                   "their core's share used up; allocated per core: 117 133 120 130")
    pools = allocation_text({**OWN_CHAIN, "pooled": True, "violations": 0, "stray": 0})
    assert pools.startswith("pools of chain: 10000 replies addressed to what their flow's core allocated, 0 reached "
                            "another core (0 flows split); 0 new flows found their pool used up")


def test_the_findings_say_which_objects_the_count_covers():
    green = violations_html({"count": 0, "examples": []}, {})
    assert "nfx-ok" in green and "No sharding violations" in green
    amber = violations_html({"count": 0, "examples": []}, {}, [EXTERNAL])
    assert "nfx-ok" not in amber and "nfx-unverified" in amber
    assert "among the checked objects" in amber and "external unchecked" in amber and "chain allocates" in amber
    red = violations_html({"count": 3, "examples": []}, {}, [EXTERNAL])
    assert "nfx-bad" in red and "3 state entries were reached from more than one core</b> among the checked" in red
    assert "external unchecked" in red


def test_the_findings_show_each_cores_own_allocator():
    own = pools_html([OWN_CHAIN])
    assert "<code>chain</code> is not sharded by allocation" in own and "dst_port = 1024 + i" in own
    assert "7,559 reached another core</b>, whose external has no entry for them (378 flows split; " in own
    assert "Allocated / share per core: 117/4,096" in own
    pools = pools_html([{**OWN_CHAIN, "pooled": True, "violations": 0, "stray": 0}])
    assert "Pools of <code>chain</code>" in pools and "0 reached another core" in pools
