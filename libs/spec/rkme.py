"""RKME table specification: a reduced kernel mean embedding of tabular data.

File format (JSON, same as the reference ``learnware`` package)::

    {"z": [[...], ...], "beta": [...], "gamma": 0.1, "num_points": 200,
     "type": "RKMETableSpecification"}

Older files may say ``"type": "RKMEStatSpecification"`` or have no "type".
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from .kernels import MAX_KERNEL_ENTRIES, rbf_kernel, rkhs_inner_product, squared_mmd
from .qp import solve_simplex_qp

TABLE_SPEC_TYPE = "RKMETableSpecification"
# Old class name of the same specification, still found in stored learnwares.
LEGACY_TABLE_SPEC_TYPE = "RKMEStatSpecification"
TABLE_SPEC_TYPES = (TABLE_SPEC_TYPE, LEGACY_TABLE_SPEC_TYPE)

# Same cap as the reference's C.max_reduced_set_size: K * d may not exceed it.
MAX_REDUCED_SET_SIZE = 1_310_720
# k-means for the initial Z runs on at most this many rows (seeded subsample);
# the QP and the gradient steps always use all rows.
KMEANS_MAX_SAMPLES = 50_000
KMEANS_MAX_ITER = 20  # more Lloyd rounds do not lower the final MMD (measured)

DTYPE = torch.float64


def default_device() -> str:
    """CUDA when present, else CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def table_to_numpy(X: Any) -> np.ndarray:
    """Validate tabular input and return a float64 copy of shape (n, d).

    Accepts numpy arrays, pandas DataFrames, torch tensors and nested lists.
    +-inf counts as missing. Missing values are filled with their column's
    mean (as the reference does); a column with no finite value, empty data,
    or input that is not 2-D raises ValueError.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    elif hasattr(X, "to_numpy") and hasattr(X, "columns"):  # pandas DataFrame
        try:
            X = X.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"all DataFrame columns must be numeric: {err}") from None
    try:
        arr = np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"X must be numeric tabular data: {err}") from None
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X must have at least one row and one column, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        all_bad = np.nonzero(bad.all(axis=0))[0]
        if all_bad.size:
            raise ValueError(
                f"column(s) {all_bad.tolist()} of X have no finite value (all NaN/inf); drop or fill them"
            )
        arr[bad] = np.nan
        col_mean = np.nanmean(arr, axis=0)
        rows, cols = np.nonzero(bad)
        arr[rows, cols] = col_mean[cols]
    return arr


def _canonical_order(X: np.ndarray) -> np.ndarray:
    """Row order that does not depend on the input order (sort by a fixed projection).

    Sorting first makes the spec independent of how the rows were shuffled.
    """
    w = np.random.default_rng(12345).standard_normal(X.shape[1])
    return np.argsort(X @ w, kind="stable")


def _kmeans(X: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; returns (k, d) centroids in X's dtype.

    Runs in float32 (as the reference's k-means does): it only seeds Z.
    ``generator`` is a CPU generator; sampling happens on the CPU so that the
    result for a given seed does not depend on the device.
    """
    Xf = X.to(torch.float32)
    n = Xf.shape[0]
    x_sq = (Xf * Xf).sum(1)
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [first]
    closest = ((Xf - Xf[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = closest.sum()
        if total > 0:
            idx = int(torch.multinomial((closest / total).cpu(), 1, generator=generator))
        else:  # fewer distinct points than k: duplicates are fine
            idx = int(torch.randint(n, (1,), generator=generator))
        centers.append(idx)
        closest = torch.minimum(closest, ((Xf - Xf[idx]) ** 2).sum(1))
    C = Xf[centers].clone()
    assign = None
    for _ in range(KMEANS_MAX_ITER):
        new_assign = (x_sq[:, None] - 2.0 * (Xf @ C.T) + (C * C).sum(1)[None, :]).argmin(1)
        if assign is not None and torch.equal(new_assign, assign):
            break
        assign = new_assign
        counts = torch.bincount(assign, minlength=k).to(Xf.dtype)
        sums = torch.zeros_like(C).index_add_(0, assign, Xf)
        nonempty = counts > 0
        C[nonempty] = sums[nonempty] / counts[nonempty, None]  # empty clusters keep their centre
    return C.to(X.dtype)


class RKMETableSpecification:
    """Reduced set (z, beta) with sum_i beta_i k(z_i, .) ~ the kernel mean embedding of X."""

    type: str = TABLE_SPEC_TYPE

    def __init__(self, gamma: float = 0.1, device: str | None = None, *, cuda_idx: int | None = None) -> None:
        """``cuda_idx`` is the reference's way to pick a device (-1 = CPU); ``device`` wins."""
        if device is None and cuda_idx is not None:
            device = "cpu" if int(cuda_idx) < 0 else f"cuda:{int(cuda_idx)}"
        self.gamma = float(gamma)
        self.num_points = 0
        self.device = torch.device(device or default_device())
        self.z: torch.Tensor | None = None
        self.beta: torch.Tensor | None = None

    # ----- construction -------------------------------------------------
    def generate_stat_spec_from_data(
        self,
        X: Any,
        K: int = 100,
        step_size: float = 0.1,
        steps: int = 3,
        nonnegative_beta: bool = True,
        reduce: bool = True,
        random_state: int = 0,
    ) -> None:
        """Fit the reduced set to X (n, d).

        K shrinks to max(1, 2n/3) when K >= n, and so that K * d stays within
        MAX_REDUCED_SET_SIZE (both as the reference). Z starts at k-means
        centres, beta solves the non-negative QP (sum(beta) = 1), then
        ``steps`` rounds of one gradient step on Z and a new beta. The best
        (Z, beta) seen, by MMD to X, is kept. With ``reduce=False``, Z = X and
        beta = 1/n.
        """
        if int(K) < 1:
            raise ValueError(f"K must be >= 1, got {K}")
        arr = table_to_numpy(X)
        n, d = arr.shape
        self.num_points = n
        K = int(K)
        if K * d > MAX_REDUCED_SET_SIZE:
            K = max(20, MAX_REDUCED_SET_SIZE // d)
        if K >= n:
            K = max(1, n * 2 // 3)

        arr = arr[_canonical_order(arr)]
        Xt = torch.from_numpy(arr).to(self.device, DTYPE)
        if not reduce:
            self.z = Xt
            self.beta = torch.full((n,), 1.0 / n, dtype=DTYPE, device=self.device)
            return

        generator = torch.Generator().manual_seed(int(random_state))
        sample = Xt
        if n > KMEANS_MAX_SAMPLES:
            idx = torch.randperm(n, generator=generator)[:KMEANS_MAX_SAMPLES].to(self.device)
            sample = Xt[idx]
        Z = _kmeans(sample, K, generator)

        k_sum, k_x = self._data_terms(Z, Xt)
        beta = self._solve_beta(Z, k_sum / n, nonnegative_beta)
        best = (self._objective(Z, beta, k_sum / n), Z, beta)
        for _ in range(int(steps)):
            Z = self._gradient_step(Z, beta, k_sum, k_x, n, step_size)
            k_sum, k_x = self._data_terms(Z, Xt)
            beta = self._solve_beta(Z, k_sum / n, nonnegative_beta)
            obj = self._objective(Z, beta, k_sum / n)
            if obj < best[0]:
                best = (obj, Z, beta)
        _, self.z, self.beta = best

    def _data_terms(self, Z: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sum_x k(z_i, x) (K,) and sum_x k(z_i, x) x (K, d), chunked over X."""
        k_sum = torch.zeros(Z.shape[0], dtype=DTYPE, device=self.device)
        k_x = torch.zeros_like(Z)
        step = max(1, MAX_KERNEL_ENTRIES // Z.shape[0])
        for s in range(0, X.shape[0], step):
            xc = X[s : s + step]
            kzx = rbf_kernel(Z, xc, self.gamma)
            k_sum += kzx.sum(1)
            k_x += kzx @ xc
        return k_sum, k_x

    def _solve_beta(self, Z: torch.Tensor, c: torch.Tensor, nonnegative: bool) -> torch.Tensor:
        kzz = rbf_kernel(Z, Z, self.gamma)
        if nonnegative:
            b = solve_simplex_qp(kzz.cpu().numpy(), c.cpu().numpy())
            return torch.from_numpy(b).to(self.device, DTYPE)
        # Unconstrained closed form, as the reference (no sum-to-one constraint).
        eye = torch.eye(Z.shape[0], dtype=DTYPE, device=self.device)
        return torch.linalg.solve(kzz + 1e-5 * eye, c)

    def _objective(self, Z: torch.Tensor, beta: torch.Tensor, c: torch.Tensor) -> float:
        """Squared MMD to the data minus the constant mean k(x, x')."""
        return float(beta @ rbf_kernel(Z, Z, self.gamma) @ beta - 2.0 * (c @ beta))

    def _gradient_step(
        self,
        Z: torch.Tensor,
        beta: torch.Tensor,
        k_sum: torch.Tensor,
        k_x: torch.Tensor,
        n: int,
        step_size: float,
    ) -> torch.Tensor:
        """One descent step on Z with the reference's update rule, for all points at once."""
        W = rbf_kernel(Z, Z, self.gamma) * beta[None, :]
        term1 = W.sum(1, keepdim=True) * Z - W @ Z
        term2 = -(2.0 / n) * (k_sum[:, None] * Z - k_x)
        grad = -2.0 * self.gamma * beta[:, None] * (term1 + term2)
        return Z - step_size * grad

    # ----- accessors ----------------------------------------------------
    def _require_fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.z is None or self.beta is None:
            raise ValueError("specification is empty: call generate_stat_spec_from_data() or load() first")
        return self.z, self.beta

    def get_z(self) -> np.ndarray:
        """Reduced set points, a (K, d) float64 numpy copy."""
        return self._require_fitted()[0].detach().cpu().numpy().copy()

    def get_beta(self) -> np.ndarray:
        """Reduced set weights, a (K,) float64 numpy copy."""
        return self._require_fitted()[1].detach().cpu().numpy().copy()

    def _on_device(self, other: RKMETableSpecification) -> tuple[torch.Tensor, ...]:
        z1, b1 = self._require_fitted()
        z2, b2 = other._require_fitted()
        if z1.shape[1] != z2.shape[1]:
            raise ValueError(f"feature dimension mismatch: {z1.shape[1]} vs {z2.shape[1]}")
        return z1, b1, z2.to(self.device), b2.to(self.device)

    # ----- math ---------------------------------------------------------
    def inner_prod(self, other: RKMETableSpecification) -> float:
        """<Phi_self, Phi_other> in the RKHS (kernel width of self)."""
        z1, b1, z2, b2 = self._on_device(other)
        return float(rkhs_inner_product(z1, b1, z2, b2, self.gamma))

    def dist(self, other: RKMETableSpecification, omit_term1: bool = False) -> float:
        """Squared MMD ||Phi_self - Phi_other||^2; omit_term1 drops ||Phi_self||^2."""
        z1, b1, z2, b2 = self._on_device(other)
        if omit_term1:
            t12 = rkhs_inner_product(z1, b1, z2, b2, self.gamma)
            t22 = rkhs_inner_product(z2, b2, z2, b2, self.gamma)
            return float(t22 - 2.0 * t12)
        return float(squared_mmd(z1, b1, z2, b2, self.gamma))

    def herding(self, T: int, random_state: int | None = None) -> np.ndarray:
        """T pseudo-samples (T, d) that approximate the data distribution.

        Candidates: 100*T points drawn around z_i (chosen with probability
        beta_i, negatives clipped) with N(0, 0.25^2) noise; then kernel herding
        greedily picks T of them, as the reference.
        """
        z, beta = self._require_fitted()
        if int(T) < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        T = int(T)
        gen = torch.Generator(self.device)
        if random_state is None:
            gen.seed()
        else:
            gen.manual_seed(int(random_state))
        weights = beta.clamp_min(0.0)
        if float(weights.sum()) <= 0:
            raise ValueError("herding needs at least one positive weight in beta")
        n_cand = 100 * T
        pick = torch.multinomial(weights / weights.sum(), n_cand, replacement=True, generator=gen)
        noise = torch.randn(n_cand, z.shape[1], dtype=DTYPE, device=self.device, generator=gen)
        cand = z[pick] + 0.25 * noise
        # f(x) = <Phi, k(x, .)>; pick argmax of (t+1) f(x) - sum_{s in S} k(s, x).
        f = beta @ rbf_kernel(z, cand, self.gamma)
        chosen_sum = torch.zeros(n_cand, dtype=DTYPE, device=self.device)
        out = torch.empty(T, z.shape[1], dtype=DTYPE, device=self.device)
        for t in range(T):
            idx = int(torch.argmax((t + 1) * f - chosen_sum))
            out[t] = cand[idx]
            chosen_sum += rbf_kernel(cand[idx : idx + 1], cand, self.gamma)[0]
        return out.cpu().numpy()

    # ----- serialisation -----------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The reference JSON object: z, beta, gamma, num_points, type (in that order)."""
        z, beta = self._require_fitted()
        return {
            "z": z.detach().cpu().numpy().tolist(),
            "beta": beta.detach().cpu().numpy().tolist(),
            "gamma": self.gamma,
            "num_points": int(self.num_points),
            "type": TABLE_SPEC_TYPE,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], device: str | None = None) -> RKMETableSpecification:
        """Build from a reference-format dict (also old "RKMEStatSpecification" or no type)."""
        if not isinstance(d, dict):
            raise ValueError(f"RKME spec must be a JSON object, got {type(d).__name__}")
        spec_type = d.get("type", TABLE_SPEC_TYPE)
        if spec_type not in TABLE_SPEC_TYPES:
            raise ValueError(f"not an RKME table specification: type is {spec_type!r}")
        for key in ("z", "beta"):
            if key not in d:
                raise ValueError(f"RKME spec is missing {key!r}")
        spec = cls(gamma=float(d.get("gamma", 0.1)), device=device)
        try:
            z = np.asarray(d["z"], dtype=np.float64)
            beta = np.asarray(d["beta"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"RKME spec z/beta must be numeric arrays: {err}") from None
        if z.ndim < 2 or z.shape[0] == 0:
            raise ValueError(f"RKME spec z must have shape (K, d) with K >= 1, got {z.shape}")
        z = z.reshape(z.shape[0], -1)  # the reference may store (K, *feature_shape)
        if beta.shape[0] != z.shape[0]:
            raise ValueError(f"RKME spec has {z.shape[0]} points in z but {beta.shape[0]} weights in beta")
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(beta))):
            raise ValueError("RKME spec z/beta contain NaN or inf")
        spec.z = torch.from_numpy(z).to(spec.device, DTYPE)
        spec.beta = torch.from_numpy(beta).to(spec.device, DTYPE)
        spec.num_points = int(d.get("num_points", 0))
        return spec

    def to_json(self) -> str:
        """Compact JSON text, as the reference writes it."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the reference JSON file."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    def load(self, path: str | os.PathLike[str]) -> bool:
        """Read a reference JSON file into this object; returns True (reference API)."""
        with open(path, encoding="utf-8") as f:
            loaded = self.from_dict(json.load(f), device=str(self.device))
        self.gamma, self.num_points = loaded.gamma, loaded.num_points
        self.z, self.beta = loaded.z, loaded.beta
        return True

    def __repr__(self) -> str:
        k = "empty" if self.z is None else f"K={self.z.shape[0]}, d={self.z.shape[1]}"
        return f"RKMETableSpecification({k}, gamma={self.gamma}, num_points={self.num_points})"


def generate_rkme_table_spec(
    X: Any,
    gamma: float = 0.1,
    reduced_set_size: int = 100,
    step_size: float = 0.1,
    steps: int = 3,
    nonnegative_beta: bool = True,
    reduce: bool = True,
    device: str | None = None,
    random_state: int = 0,
    cuda_idx: int | None = None,
) -> RKMETableSpecification:
    """Make an RKME table spec from X (the reference's function of the same name)."""
    spec = RKMETableSpecification(gamma=gamma, device=device, cuda_idx=cuda_idx)
    spec.generate_stat_spec_from_data(
        X,
        K=reduced_set_size,
        step_size=step_size,
        steps=steps,
        nonnegative_beta=nonnegative_beta,
        reduce=reduce,
        random_state=random_state,
    )
    return spec
