"""The host's processes as the sandbox tests see them (through /proc)."""

from __future__ import annotations

from pathlib import Path


def live_processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains `marker`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # it ended meanwhile
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids
