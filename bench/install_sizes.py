"""Installed size of each deploy/Dockerfile image's Python environment, and of the thin client.

Builds every component as a wheel once, then installs each image's distributions into a
fresh virtual environment, as deploy/Dockerfile does, and prints the size of its
site-packages (pip and setuptools left out). torch is the local CPU wheel (torch==2.13.0).

    .venv/bin/python bench/install_sizes.py [--only client,gateway]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"
# What each image (deploy/Dockerfile target) installs; pip takes our distributions from the wheels.
IMAGES: dict[str, list[str]] = {
    "client": ["lwm-client"],
    "organizer": ["lwm-organizer-service", "lwm-market"],
    "gateway": ["lwm-gateway-service", "lwm-market"],
    "searcher": [TORCH, "lwm-searcher-service", "lwm-market"],
    "checker": [TORCH, "lwm-checker-service", "lwm-market"],
    "reuse": [TORCH, "lwm-reuse-service", "lwm-market"],
    "market": [TORCH, "lwm-market[all]"],
}
LEFT_OUT = ("pip", "setuptools", "_distutils_hack")


def build_wheels(folder: Path) -> None:
    components = [str(p.parent) for p in sorted((ROOT / "libs").glob("*/pyproject.toml")) + sorted((ROOT / "services").glob("*/pyproject.toml"))]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(folder), *components], check=True)


def installed_mb(venv: Path) -> tuple[float, list[str]]:
    site = next((venv / "lib").glob("python*/site-packages"))
    total = 0
    for entry in site.iterdir():
        if entry.name.split("-")[0] in LEFT_OUT:
            continue
        files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    distributions = sorted(p.name.split("-")[0] for p in site.glob("*.dist-info") if p.name.split("-")[0] not in LEFT_OUT)
    return total / 2**20, distributions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(IMAGES), help="comma-separated images")
    names = parser.parse_args().only.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp) / "wheels"
        build_wheels(wheels)
        print(f"{'image':<10} {'MB':>7}  {'torch':<5}  seconds  distributions")
        for name in names:
            venv = Path(tmp) / name
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            started = time.monotonic()
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--find-links", str(wheels), *IMAGES[name]], check=True)
            seconds = time.monotonic() - started
            size, distributions = installed_mb(venv)
            has_torch = "torch" in distributions
            print(f"{name:<10} {size:7.0f}  {'yes' if has_torch else 'no':<5}  {seconds:7.0f}  {len(distributions)}: {' '.join(d for d in distributions if d.startswith('lwm'))}", flush=True)


if __name__ == "__main__":
    main()
