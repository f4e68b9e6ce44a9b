"""How a learnware's runner process is isolated: gVisor, bubblewrap, a Docker container, or nothing.

The default is gVisor (`runsc`) where it is installed and works (probed once),
else bubblewrap. Under gVisor the runner is a process of a user-space kernel
(the sentry): its system calls never reach the host kernel directly. The
sandbox's root is an empty read-only folder; the system directories, the
Python installation, the runner script and the learnware folder are bound
read-only at their own paths, the scratch folder read-write at /scratch (/tmp
is empty and read-only); there is no network (`--network=none`: loopback only) and the process
runs as the sandbox uid with no capabilities. Limits are OCI rlimits enforced
by the sentry (address space, file size, processes+threads); the CPU-time limit
is an rlimit of the sentry itself (this gVisor does not enforce RLIMIT_CPU), so
it bounds all the learnware's processes together. gVisor's cgroup support
would put the sentry's own threads under the pids limit, so it is not used.

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
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lwm.learnware.settings import env_float, env_int

ISOLATIONS = ("gvisor", "bwrap", "docker", "none")
# The scripts that run inside sandboxes (the model runner, the build launcher), standard library only.
SANDBOX_ROOT = Path(__file__).resolve().parent / "sandbox_root"
# LWM_SANDBOX=auto (or unset): gVisor where it works here, else bubblewrap.
AUTO = "auto"
NOBODY = 65534
# Directories of the host the runner may read. Merged-/usr systems have symlinks for some.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
# Where the scratch folder appears inside the sandbox (its cwd, HOME and TMPDIR).
SCRATCH_IN_SANDBOX = "/scratch"
# Environment variables that tell the runner which uid/gid to switch to.
UID_ENV, GID_ENV = "LWM_SANDBOX_UID", "LWM_SANDBOX_GID"
# Tells the runner the process limit to set on itself (backends without their own).
MAX_PROCESSES_ENV = "LWM_SANDBOX_MAX_PROCESSES"


class SandboxUnavailableError(OSError):
    """The configured sandbox cannot be used on this machine (e.g. bubblewrap is not installed)."""


@dataclass(frozen=True)
class SandboxConfig:
    """Isolation and limits of learnware processes.

    `isolation` is "gvisor" (runsc), "bwrap" (bubblewrap), "docker" (a
    container of `docker_image` on the engine of DOCKER_HOST), "none" (a plain
    child process: no isolation, for development only) or "auto" (the default:
    gvisor where runsc works here, else bwrap). Limits apply per process:
    `memory_bytes` is its address-space limit, `cpu_time_s` its CPU-time limit,
    `file_size_bytes` the largest file it may write; `max_processes` bounds the
    processes and threads the learnware may run (RLIMIT_NPROC inside gVisor and
    bubblewrap, the pids limit of a container; under bubblewrap run as root it
    counts all processes of the sandbox uid on the host, so concurrent sandboxes
    share it; "none" sets no limit). A container also gets
    `memory_bytes` as its memory limit and `cpus` CPUs.
    """

    isolation: str = AUTO
    memory_bytes: int = 4 * 1024**3
    cpu_time_s: int = 900
    file_size_bytes: int = 1024**3
    max_processes: int = 64
    uid: int = NOBODY
    gid: int = NOBODY
    docker_image: str = "lwm-runner:latest"
    cpus: float = 1.0

    def __post_init__(self) -> None:
        if self.isolation == AUTO:
            object.__setattr__(self, "isolation", default_isolation())
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"sandbox isolation must be one of {(*ISOLATIONS, AUTO)}, got {self.isolation!r}")
        if self.max_processes < 1:
            raise ValueError(f"sandbox max_processes must be at least 1, got {self.max_processes}")

    @classmethod
    def from_env(cls) -> SandboxConfig:
        """From LWM_SANDBOX (auto|gvisor|bwrap|docker|none), LWM_SANDBOX_MEMORY_MB, LWM_SANDBOX_CPU_S,
        LWM_SANDBOX_MAX_PROCESSES, LWM_SANDBOX_DOCKER_IMAGE, LWM_SANDBOX_CPUS."""
        return cls(
            isolation=os.environ.get("LWM_SANDBOX") or AUTO,
            memory_bytes=env_int("LWM_SANDBOX_MEMORY_MB", cls.memory_bytes // 1024**2, minimum=1) * 1024**2,
            cpu_time_s=env_int("LWM_SANDBOX_CPU_S", cls.cpu_time_s, minimum=1),
            max_processes=env_int(MAX_PROCESSES_ENV, cls.max_processes, minimum=1),
            docker_image=os.environ.get("LWM_SANDBOX_DOCKER_IMAGE") or cls.docker_image,
            cpus=env_float("LWM_SANDBOX_CPUS", cls.cpus, minimum=0.01),
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

    def describe_error(self, error_type: str | None, message: str) -> str:
        """Why a learnware's error may come from a sandbox limit (appended to the error message)."""
        if error_type == "BlockingIOError" or "can't start new thread" in message:
            return (
                f" (the sandbox allows at most {self.max_processes} processes and threads per learnware; "
                f"see {MAX_PROCESSES_ENV})"
            )
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
    writable: Sequence[Path] = (),
) -> list[str]:
    """`command` wrapped in bubblewrap: `read_only` paths at their own paths, `scratch` read-write at /scratch,
    `writable` folders read-write at their own paths."""
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
    for writable_path in writable:
        _mount(args, "--bind", os.path.realpath(writable_path), str(writable_path))
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
    # SIGXCPU at the soft limit says why; SIGKILL at the hard one if that is ignored.
    cpu = f"--cpu={config.cpu_time_s}:{config.cpu_time_s + 5}"
    if config.isolation == "gvisor":
        # The other limits are rlimits in the sandbox's OCI spec (on runsc they would stop the sentry), but
        # gVisor does not enforce RLIMIT_CPU: the CPU-time limit is on the sentry, so on all processes together.
        return [prlimit, cpu, "--core=0", "--"]
    limits = [f"--as={config.memory_bytes}", cpu, f"--fsize={config.file_size_bytes}", "--core=0"]
    return [prlimit, *limits, "--"]


def runs_as_sandbox_uid(config: SandboxConfig) -> bool:
    """Whether sandboxed processes run as `config.uid` rather than as the service's own uid."""
    return config.drops_to_uid or (config.isolation in ("docker", "gvisor") and os.geteuid() == 0)


def prepare_scratch(config: SandboxConfig, scratch: Path) -> None:
    """Make the scratch folder writable by the sandbox uid when the runner runs as it."""
    if runs_as_sandbox_uid(config):
        os.chown(scratch, config.uid, config.gid)
    elif config.isolation == "docker":
        os.chmod(scratch, 0o777)  # the container's uid is not ours


def sandbox_env(config: SandboxConfig) -> dict[str, str]:
    """Variables the runner needs to apply the sandbox from inside."""
    env = {MAX_PROCESSES_ENV: str(config.max_processes)} if config.isolation == "bwrap" else {}
    if config.drops_to_uid:
        env.update({UID_ENV: str(config.uid), GID_ENV: str(config.gid)})
    return env


def runsc_path() -> str:
    path = shutil.which("runsc")
    if path is None:
        raise SandboxUnavailableError(
            "gVisor (runsc) is not installed; install it (apt-get install runsc) or set LWM_SANDBOX=bwrap"
        )
    return path


def _oci_bind(source: str, dest: str, writable: bool) -> dict[str, object]:
    return {"destination": dest, "type": "bind", "source": source, "options": ["rbind", "rw" if writable else "ro"]}


def gvisor_command(
    config: SandboxConfig,
    command: Sequence[str],
    *,
    read_only: Sequence[Path | str],
    scratch: Path,
    env: Mapping[str, str],
    bundle: Path,
    container_id: str,
    writable: Sequence[Path] = (),
    host_unix_sockets: bool = False,
) -> list[str]:
    """`command` run by `runsc run` as `container_id`, from an OCI bundle written to `bundle`.

    `writable` folders are bound read-write at their own paths. `host_unix_sockets`: the sandbox may
    connect to unix sockets of the host that are bound into it (and to no other host socket).

    `bundle` is a private folder (not `scratch`); it also holds runsc's state, so removing it after
    the sandbox ended cleans up everything. runsc starts the sandbox attached: when `runsc run` dies
    (its process group is killed), the sandbox and its host processes (ptrace stubs, one per
    sandboxed process) die of the parent-death signal, within a second or two.
    """
    runsc = runsc_path()
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    # /tmp is read-only (the rootfs's own empty folder): gVisor would otherwise add a tmpfs, held in memory
    # outside every limit. Temporary files go to the scratch folder (TMPDIR).
    mounts: list[dict[str, object]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        _oci_bind(str(rootfs / "tmp"), "/tmp", writable=False),
    ]
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), rootfs / path.lstrip("/"))
        elif os.path.isdir(path):
            mounts.append(_oci_bind(path, path, writable=False))
    seen: set[str] = set()
    for read_only_path in sorted(str(p) for p in read_only):
        real = os.path.realpath(read_only_path)
        if real in seen or _under_system_path(real):
            continue
        seen.add(real)
        mounts.append(_oci_bind(real, read_only_path, writable=False))
    mounts += [_oci_bind(os.path.realpath(path), str(path), writable=True) for path in writable]
    mounts.append(_oci_bind(str(scratch), SCRATCH_IN_SANDBOX, writable=True))
    for mount in mounts:
        mountpoint = rootfs / str(mount["destination"]).lstrip("/")
        if mount["type"] == "bind" and os.path.isfile(str(mount["source"])):
            mountpoint.parent.mkdir(parents=True, exist_ok=True)
            mountpoint.touch()
        else:
            mountpoint.mkdir(parents=True, exist_ok=True)
    rlimits = [
        ("RLIMIT_AS", config.memory_bytes, config.memory_bytes),
        # SIGXCPU at the soft limit says why; SIGKILL at the hard one if that is ignored.
        ("RLIMIT_CPU", config.cpu_time_s, config.cpu_time_s + 5),
        ("RLIMIT_FSIZE", config.file_size_bytes, config.file_size_bytes),
        ("RLIMIT_NPROC", config.max_processes, config.max_processes),
        ("RLIMIT_CORE", 0, 0),
    ]
    no_caps: list[str] = []
    spec = {
        "ociVersion": "1.0.0",
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "process": {
            "terminal": False,
            "user": {"uid": config.uid, "gid": config.gid},
            "args": list(command),
            "env": [f"{name}={value}" for name, value in env.items()],
            "cwd": SCRATCH_IN_SANDBOX,
            "rlimits": [{"type": kind, "soft": soft, "hard": hard} for kind, soft, hard in rlimits],
            "capabilities": {kind: no_caps for kind in ("bounding", "effective", "permitted", "inheritable", "ambient")},
            "noNewPrivileges": True,
        },
        "mounts": mounts,
        "linux": {"namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount", "network")]},
    }
    (bundle / "config.json").write_text(json.dumps(spec))
    (bundle / "state").mkdir()
    host_uds = ["--host-uds=open"] if host_unix_sockets else []
    return [runsc, f"--root={bundle / 'state'}", "--network=none", *host_uds, "run", f"--bundle={bundle}", container_id]


@functools.lru_cache(maxsize=1)
def gvisor_works() -> bool:
    """Whether runsc is installed and can start a sandbox here (probed once per process)."""
    if shutil.which("runsc") is None:
        return False
    with tempfile.TemporaryDirectory(prefix="lwm_gvisor_probe_") as tmp:
        scratch, bundle = Path(tmp) / "scratch", Path(tmp) / "bundle"
        scratch.mkdir()
        bundle.mkdir()
        probe = SandboxConfig(isolation="gvisor", uid=os.geteuid(), gid=os.getegid())
        # runsc names its control socket after the container id, host-wide: two processes probing
        # at once with one id made one of them conclude that gVisor does not work.
        command = gvisor_command(probe, ["/bin/true"], read_only=[], scratch=scratch, env={}, bundle=bundle, container_id=f"lwm-probe-{uuid.uuid4().hex}")
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0


def default_isolation() -> str:
    """gVisor where runsc works here, else bubblewrap."""
    return "gvisor" if gvisor_works() else "bwrap"
