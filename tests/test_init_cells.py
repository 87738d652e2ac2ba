"""The witness search knows a vector nf_init filled holds no zeros there (explorer/verify/witnesses.py).

tests/nfs/route_table.c fills 8 routes (10.i.0.0/16) in nf_init and only reads them. The search took
every cell nf_process never wrote for zeros, which contradicts what its runs read back, so the 8
paths of a matching route were never reached ('its condition conflicts with the state every prefix
built (cell:routes)': 3 of 11 paths). The analysis now says how many cells nf_init set
(``init_cells``) and the search assumes nothing about them."""
from __future__ import annotations

from pathlib import Path

from explorer import pipeline

NF = str(Path(__file__).resolve().parent / "nfs" / "route_table.c")


def test_the_analysis_counts_the_cells_nf_init_set():
    analysis = pipeline.analyze(NF)
    assert dict(analysis.object("routes").extra) == {"init_cells": 8}


def test_paths_traffic_reaches_every_route():
    analysis, witnesses = pipeline.nf_paths_traffic(NF)
    assert len(analysis.paths) == 11
    assert not witnesses.unreached, witnesses.unreached
