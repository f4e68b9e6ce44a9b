"""The reference package's own venv (.bench-venv) for the benchmarks: created and completed when needed.

Only benchmarks use it; the reference is never a dependency of the project. Its
packages are installed with torch pinned in every step (any other torch pulls CUDA).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REFERENCE_VENV = Path(__file__).resolve().parent.parent / ".bench-venv"
REFERENCE_PIP_STEPS = [
    ["torch==2.13.0"],
    ["learnware==0.4.0.post1", "torch==2.13.0"],
    ["fast_pytorch_kmeans", "lightgbm", "osqp", "torch==2.13.0"],
    ["torch-optimizer", "torch==2.13.0"],  # the reference's image spec optimiser
]


def ensure_reference_venv() -> Path:
    """The venv's python, after installing whatever of REFERENCE_PIP_STEPS is missing; LWM_REFERENCE_PYTHON, when set, instead (used as it is)."""
    given = os.environ.get("LWM_REFERENCE_PYTHON")
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(f"LWM_REFERENCE_PYTHON={given} is not a file")
        return Path(given)
    python = REFERENCE_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {REFERENCE_VENV} (the reference package learnware==0.4.0.post1) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(REFERENCE_VENV)], check=True)
    have = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True)
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(have.stdout)}
    with tempfile.TemporaryDirectory() as home:  # the reference writes to ~/.learnware on import
        for packages in REFERENCE_PIP_STEPS:
            wanted = [p.split("==")[0].lower().replace("_", "-") for p in packages if not p.startswith("torch==")] or ["torch"]
            if not all(name in installed for name in wanted):
                subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages], check=True, env=dict(os.environ, HOME=home))
    return python
