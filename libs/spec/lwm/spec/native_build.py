"""C kernels compiled on first use, for the host's CPU: lwm.spec's table fit (native/spec_kernels.c) and the searcher's.

A library is built with the host's C compiler (CC, else cc) and -march=native, with native/
(simd.h, shared by the kernels) on the include path, into a cache directory keyed by the
source, the headers, the flags, the compiler and the CPU, so a restarted process loads it at
once. Without a compiler, or with the caller's switch set to 0, the caller keeps its torch or
numpy path.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

COMPILER_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-pthread"]  # -pthread: the spec kernels' thread pool (block_pool.h), on C libraries before glibc 2.34 too
COMPILE_TIMEOUT_S = 60
INCLUDE_DIR = Path(__file__).with_name("native")


def _cpu_description() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _compile(source: Path, name: str, cache_dir: Path) -> Path:
    """The shared library of ``source`` for this compiler and CPU, compiling it if needed."""
    compiler = os.environ.get("CC", "cc")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True, timeout=COMPILE_TIMEOUT_S).stdout
    headers = [header.read_text() for header in sorted(INCLUDE_DIR.glob("*.h"))]
    key = hashlib.sha256("\n".join([source.read_text(), *headers, " ".join(COMPILER_FLAGS), version, platform.machine(), _cpu_description()]).encode()).hexdigest()[:16]
    library = cache_dir / f"{name}-{key}.so"
    if library.exists():
        return library
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        built = Path(scratch) / library.name
        subprocess.run([compiler, *COMPILER_FLAGS, "-I", str(INCLUDE_DIR), "-o", str(built), str(source)], capture_output=True, text=True, check=True, timeout=COMPILE_TIMEOUT_S)
        os.replace(built, library)  # atomic: concurrent processes never load a half-written file
    log.info("compiled %s into %s", source.name, library)
    return library


def load_native_library(source: Path, name: str, switch: str) -> ctypes.CDLL | None:
    """``source`` compiled for this CPU and loaded, or None when the environment variable ``switch``
    is 0 or no C compiler works here (logged once per caller; the caller then keeps its fallback).

    The cache directory is LWM_NATIVE_CACHE, else ~/.cache/lwm/native.
    """
    if os.environ.get(switch, "1") == "0":
        return None
    cache_dir = Path(os.environ.get("LWM_NATIVE_CACHE") or Path.home() / ".cache" / "lwm" / "native")
    try:
        return ctypes.CDLL(str(_compile(source, name, cache_dir)))
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", None) or error
        log.warning("the native %s are unavailable (set %s=0 to skip them), using the fallback: %s", name, switch, detail)
        return None
