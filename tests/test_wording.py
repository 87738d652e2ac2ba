"""Counted nouns: what nfx prints for one and for many."""
from explorer.wording import captures_hold, count


def test_one_is_singular_and_everything_else_plural():
    assert count(1, "core") == "1 core"
    assert [count(n, "packet") for n in (0, 2, 1000)] == ["0 packets", "2 packets", "1000 packets"]
    assert count(1, "index", "indices") == "1 index" and count(3, "index", "indices") == "3 indices"


def test_captures_are_named_as_given_with_the_verb_agreeing():
    assert captures_hold(["0=lan.pcap"]) == "the capture 0=lan.pcap holds"
    assert captures_hold(["0=lan.pcap", "1=wan.pcap"]) == "the captures 0=lan.pcap, 1=wan.pcap hold"
