"""The searcher's CPU kernels (native/cross_terms.c: fused cross terms, sketch dot products), compiled on first use.

It is built with the host's C compiler for the host's CPU (-march=native) into a cache
directory keyed by the source, the flags, the compiler and the CPU, so a restarted
searcher loads it at once. Without a C compiler, or with LWM_SEARCH_NATIVE=0, the
searcher keeps the torch paths (stack.cross_terms, stack.sketch_dots), which give the same numbers.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native") / "cross_terms.c"
COMPILER_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]
LANES = 16  # points per SIMD vector in the kernel; thread chunks are multiples of it
COMPILE_TIMEOUT_S = 60


class NativeKernels:
    """The compiled kernels, each splitting its rows across threads."""

    def __init__(self, library: Path, threads: int) -> None:
        loaded = ctypes.CDLL(str(library))
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


def _cpu_description() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _compile(cache_dir: Path) -> Path:
    """The kernel's shared library for this source, compiler and CPU, compiling it if needed."""
    compiler = os.environ.get("CC", "cc")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True, timeout=COMPILE_TIMEOUT_S).stdout
    key = hashlib.sha256("\n".join([SOURCE.read_text(), " ".join(COMPILER_FLAGS), version, platform.machine(), _cpu_description()]).encode()).hexdigest()[:16]
    library = cache_dir / f"searcher_kernels-{key}.so"
    if library.exists():
        return library
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        built = Path(scratch) / library.name
        subprocess.run([compiler, *COMPILER_FLAGS, "-o", str(built), str(SOURCE)], capture_output=True, text=True, check=True, timeout=COMPILE_TIMEOUT_S)
        os.replace(built, library)  # atomic: concurrent searchers never load a half-written file
    log.info("compiled the native searcher kernels into %s", library)
    return library


@functools.cache
def native_kernels() -> NativeKernels | None:
    """The compiled kernels, or None (torch paths) when disabled or no compiler works here."""
    if os.environ.get("LWM_SEARCH_NATIVE", "1") == "0":
        return None
    cache_dir = Path(os.environ.get("LWM_NATIVE_CACHE") or Path.home() / ".cache" / "lwm" / "native")
    try:
        return NativeKernels(_compile(cache_dir), torch.get_num_threads())
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", None) or error
        log.warning("the native kernels are unavailable, searching with torch kernels: %s", detail)
        return None
