"""The searcher's CPU kernels (native/cross_terms.c: fused cross terms, sketch dot products), compiled on first use.

They are built for the host's CPU by lwm.spec.native_build (a cache keyed by the source, the
compiler and the CPU, so a restarted searcher loads them at once). Without a C compiler, or with
LWM_SEARCH_NATIVE=0, the searcher keeps the torch paths (stack.cross_terms, stack.sketch_dots),
which give the same numbers.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from lwm.spec.native_build import load_native_library

SOURCE = Path(__file__).with_name("native") / "cross_terms.c"
LANES = 16  # points per SIMD vector in the kernel; thread chunks are multiples of it


class NativeKernels:
    """The compiled kernels, each splitting its rows across threads."""

    def __init__(self, loaded: ctypes.CDLL, threads: int) -> None:
        self._cross_terms = loaded.cross_terms
        self._cross_terms.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        self._cross_terms.restype = ctypes.c_int
        self._sketch_dots = loaded.sketch_dots
        self._sketch_dots.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_void_p]
        self._sketch_dots.restype = None
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="searcher-kernels") if threads > 1 else None

    def _split(self, count: int, run: Callable[[int, int], None]) -> None:
        """run(start, stop) over chunks of rows (multiples of LANES), one per thread; ctypes releases the GIL."""
        if count == 0:
            return
        chunk = -(-count // (self.threads * LANES)) * LANES
        bounds = [(start, min(start + chunk, count)) for start in range(0, count, chunk)]
        if self._pool is None or len(bounds) == 1:
            for start, stop in bounds:
                run(start, stop)
        else:
            for future in [self._pool.submit(run, start, stop) for start, stop in bounds]:
                future.result()

    def sketch_dots(self, codes: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
        """codes (n, D) int8, user (D,) CPU tensors -> (n,) float32 of codes @ user.

        The user's vector is rounded to int16 (relative error 2^-15 of its largest entry),
        with a bound that keeps the kernel's int32 sums of 127 * |user| from overflowing.
        """
        codes = codes.contiguous()
        count, width = codes.shape
        limit = min(32767, (2**31 - 1) // (127 * max(width, 1)))
        largest = float(user.abs().max()) if user.numel() else 0.0
        scale = largest / limit if largest > 0 else 1.0
        rounded = torch.round(user.to(torch.float64) / scale).to(torch.int16).contiguous()
        out = torch.empty(count, dtype=torch.float32)

        def run(start: int, stop: int) -> None:
            self._sketch_dots(codes[start].data_ptr(), stop - start, width, rounded.data_ptr(), scale, out[start].data_ptr())

        self._split(count, run)
        return out

    def cross_terms(self, points: torch.Tensor, queries: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """points (P, w), queries (K, w), beta (K,): float32 CPU tensors -> (P,) float32."""
        points = points.contiguous()
        queries = queries.to(torch.float32).contiguous()
        beta = beta.to(torch.float32).contiguous()
        count, width = points.shape
        out = torch.empty(count, dtype=torch.float32)

        def run(start: int, stop: int) -> None:
            status = self._cross_terms(points[start].data_ptr(), stop - start, width, queries.data_ptr(), beta.data_ptr(), queries.shape[0], out[start].data_ptr())
            if status != 0:
                raise MemoryError(f"the native cross-term kernel could not allocate {width} x {LANES} floats")

        self._split(count, run)
        return out


@functools.cache
def native_kernels() -> NativeKernels | None:
    """The compiled kernels, or None (torch paths) when disabled or no compiler works here."""
    library = load_native_library(SOURCE, "searcher_kernels", "LWM_SEARCH_NATIVE")
    return None if library is None else NativeKernels(library, torch.get_num_threads())
