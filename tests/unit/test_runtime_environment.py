"""Learnware environments (lwm.runtime.environment): requirement parsing and real uv builds with a cache."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from fixtures.learnwares import build_learnware_zip
from packaging.version import Version

from lwm.learnware.archive import LearnwareArchive
from lwm.runtime.environment import (
    EnvironmentBuildError,
    EnvironmentConfig,
    EnvironmentManager,
    Requirements,
    parse_environment_yaml,
    parse_requirements_txt,
    relax_pin,
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


def _manager_with_local_links(tmp_path: Path, build_timeout_s: float = EnvironmentConfig.build_timeout_s) -> tuple[EnvironmentManager, Path]:
    """A manager that also installs from the (empty) folder it returns, where a test puts its packages."""
    links = tmp_path / "links"
    links.mkdir()
    return EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=(), find_links=(str(links),), build_timeout_s=build_timeout_s)), links


def _wheel_with_a_pth_file(folder: Path, marker: Path) -> None:
    """A wheel `lwm-test-pth` whose .pth file, if an interpreter ever started with its site-packages, would write `marker`."""
    files = {
        "lwm_test_pth/__init__.py": "VALUE = 1\n",
        "lwm_test_pth.pth": f"import pathlib; pathlib.Path({str(marker)!r}).write_text('pth ran')\n",
        "lwm_test_pth-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: lwm-test-pth\nVersion: 1.0\n",
        "lwm_test_pth-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},{len(text.encode())}\n" for name, text in files.items())
    with zipfile.ZipFile(folder / "lwm_test_pth-1.0-py3-none-any.whl", "w") as wheel:
        for name, text in {**files, "lwm_test_pth-1.0.dist-info/RECORD": record + "lwm_test_pth-1.0.dist-info/RECORD,,\n"}.items():
            wheel.writestr(name, text)


def test_build_compiles_bytecode_without_running_package_code(tmp_path: Path) -> None:
    """The runner starts with -B, so the build writes the .pyc files; a package's .pth file never runs on the host."""
    manager, links = _manager_with_local_links(tmp_path)
    marker = tmp_path / "pth-ran"
    _wheel_with_a_pth_file(links, marker)
    env = manager.prepare_requirements(parse_requirements_txt("lwm-test-pth==1.0\n"))
    lib = Path(env.python).parents[1] / "lib"
    assert list(lib.glob("python3*/site-packages/lwm_test_pth/__pycache__/__init__.cpython-*.pyc"))
    assert list(lib.glob("python3*/site-packages/numpy/__pycache__/__init__.cpython-*.pyc"))
    assert not marker.exists()


def test_uv_build_is_cached_by_requirements(tmp_path: Path) -> None:
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=()))
    first = manager.prepare_requirements(parse_requirements_txt("six\n"))
    assert not first.cached and first.build_s > 0
    assert first.python.startswith(str(tmp_path / "envs")) and first.python != sys.executable
    assert _imports(first.python, "six") and _imports(first.python, "numpy")  # numpy: the runner needs it
    assert not _imports(first.python, "sklearn")  # only what the learnware asked for
    again = manager.prepare_requirements(parse_requirements_txt("SIX  # same requirement\n"))
    assert again.cached and again.python == first.python and again.build_s == 0.0


def test_concurrent_builds_of_one_environment_share_one_folder(tmp_path: Path) -> None:
    """Identical builds do not wait for each other: each builds privately and the first to finish is kept."""
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=()))
    results = []
    threads = [threading.Thread(target=lambda: results.append(manager.prepare_requirements(Requirements(("six",))))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len({r.python for r in results}) == 1
    assert _imports(results[0].python, "six")
    assert [p.name for p in (tmp_path / "envs").iterdir()] == [manager.cache_key(Requirements(("six",)))]  # no private build folder left


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
    spec_file = Path(env.python).parents[2] / "environment.yaml"  # built privately, then renamed into the cache
    assert Path(call.split("--file ")[1]).name == spec_file.name and "name" not in yaml.safe_load(spec_file.read_text())
    assert env.python.startswith(str(tmp_path / "envs")) and _imports(env.python, "numpy")
    assert any("built by" in note for note in env.notes)
    assert manager.prepare(archive).cached and len(log.read_text().splitlines()) == 1
    # Without conda the same zip gets a uv venv from the yaml's dependencies.
    uv_env = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", conda=None)).prepare(archive)
    assert uv_env.python != env.python and uv_env.requirements == ("numpy",)


def _hostile_sdist(folder: Path, marker: Path) -> None:
    """An sdist `lwm-test-hostile-sdist-1.0.tar.gz` whose setup.py, if anything ever ran it, would write `marker`."""
    source = folder / "src" / "lwm-test-hostile-sdist-1.0"
    source.mkdir(parents=True)
    (source / "setup.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('setup.py ran')\nfrom setuptools import setup\nsetup(name='lwm-test-hostile-sdist', version='1.0')\n")
    (source / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: lwm-test-hostile-sdist\nVersion: 1.0\n")
    with tarfile.open(folder / "lwm-test-hostile-sdist-1.0.tar.gz", "w:gz") as tar:
        tar.add(source, arcname="lwm-test-hostile-sdist-1.0")
    shutil.rmtree(folder / "src")


def test_sdist_is_refused_and_its_setup_py_never_runs(tmp_path: Path) -> None:
    manager, links = _manager_with_local_links(tmp_path)
    marker = tmp_path / "setup-py-ran"
    _hostile_sdist(links, marker)
    env = manager.prepare_requirements(parse_requirements_txt("lwm-test-hostile-sdist==1.0\nsix\n"))
    assert not marker.exists()
    reasons = {d.requirement: d.reason for d in env.dropped}
    assert "refused" in reasons["lwm-test-hostile-sdist==1.0"] and "never builds source distributions" in reasons["lwm-test-hostile-sdist==1.0"]
    assert _imports(env.python, "six") and not _imports(env.python, "lwm_test_hostile_sdist")


@pytest.mark.parametrize(
    ("pin", "relaxed"),
    [
        ("scikit-learn==0.22", "scikit-learn>=0.22"),
        ("numpy==1.19.*", "numpy>=1.19"),
        ("pandas~=1.1.0", "pandas>=1.1.0"),
        ("torch>=1.4,<1.5", "torch>=1.4"),
        ("six", None),
        ("six>=1.0", None),
    ],
)
def test_relax_pin(pin: str, relaxed: str | None) -> None:
    assert relax_pin(pin) == relaxed


def test_old_pin_without_a_wheel_is_relaxed_with_a_warning(tmp_path: Path) -> None:
    """The reference's own test zips pin scikit-learn==0.22, which has no wheel for this Python (real PyPI; uv's cache keeps it quick)."""
    manager = EnvironmentManager(EnvironmentConfig(cache_dir=tmp_path / "envs", overrides=()))
    env = manager.prepare_requirements(parse_requirements_txt("scikit-learn==0.22\n"))
    [warning] = env.notes
    installed = subprocess.run([env.python, "-c", "import sklearn; print(sklearn.__version__)"], capture_output=True, text=True, check=True).stdout.strip()
    python = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    assert warning == f"warning: scikit-learn==0.22 has no wheel for {python}; relaxed to scikit-learn=={installed}"
    assert Version(installed) > Version("0.22") and env.dropped == ()
    assert manager.prepare_requirements(parse_requirements_txt("scikit-learn==0.22\n")).notes == (warning,)  # kept with the cached build


def test_a_stuck_build_does_not_delay_another(tmp_path: Path) -> None:
    """A wheel that can never be opened (a FIFO nobody writes) holds one build; a build of other requirements
    meanwhile completes, through the same manager and the same uv cache."""
    manager, links = _manager_with_local_links(tmp_path, build_timeout_s=600)
    fifo = links / "stuck-1.0-py3-none-any.whl"
    os.mkfifo(fifo)
    stuck_result: list[object] = []
    stuck = threading.Thread(target=lambda: stuck_result.append(_outcome(manager, "stuck\n")), daemon=True)
    stuck.start()
    _wait_until_a_child_opens_a_fifo()
    try:
        env = manager.prepare_requirements(parse_requirements_txt("six\n"))
        assert _imports(env.python, "six")
        assert stuck.is_alive() and stuck_result == []  # still stuck, and it held up nothing
    finally:
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # the stuck open returns
        fifo.unlink()  # a retry finds no such wheel
        os.close(writer)  # and the reader gets EOF
    stuck.join(timeout=300)
    assert not stuck.is_alive()


def _outcome(manager: EnvironmentManager, requirements: str) -> object:
    try:
        return manager.prepare_requirements(parse_requirements_txt(requirements))
    except EnvironmentBuildError as error:
        return error


def _wait_until_a_child_opens_a_fifo() -> None:
    """Until a child process of this one (uv) is blocked opening a FIFO for reading."""
    for _ in range(3000):
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if f"\nPPid:\t{os.getpid()}\n" in status.read_text() and any(
                    wchan.read_text() == "wait_for_partner" for wchan in status.parent.glob("task/*/wchan")
                ):
                    return
            except OSError:
                continue  # the process ended meanwhile
        threading.Event().wait(0.1)
    raise AssertionError("no child process got stuck opening the FIFO")


def test_build_past_its_deadline_is_killed(tmp_path: Path) -> None:
    manager, links = _manager_with_local_links(tmp_path, build_timeout_s=5)
    os.mkfifo(links / "stuck-1.0-py3-none-any.whl")
    with pytest.raises(EnvironmentBuildError, match="took longer than 5 s") as raised:
        manager.prepare_requirements(parse_requirements_txt("stuck\n"))
    assert raised.value.infrastructure
    assert list((tmp_path / "envs").iterdir()) == []  # the private build folder is gone
