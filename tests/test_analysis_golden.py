"""Golden analyses: the JSON and DOT of every sample NF and of the test NFs below, compared with files
under tests/golden/analysis.

Regenerate after an intended change with ``NFX_UPDATE_GOLDEN=1 pytest tests/test_analysis_golden.py``
and review the diff; a mismatch fails with a unified diff of the two texts.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.graph import access_graph
from explorer.symbex import analyze
from golden import compare

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "analysis"
SAMPLES = sorted(p.stem for p in (ROOT / "sample_nfs").glob("*.c"))
TEST_NFS = ("acl_count", "acl_fw", "fw_reversed", "fw_ternary", "port_alloc")  # in tests/nfs
SOURCES = {**{nf: f"sample_nfs/{nf}.c" for nf in SAMPLES}, **{nf: f"tests/nfs/{nf}.c" for nf in TEST_NFS}}


@pytest.mark.parametrize("nf", sorted(SOURCES))
def test_analysis_matches_the_golden_files(nf: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # locations are relative to the repository: stable golden files
    analysis = analyze(SOURCES[nf])
    compare(json.dumps(analysis.to_dict(), indent=2, sort_keys=True) + "\n", GOLDEN / f"{nf}.json")
    compare(access_graph(analysis), GOLDEN / f"{nf}.dot")


def test_no_stale_golden_files() -> None:
    stale = sorted(p.name for p in GOLDEN.glob("*") if p.stem not in SOURCES)
    assert not stale, f"golden files without a sample NF: {stale}"


def test_a_difference_is_shown_as_a_unified_diff(tmp_path: Path) -> None:
    golden = tmp_path / "x.json"
    golden.write_text('{\n  "paths": 7\n}\n')
    with pytest.raises(pytest.fail.Exception) as failure:
        compare('{\n  "paths": 8\n}\n', golden, update=False)
    message = str(failure.value)
    assert "--- x.json (golden)" in message and '-  "paths": 7' in message and '+  "paths": 8' in message
