"""The ConvNet NNGP kernel of the reference's image specification, batched.

The reference (learnware 0.4, ``RKMEImageSpecification``) compares image specs
with the neural-network Gaussian-process kernel of a random ConvNet: 3 blocks
of [3x3 conv (weight variance sqrt(2), bias variance 0.1), ReLU, 2x2 average
pool] and a final average over the remaining 4x4 map, computed with the
``cnn_gp`` package (Garriga-Alonso et al., ICLR 2019). It is the
infinite-width limit of the random convolutional features the reference fits
with, and it is deterministic, so specs made anywhere are comparable.

This module computes the same kernel for many pairs at once: every pair
carries three (H, W) maps (cross covariance xy and the variances xx, yy);
convolutions with the constant cnn_gp kernels are box sums, and the ReLU
step is the arc-cosine formula (with a gradient that stays finite where the
two inputs coincide, so Z can be fitted by gradient descent).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

# cnn_gp adds float32's smallest normal number before the ReLU's rsqrt.
_TINY = float(torch.finfo(torch.float32).tiny)
CONV_WEIGHT_VARIANCE = math.sqrt(2.0)
CONV_BIAS_VARIANCE = 0.1
DEFAULT_DEPTH = 3
# Upper bound on pair-map entries (pairs * H * W) held at once by convnet_nngp_kernel.
MAX_PAIR_ENTRIES = 16_000_000


class _ReLUCovariance(torch.autograd.Function):
    """Arc-cosine map of one ReLU layer: (xy, v = xx * yy) -> E[relu(u) relu(w)].

    Forward is cnn_gp's formula (sqrt(v - xy^2) + (pi - theta) xy) / 2 pi with
    theta = acos(xy / sqrt(v)). Backward uses the exact derivatives
    d/dxy = (pi - theta) / 2 pi and d/dv = sqrt(v - xy^2) / (4 pi v), which are
    finite at xy^2 = v where autograd through acos would give inf * 0.
    """

    @staticmethod
    def forward(ctx: Any, xy: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        cos = (xy * v.rsqrt()).clamp_(-1.0, 1.0)
        sin = (v - xy * xy).clamp_min_(0.0).sqrt_()
        theta = torch.acos(cos)
        ctx.save_for_backward(theta, sin, v)
        return (sin + (math.pi - theta) * xy) / (2.0 * math.pi)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta, sin, v = ctx.saved_tensors
        return grad * (math.pi - theta) / (2.0 * math.pi), grad * sin / (4.0 * math.pi * v)


def _conv3x3(maps: torch.Tensor) -> torch.Tensor:
    """cnn_gp Conv2d(kernel_size=3, padding="same"): a zero-padded 3x3 box sum, scaled, plus the bias variance."""
    p = F.pad(maps, (1, 1, 1, 1))
    rows = p[..., :-2, :] + p[..., 1:-1, :] + p[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    return box * (CONV_WEIGHT_VARIANCE / 9.0) + CONV_BIAS_VARIANCE


def _avg_pool2(maps: torch.Tensor) -> torch.Tensor:
    h, w = maps.shape[-2:]
    return maps.reshape(*maps.shape[:-2], h // 2, 2, w // 2, 2).mean(dim=(-3, -1))


def _kernel_block(a: torch.Tensor, b: torch.Tensor, depth: int) -> torch.Tensor:
    channels = a.shape[1]
    xx = (a * a).mean(1)  # (n, h, w)
    yy = (b * b).mean(1)  # (m, h, w)
    # Per-pixel channel mean of a_i * b_j, (n, m, h, w); images have few channels.
    xy = a[:, 0, None] * b[None, :, 0]
    for c in range(1, channels):
        xy = xy + a[:, c, None] * b[None, :, c]
    xy = xy / channels
    for _ in range(depth):
        xy, xx, yy = _conv3x3(xy), _conv3x3(xx), _conv3x3(yy)
        xy = _ReLUCovariance.apply(xy, xx[:, None] * yy[None, :] + _TINY)  # type: ignore[no-untyped-call]
        xx, yy = xx / 2.0, yy / 2.0
        xy, xx, yy = _avg_pool2(xy), _avg_pool2(xx), _avg_pool2(yy)
    return xy.mean(dim=(-2, -1))


def convnet_nngp_kernel(a: torch.Tensor, b: torch.Tensor, depth: int = DEFAULT_DEPTH) -> torch.Tensor:
    """NNGP kernel matrix (Na, Nb) between images a (Na, C, H, W) and b (Nb, C, H, W).

    H and W must be divisible by 2**depth (32 x 32 images in specs). Works in
    the dtype of the inputs and supports autograd; b is processed in chunks
    so that at most MAX_PAIR_ENTRIES pair-map entries exist at once.
    """
    if a.dim() != 4 or b.dim() != 4 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"expected image batches (N, C, H, W) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    h, w = a.shape[-2:]
    if h % 2**depth or w % 2**depth:
        raise ValueError(f"image size {h}x{w} is not divisible by 2**{depth}")
    step = max(1, MAX_PAIR_ENTRIES // max(1, a.shape[0] * h * w))
    blocks = [_kernel_block(a, b[s : s + step], depth) for s in range(0, b.shape[0], step)]
    return torch.cat(blocks, dim=1) if blocks else a.new_zeros(a.shape[0], 0)
