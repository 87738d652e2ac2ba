"""An object expired at times that differ between packets is not sharded (explorer/sharding/expiry_times.py).

tests/nfs/mixed_timeout.c keeps TCP and UDP flows in one table but expires it with an age picked by
the protocol of the frame at hand (30 s for TCP, 2 s otherwise), or with -D MT_BY_DEVICE by the
input device. Sequentially any UDP frame expires every TCP flow idle for 2 s; sharded, only one of
its own core does, so the replies of TCP flows on the other cores passed where the sequential NF
dropped them (nfx check: NOT equivalent, 20 of 81 packets at 4 cores)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import explorer.sharding.decisions as decisions
from explorer import pipeline
from explorer.cli import main
from explorer.traffic.pcap import write_trace

NF = str(Path(__file__).resolve().parent / "nfs" / "mixed_timeout.c")
SECOND = 1_000_000_000


def _decisions(defines=None) -> dict[str, tuple[str, str]]:
    solution = pipeline.solve(NF, defines=defines, cores=4, quality=False)
    return {o.name: (o.decision, o.reason) for o in solution.sharding.objects}


def test_an_age_picked_by_a_header_field_locks_the_table():
    found = _decisions()
    assert {name: d for name, (d, _) in found.items()} == {"flows": "lock", "keys": "lock", "chain": "lock"}
    assert "mixed_timeout.c:31 `nf_expire_items(chain, keys, flows, now > age ? now - age : 0)` expires chain at a " \
        "time that depends on protocol, not on now alone" \
        in found["flows"][1], found["flows"][1]


def test_ages_that_differ_between_paths_lock_the_table():
    found = _decisions({"MT_BY_DEVICE": "1"})
    assert found["chain"][0] == "lock"
    reason = found["flows"][1]
    assert "mixed_timeout.c:27 `nf_expire_items(" in reason and "mixed_timeout.c:25 `nf_expire_items(" in reason, reason
    assert "expire chain with different ages" in reason, reason


@pytest.mark.parametrize("nf", ["sample_nfs/fw.c", "sample_nfs/cl.c", "sample_nfs/psd.c"])
def test_one_age_per_object_still_shards(nf):
    """cl expires its flows and its sketch with different ages: each object keeps one of its own."""
    root = Path(__file__).resolve().parent.parent
    solution = pipeline.solve(str(root / nf), cores=4, quality=False)
    assert solution.strategy == "shared-nothing"


@pytest.mark.dpdk
def test_replies_after_a_short_age_expiry_match_the_sequential_nf(tmp_path, capsys, monkeypatch):
    """40 TCP flows open at 1 s, a UDP frame of another flow at 10 s expires them (idle over 2 s),
    then their replies come: the sequential NF drops every one, so does the locks build; a sharded
    build (the rule switched off) lets through the replies on the cores the UDP frame did not reach."""
    import nf_packets as pk

    events = [(SECOND + i * 1000, 0, pk.tcp(f"10.0.0.{i + 1}", 30000 + i, "93.184.216.34", 443)) for i in range(40)]
    events.append((10 * SECOND, 0, pk.udp("10.0.1.1", 31000, "93.184.216.35", 53)))
    events += [(10 * SECOND + 1000 * (i + 1), 1, pk.tcp("93.184.216.34", 443, f"10.0.0.{i + 1}", 30000 + i))
               for i in range(40)]
    paths = write_trace(pk.trace(events), tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]

    def check() -> tuple[int, dict]:
        status = main(["check", NF, *inputs, "--cores", "4", "--json"])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return status, json.loads(captured.out)

    status, report = check()
    assert status == 0 and report["equivalent"] is True and report["strategy"] == "locks"
    monkeypatch.setattr(decisions, "uneven_expiries", lambda analysis: {})
    status, report = check()
    assert status == 2 and report["strategy"] == "sn" and report["equivalent"] is False
