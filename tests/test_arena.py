"""The simulator's kept buffers: reused only when no array refers to them any more."""
import numpy as np
import pytest

from explorer.simulate import arena


@pytest.fixture(autouse=True)
def small_arena(monkeypatch):
    monkeypatch.setattr(arena, "_SMALLEST", 1 << 12)  # kept from 4 KiB: tests stay small
    monkeypatch.setattr(arena, "_kept", [])


def test_a_free_buffer_is_reused_and_arrays_start_on_a_cache_line():
    a = arena.full((1000, 3), 7, np.uint64)
    address = a.ctypes.data
    assert address % 64 == 0 and a.shape == (1000, 3) and a.dtype == np.uint64 and (a == 7).all()
    del a
    b = arena.zeros((1000, 3), np.uint64)
    assert b.ctypes.data == address and not b.any() and len(arena._kept) == 1


def test_a_buffer_still_viewed_is_never_handed_out_again():
    a = arena.empty((1000,), np.int64)
    view = a[10:20]
    view[:] = 5
    del a
    b = arena.full((1000,), -1, np.int64)
    assert not np.shares_memory(b, view) and (view == 5).all() and len(arena._kept) == 2


def test_free_buffers_of_other_sizes_are_let_go_before_a_new_one():
    a = arena.empty((1000,), np.uint64)
    kept = arena.empty((1000,), np.uint64)
    del a
    b = arena.empty((100_000,), np.uint64)  # another size: the free one goes, the used one stays
    assert len(arena._kept) == 2 and b.nbytes == 800_000 and kept.nbytes == 8000
    del b
    arena.release()
    assert len(arena._kept) == 1
    del kept
    arena.release()
    assert arena._kept == []


def test_small_arrays_are_not_kept():
    small = arena.empty((10,), np.uint8)
    assert small.ctypes.data % 64 == 0 and arena._kept == []


def test_a_simulation_leaves_no_buffer_behind(monkeypatch):
    """The simulator's tables come from kept buffers (small ones too, here), reused within the run;
    when ``simulate`` returns nothing is kept (an explorer's kernel holds no memory for it)."""
    from pathlib import Path

    from explorer import pipeline

    kept, original = [], arena.empty

    def spying(shape, dtype):
        out = original(shape, dtype)
        kept.append(len(arena._kept))
        return out

    monkeypatch.setattr(arena, "empty", spying)
    solution = pipeline.solve(str(Path(__file__).resolve().parent.parent / "sample_nfs" / "fw.c"), quality=False)
    report = pipeline.simulate(solution, "bidir", packets=4000, flows=400, seed=1)
    assert report.packets == 4000 and max(kept) > 0 and arena._kept == []
