"""How a learnware's runner process is isolated: bubblewrap (the default), a Docker container, or nothing.

Under bubblewrap the runner sees the system directories (/usr, /etc, ...), its
Python installation, the runner script and the learnware folder read-only (at
their own paths), and one scratch folder read-write at /scratch; everything else
is absent or read-only. It has no network (a new,
empty network namespace), its own PID/IPC/UTS namespaces and no capabilities.
Resource limits (address space, CPU time, file size) are set on the process and
inherited by everything it starts.

When the service runs as root, bubblewrap runs in its privileged mode (no user
namespace, so files are checked against real owners) and the runner switches to
an unprivileged uid/gid before it imports anything else (see sandbox_root/lwm_runner.py):
learnware code never runs as root, and cannot read root-only files such as /etc/shadow.

The Docker backend (docker_sandbox.py) runs the same runner with the same
folders mounted in a container of `docker_image` (any image: the interpreter
and the environment come from the host's mounts), with no network, a read-only
root, memory, CPU and process limits, and the sandbox uid.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ISOLATIONS = ("bwrap", "docker", "none")
NOBODY = 65534
# Directories of the host the runner may read. Merged-/usr systems have symlinks for some.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
# Where the scratch folder appears inside the sandbox (its cwd, HOME and TMPDIR).
SCRATCH_IN_SANDBOX = "/scratch"
# Environment variables that tell the runner which uid/gid to switch to.
UID_ENV, GID_ENV = "LWM_SANDBOX_UID", "LWM_SANDBOX_GID"


class SandboxUnavailableError(OSError):
    """The configured sandbox cannot be used on this machine (e.g. bubblewrap is not installed)."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


@dataclass(frozen=True)
class SandboxConfig:
    """Isolation and limits of learnware processes.

    `isolation` is "bwrap" (bubblewrap; the default), "docker" (a container of
    `docker_image` on the engine of DOCKER_HOST) or "none" (a plain child
    process: no isolation, for development only). Limits apply per process:
    `memory_bytes` is its address-space limit, `cpu_time_s` its CPU-time limit,
    `file_size_bytes` the largest file it may write; `max_processes` bounds the
    processes of the sandbox uid (only set when a dedicated uid is used, i.e. as
    root, or in a container). A container also gets `memory_bytes` as its memory
    limit and `cpus` CPUs.
    """

    isolation: str = "bwrap"
    memory_bytes: int = 4 * 1024**3
    cpu_time_s: int = 900
    file_size_bytes: int = 1024**3
    max_processes: int = 1024
    uid: int = NOBODY
    gid: int = NOBODY
    docker_image: str = "lwm-runner:latest"
    cpus: float = 1.0

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"sandbox isolation must be one of {ISOLATIONS}, got {self.isolation!r}")

    @classmethod
    def from_env(cls) -> SandboxConfig:
        """From LWM_SANDBOX (bwrap|docker|none), LWM_SANDBOX_MEMORY_MB, LWM_SANDBOX_CPU_S, LWM_SANDBOX_DOCKER_IMAGE, LWM_SANDBOX_CPUS."""
        return cls(
            isolation=os.environ.get("LWM_SANDBOX", "bwrap") or "bwrap",
            memory_bytes=_env_int("LWM_SANDBOX_MEMORY_MB", cls.memory_bytes // 1024**2) * 1024**2,
            cpu_time_s=_env_int("LWM_SANDBOX_CPU_S", cls.cpu_time_s),
            docker_image=os.environ.get("LWM_SANDBOX_DOCKER_IMAGE") or cls.docker_image,
            cpus=float(os.environ.get("LWM_SANDBOX_CPUS") or cls.cpus),
        )

    @property
    def drops_to_uid(self) -> bool:
        """Whether the runner switches to `uid`/`gid` itself (bubblewrap run by root)."""
        return self.isolation == "bwrap" and os.geteuid() == 0

    def describe_signal(self, signal_name: str) -> str:
        """Why the kernel may have sent this signal to a sandboxed process."""
        if signal_name == "SIGXCPU":
            return f" (it used up its CPU-time limit of {self.cpu_time_s} s)"
        if signal_name == "SIGXFSZ":
            return f" (it wrote a file over the limit of {self.file_size_bytes} bytes)"
        return ""


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailableError(
            "bubblewrap (bwrap) is not installed, so learnware code cannot be sandboxed; "
            "install it (apt-get install bubblewrap) or set LWM_SANDBOX=none to run learnwares unisolated (unsafe)"
        )
    return path


@functools.lru_cache(maxsize=64)
def python_roots(python: str) -> tuple[str, ...]:
    """The folders an interpreter needs: its prefix (a venv) and its base installation."""
    out = subprocess.run(
        [python, "-I", "-S", "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    roots = {out}
    venv = Path(python).parent.parent
    if (venv / "pyvenv.cfg").is_file():
        roots.add(str(venv))
    return tuple(sorted(roots))


def _under_system_path(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in SYSTEM_PATHS)


def _mount(args: list[str], flag: str, source: str, dest: str) -> None:
    """Add a bind mount, creating the destination's parents world-traversable first."""
    parent = str(Path(dest).parent)
    if parent != "/":
        args += ["--perms", "0755", "--dir", parent]
    args += [flag, source, dest]


def bwrap_command(
    config: SandboxConfig,
    command: Sequence[str],
    *,
    read_only: Sequence[Path | str],
    scratch: Path,
) -> list[str]:
    """`command` wrapped in bubblewrap: `read_only` folders at their own paths, `scratch` read-write at /scratch."""
    args = [bwrap_path(), "--die-with-parent", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if config.drops_to_uid:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user"]
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--dev", "/dev", "--proc", "/proc"]
    seen: set[str] = set()
    for read_only_path in read_only:
        real = os.path.realpath(read_only_path)
        if real in seen or _under_system_path(real):
            continue
        seen.add(real)
        _mount(args, "--ro-bind", real, str(read_only_path))
    args += ["--bind", str(scratch), SCRATCH_IN_SANDBOX, "--remount-ro", "/", "--chdir", SCRATCH_IN_SANDBOX, "--", *command]
    return args


def resource_limits_command(config: SandboxConfig) -> list[str]:
    """A `prlimit` prefix that sets the sandbox's resource limits before the command execs.

    A wrapper command rather than a preexec function: services are gRPC processes, and
    Python code between fork and exec (preexec_fn runs the at-fork hooks) can deadlock
    in gRPC's fork handlers.
    """
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise OSError("prlimit (util-linux) is not installed: it sets the sandbox's resource limits")
    limits = [
        f"--as={config.memory_bytes}",
        # SIGXCPU at the soft limit says why; SIGKILL at the hard one if that is ignored.
        f"--cpu={config.cpu_time_s}:{config.cpu_time_s + 5}",
        f"--fsize={config.file_size_bytes}",
        "--core=0",
    ]
    if config.drops_to_uid:
        limits.append(f"--nproc={config.max_processes}")
    return [prlimit, *limits, "--"]


def prepare_scratch(config: SandboxConfig, scratch: Path) -> None:
    """Make the scratch folder writable by the sandbox uid when the runner runs as it."""
    if config.drops_to_uid or (config.isolation == "docker" and os.geteuid() == 0):
        os.chown(scratch, config.uid, config.gid)
    elif config.isolation == "docker":
        os.chmod(scratch, 0o777)  # the container's uid is not ours


def sandbox_env(config: SandboxConfig) -> dict[str, str]:
    """Variables the runner needs to apply the sandbox from inside."""
    if config.drops_to_uid:
        return {UID_ENV: str(config.uid), GID_ENV: str(config.gid)}
    return {}
