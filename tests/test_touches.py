"""KeyTable: which keys each core touches, against a plain Python reference."""
import numpy as np

from explorer.simulate.touches import KeyTable


def test_keys_per_core_and_split_keys_match_a_reference():
    rng = np.random.default_rng(4)
    n, reta, cores = 20_000, rng.integers(0, 3, 64), 3
    keys = rng.integers(0, 3000, (n, 2)).astype(np.uint64)
    # Mostly one bucket per key, as a good sharding gives; some keys also come from other buckets.
    buckets = np.where(rng.random(n) < 0.97, keys[:, 0] % 64, rng.integers(0, 64, n)).astype(np.int64)
    mask = rng.random(n) < 0.9
    table = KeyTable(2, 16)  # grows many times
    for start in range(0, n, 3000):
        part = slice(start, start + 3000)
        table.touch(keys[part], mask[part], buckets[part], np.arange(n)[part])

    per_core: list[set] = [set() for _ in range(cores)]
    first_core: dict[tuple, int] = {}
    first: dict[tuple, tuple[int, int]] = {}  # key -> (bucket, packet) of its first touch
    on: dict[tuple, set] = {}
    for i in np.flatnonzero(mask).tolist():
        key, core = tuple(keys[i].tolist()), int(reta[buckets[i]])
        per_core[core].add(key)
        first_core.setdefault(key, core)
        first.setdefault(key, (int(buckets[i]), i))
        on.setdefault(key, set()).add(core)
    expected = [len(s) for s in per_core]
    assert table.keys_per_core(reta, cores).tolist() == expected
    touches = table.touches()
    assert touches.keys_per_core(reta, cores).tolist() == expected
    assert {tuple(k): (b, f) for k, b, f in zip(touches.keys.tolist(), touches.bucket.tolist(),
                                                touches.first.tolist())} == first
    split_keys = sorted(k for k, c in on.items() if len(c) > 1)
    assert split_keys and sorted(map(tuple, touches.keys[touches.split(reta)].tolist())) == split_keys
    assert touches.first_cores(reta, cores).tolist() == np.bincount(list(first_core.values()), minlength=cores).tolist()
    assert table.first_cores(reta, cores).tolist() == touches.first_cores(reta, cores).tolist()
    # The split keys alone give the same violations, in the same order, with the same cores.
    split = table.split_touches()
    assert 0 < len(split) < len(touches)
    assert np.array_equal(split.keys[split.split(reta)], touches.keys[touches.split(reta)])
    for a, b in zip(split.split(reta).tolist(), touches.split(reta).tolist()):
        assert split.cores_of(a, reta) == touches.cores_of(b, reta)


def test_buckets_and_packet_numbers_out_of_range_are_refused():
    """A slot packs the bucket and the packet number into one word: what does not fit is an error."""
    import pytest
    table = KeyTable(1)
    keys = np.zeros((1, 1), dtype=np.uint64)
    with pytest.raises(ValueError, match="buckets must be"):
        table.touch(keys, np.ones(1, bool), np.array([1 << 16]), np.array([0]))
    with pytest.raises(ValueError, match="buckets must be"):
        table.touch(keys, np.ones(1, bool), np.array([3]), np.array([1 << 48]))
    table.touch(keys, np.ones(1, bool), np.array([(1 << 16) - 2]), np.array([(1 << 48) - 1]))
    t = table.touches()
    assert t.bucket.tolist() == [(1 << 16) - 2] and t.first.tolist() == [(1 << 48) - 1]
