"""Where specification math runs: CUDA when present, else the CPU."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = None, cuda_idx: int | None = None) -> torch.device:
    """The torch device for a spec.

    ``device`` wins ("cpu", "cuda", "cuda:1", ...); asking for CUDA that this machine lacks
    raises ValueError. Else the reference's ``cuda_idx`` (-1 = CPU, i >= 0 = cuda:i): as in
    the reference, an index this machine has no GPU for falls back to the CPU, with a
    warning. Neither given: CUDA when available.
    """
    if device is None and cuda_idx is not None:
        index = int(cuda_idx)
        if index < 0:
            return torch.device("cpu")
        if index >= torch.cuda.device_count():
            log.warning("cuda_idx=%d asked for, but this machine has %d CUDA devices: using the CPU", index, torch.cuda.device_count())
            return torch.device("cpu")
        return torch.device(f"cuda:{index}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(resolved)!r} requested but CUDA is not available on this machine")
    return resolved
