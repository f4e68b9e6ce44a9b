"""Threads of the spec fits: one thread for small sequential work, explicit threads for block loops.

For small matrices (a QP of 100 variables, a k-means++ pass over 1,000 rows) BLAS threads
only add overhead, and waking them on a busy machine can cost milliseconds per call.

A loop over cache-sized blocks makes a few small torch calls per block; run with torch's
own threads, every call is a parallel region that waits for all threads, and on a shared
machine a thread that has lost its core holds each of them up (a 10,000 x 50 fit took 0.86 s
instead of 0.04 s at load 3). ``map_on_threads`` instead gives each thread a share of the
blocks, run with one torch thread: one wait per loop. The C kernels (lwm.spec.spec_kernels)
run their block loops on their own pool instead, as many threads as ``thread_count()``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import TypeVar

import scipy.linalg  # noqa: F401  (loads scipy's own BLAS, which the beta QP uses, before _THREADPOOLS looks)
import torch
from threadpoolctl import ThreadpoolController

T = TypeVar("T")
R = TypeVar("R")

# Found once: threadpool_limits() looks the BLAS libraries up again on every call (~5 ms,
# more than the work it wraps; a search solves dozens of QPs). It limits the libraries loaded
# by then: numpy's and scipy's BLAS and torch's OpenMP.
_THREADPOOLS = ThreadpoolController()
_WORKERS: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, pool)
_WORKERS_LOCK = threading.Lock()
_LOCAL = threading.local()  # in this thread: count, the threads explicit_threads() found; single_thread, inside one


@contextmanager
def single_thread() -> Iterator[None]:
    """BLAS and OpenMP pools limited to one thread, restored on exit; free inside another
    single_thread (or explicit_threads) of the same thread: a limit costs ~35 us to set and again
    to restore when torch's libraries are loaded."""
    if getattr(_LOCAL, "single_thread", False):
        yield
        return
    _LOCAL.single_thread = True
    try:
        with _THREADPOOLS.limit(limits=1):
            yield
    finally:
        _LOCAL.single_thread = False


def _workers() -> ThreadPoolExecutor:
    """The process's worker threads, each running torch on one thread (torch's setting is per thread)."""
    global _WORKERS
    with _WORKERS_LOCK:
        # A forked child inherits the pool object but not its threads: it makes its own.
        if _WORKERS is None or _WORKERS[0] != os.getpid():
            pool = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="lwm-spec", initializer=torch.set_num_threads, initargs=(1,)
            )
            _WORKERS = (os.getpid(), pool)
        return _WORKERS[1]


@contextmanager
def explicit_threads(*, limit_blas: bool = True) -> Iterator[None]:
    """For the length of a fit: torch and BLAS run on one thread in the calling thread (no parallel
    region in its small calls to hold up), and map_on_threads and the C kernels' block loops still
    use as many threads as torch had. ``limit_blas=False`` leaves BLAS alone (a fit whose only BLAS
    calls limit it themselves; setting the limit costs ~50 us here).

    torch's setting made in the main thread is also the default of threads that have not set
    their own, so other torch work in the process may run on one thread meanwhile.
    """
    previous = getattr(_LOCAL, "count", None)
    torch_threads = torch.get_num_threads()
    _LOCAL.count = previous or torch_threads
    torch.set_num_threads(1)
    try:
        with single_thread() if limit_blas else nullcontext():
            yield
    finally:
        torch.set_num_threads(torch_threads)
        _LOCAL.count = previous


def thread_count() -> int:
    """How many threads a block loop may use: torch's thread count in the calling thread
    (the one it had before explicit_threads)."""
    count: int | None = getattr(_LOCAL, "count", None)
    return count or max(1, torch.get_num_threads())


class ScratchBuffers:
    """float32 buffers for block loops, one per thread's share of the blocks, kept from one loop to the next.

    A fresh 1 MB tensor per block (or per loop) is a fresh mmap, and touching it costs its page
    faults: ~4 us a page on this VM, 3-4x the time of the block product written into it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: list[torch.Tensor] = []

    def get(self, count: int, entries: int) -> list[torch.Tensor]:
        """``count`` buffers of at least ``entries`` each."""
        while len(self._buffers) < count:
            self._buffers.append(torch.empty(entries, dtype=torch.float32, device=self.device))
        for i in range(count):
            if self._buffers[i].numel() < entries:
                self._buffers[i] = torch.empty(entries, dtype=torch.float32, device=self.device)
        return self._buffers[:count]


def map_on_threads(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """[fn(item) for item in items], in order: the first item in the calling thread, each other one
    on its own worker thread (one torch thread each). Call it inside explicit_threads, so that the
    calling thread runs torch on one thread too.

    The calling thread takes a share rather than waiting: on a VM, waking a worker whose core
    sleeps costs up to milliseconds, and one fewer handoff is one fewer wait.
    """
    if len(items) <= 1:
        return [fn(item) for item in items]
    pool = _workers()
    others = [pool.submit(fn, item) for item in items[1:]]
    return [fn(items[0])] + [future.result() for future in others]
