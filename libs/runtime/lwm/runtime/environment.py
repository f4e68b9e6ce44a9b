"""Learnware environments: a Python interpreter with the learnware's requirements installed.

A learnware names its dependencies in `requirements.txt` (pip) or
`environment.yaml` (conda). The default backend builds a venv with `uv` from
PyPI, cached under `cache_dir` by the hash of the normalised requirements, so a
second learnware with the same requirements starts at once. From an
environment.yaml it takes the pip section and those conda dependencies that
exist on PyPI, unless a conda/mamba binary is on PATH, which then builds it.

Only wheels are installed (`--only-binary :all:`): building a source
distribution runs its setup.py, which is code from the index, and the market
never runs such code on the host. Resolving never builds either, so a
requirement that exists only as an sdist is refused and reported. The operator
switch LWM_ENV_ALLOW_SDIST=1 allows source builds: then every command of a uv
build runs inside the learnware sandbox, whose only network is a proxy to the
package index (sandboxed_build.py, index_proxy.py). Conda builds stay wheels-only.

Old pins: a pinned requirement with no wheel for this Python (the reference's
own test zips pin `scikit-learn==0.22`, whose newest wheels are for Python 3.8)
is relaxed to `>=` its pin and resolved with the other requirements, which
gives the newest release they allow; the report names both versions. Not the
lowest release >= the pin: the first release with wheels for a new Python is
typically built against an older ABI of its dependencies than its metadata
admits (scikit-learn 1.1.3, the first for Python 3.11, resolves with numpy 2.x
and then fails to import: "numpy.dtype size changed"), whereas the newest one
is built against what the resolver installs beside it, and is what a model
pickled today was made with.

Requirements that cannot be installed here (not on PyPI, like `sqlite`, with no
distribution for this platform, like `pywin32` on Linux, or only as an sdist)
are dropped and reported, as the reference package does; any other install
failure (conflicting pins) fails with uv's message.

Builds do not wait for each other: each builds into a private folder that is
renamed into the cache when complete (two uploads with the same requirements
may both build; the first rename wins), and each has its own deadline, after
which its uv process group is killed. The uv download cache is shared: uv
makes it safe for concurrent use (per-entry locks, atomic renames), and with
wheels only no entry is locked for longer than one download. A sandboxed build
(source builds allowed) has a uv cache of its own instead.

The "host" backend installs nothing and runs learnwares with the service's own
interpreter (development only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lwm.learnware.archive import LearnwareArchive
from lwm.learnware.settings import env_float

from .index_proxy import PYPI_INDEX_URL, IndexProxy, index_hosts
from .sandbox import SandboxConfig
from .sandboxed_build import BUILD_ISOLATIONS, BuildSandbox, InterpreterFiles, build_sandbox

BACKENDS = ("uv", "host")
# Bump when the build recipe changes: older cache entries are then ignored.
ENV_FORMAT = 3
# The runner itself imports numpy; a learnware's own pin of it wins.
RUNNER_REQUIREMENTS = ("numpy",)
READY_FILE = "lwm-environment.json"
# Conda package names whose PyPI name differs.
CONDA_TO_PYPI = {"pytorch": "torch", "py-xgboost": "xgboost", "py-lightgbm": "lightgbm"}
# uv's words for "no such package" and "nothing installable on this platform".
_NOT_FOUND = ("not found in the package registry", "was not found in the provided package locations")
_NO_PLATFORM = ("on the following platforms", "no wheels with a matching platform tag")
# uv's words for "no wheel that this interpreter can install" (with building from source disabled).
_NO_WHEEL = ("has no usable wheels", "no wheels with a matching", "only found wheels for", "building from source is disabled")
# Set to 1 to allow source builds, which then run inside the sandbox.
ALLOW_SDIST_ENV = "LWM_ENV_ALLOW_SDIST"
# Private build folders in the cache start with this; complete ones are renamed to their key.
_BUILDING_PREFIX = ".building-"
# uv's words for "the package index cannot be reached".
_NETWORK = ("failed to fetch", "error sending request", "dns error", "network is unreachable", "connection refused")
_TAIL_CHARS = 4000


class EnvironmentBuildError(RuntimeError):
    """The learnware's environment could not be built (the message has the installer's output).

    `infrastructure` is True when the market is at fault (no uv, no network), not the learnware.
    """

    def __init__(self, message: str, *, infrastructure: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure


@dataclass(frozen=True)
class DroppedRequirement:
    requirement: str
    reason: str

    def __str__(self) -> str:
        return f"{self.requirement} ({self.reason})"


@dataclass(frozen=True)
class Requirements:
    """A learnware's requirements: normalised PEP 508 strings (sorted), plus what was left out and why."""

    packages: tuple[str, ...]
    dropped: tuple[DroppedRequirement, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    """A ready environment: run learnwares with `python`."""

    python: str
    requirements: tuple[str, ...]
    dropped: tuple[DroppedRequirement, ...] = ()
    notes: tuple[str, ...] = ()
    build_s: float = 0.0
    cached: bool = False


def _normalise(req: Requirement) -> str:
    text: str = canonicalize_name(req.name)
    if req.extras:
        text += "[" + ",".join(sorted(req.extras)) + "]"
    text += ",".join(sorted(str(s) for s in req.specifier))
    if req.marker is not None:
        text += f"; {req.marker}"
    return text


def _collect(lines: list[str], dropped: list[DroppedRequirement], notes: list[str]) -> Requirements:
    packages: dict[str, str] = {}
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement as error:
            dropped.append(DroppedRequirement(line, f"not a valid requirement: {str(error).splitlines()[0]}"))
            continue
        if req.url:
            dropped.append(DroppedRequirement(line, "only packages from the package index are installed, not URLs"))
            continue
        packages[_normalise(req)] = line
    return Requirements(tuple(sorted(packages)), tuple(dropped), tuple(notes))


def _pip_lines(text: str, dropped: list[DroppedRequirement]) -> list[str]:
    """Requirement lines of requirements.txt text; pip options (-r, -e, --index-url, ...) go to `dropped`."""
    lines: list[str] = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            dropped.append(DroppedRequirement(line, "pip options are not allowed in a learnware's requirements"))
            continue
        lines.append(re.split(r"\s+--?[a-z]", line, maxsplit=1)[0].strip())  # inline options such as --hash
    return lines


def parse_requirements_txt(text: str) -> Requirements:
    """Requirements from a requirements.txt."""
    dropped: list[DroppedRequirement] = []
    return _collect(_pip_lines(text, dropped), dropped, [])


def _conda_to_pip(spec: str) -> tuple[str, str] | None:
    """(name, pip requirement) of a conda match spec: `numpy=1.21`, `conda-forge::scipy >=1.5`, `pkg=1.0=py38_0`."""
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec.split("::")[-1].strip())
    if match is None:
        return None
    name, version = match.group(1), match.group(2).replace(" ", "")
    name = CONDA_TO_PYPI.get(name.lower(), name)
    if version.startswith("=") and not version.startswith("=="):
        version = version[1:].split("=")[0]  # "=1.21=build" -> "1.21", which conda reads as 1.21.*
        version = f"=={version}" if version.endswith("*") else f"=={version}.*"
    return name, name + version


def parse_environment_yaml(text: str) -> Requirements:
    """The pip section and the conda dependencies of an environment.yaml, as pip requirements."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise EnvironmentBuildError(f"environment.yaml is not valid YAML: {error}") from None
    deps = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(deps, list):
        raise EnvironmentBuildError("environment.yaml has no 'dependencies' list")
    lines: list[str] = []
    dropped: list[DroppedRequirement] = []
    notes: list[str] = []
    for dep in deps:
        if isinstance(dep, dict):
            lines += _pip_lines("\n".join(str(p) for p in dep.get("pip") or []), dropped)
            continue
        converted = _conda_to_pip(str(dep))
        if converted is None:
            dropped.append(DroppedRequirement(str(dep), "not a conda package spec"))
            continue
        name, requirement = converted
        if canonicalize_name(name) == "python":
            notes.append(f"environment.yaml asks for {dep}; learnwares run on Python {sys.version_info.major}.{sys.version_info.minor}")
        elif canonicalize_name(name) != "pip":
            lines.append(requirement)
    return _collect(lines, dropped, notes)


def read_requirements(archive: LearnwareArchive) -> Requirements:
    """The requirements of a learnware zip, from its environment.yaml or requirements.txt."""
    text = archive.read(archive.env_file).decode("utf-8", errors="replace")
    if archive.env_file == "environment.yaml":
        return parse_environment_yaml(text)
    return parse_requirements_txt(text)


def _default_overrides() -> tuple[str, ...]:
    """Pin torch to the market's own build, so that a learnware's torch pin never pulls gigabytes of CUDA wheels."""
    try:
        return (f"torch=={importlib.metadata.version('torch').split('+')[0]}",)
    except importlib.metadata.PackageNotFoundError:
        return ()


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lwm" / "envs"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part for part in re.split(r"[,\s]+", value) if part)


@dataclass(frozen=True)
class EnvironmentConfig:
    """Where and how environments are built.

    `backend`: "uv" (default) or "host". `python`: the interpreter venvs are
    made from. `overrides`: pins applied over the learnware's own (default: torch
    pinned to the version installed beside the market). `find_links`: extra
    local wheel folders. `conda`: a conda or mamba binary that builds
    environment.yaml learnwares itself (default: mamba or conda from PATH, if
    any). `build_timeout_s`: bound on one whole build. `allow_sdist`: allow
    source builds, run inside the sandbox `sandbox` (default: from LWM_SANDBOX*),
    which reaches only the hosts of `index_url` (and of http(s) `find_links`).
    """

    backend: str = "uv"
    cache_dir: Path = field(default_factory=_default_cache_dir)
    python: str = sys.executable
    overrides: tuple[str, ...] = field(default_factory=_default_overrides)
    find_links: tuple[str, ...] = ()
    conda: str | None = field(default_factory=lambda: shutil.which("mamba") or shutil.which("conda"))
    build_timeout_s: float = 900.0
    allow_sdist: bool = False
    index_url: str = PYPI_INDEX_URL
    sandbox: SandboxConfig | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"environment backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.allow_sdist:
            self.index_hosts()  # an index URL the proxy cannot allow fails here

    @classmethod
    def from_env(cls) -> EnvironmentConfig:
        """From LWM_ENV_BACKEND, LWM_ENV_CACHE_DIR, LWM_ENV_OVERRIDES, LWM_ENV_FIND_LINKS (default:
        PIP_FIND_LINKS), LWM_ENV_CONDA (a conda/mamba path; empty: never use conda),
        LWM_ENV_BUILD_TIMEOUT_S, LWM_ENV_ALLOW_SDIST (1: source builds, in the sandbox) and
        LWM_ENV_INDEX_URL (the index of sandboxed builds, default PyPI)."""
        switch = os.environ.get(ALLOW_SDIST_ENV, "").strip().lower()
        if switch not in ("", "0", "false", "no", "1", "true", "yes"):
            raise ValueError(f"{ALLOW_SDIST_ENV} must be 1 (allow source builds, in the sandbox) or 0, got {switch!r}")
        kwargs: dict[str, Any] = {"backend": os.environ.get("LWM_ENV_BACKEND") or "uv", "allow_sdist": switch in ("1", "true", "yes")}
        if os.environ.get("LWM_ENV_INDEX_URL"):
            kwargs["index_url"] = os.environ["LWM_ENV_INDEX_URL"]
        if os.environ.get("LWM_ENV_CACHE_DIR"):
            kwargs["cache_dir"] = Path(os.environ["LWM_ENV_CACHE_DIR"])
        if "LWM_ENV_OVERRIDES" in os.environ:
            kwargs["overrides"] = _split(os.environ["LWM_ENV_OVERRIDES"])
        kwargs["find_links"] = _split(os.environ.get("LWM_ENV_FIND_LINKS", os.environ.get("PIP_FIND_LINKS", "")))
        kwargs["build_timeout_s"] = env_float("LWM_ENV_BUILD_TIMEOUT_S", cls.build_timeout_s, minimum=1)
        if "LWM_ENV_CONDA" in os.environ:
            kwargs["conda"] = os.environ["LWM_ENV_CONDA"] or None
        return cls(**kwargs)

    def index_hosts(self) -> frozenset[tuple[str, int]]:
        """The (host, port) pairs a sandboxed build may reach: the index's, and those of http(s) find-links."""
        return index_hosts([self.index_url, *(link for link in self.find_links if "://" in link and not link.startswith("file:"))])


def uv_binary() -> str:
    """uv from PATH, else the one installed beside this interpreter (the `uv` PyPI package)."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        raise EnvironmentBuildError("uv is not installed (pip install uv); it builds the learnwares' environments", infrastructure=True)
    return found


class _Deadline:
    """The end of one build: every command of the build gets what is left of `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self, what: str) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise self.expired(what)
        return remaining

    def expired(self, what: str) -> EnvironmentBuildError:
        return EnvironmentBuildError(f"building the environment took longer than {self.seconds:g} s (at: {what})", infrastructure=True)


def _run(command: list[str], deadline: _Deadline, stdin: str | None = None, sandbox: BuildSandbox | None = None) -> subprocess.CompletedProcess[str]:
    """Run `command` in its own process group (in `sandbox` if given), killed as a whole when the build's deadline passes."""
    what = " ".join(Path(part).name if i == 0 else part for i, part in enumerate(command[:3]))
    if sandbox is not None:
        with sandbox.wrap(command) as (argv, env):
            return _run_process(argv, env, deadline, what, stdin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CONDA"))}
    # PIP_ONLY_BINARY: a conda build installs its pip section with pip, which must not build sdists either.
    env.update({"UV_NO_PROGRESS": "1", "NO_COLOR": "1", "PIP_ONLY_BINARY": ":all:"})
    return _run_process(command, env, deadline, what, stdin)


def _run_process(command: list[str], env: dict[str, str], deadline: _Deadline, what: str, stdin: str | None) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=deadline.left(what))
    except BaseException as error:
        _kill_group(process)
        if isinstance(error, subprocess.TimeoutExpired):
            raise deadline.expired(what) from None
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr.strip() or result.stdout.strip())[-_TAIL_CHARS:]


def relax_pin(requirement: str) -> str | None:
    """`requirement` with its pin and upper bounds turned into a lower bound (`scikit-learn==0.22` ->
    `scikit-learn>=0.22`), or None when it has nothing to relax."""
    req = Requirement(requirement)
    kept: list[str] = []
    changed = False
    for spec in req.specifier:
        if spec.operator in ("==", "~=", "==="):
            try:
                floor = Version(spec.version.removesuffix(".*"))
            except InvalidVersion:
                return None
            kept.append(f">={floor}")
            changed = True
        elif spec.operator in ("<", "<="):
            changed = True
        else:
            kept.append(str(spec))
    if not changed:
        return None
    relaxed = Requirement(requirement)
    relaxed.specifier = type(req.specifier)(",".join(kept))
    return _normalise(relaxed)


@dataclass(frozen=True)
class _Probe:
    """What resolving one requirement alone (wheels only, no dependencies) says about it."""

    ok: bool
    message: str = ""

    @property
    def not_found(self) -> bool:
        return any(words in self.message for words in _NOT_FOUND)

    @property
    def no_wheel(self) -> bool:
        return any(words in self.message for words in _NO_WHEEL + _NO_PLATFORM)

    @property
    def wrong_platform(self) -> bool:
        return any(words in self.message for words in _NO_PLATFORM)


@dataclass(frozen=True)
class _Built:
    """What a build had to change: requirements it dropped, and notes for the report (relaxed pins)."""

    dropped: tuple[DroppedRequirement, ...] = ()
    notes: tuple[str, ...] = ()


def _python_tag() -> str:
    return f"Python {sys.version_info.major}.{sys.version_info.minor}"


class EnvironmentManager:
    """Builds and caches learnware environments (thread- and process-safe, builds never wait for each other)."""

    def __init__(self, config: EnvironmentConfig | None = None) -> None:
        self.config = config if config is not None else EnvironmentConfig.from_env()
        self._build_sandbox_config: SandboxConfig | None = None
        self._proxy: IndexProxy | None = None
        self._proxy_lock = threading.Lock()
        if self.config.allow_sdist and self.config.backend == "uv":
            sandbox = self.config.sandbox if self.config.sandbox is not None else SandboxConfig.from_env()
            if sandbox.isolation not in BUILD_ISOLATIONS:
                raise ValueError(
                    f"{ALLOW_SDIST_ENV}=1 builds source distributions inside the gvisor or bwrap sandbox, but the "
                    f"sandbox is {sandbox.isolation!r} (LWM_SANDBOX); use gvisor or bwrap, or unset {ALLOW_SDIST_ENV}"
                )
            # The CPU-time limit of a build is its deadline.
            self._build_sandbox_config = dataclasses.replace(sandbox, cpu_time_s=max(1, math.ceil(self.config.build_timeout_s)))

    def prepare(self, archive: LearnwareArchive) -> Environment:
        """The learnware's environment, built now or taken from the cache."""
        requirements = read_requirements(archive)
        if archive.env_file == "environment.yaml" and self.config.conda and self.config.backend == "uv":
            return self._conda_environment(archive.read("environment.yaml").decode("utf-8", errors="replace"), requirements)
        return self.prepare_requirements(requirements)

    def prepare_requirements(self, requirements: Requirements) -> Environment:
        if self.config.backend == "host":
            return Environment(
                python=self.config.python,
                requirements=requirements.packages,
                dropped=requirements.dropped,
                notes=(*requirements.notes, "host backend: requirements not installed; the service's interpreter runs the learnware"),
            )
        key = self.cache_key(requirements)
        notes = [*requirements.notes, *(f"override: {o}" for o in self.config.overrides if _overridden(o, requirements))]
        return self._cached(key, requirements, notes, lambda folder, deadline: self._build(folder, requirements, deadline))

    def cache_key(self, requirements: Requirements) -> str:
        """The cache key of a uv environment for `requirements`."""
        return self._key({"packages": list(requirements.packages), "overrides": list(self.config.overrides)})

    def _key(self, recipe: dict[str, Any]) -> str:
        full = {"format": ENV_FORMAT, "python": [self.config.python, sys.version], "find_links": list(self.config.find_links), **recipe}
        if self._build_sandbox_config is not None and "conda" not in recipe:
            full["sdist_from"] = self.config.index_url  # source builds allowed: another environment
        return hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:32]

    def _conda_environment(self, yaml_text: str, requirements: Requirements) -> Environment:
        data = yaml.safe_load(yaml_text)
        spec = {k: v for k, v in data.items() if k not in ("name", "prefix")}  # the cache decides where it lives
        key = self._key({"conda": self.config.conda, "spec": spec})
        return self._cached(key, requirements, [f"built by {self.config.conda}"], lambda folder, deadline: self._build_conda(folder, spec, deadline))

    def _cached(self, key: str, requirements: Requirements, notes: list[str], build: Callable[[Path, _Deadline], _Built]) -> Environment:
        """The environment under `key`, made by `build(folder, deadline)` unless cached.

        The build happens in a private folder renamed to `key` when complete, so that no build
        waits for another (a lock per key would make every upload with the same requirements
        wait for a stuck build).
        """
        cache = self.config.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        folder = cache / key
        if (folder / READY_FILE).is_file():
            return self._load(folder, cached=True)
        self._remove_abandoned_builds()
        private = Path(tempfile.mkdtemp(prefix=f"{_BUILDING_PREFIX}{key}-", dir=cache))
        private.chmod(0o755)  # mkdtemp makes it private to us; the sandbox uid must read the venv
        started = time.perf_counter()
        try:
            built = build(private, _Deadline(self.config.build_timeout_s))
            record = {
                "requirements": list(requirements.packages),
                "dropped": [[d.requirement, d.reason] for d in (*requirements.dropped, *built.dropped)],
                "notes": [*notes, *built.notes],
                "build_s": time.perf_counter() - started,
            }
            (private / READY_FILE).write_text(json.dumps(record, indent=2))
            try:
                private.rename(folder)
            except OSError:
                if not (folder / READY_FILE).is_file():
                    raise
                shutil.rmtree(private, ignore_errors=True)  # an identical build finished first
                return self._load(folder, cached=True)
        except BaseException:
            shutil.rmtree(private, ignore_errors=True)
            raise
        return self._load(folder, cached=False)

    def _remove_abandoned_builds(self) -> None:
        """Private build folders of processes that died mid-build (older than two build timeouts)."""
        too_old = time.time() - 2 * self.config.build_timeout_s
        for stale in self.config.cache_dir.glob(f"{_BUILDING_PREFIX}*"):
            try:
                if stale.stat().st_mtime < too_old:
                    shutil.rmtree(stale, ignore_errors=True)
            except FileNotFoundError:
                pass

    @staticmethod
    def _load(folder: Path, cached: bool) -> Environment:
        record = json.loads((folder / READY_FILE).read_text())
        return Environment(
            python=str(folder / "venv" / "bin" / "python"),
            requirements=tuple(record["requirements"]),
            dropped=tuple(DroppedRequirement(r, why) for r, why in record["dropped"]),
            notes=tuple(record["notes"]),
            build_s=0.0 if cached else float(record["build_s"]),
            cached=cached,
        )

    @contextlib.contextmanager
    def _sandbox(self, folder: Path, uv: str) -> Iterator[BuildSandbox | None]:
        """The sandbox the commands of a build into `folder` run in; None when only wheels are installed (on the host)."""
        if self._build_sandbox_config is None:
            yield None
            return
        # The base interpreter, not the service's venv: the sandbox sees no more of the service than it must.
        python = os.path.realpath(self.config.python)
        with build_sandbox(
            self._build_sandbox_config, folder=folder, python=python, uv=uv, find_links=self.config.find_links, proxy_socket=self._index_proxy().socket_path
        ) as sandbox:
            yield sandbox

    def _index_proxy(self) -> IndexProxy:
        """The proxy of this manager's sandboxed builds (started on first use; a thread of this process)."""
        with self._proxy_lock:
            if self._proxy is None:
                folder = Path(tempfile.mkdtemp(prefix="lwm_index_proxy_"))
                folder.chmod(0o755)  # the sandbox uid connects to the socket inside
                self._proxy = IndexProxy(folder / "proxy.sock", self.config.index_hosts()).start()
            return self._proxy

    def close(self) -> None:
        """Stop the index proxy of sandboxed builds, if one was started (a later build starts another)."""
        with self._proxy_lock:
            if self._proxy is not None:
                self._proxy.close()
                shutil.rmtree(self._proxy.socket_path.parent, ignore_errors=True)
                self._proxy = None

    def _build(self, folder: Path, requirements: Requirements, deadline: _Deadline) -> _Built:
        """Make the venv and install (from wheels only, unless source builds are allowed and so sandboxed);
        drops what cannot be installed here and relaxes old pins."""
        uv = uv_binary()
        venv = folder / "venv"
        with self._sandbox(folder, uv) as sandbox:
            where = "" if sandbox is None else f" (inside the {sandbox.config.isolation} sandbox; source builds allowed)"
            # Relocatable: the venv is renamed from its private build folder into the cache.
            base = self.config.python if sandbox is None else sandbox.python
            result = _run([uv, "venv", "--quiet", "--relocatable", "--python", base, str(venv)], deadline, sandbox=sandbox)
            if result.returncode != 0:
                raise EnvironmentBuildError(f"could not create the venv{where}: {_tail(result)}", infrastructure=True)
            made = InterpreterFiles.of(venv)  # before any package's code ran
            built = self._install_requirements(uv, venv, requirements, deadline, sandbox, where)
            if sandbox is not None and (changed := made.changes(venv)):
                raise EnvironmentBuildError(
                    f"a package's build changed the environment's interpreter files ({', '.join(changed)}); "
                    "the market runs that interpreter, so the environment is refused"
                )
            _compile_bytecode(venv, deadline, sandbox)
        return built

    def _install_requirements(
        self, uv: str, venv: Path, requirements: Requirements, deadline: _Deadline, sandbox: BuildSandbox | None, where: str
    ) -> _Built:
        folder = venv.parent
        python = str(venv / "bin" / "python")
        names = {canonicalize_name(Requirement(p).name) for p in requirements.packages}
        runner_packages = [r for r in RUNNER_REQUIREMENTS if canonicalize_name(r) not in names]
        result = self._install(uv, python, folder, [*requirements.packages, *runner_packages], deadline, sandbox)
        if result.returncode == 0:
            return _Built()
        _raise_if_network_error(result)
        dropped: list[DroppedRequirement] = []
        relaxed: dict[str, str] = {}
        for package in requirements.packages:
            probe = self._probe(uv, python, package, deadline, sandbox)
            if probe.ok:
                continue
            if probe.not_found:
                dropped.append(DroppedRequirement(package, "not found on the package index"))
            elif probe.no_wheel:
                loosened = relax_pin(package)
                if loosened is not None and self._probe(uv, python, loosened, deadline, sandbox).ok:
                    relaxed[package] = loosened
                elif probe.wrong_platform:
                    dropped.append(DroppedRequirement(package, f"no distribution for this platform ({sys.platform}, {_python_tag()})"))
                else:
                    dropped.append(DroppedRequirement(package, f"refused: no wheel for {_python_tag()} on {sys.platform} (nor in any later release); the market installs wheels only and never builds source distributions"))
        if not dropped and not relaxed:
            raise EnvironmentBuildError(f"installing the learnware's requirements failed{where}:\n{_tail(result)}")
        removed = {d.requirement for d in dropped}
        kept = [relaxed.get(p, p) for p in requirements.packages if p not in removed]
        result = self._install(uv, python, folder, [*kept, *runner_packages], deadline, sandbox)
        if result.returncode != 0:
            _raise_if_network_error(result)
            raise EnvironmentBuildError(f"installing the learnware's requirements failed{where}:\n{_tail(result)}")
        installed = self._installed_versions(uv, python, deadline, sandbox)
        notes = [
            f"warning: {old} has no wheel for {_python_tag()}; relaxed to {Requirement(new).name}=={installed.get(canonicalize_name(Requirement(new).name), '?')}"
            for old, new in relaxed.items()
        ]
        return _Built(dropped=tuple(dropped), notes=tuple(notes))

    def _build_conda(self, folder: Path, spec: dict[str, Any], deadline: _Deadline) -> _Built:
        """`conda env create` from the learnware's environment.yaml; numpy is added for the runner if missing.

        Conda environments are not relocatable: after the rename into the cache, the interpreter works (the
        runner only uses it), but console scripts inside keep the private folder's path.
        """
        assert self.config.conda is not None
        spec_file = folder / "environment.yaml"
        spec_file.write_text(yaml.safe_dump(spec))
        prefix = folder / "venv"
        result = _run([self.config.conda, "env", "create", "--quiet", "--prefix", str(prefix), "--file", str(spec_file)], deadline)
        if result.returncode != 0:
            _raise_if_network_error(result)
            raise EnvironmentBuildError(f"{Path(self.config.conda).name} could not create the environment:\n{_tail(result)}")
        python = prefix / "bin" / "python"
        if not python.exists():
            raise EnvironmentBuildError("the conda environment has no Python; add python to environment.yaml's dependencies")
        if _run([str(python), "-c", "import numpy"], deadline).returncode != 0:
            result = self._install(uv_binary(), str(python), folder, list(RUNNER_REQUIREMENTS), deadline, sandbox=None)
            if result.returncode != 0:
                raise EnvironmentBuildError(f"installing numpy (the runner needs it) failed:\n{_tail(result)}")
        return _Built()

    def _index_options(self, sandbox: BuildSandbox | None) -> list[str]:
        options = ["--only-binary", ":all:"] if sandbox is None else ["--index-url", self.config.index_url]
        for link in self.config.find_links:
            options += ["--find-links", link]
        return options

    def _install(
        self, uv: str, python: str, folder: Path, packages: list[str], deadline: _Deadline, sandbox: BuildSandbox | None
    ) -> subprocess.CompletedProcess[str]:
        (folder / "requirements.txt").write_text("\n".join(packages) + "\n")
        command = [uv, "pip", "install", "--python", python, "-r", str(folder / "requirements.txt"), *self._index_options(sandbox)]
        if self.config.overrides:
            (folder / "overrides.txt").write_text("\n".join(self.config.overrides) + "\n")
            command += ["--override", str(folder / "overrides.txt")]
        return _run(command, deadline, sandbox=sandbox)

    def _probe(self, uv: str, python: str, package: str, deadline: _Deadline, sandbox: BuildSandbox | None) -> _Probe:
        """Whether `package` alone can be installed here, by resolving it without dependencies."""
        command = [uv, "pip", "compile", "--no-deps", "--no-header", "--quiet", "--python", python, *self._index_options(sandbox), "-"]
        result = _run(command, deadline, stdin=package + "\n", sandbox=sandbox)
        if result.returncode != 0:
            _raise_if_network_error(result)
        return _Probe(ok=result.returncode == 0, message=_tail(result).lower())

    def _installed_versions(self, uv: str, python: str, deadline: _Deadline, sandbox: BuildSandbox | None) -> dict[str, str]:
        result = _run([uv, "pip", "freeze", "--python", python], deadline, sandbox=sandbox)
        versions: dict[str, str] = {}
        for line in result.stdout.splitlines():
            name, sep, version = line.partition("==")
            if sep:
                versions[canonicalize_name(name.strip())] = version.strip()
        return versions


def _compile_bytecode(venv: Path, deadline: _Deadline, sandbox: BuildSandbox | None) -> None:
    """Write the installed packages' .pyc files: the sandboxed runner starts with -B and cannot write them, so
    without them every start compiled numpy and scikit-learn again (~4 s of CPU). Compiling runs no package
    code, and -I -S keep the packages' .pth files from running; files that do not compile are left as they are.
    In a build sandbox (no shared memory for a process pool) one process compiles."""
    workers = "0" if sandbox is None else "1"
    _run([str(venv / "bin" / "python"), "-I", "-S", "-m", "compileall", "-q", "-j", workers, str(venv / "lib")], deadline, sandbox=sandbox)


def _raise_if_network_error(result: subprocess.CompletedProcess[str]) -> None:
    if any(words in _tail(result).lower() for words in _NETWORK):
        raise EnvironmentBuildError(f"the package index could not be reached:\n{_tail(result)}", infrastructure=True)


def _overridden(override: str, requirements: Requirements) -> bool:
    name = canonicalize_name(Requirement(override).name)
    return any(canonicalize_name(Requirement(p).name) == name for p in requirements.packages)


@functools.lru_cache(maxsize=1)
def default_environments() -> EnvironmentManager:
    """The process-wide EnvironmentManager configured by LWM_ENV_* variables."""
    return EnvironmentManager()
