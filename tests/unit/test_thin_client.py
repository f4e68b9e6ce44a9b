"""The thin client: lwm-client installs and runs without torch; what needs the spec distribution says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lwm.client import MarketClient, cli
from lwm.client.errors import MissingDistributionError

ROOT = Path(__file__).resolve().parents[2]
THIN_CLIENT = ["libs/learnware", "libs/rpc", "libs/client"]
MAX_INSTALLED_MB = 150


def test_spec_command_without_the_spec_distribution_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "x.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    monkeypatch.setitem(sys.modules, "lwm.spec", None)  # as if lwm-spec were not installed
    assert cli.main(["spec", "table", str(data), "-o", str(tmp_path / "spec.json")]) == cli.EXIT_USAGE
    assert "pip install lwm-spec" in capsys.readouterr().err
    assert not (tmp_path / "spec.json").exists()


def test_local_learnwares_without_the_local_extra_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lwm.runtime", None)  # as if lwm-runtime were not installed
    with MarketClient("127.0.0.1:9") as client, pytest.raises(MissingDistributionError, match=r"pip install 'lwm-client\[local\]'"):
        client.load_learnware("any-id")


def test_csv_tables_load_with_or_without_a_header(tmp_path: Path) -> None:
    headed, bare, holes = tmp_path / "headed.csv", tmp_path / "bare.csv", tmp_path / "holes.csv"
    headed.write_text("age,height\n1,2.5\n3,4\n")
    bare.write_text("1,2.5\n3,4\n")
    holes.write_text("1,\n3,4\n")
    assert np.array_equal(cli.load_array(headed), [[1, 2.5], [3, 4]])
    assert np.array_equal(cli.load_array(bare), [[1, 2.5], [3, 4]])
    assert np.isnan(cli.load_array(holes)[0, 1])
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(ValueError, match="different numbers of columns"):
        cli.load_array(ragged)


@pytest.mark.slow
def test_thin_client_installs_without_torch_and_small(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # The test interpreter's pip installs into the new environment's site-packages.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(site), *(str(ROOT / c) for c in THIN_CLIENT)], check=True, timeout=600)
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert "torch" not in installed and "pandas" not in installed and "scipy" not in installed, sorted(installed)
    size_mb = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 2**20
    assert size_mb < MAX_INSTALLED_MB, f"the thin client takes {size_mb:.0f} MB installed"
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "lwm.client.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: lwm" in done.stdout, done.stderr
