"""The simulator's threads: tasks on disjoint data, shared out between the calling thread and a
few helpers.

numba kernels compiled with ``nogil`` release the GIL, so plain Python threads run them side by
side (numba's own ``prange`` would need a threading layer that refuses calls from several Python
threads at once, as Dask's workers make). The calling thread works too and the helpers only take
tasks it has not taken yet: on a machine whose other CPUs are busy, the work does not wait for a
helper to be scheduled. What a task computes never depends on which thread ran it.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable


def default_threads() -> int:
    """One thread per CPU this process may run on, at most 16."""
    return max(1, min(16, len(os.sched_getaffinity(0))))


_pool: ThreadPoolExecutor | None = None  # the helper threads, shared by every table of the process
_pool_size = 0
_pool_lock = threading.Lock()


_background: ThreadPoolExecutor | None = None  # one thread: what runs beside the caller, in order


def _forget_pool() -> None:
    """In a forked child the parent's helper threads do not exist: start a pool of its own."""
    global _pool, _pool_size, _pool_lock, _background
    _pool, _pool_size, _pool_lock, _background = None, 0, threading.Lock(), None


def in_background(task: Callable[[], None]) -> Future:
    """Run ``task`` on the background thread (one for the process: tasks run one at a time, in the
    order given) while the caller goes on; ``result()`` of what this returns waits for it and
    raises what it raised."""
    global _background
    with _pool_lock:
        if _background is None:
            _background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nfx-background")
        return _background.submit(task)


os.register_at_fork(after_in_child=_forget_pool)


class _Tasks:
    """Tasks that touch disjoint data, each claimed by whichever thread asks first."""

    def __init__(self, tasks: list[Callable[[], None]]):
        self.tasks, self.claimed, self.done = tasks, 0, 0
        self.errors: list[BaseException] = []
        self.finished = threading.Condition()

    def work(self) -> None:
        """Run unclaimed tasks until none is left."""
        while True:
            with self.finished:
                if self.claimed == len(self.tasks):
                    return
                task = self.tasks[self.claimed]
                self.claimed += 1
            try:
                task()
            except BaseException as error:  # raised in the caller's thread
                self.errors.append(error)
            with self.finished:
                self.done += 1
                self.finished.notify_all()


def run_tasks(tasks: list[Callable[[], None]], threads: int) -> None:
    """Run ``tasks`` (which touch disjoint data) on up to ``threads`` threads, this one included;
    every task has finished when this returns (the first error is raised then). This thread works
    too, and the helpers only take what it has not taken yet: when the other CPUs are busy (a
    shared machine), it does the work itself instead of waiting for a helper to be scheduled."""
    global _pool, _pool_size
    if threads < 2 or len(tasks) < 2:
        for task in tasks:
            task()
        return
    helpers = min(threads, len(tasks)) - 1
    with _pool_lock:
        if _pool_size < helpers:
            _pool_size = max(helpers, default_threads())
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="nfx-count")
        pool = _pool
    shared = _Tasks(tasks)
    for _ in range(helpers):
        pool.submit(shared.work)
    shared.work()
    with shared.finished:
        shared.finished.wait_for(lambda: shared.done == len(tasks))
    if shared.errors:
        raise shared.errors[0]
