"""Learnware environments (lwm.runtime.environment): requirement parsing and real uv builds with a cache."""

from __future__ import annotations

import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from fixtures.learnwares import build_learnware_zip

from lwm.learnware.archive import LearnwareArchive
from lwm.runtime.environment import (
    EnvironmentBuildError,
    EnvironmentConfig,
    EnvironmentManager,
    Requirements,
    parse_environment_yaml,
    parse_requirements_txt,
    uv_binary,
)


def test_requirements_txt_is_normalised_and_options_dropped() -> None:
    parsed = parse_requirements_txt(
        """
        # comment
        Scikit_Learn >= 1.3, <2   # trailing comment
        numpy==1.26.4 --hash=sha256:abc
        pywin32; sys_platform == "win32"
        -r other.txt
        --index-url https://example.invalid/simple
        torch @ https://example.invalid/torch.whl
        not a requirement!
        """
    )
    assert parsed.packages == ("numpy==1.26.4", 'pywin32; sys_platform == "win32"', "scikit-learn<2,>=1.3")
    reasons = {d.requirement: d.reason for d in parsed.dropped}
    assert "pip options" in reasons["-r other.txt"]
    assert "pip options" in reasons["--index-url https://example.invalid/simple"]
    assert "not URLs" in reasons["torch @ https://example.invalid/torch.whl"]
    assert "not a valid requirement" in reasons["not a requirement!"]


def test_environment_yaml_takes_conda_and_pip_dependencies() -> None:
    parsed = parse_environment_yaml(
        """
        name: my-learnware
        channels: [conda-forge, defaults]
        dependencies:
          - python=3.8
          - pip
          - numpy=1.26=py38h0
          - conda-forge::scipy >=1.10
          - pytorch
          - sqlite
          - pip:
            - lightgbm==4.3.0
            - -e .
        """
    )
    assert parsed.packages == ("lightgbm==4.3.0", "numpy==1.26.*", "scipy>=1.10", "sqlite", "torch")
    assert [d.requirement for d in parsed.dropped] == ["-e ."]
    assert any("python=3.8" in note for note in parsed.notes)
    with pytest.raises(EnvironmentBuildError, match="no 'dependencies' list"):
        parse_environment_yaml("name: x\n")


def test_cache_key_ignores_spelling_and_order() -> None:
    manager = EnvironmentManager(EnvironmentConfig(overrides=()))
    a = parse_requirements_txt("Numpy>=1.0\nscikit_learn\n")
    b = parse_requirements_txt("scikit-learn\n# same, reordered\nnumpy >= 1.0\n")
    assert manager.cache_key(a) == manager.cache_key(b)
    assert manager.cache_key(a) != manager.cache_key(parse_requirements_txt("numpy>=1.1\nscikit-learn\n"))


def _imports(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def test_uv_build_is_cached_by_requirements(tmp_path: Path) -> None:
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=()))
    first = manager.prepare_requirements(parse_requirements_txt("six\n"))
    assert not first.cached and first.build_s > 0
    assert first.python.startswith(str(tmp_path / "envs")) and first.python != sys.executable
    assert _imports(first.python, "six") and _imports(first.python, "numpy")  # numpy: the runner needs it
    assert not _imports(first.python, "sklearn")  # only what the learnware asked for
    again = manager.prepare_requirements(parse_requirements_txt("SIX  # same requirement\n"))
    assert again.cached and again.python == first.python and again.build_s == 0.0


def test_concurrent_builds_of_one_environment_build_it_once(tmp_path: Path) -> None:
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=()))
    results = []
    threads = [threading.Thread(target=lambda: results.append(manager.prepare_requirements(Requirements(("six",))))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.python for r in results}) == 1
    assert sorted(r.cached for r in results) == [False, True, True]


def test_uninstallable_requirements_are_dropped_with_a_reason(tmp_path: Path) -> None:
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=()))
    env = manager.prepare_requirements(parse_requirements_txt("pywin32==306\nsqlite\nsix\n"))
    reasons = {d.requirement: d.reason for d in env.dropped}
    assert "no distribution for this platform" in reasons["pywin32==306"]
    assert "not found on the package index" in reasons["sqlite"]
    assert _imports(env.python, "six")


def test_requirement_that_cannot_be_satisfied_fails_with_uv_message(tmp_path: Path) -> None:
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=()))
    with pytest.raises(EnvironmentBuildError, match=r"(?s)installing the learnware's requirements failed.*six==0\.0\.1"):
        manager.prepare_requirements(parse_requirements_txt("six==0.0.1\n"))
    assert not any((tmp_path / "envs").glob("*/venv"))  # nothing half-built is left in the cache


def test_host_backend_installs_nothing() -> None:
    env = EnvironmentManager(EnvironmentConfig(backend="host")).prepare_requirements(parse_requirements_txt("six\n"))
    assert env.python == sys.executable
    assert any("not installed" in note for note in env.notes)


def test_environment_yaml_goes_to_conda_when_one_is_configured(tmp_path: Path) -> None:
    """No conda binary can be installed here, so a stand-in speaking its `env create` command line
    makes a bare venv; the manager must call it, cache the result and add numpy for the runner."""
    log = tmp_path / "conda-calls.txt"
    conda = tmp_path / "bin" / "conda"
    conda.parent.mkdir()
    conda.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {uv_binary()} venv --quiet --python {sys.executable} "$5"\n')
    conda.chmod(0o755)
    zip_path = build_learnware_zip("scores", tmp_path)
    with zipfile.ZipFile(zip_path, "a") as zf:
        zf.writestr("environment.yaml", "name: mine\ndependencies:\n  - python=3.11\n  - numpy\n")
    archive = LearnwareArchive.from_path(zip_path)
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", conda=str(conda)))
    env = manager.prepare(archive)
    [call] = log.read_text().splitlines()
    assert call.startswith("env create --quiet --prefix ") and call.endswith("environment.yaml")
    spec_file = Path(call.split("--file ")[1])
    assert "name" not in yaml.safe_load(spec_file.read_text())
    assert env.python.startswith(str(tmp_path / "envs")) and _imports(env.python, "numpy")
    assert any("built by" in note for note in env.notes)
    assert manager.prepare(archive).cached and len(log.read_text().splitlines()) == 1
    # Without conda the same zip gets a uv venv from the yaml's dependencies.
    uv_env = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", conda=None)).prepare(archive)
    assert uv_env.python != env.python and uv_env.requirements == ("numpy",)
