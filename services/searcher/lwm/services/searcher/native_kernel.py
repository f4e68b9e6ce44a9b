"""The fused CPU cross-term kernel (native/cross_terms.c), compiled on first use.

It is built with the host's C compiler for the host's CPU (-march=native) into a cache
directory keyed by the source, the flags, the compiler and the CPU, so a restarted
searcher loads it at once. Without a C compiler, or with LWM_SEARCH_NATIVE=0, the
searcher keeps the torch path (stack.cross_terms), which gives the same numbers.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native") / "cross_terms.c"
COMPILER_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]
LANES = 16  # points per SIMD vector in the kernel; thread chunks are multiples of it
COMPILE_TIMEOUT_S = 60


class CrossTermsKernel:
    """out[p] = sum_a beta[a] 2^<queries[a], points[p]>, the points split across threads."""

    def __init__(self, library: Path, threads: int) -> None:
        self._function = ctypes.CDLL(str(library)).cross_terms
        self._function.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        self._function.restype = ctypes.c_int
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cross-terms") if threads > 1 else None

    def __call__(self, points: torch.Tensor, queries: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """points (P, w), queries (K, w), beta (K,): float32 CPU tensors -> (P,) float32."""
        points = points.contiguous()
        queries = queries.to(torch.float32).contiguous()
        beta = beta.to(torch.float32).contiguous()
        count, width = points.shape
        out = torch.empty(count, dtype=torch.float32)
        if count == 0:
            return out

        def run(start: int, stop: int) -> None:
            # ctypes releases the GIL for the call, so the threads run in parallel.
            status = self._function(points[start].data_ptr(), stop - start, width, queries.data_ptr(), beta.data_ptr(), queries.shape[0], out[start].data_ptr())
            if status != 0:
                raise MemoryError(f"the native cross-term kernel could not allocate {width} x {LANES} floats")

        chunk = -(-count // (self.threads * LANES)) * LANES
        bounds = [(start, min(start + chunk, count)) for start in range(0, count, chunk)]
        if self._pool is None or len(bounds) == 1:
            for start, stop in bounds:
                run(start, stop)
        else:
            for future in [self._pool.submit(run, start, stop) for start, stop in bounds]:
                future.result()
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
    library = cache_dir / f"cross_terms-{key}.so"
    if library.exists():
        return library
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        built = Path(scratch) / library.name
        subprocess.run([compiler, *COMPILER_FLAGS, "-o", str(built), str(SOURCE)], capture_output=True, text=True, check=True, timeout=COMPILE_TIMEOUT_S)
        os.replace(built, library)  # atomic: concurrent searchers never load a half-written file
    log.info("compiled the native cross-term kernel into %s", library)
    return library


@functools.cache
def native_cross_terms() -> CrossTermsKernel | None:
    """The compiled kernel, or None (torch path) when disabled or no compiler works here."""
    if os.environ.get("LWM_SEARCH_NATIVE", "1") == "0":
        return None
    cache_dir = Path(os.environ.get("LWM_NATIVE_CACHE") or Path.home() / ".cache" / "lwm" / "native")
    try:
        return CrossTermsKernel(_compile(cache_dir), torch.get_num_threads())
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", None) or error
        log.warning("the native cross-term kernel is unavailable, searching with torch kernels: %s", detail)
        return None
