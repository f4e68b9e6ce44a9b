"""Where specification math runs: CUDA when present, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None, cuda_idx: int | None = None) -> torch.device:
    """The torch device for a spec.

    ``device`` wins ("cpu", "cuda", "cuda:1", ...); else the reference's
    ``cuda_idx`` (-1 = CPU, i >= 0 = cuda:i); else CUDA when available.
    Asking for CUDA on a machine without it raises ValueError.
    """
    if device is None and cuda_idx is not None:
        device = "cpu" if int(cuda_idx) < 0 else f"cuda:{int(cuda_idx)}"
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(resolved)!r} requested but CUDA is not available on this machine")
    return resolved
