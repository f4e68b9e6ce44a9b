"""Sandbox costs on this machine: environment builds, runner start, predict round trips.

    .venv/bin/python bench/sandbox_bench.py [--calls 300] [--starts 10] [--no-env]

Measures
- environment build for `numpy + scikit-learn`: first build with an empty uv
  package cache (downloads from the package index), first build with a warm uv
  cache (a new venv, packages linked from uv's cache), and a cached build (same
  requirements again: a hash lookup); skipped with --no-env;
- runner start (spawn + load a trivial model) without isolation, under
  bubblewrap and under gVisor (where runsc works);
- predict round trip per call for a 1x4 input, without isolation, under
  bubblewrap and under gVisor, next to calling the same model in-process; and a predict on
  100,000 x 4 float64 rows (3.2 MB through the pipes, 1.6 MB back).
Prints what it measured, with the machine load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from lwm.runtime.environment import EnvironmentConfig, EnvironmentManager, parse_requirements_txt
from lwm.runtime.runner import SANDBOX_ROOT, ModelRunner
from lwm.runtime.sandbox import SandboxConfig, gvisor_works

MODEL_SOURCE = """
import numpy as np
from learnware.model import BaseModel

class Model(BaseModel):
    def __init__(self):
        super().__init__(input_shape=(4,), output_shape=(2,))
        self.w = np.array([1.0, -1.0, 0.5, 0.0])

    def predict(self, X):
        p = 1.0 / (1.0 + np.exp(-(X @ self.w)))
        return np.stack([1.0 - p, p], axis=1)
"""
REQUIREMENTS = "numpy\nscikit-learn\n"
X_SMALL = np.random.default_rng(0).normal(size=(1, 4))
X_BIG = np.random.default_rng(1).normal(size=(100_000, 4))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def bench_environments(workdir: Path) -> None:
    requirements = parse_requirements_txt(REQUIREMENTS)
    cold_uv_cache = workdir / "uv-cache"
    os.environ["UV_CACHE_DIR"] = str(cold_uv_cache)
    try:
        manager = EnvironmentManager(EnvironmentConfig(cache_dir=workdir / "envs-cold"))
        started = time.perf_counter()
        manager.prepare_requirements(requirements)
        cold = time.perf_counter() - started
        manager = EnvironmentManager(EnvironmentConfig(cache_dir=workdir / "envs-warm"))
        started = time.perf_counter()
        env = manager.prepare_requirements(requirements)
        warm = time.perf_counter() - started
        cached_times = []
        for _ in range(5):
            started = time.perf_counter()
            again = manager.prepare_requirements(requirements)
            cached_times.append(time.perf_counter() - started)
        assert again.cached and again.python == env.python
    finally:
        del os.environ["UV_CACHE_DIR"]
    print("environment build (numpy + scikit-learn, uv):")
    print(f"  first build, empty uv cache (downloads): {cold:.2f} s")
    print(f"  first build, warm uv cache:              {warm:.2f} s")
    print(f"  cached (same requirements again):        {ms(statistics.median(cached_times))} (median of 5)")


def median_call_s(call, calls: int) -> tuple[float, float]:
    """(median, p95) seconds of `call()` over `calls` runs."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def bench_in_process(folder: Path, calls: int) -> None:
    spec = importlib.util.spec_from_file_location("bench_learnware", folder / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.append(str(SANDBOX_ROOT))  # the `learnware.model` stand-in the runner provides
    spec.loader.exec_module(module)
    model = module.Model()
    median, p95 = median_call_s(lambda: model.predict(X_SMALL), calls)
    print("in-process (no child at all, for reference):")
    print(f"  predict call (1x4):        median {ms(median)}, p95 {ms(p95)} ({calls} calls)")


def bench_runner(folder: Path, sandbox: SandboxConfig, label: str, calls: int, starts: int) -> None:
    start_times = []
    for _ in range(starts):
        started = time.perf_counter()
        runner = ModelRunner(folder, "Model", timeout_s=60, sandbox=sandbox).start()
        start_times.append(time.perf_counter() - started)
        runner.close()
    with ModelRunner(folder, "Model", timeout_s=60, sandbox=sandbox) as runner:
        runner.predict(X_SMALL)
        small = median_call_s(lambda: runner.predict(X_SMALL), calls)
        big = median_call_s(lambda: runner.predict(X_BIG), 20)
    print(f"{label}:")
    print(f"  runner start + model load: median {ms(statistics.median(start_times))}, max {ms(max(start_times))} ({starts} starts)")
    print(f"  predict round trip (1x4):  median {ms(small[0])}, p95 {ms(small[1])} ({calls} calls)")
    print(f"  predict 100,000x4 float64 (3.2 MB in, 1.6 MB out): median {ms(big[0])} (20 calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--no-env", action="store_true", help="skip the environment builds (they need the package index)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="lwm-sandbox-bench-") as tmp:
        workdir = Path(tmp)
        if not args.no_env:
            bench_environments(workdir)
        folder = workdir / "learnware"
        folder.mkdir()
        (folder / "__init__.py").write_text(textwrap.dedent(MODEL_SOURCE))
        bench_in_process(folder, args.calls)
        bench_runner(folder, SandboxConfig(isolation="none"), "no isolation (plain child process)", args.calls, args.starts)
        bench_runner(folder, SandboxConfig(isolation="bwrap"), "bubblewrap sandbox", args.calls, args.starts)
        if gvisor_works():
            bench_runner(folder, SandboxConfig(isolation="gvisor"), "gVisor sandbox (runsc)", args.calls, args.starts)
        else:
            print("gVisor sandbox: runsc is not installed or does not work here; skipped")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
