"""Environment builds that may run a package's own code (source builds), inside the learnware sandbox.

When the operator allows source distributions (LWM_ENV_ALLOW_SDIST=1), every
command of a uv build (uv venv, uv pip install/compile/freeze) runs inside the
sandbox of sandbox.py (gVisor, else bubblewrap) through sandbox_root/lwm_build.py:

- no network but the package index: the sandbox has none (runsc
  --network=none, a new network namespace under bubblewrap); the index proxy's
  unix socket (index_proxy.py, a thread of the service) is bound into it and
  lwm_build.py forwards a loopback port to it, which uv uses as its proxy;
- uv, the base interpreter, the sandbox scripts and local --find-links folders
  read-only; the build folder (the environment being built, renamed into the
  cache when complete) read-write at its own path; a private scratch folder
  (HOME, TMPDIR and the build's own uv cache: an untrusted build never writes
  the shared cache) read-write at /scratch;
- the sandbox's limits (address space, processes, file size; the CPU time is
  the build's deadline), a clean environment (no variable of the service), the
  sandbox uid (65534) where the backend switches uid.

After the build the folder is given back to the service's uid, without
set-uid bits. The host later runs the built interpreter (to find its folders,
with -I -S), so the files that decide what that interpreter loads must be the
ones uv made before any package code ran: see `InterpreterFiles`.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .sandbox import (
    SANDBOX_ROOT,
    SCRATCH_IN_SANDBOX,
    SandboxConfig,
    bwrap_command,
    gvisor_command,
    prepare_scratch,
    python_roots,
    resource_limits_command,
    runs_as_sandbox_uid,
    sandbox_env,
)

BUILD_SCRIPT = SANDBOX_ROOT / "lwm_build.py"
PROXY_SOCKET_ENV = "LWM_INDEX_PROXY_SOCKET"
BUILD_ISOLATIONS = ("gvisor", "bwrap")
# uv's settings inside the sandbox: its own cache in scratch, copies across the sandbox's mounts, no
# interpreter downloads, few parallel downloads and builds (each costs threads under the process limit), and
# the system's CA certificates (/etc is bound), which a site with a TLS-inspecting gateway has to use
# (UV_NATIVE_TLS is the older uv's name of UV_SYSTEM_CERTS).
_UV_ENV = {
    "UV_SYSTEM_CERTS": "1",
    "UV_NATIVE_TLS": "1",
    "UV_CACHE_DIR": f"{SCRATCH_IN_SANDBOX}/uv-cache",
    "UV_LINK_MODE": "copy",
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_CONCURRENT_DOWNLOADS": "4",
    "UV_CONCURRENT_BUILDS": "1",
    "UV_CONCURRENT_INSTALLS": "2",
    "UV_NO_PROGRESS": "1",
    "NO_COLOR": "1",
}


class BuildSandbox:
    """The sandbox of one environment build; `wrap` turns a command into its sandboxed form."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        folder: Path,
        scratch: Path,
        python: str,
        uv: str,
        find_links: Sequence[str],
        proxy_socket: Path | None,
    ) -> None:
        if config.isolation not in BUILD_ISOLATIONS:
            raise ValueError(f"source builds run in the gvisor or bwrap sandbox, not {config.isolation!r}")
        self.config = config
        self.folder = folder
        self.scratch = scratch
        self.python = python
        self.proxy_socket = proxy_socket
        local_links = [link for link in find_links if "://" not in link and os.path.isdir(link)]
        proxy_folder = [str(proxy_socket.parent)] if proxy_socket is not None else []
        self.read_only: list[Path | str] = [*python_roots(python), uv, SANDBOX_ROOT, *local_links, *proxy_folder]

    def env(self) -> dict[str, str]:
        """The whole environment of a sandboxed command: nothing of the service's own."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": SCRATCH_IN_SANDBOX, "TMPDIR": SCRATCH_IN_SANDBOX, **_UV_ENV}
        env.update(sandbox_env(self.config))
        if self.proxy_socket is not None:
            env[PROXY_SOCKET_ENV] = str(self.proxy_socket)
        return env

    @contextmanager
    def wrap(self, command: Sequence[str]) -> Iterator[tuple[list[str], dict[str, str]]]:
        """(argv, env) that run `command` in this sandbox; valid inside the `with` block only."""
        inner = [self.python, "-I", "-S", "-B", str(BUILD_SCRIPT), *command]
        limits = resource_limits_command(self.config)
        if self.config.isolation == "bwrap":
            argv = bwrap_command(self.config, inner, read_only=self.read_only, scratch=self.scratch, writable=[self.folder])
            yield [*limits, *argv], self.env()
            return
        bundle = Path(tempfile.mkdtemp(prefix="lwm_gvisor_build_"))
        try:
            argv = gvisor_command(
                self.config, inner, read_only=self.read_only, scratch=self.scratch, env=self.env(),
                bundle=bundle, container_id=f"lwm-build-{uuid.uuid4().hex}", writable=[self.folder],
                host_unix_sockets=self.proxy_socket is not None,
            )
            # runsc itself gets only PATH: the sandboxed process's environment is in the bundle.
            yield [*limits, *argv], {"PATH": os.environ.get("PATH", os.defpath)}
        finally:
            shutil.rmtree(bundle, ignore_errors=True)


@contextmanager
def build_sandbox(
    config: SandboxConfig, *, folder: Path, python: str, uv: str, find_links: Sequence[str], proxy_socket: Path | None
) -> Iterator[BuildSandbox]:
    """A BuildSandbox for building into `folder`, with a private scratch folder beside it (removed afterwards).

    `python` is the base interpreter the environment is made from. When the sandbox runs as its own uid,
    `folder` belongs to that uid during the build and to the service's uid again afterwards.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f"{folder.name}-scratch-", dir=folder.parent))
    try:
        for path in (folder, scratch):
            prepare_scratch(config, path)
        yield BuildSandbox(config, folder=folder, scratch=scratch, python=python, uv=uv, find_links=find_links, proxy_socket=proxy_socket)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if runs_as_sandbox_uid(config):
            reclaim(folder)


def reclaim(folder: Path) -> None:
    """Give `folder` and everything in it to this process's uid/gid, without set-uid/set-gid bits.

    Runs when the build's sandbox is gone; symlinks are not followed.
    """
    uid, gid = os.geteuid(), os.getegid()
    for root, dirs, files in os.walk(folder):
        for name in (root, *(os.path.join(root, entry) for entry in (*dirs, *files))):
            info = os.lstat(name)
            os.lchown(name, uid, gid)
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(name, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


@dataclass(frozen=True)
class InterpreterFiles:
    """What decides the code a venv's interpreter runs at start-up with -I -S: pyvenv.cfg (its `home`, hence
    its standard library), the interpreter links in bin/, and files such as python._pth or pybuilddir.txt
    beside them. Taken after `uv venv` (before any package code ran) and compared after the build."""

    files: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, venv: Path) -> InterpreterFiles:
        found = [("pyvenv.cfg", (venv / "pyvenv.cfg").read_text(errors="replace")), ("bin", _kind(venv / "bin"))]
        for entry in sorted((venv / "bin").iterdir()):
            if entry.name.startswith("python") or entry.name.endswith(("._pth", "pybuilddir.txt")):
                found.append((entry.name, _kind(entry)))
        for entry in sorted(venv.iterdir()):
            if entry.name.endswith(("._pth", "pybuilddir.txt")):
                found.append((entry.name, "file"))
        return cls(tuple(found))

    def changes(self, venv: Path) -> list[str]:
        """The names whose content differs now (added, removed or changed)."""
        before, after = dict(self.files), dict(InterpreterFiles.of(venv).files)
        return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def _kind(path: Path) -> str:
    return "-> " + os.readlink(path) if path.is_symlink() else "folder" if path.is_dir() else "file"
