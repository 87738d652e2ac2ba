"""An analysis makes Python's cyclic collector walk less (``path_search._FewerCollections``) and puts
it back as it was, after an error too, and only when the outermost of nested analyses ends."""
from __future__ import annotations

import gc
from pathlib import Path

import pytest

from explorer.errors import NfxError
from explorer.symbex import analyze, path_search

ROOT = Path(__file__).resolve().parent.parent


def test_the_collector_is_as_it_was_after_an_analysis() -> None:
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    analyze(ROOT / "sample_nfs" / "fw.c")
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before


def test_the_collector_is_as_it_was_after_a_refused_nf(tmp_path: Path) -> None:
    before = gc.get_threshold()
    bad = tmp_path / "bad.c"
    bad.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                   "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                   "  int *out;\n  { int port = 1; out = &port; }\n  return *out;\n}\n")
    with pytest.raises(NfxError):
        analyze(bad)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_nested_analyses_leave_it_to_the_outermost() -> None:
    before = gc.get_threshold()
    with path_search._FEWER_COLLECTIONS:
        raised = gc.get_threshold()
        assert raised[0] > before[0] and gc.get_freeze_count() > 0
        analyze(ROOT / "sample_nfs" / "nop.c")  # an analysis inside another (two explorer threads)
        assert gc.get_threshold() == raised and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_garbage_an_analysis_leaves_is_collected_by_its_end_without_walking_older_objects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Cyclic garbage an analysis made (its Z3 terms) would be frozen by the next analysis, outlive it
    and slow it: it is collected as the analysis ends, while the objects alive before it are still
    frozen, so the collection walks only what the analysis made (a full walk of a notebook holding
    traces took 0.3-1 s per analysis)."""
    import weakref

    class Node:
        pass

    gone = []

    def analysis_with_garbage(parsed):
        cycle = Node()
        cycle.me = cycle
        gone.append(weakref.ref(cycle))
        return inner(parsed)

    walks = []
    watch = lambda phase, info: walks.append(gc.get_freeze_count()) if phase == "start" and info["generation"] == 2 \
        else None
    inner = path_search._analyze_parsed
    monkeypatch.setattr(path_search, "_analyze_parsed", analysis_with_garbage)
    gc.disable()  # only the analysis' own collection may free it
    gc.callbacks.append(watch)
    try:
        analyze(ROOT / "sample_nfs" / "nop.c")
    finally:
        gc.callbacks.remove(watch)
        gc.enable()
    assert gone[0]() is None
    assert walks and all(frozen > 0 for frozen in walks)
