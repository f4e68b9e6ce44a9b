"""torchvision.transforms.Resize for tensors (N, C, H, W), as torchvision computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Resize:
    def __init__(self, size: tuple[int, int], antialias: bool = True) -> None:
        self.size = size
        self.antialias = antialias

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return F.interpolate(images, size=self.size, mode="bilinear", antialias=self.antialias, align_corners=False)
