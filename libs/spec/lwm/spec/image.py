"""RKME image specification: a reduced kernel mean embedding of images.

Images (N, C, H, W) are resized to 32 x 32, standardised per channel and
ZCA-whitened (as the reference does); the spec is a reduced set Z of K
"images" in that space with weights beta, under the ConvNet NNGP kernel of
:mod:`lwm.spec.nngp` (the kernel the reference compares image specs with).

File format (JSON, the reference's ``RKMEImageSpecification``)::

    {"RKME_IMAGE_VERSION": 1, "msg": null, "z": [K x C x 32 x 32], "beta": [K],
     "n_models": 16, "model_config": {"k": 2, "mu": 0, "sigma": null,
     "net_width": 128, "net_depth": 3}, "type": "RKMEImageSpecification",
     "num_points": N}

``num_points`` is ours; the reference ignores keys it does not know.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lwm.learnware.vocabulary import IMAGE_SPEC_TYPE

from .device import resolve_device
from .kmeans import canonical_row_order, kmeans_plus_plus_indices
from .nngp import DEFAULT_DEPTH, convnet_nngp_kernel
from .qp import solve_simplex_qp

IMAGE_WIDTH = 32
RKME_IMAGE_VERSION = 1
# What the reference writes; only net_depth changes the kernel.
REFERENCE_MODEL_CONFIG: dict[str, Any] = {"k": 2, "mu": 0, "sigma": None, "net_width": 128, "net_depth": DEFAULT_DEPTH}
REFERENCE_N_MODELS = 16
ZCA_REGULARISATION = 0.1  # as the reference's _get_zca_matrix
# Data images per Z step: the data term of the gradient is estimated on a
# fresh random batch each step; beta and the kept/rejected decision always
# use every (sampled) image.
BATCH_SIZE = 256
# Pairs (z, x) per forward/backward chunk of the Z gradient (bounds memory).
GRADIENT_CHUNK_PAIRS = 4096
FIT_DTYPE = torch.float32  # fitting; distances between specs use float64


def images_to_tensor(X: Any, resize: bool = True) -> torch.Tensor:
    """Validate images (N, C, H, W) and return a float32 CPU tensor of (N, C, 32, 32).

    Accepts numpy arrays, torch tensors and nested lists. NaN/inf pixels are
    filled with the mean of their image's finite pixels (as the reference);
    an image with no finite pixel, fewer than two images or another rank
    raises ValueError. Other sizes are resized (bilinear, antialiased, as
    torchvision's Resize) unless ``resize=False``, which raises instead.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach().cpu().to(torch.float32)
    else:
        try:
            t = torch.from_numpy(np.array(X, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise ValueError(f"images must be numeric arrays: {err}") from None
    if t.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or min(t.shape[1:]) == 0:
        raise ValueError(f"need at least one non-empty image, got shape {tuple(t.shape)}")
    t = t.clone()
    bad = ~torch.isfinite(t)
    if bad.any():
        per_image_bad = bad.flatten(1)
        empty = torch.nonzero(per_image_bad.all(1)).flatten().tolist()
        if empty:
            raise ValueError(f"image(s) {empty} have no finite pixel (all NaN/inf)")
        t[bad] = 0.0
        finite_mean = t.flatten(1).sum(1) / (~per_image_bad).sum(1)
        t = torch.where(bad, finite_mean[:, None, None, None], t)
    if t.shape[2:] != (IMAGE_WIDTH, IMAGE_WIDTH):
        if not resize:
            raise ValueError(
                f"images must be {IMAGE_WIDTH}x{IMAGE_WIDTH}, got {t.shape[2]}x{t.shape[3]}; pass resize=True to resize them"
            )
        t = F.interpolate(t, size=(IMAGE_WIDTH, IMAGE_WIDTH), mode="bilinear", antialias=True, align_corners=False)
    return t


def standardise_and_whiten(X: torch.Tensor) -> torch.Tensor:
    """Per-channel standardisation, then ZCA whitening for C > 1 (the reference's preprocessing).

    Whitening multiplies the flattened images by (cov + r I)^(-1/2), with
    cov = X^T X / N and r = 0.1 * trace(cov) / D. For N < D the same result
    comes cheaper from the N x N Gram matrix: X (X^T X/N + r I)^(-1/2) =
    (X X^T/N + r I)^(-1/2) X. Computed in float64 with eigh.
    """
    mean = X.mean(dim=(0, 2, 3), keepdim=True)
    std = X.std(dim=(0, 2, 3), keepdim=True)
    X = (X - mean) / torch.where(std > 0, std, torch.ones_like(std))
    if X.shape[1] == 1:
        return X
    flat = X.reshape(X.shape[0], -1).to(torch.float64)
    n, d = flat.shape
    gram_side = n < d
    second_moment = (flat @ flat.T if gram_side else flat.T @ flat) / n
    reg = ZCA_REGULARISATION * torch.trace(second_moment) / d
    if not reg > 0:  # constant images: nothing to whiten
        return X
    eigvals, eigvecs = torch.linalg.eigh(second_moment)
    inv_sqrt = (eigvecs * (eigvals.clamp_min(0.0) + reg).rsqrt()) @ eigvecs.T
    whitened = inv_sqrt @ flat if gram_side else flat @ inv_sqrt
    result: torch.Tensor = whitened.to(X.dtype).reshape(X.shape)
    return result


class RKMEImageSpecification:
    """Reduced set (z, beta) of whitened 32 x 32 images under the ConvNet NNGP kernel."""

    type: str = IMAGE_SPEC_TYPE

    def __init__(self, device: str | torch.device | None = None, *, cuda_idx: int | None = None) -> None:
        """``cuda_idx`` is the reference's way to pick a device (-1 = CPU); ``device`` wins."""
        self.device = resolve_device(device, cuda_idx)
        self.num_points = 0
        self.net_depth = DEFAULT_DEPTH
        self.z: torch.Tensor | None = None  # (K, C, 32, 32)
        self.beta: torch.Tensor | None = None  # (K,)

    # ----- construction -------------------------------------------------
    def generate_stat_spec_from_data(
        self,
        X: Any,
        K: int = 50,
        step_size: float = 0.02,
        steps: int = 10,
        resize: bool = True,
        sample_size: int = 5000,
        nonnegative_beta: bool = True,
        reduce: bool = True,
        random_state: int = 0,
        verbose: bool = False,
    ) -> None:
        """Fit the reduced set to images X (N, C, H, W).

        Preprocessing as the reference (resize, standardise, ZCA); at most
        ``sample_size`` images (a seeded sample) are used after that. Z starts
        at K images picked by k-means++ seeding, beta solves the simplex QP;
        then ``steps`` Adam steps (learning rate ``step_size``) on Z against a
        random batch of images each, and a new beta. The fitted Z is kept only
        if it lowers the MMD to the images. K shrinks to 2N/3 for small N.
        """
        if int(K) < 1:
            raise ValueError(f"K must be >= 1, got {K}")
        images = images_to_tensor(X, resize=resize)
        images = images[torch.from_numpy(canonical_row_order(images.numpy()))]
        images = standardise_and_whiten(images.to(self.device))
        generator = torch.Generator().manual_seed(int(random_state))
        if images.shape[0] > sample_size:
            images = images[torch.randperm(images.shape[0], generator=generator)[:sample_size].to(self.device)]
        n = images.shape[0]
        self.num_points = n
        if not reduce or n == 1:
            self.z = images
            self.beta = torch.full((n,), 1.0 / n, dtype=torch.float64, device=self.device)
            return
        K = int(K) if int(K) < n else max(1, n * 2 // 3)

        fit = _ImageFit(images.to(FIT_DTYPE), nonnegative_beta, self.net_depth)
        start = images[kmeans_plus_plus_indices(images.flatten(1), K, generator).to(self.device)].to(FIT_DTYPE)
        beta, objective = fit.beta_and_objective(start)
        z = start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=float(step_size))
        for _ in tqdm(range(int(steps)), desc="RKME image spec", disable=not verbose):
            batch = images[torch.randint(n, (min(BATCH_SIZE, n),), generator=generator).to(self.device)]
            optimizer.zero_grad()
            fit.accumulate_gradient(z, beta, batch.to(FIT_DTYPE))
            optimizer.step()
        if int(steps) > 0:
            fitted = z.detach()
            fitted_beta, fitted_objective = fit.beta_and_objective(fitted)
            if fitted_objective < objective:
                start, beta = fitted, fitted_beta
        self.z, self.beta = start.detach(), beta

    # ----- accessors ----------------------------------------------------
    def _require_fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.z is None or self.beta is None:
            raise ValueError("specification is empty: call generate_stat_spec_from_data() or load() first")
        return self.z, self.beta

    def get_z(self) -> np.ndarray:
        """Reduced set images, a (K, C, 32, 32) float32 numpy copy."""
        return self._require_fitted()[0].detach().cpu().to(torch.float32).numpy().copy()

    def get_beta(self) -> np.ndarray:
        """Reduced set weights, a (K,) float64 numpy copy."""
        return self._require_fitted()[1].detach().cpu().to(torch.float64).numpy().copy()

    # ----- math ---------------------------------------------------------
    def _kernel_to(self, other: RKMEImageSpecification) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """beta_self, K(z_self, z_other), beta_other in float64 on self's device."""
        z1, b1 = self._require_fitted()
        z2, b2 = other._require_fitted()
        if z1.shape[1:] != z2.shape[1:]:
            raise ValueError(f"image shape mismatch: {tuple(z1.shape[1:])} vs {tuple(z2.shape[1:])}")
        if self.net_depth != other.net_depth:
            raise ValueError(f"kernel mismatch: net_depth {self.net_depth} vs {other.net_depth}")
        z1 = z1.to(self.device, torch.float64)
        z2 = z2.to(self.device, torch.float64)
        kernel = convnet_nngp_kernel(z1, z2, self.net_depth)
        return b1.to(self.device, torch.float64), kernel, b2.to(self.device, torch.float64)

    def inner_prod(self, other: RKMEImageSpecification) -> float:
        """<Phi_self, Phi_other> under the NNGP kernel."""
        b1, kernel, b2 = self._kernel_to(other)
        return float(b1 @ kernel @ b2)

    def dist(self, other: RKMEImageSpecification, omit_term1: bool = False) -> float:
        """Squared MMD ||Phi_self - Phi_other||^2; omit_term1 drops ||Phi_self||^2."""
        term1 = 0.0 if omit_term1 else self.inner_prod(self)
        return term1 - 2.0 * self.inner_prod(other) + other.inner_prod(other)

    def herding(self, T: int, random_state: int | None = None) -> np.ndarray:
        """T pseudo-images (T, C, 32, 32): z_i drawn with probability beta_i plus N(0, 0.01^2) noise, as the reference."""
        z, beta = self._require_fitted()
        if int(T) < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        gen = torch.Generator()
        if random_state is None:
            gen.seed()
        else:
            gen.manual_seed(int(random_state))
        weights = beta.detach().cpu().to(torch.float64).clamp_min(0.0)
        if float(weights.sum()) <= 0:
            raise ValueError("herding needs at least one positive weight in beta")
        pick = torch.multinomial(weights / weights.sum(), int(T), replacement=True, generator=gen)
        chosen = z.detach().cpu().to(torch.float32)[pick]
        return (chosen + 0.01 * torch.randn(chosen.shape, generator=gen)).numpy()

    # ----- serialisation -----------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The reference JSON object (its keys in its order), plus num_points."""
        z, beta = self._require_fitted()
        return {
            "RKME_IMAGE_VERSION": RKME_IMAGE_VERSION,
            "msg": None,
            "z": z.detach().cpu().to(torch.float32).numpy().tolist(),
            "beta": beta.detach().cpu().to(torch.float64).numpy().tolist(),
            "n_models": REFERENCE_N_MODELS,
            "model_config": {**REFERENCE_MODEL_CONFIG, "net_depth": self.net_depth},
            "type": IMAGE_SPEC_TYPE,
            "num_points": int(self.num_points),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], device: str | torch.device | None = None) -> RKMEImageSpecification:
        """Build from a reference-format dict."""
        if not isinstance(d, dict):
            raise ValueError(f"RKME image spec must be a JSON object, got {type(d).__name__}")
        if d.get("type") != IMAGE_SPEC_TYPE:
            raise ValueError(f"not an RKME image specification: type is {d.get('type')!r}")
        for key in ("z", "beta"):
            if key not in d:
                raise ValueError(f"RKME image spec is missing {key!r}")
        try:
            z = np.asarray(d["z"], dtype=np.float32)
            beta = np.asarray(d["beta"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"RKME image spec z/beta must be numeric arrays: {err}") from None
        if z.ndim != 4 or z.shape[0] == 0:
            raise ValueError(f"RKME image spec z must have shape (K, C, H, W), got {z.shape}")
        if beta.shape[0] != z.shape[0]:
            raise ValueError(f"RKME image spec has {z.shape[0]} images in z but {beta.shape[0]} weights in beta")
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(beta))):
            raise ValueError("RKME image spec z/beta contain NaN or inf")
        spec = cls(device=device)
        config = d.get("model_config") or {}
        spec.net_depth = int(config.get("net_depth", DEFAULT_DEPTH))
        h, w = z.shape[2:]
        if h % 2**spec.net_depth or w % 2**spec.net_depth:
            raise ValueError(f"RKME image spec z of {h}x{w} does not fit net_depth {spec.net_depth}")
        spec.z = torch.from_numpy(z).to(spec.device)
        spec.beta = torch.from_numpy(beta).to(spec.device)
        spec.num_points = int(d.get("num_points", 0))
        return spec

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the reference JSON file."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    def load(self, path: str | os.PathLike[str]) -> bool:
        """Read a reference JSON file into this object; returns True (reference API)."""
        with open(path, encoding="utf-8") as f:
            loaded = self.from_dict(json.load(f), device=self.device)
        self.z, self.beta = loaded.z, loaded.beta
        self.num_points, self.net_depth = loaded.num_points, loaded.net_depth
        return True

    def __repr__(self) -> str:
        k = "empty" if self.z is None else f"K={self.z.shape[0]}, image={tuple(self.z.shape[1:])}"
        return f"RKMEImageSpecification({k}, num_points={self.num_points})"


class _ImageFit:
    """The image RKME fitting problem: beta QP on all images, stochastic gradient for Z."""

    def __init__(self, images: torch.Tensor, nonnegative_beta: bool, depth: int) -> None:
        self.images = images
        self.nonnegative_beta = nonnegative_beta
        self.depth = depth

    def beta_and_objective(self, z: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Optimal beta for z and the squared MMD to the images minus its constant term."""
        with torch.no_grad():
            mean_k = convnet_nngp_kernel(z, self.images, self.depth).to(torch.float64).mean(1)
            k_zz = convnet_nngp_kernel(z.to(torch.float64), z.to(torch.float64), self.depth)
        if self.nonnegative_beta:
            beta = torch.from_numpy(solve_simplex_qp(k_zz.cpu().numpy(), mean_k.cpu().numpy())).to(z.device)
        else:
            eye = torch.eye(k_zz.shape[0], dtype=k_zz.dtype, device=k_zz.device)
            beta = torch.linalg.solve(k_zz + 1e-5 * eye, mean_k)
        return beta, float(beta @ k_zz @ beta - 2.0 * (mean_k @ beta))

    def accumulate_gradient(self, z: torch.Tensor, beta: torch.Tensor, batch: torch.Tensor) -> None:
        """Add d/dz [beta^T K(z, z) beta - 2 beta^T mean_x K(z, x)] over ``batch`` to z.grad, chunk by chunk."""
        b = beta.to(z.dtype)
        (b @ convnet_nngp_kernel(z, z, self.depth) @ b).backward()
        per_chunk = max(1, GRADIENT_CHUNK_PAIRS // z.shape[0])
        for s in range(0, batch.shape[0], per_chunk):
            chunk = batch[s : s + per_chunk]
            (-2.0 / batch.shape[0] * (b @ convnet_nngp_kernel(z, chunk, self.depth).sum(1))).backward()
