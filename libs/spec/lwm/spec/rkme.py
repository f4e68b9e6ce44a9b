"""RKME table specification: a reduced kernel mean embedding of tabular data.

File format (JSON, same as the reference ``learnware`` package)::

    {"z": [[...], ...], "beta": [...], "gamma": 0.1, "num_points": 200,
     "type": "RKMETableSpecification"}

Older files may say ``"type": "RKMEStatSpecification"`` or have no "type".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lwm.learnware.vocabulary import TABLE_SPEC_TYPE, TABLE_SPEC_TYPES

from .device import resolve_device
from .kernels import rbf_kernel, rkhs_inner_product, squared_mmd
from .kmeans import canonical_projection, canonical_row_order, kmeans
from .qp import WARM_START_ROUNDS, solve_simplex_qp
from .spec_kernels import spec_kernels
from .threads import ScratchBuffers, explicit_threads, map_on_threads, thread_count

# Same cap as the reference's C.max_reduced_set_size: K * d may not exceed it.
MAX_REDUCED_SET_SIZE = 1_310_720
# k-means for the initial Z runs on at most this many rows (seeded subsample);
# beta and the Z steps always use all rows.
KMEANS_MAX_SAMPLES = 20_000
# Each Z step tries the full preconditioned step first and halves it until
# the MMD to the data goes down, at most this many times.
MAX_STEP_HALVINGS = 8
# Mean kernel value from the data below which a point of Z takes no step (it stays where it is).
MIN_STEP_KERNEL_MASS = 1e-12
# Kernel exponents are floored: torch's exp of a float32 below -87.3 (a subnormal or zero
# result) takes a slow path, ~90x the time of a normal one, and so do the products of
# subnormal kernel entries with the rows (measured: a 10,000 x 50 fit on far-apart rows took
# 0.5-0.9 s instead of 0.09 s). At -60 an entry (8.8e-27) times any row value above 1e-12
# stays normal, and the floor adds less than 1e-26 to a data term.
KERNEL_EXPONENT_FLOOR = -60.0
# Kernel entries (z, x) computed at once while fitting: 1 MB in float32, so that a block of the
# kernel stays in the core's L2 cache from its product through exp to its product with the rows
# (blocks of 8 MB ran the same arithmetic 1.5-2x slower, bound by memory traffic).
FIT_KERNEL_ENTRIES = 262_144
# Rows gathered into the fit's float32 rows at a time (the float64 gather goes through a small
# buffer that stays in the heap: a fresh n x d one cost ~4 ms of page faults at 10,000 x 50).
GATHER_ROWS = 256

DTYPE = torch.float64


def table_and_row_order(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate tabular input: X as a float64 array of shape (n, d), not to be written to, and its
    canonical row order (lwm.spec.kmeans.canonical_row_order).

    The input itself comes back when it is already a finite float64 array; filling missing
    values works on a copy. X is read once: its canonical projection is finite exactly when
    every value is, so it is also the check for missing values.

    Accepts numpy arrays, pandas DataFrames, torch tensors and nested lists.
    +-inf counts as missing. Missing values are filled with their column's
    mean (as the reference does); a column with no finite value, or input
    that is not 2-D with at least one row and column, raises ValueError.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    elif hasattr(X, "to_numpy") and hasattr(X, "columns"):  # pandas DataFrame
        try:
            X = X.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"all DataFrame columns must be numeric: {err}") from None
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"X must be numeric tabular data: {err}") from None
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X must have at least one row and one column, got shape {arr.shape}")
    projection = canonical_projection(arr)
    if not np.isfinite(projection).all():  # a missing value, or a projection that overflows
        bad = ~np.isfinite(arr)
        if bad.any():
            all_bad = np.nonzero(bad.all(axis=0))[0]
            if all_bad.size:
                raise ValueError(f"column(s) {all_bad.tolist()} of X have no finite value (all NaN/inf); drop or fill them")
            arr = arr.copy()
            arr[bad] = np.nan
            col_mean = np.nanmean(arr, axis=0)
            rows, cols = np.nonzero(bad)
            arr[rows, cols] = col_mean[cols]
            projection = canonical_projection(arr)
    return arr, canonical_row_order(arr, projection)


@dataclass
class _FitState:
    """A reduced set with its optimal beta and the data terms that go with it."""

    z: torch.Tensor  # (K, d)
    beta: torch.Tensor  # (K,)
    k_zz: torch.Tensor  # (K, K) kernel among the points
    mean_k: torch.Tensor  # (K,) a_i = mean_x k(z_i, x)
    mean_kx: torch.Tensor | None  # (K, d) b_i = mean_x k(z_i, x) x; None when no step follows
    objective: float  # squared MMD to the data minus the constant mean_{x,x'} k(x, x')
    direction: torch.Tensor | None = None  # descent_direction's result, when the C kernels computed it with the state


class _ReducedSetFit:
    """The RKME fitting problem for data X: kernel terms, beta QP, Z step direction."""

    def __init__(self, X: np.ndarray, order: np.ndarray, gamma: float, nonnegative_beta: bool, device: torch.device) -> None:
        """The problem for the rows of X (n, d), taken in ``order``."""
        # The data terms run in float32: their rounding (~1e-7 relative) is far below any MMD
        # difference the steps act on, and float32 halves the cost of the two big products.
        # Rows are stored as [x, 1, -gamma ||x||^2]: the product with [2 gamma z, -gamma ||z||^2, 1]
        # is the kernel's exponent, and the kernel's product with [x, 1] gives both data terms.
        # The rows are allocated by torch, which (unlike numpy from 4 MB up) does not ask for
        # transparent huge pages: on a VM that hands freed memory back to its host (free page
        # reporting), huge pages taken after another process freed memory are slow to fault in.
        # 100,000 x 20 fits right after a reference run took 48-61 ms with huge pages and 42-44 ms
        # without; with no other process before them, 39-41 against 42-43 ms (bench/README). The fit
        # streams the rows a few times, so small pages' TLB misses cost little.
        n, d = X.shape
        rows_tensor = torch.empty((n, d + 2), dtype=torch.float32)
        rows = rows_tensor.numpy()
        kernels = spec_kernels()
        if kernels is not None:
            kernels.fit_rows(X, order, gamma, out=rows)
        else:
            gathered = np.empty((min(n, GATHER_ROWS), d))  # float64, reused by every chunk
            for s in range(0, n, GATHER_ROWS):
                chunk = order[s : s + GATHER_ROWS]
                rows[s : s + chunk.size, :d] = np.take(X, chunk, axis=0, out=gathered[: chunk.size])
            rows[:, d] = 1.0
            rows[:, d + 1] = -gamma * np.einsum("ij,ij->i", rows[:, :d], rows[:, :d])
        self.rows = rows_tensor.to(device)
        self.gamma = gamma
        self.nonnegative_beta = nonnegative_beta
        self.buffers = ScratchBuffers(self.rows.device)  # kernel blocks; k-means lends them on the CPU

    @property
    def num_rows(self) -> int:
        return self.rows.shape[0]

    def state(self, z: torch.Tensor, previous: _FitState | None = None, *, with_kx: bool = True) -> _FitState:
        """The fit at points z; ``previous`` (the state z moved from) warm-starts the beta QP.

        ``with_kx=False`` leaves out mean_kx (half the data terms' products), for a state
        no step starts from.
        """
        previous_beta = None if previous is None else previous.beta
        kernels = spec_kernels() if self.rows.device.type == "cpu" else None
        if kernels is None:
            mean_k, mean_kx = self._data_terms(z, with_kx)
            k_zz = rbf_kernel(z, z, self.gamma)
            beta = self._solve_beta(k_zz, mean_k, previous_beta)
        else:
            # One C call: the data terms, the kernel among the points and, when the warm-started search settles, beta.
            hint = self._support_hint(z.shape[0], previous_beta) if self.nonnegative_beta else None
            terms = kernels.fit_state(
                self.rows, z.numpy(), self.gamma, KERNEL_EXPONENT_FLOOR, with_kx, self._block_rows(z.shape[0]), hint, WARM_START_ROUNDS, MIN_STEP_KERNEL_MASS
            )
            mean_k, k_zz = torch.from_numpy(terms.mean_k), torch.from_numpy(terms.k_zz)
            mean_kx = None if terms.mean_kx is None else torch.from_numpy(terms.mean_kx)
            if terms.beta is not None and terms.objective is not None:
                direction = None if terms.direction is None else torch.from_numpy(terms.direction)
                return _FitState(z, torch.from_numpy(terms.beta), k_zz, mean_k, mean_kx, terms.objective, direction)
            beta = self._solve_beta(k_zz, mean_k, previous_beta)
        objective = float(beta @ k_zz @ beta - 2.0 * (mean_k @ beta))
        return _FitState(z, beta, k_zz, mean_k, mean_kx, objective)

    @staticmethod
    def _block_rows(points: int) -> int:
        """Rows per block of the data terms: FIT_KERNEL_ENTRIES kernel entries."""
        return max(1, FIT_KERNEL_ENTRIES // points)

    @staticmethod
    def _support_hint(points: int, previous_beta: torch.Tensor | None) -> np.ndarray:
        """Where beta is guessed positive: where the previous beta was or, without one, everywhere
        (k-means centres mostly keep a weight); the active-set search corrects a wrong guess in a round or two."""
        return np.ones(points, dtype=bool) if previous_beta is None else previous_beta.cpu().numpy() > 0

    def _data_terms(self, z: torch.Tensor, with_kx: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """mean_x k(z_i, x) (K,) and, ``with_kx``, mean_x k(z_i, x) x (K, d), in float64.

        k(z, x) = exp(2 gamma z.x - gamma ||z||^2 - gamma ||x||^2): one matrix product of the
        augmented points and rows per block, clamped at exponent 0 against rounding. On the
        CPU the blocks are shared out among threads (lwm.spec.threads); each block's sums are
        kept apart and added in block order, so the result does not depend on the thread count.
        The C kernels (SpecKernels.fit_state) do the same, a block in one pass.
        """
        n, d = self.num_rows, self.rows.shape[1] - 2
        zf = z.to(torch.float32)
        z_aug = torch.cat([(2.0 * self.gamma) * zf, -self.gamma * (zf * zf).sum(1, keepdim=True), torch.ones_like(zf[:, :1])], 1)
        step = self._block_rows(z.shape[0])
        starts = list(range(0, n, step))

        threads = thread_count() if self.rows.device.type == "cpu" else 1
        shares = [starts[i::threads] for i in range(min(threads, len(starts)))]
        buffers = self.buffers.get(len(shares), z.shape[0] * step)

        def block_sums(share: int) -> list[torch.Tensor]:
            sums = []
            for s in shares[share]:
                block = self.rows[s : s + step]
                kzx = buffers[share][: z.shape[0] * block.shape[0]].view(z.shape[0], block.shape[0])
                torch.mm(z_aug, block.T, out=kzx).clamp_(KERNEL_EXPONENT_FLOOR, 0.0).exp_()
                # [sum_x k x, sum_x k] or [sum_x k]
                sums.append(torch.mm(kzx, block[:, : d + 1]) if with_kx else kzx.sum(1, keepdim=True))
            return sums

        per_thread = map_on_threads(block_sums, range(len(shares)))
        in_block_order = [per_thread[i % len(shares)][i // len(shares)] for i in range(len(starts))]
        means = torch.stack(in_block_order).sum(0).to(torch.float64) / n
        if with_kx:
            return means[:, d], means[:, :d]
        return means[:, 0], None

    def _solve_beta(self, k_zz: torch.Tensor, mean_k: torch.Tensor, previous_beta: torch.Tensor | None) -> torch.Tensor:
        if self.nonnegative_beta:
            b = solve_simplex_qp(k_zz.cpu().numpy(), mean_k.cpu().numpy(), support_hint=self._support_hint(k_zz.shape[0], previous_beta))
            return torch.from_numpy(b).to(k_zz.device, k_zz.dtype)
        # Unconstrained closed form, as the reference (no sum-to-one constraint).
        eye = torch.eye(k_zz.shape[0], dtype=k_zz.dtype, device=k_zz.device)
        solved: torch.Tensor = torch.linalg.solve(k_zz + 1e-5 * eye, mean_k)
        return solved

    @staticmethod
    def descent_direction(state: _FitState) -> torch.Tensor:
        """Per-point preconditioned MMD descent direction for Z.

        The gradient for z_i is -4 gamma beta_i [(b_i - a_i z_i) - (t_i - s_i z_i)]
        with s_i = sum_{j != i} beta_j k(z_i, z_j) and t_i = the same sum of
        beta_j k(z_i, z_j) z_j. Dividing by 4 gamma beta_i a_i leaves a
        mean-shift step towards the data minus the pull of the other points,
        which has the scale of the data whatever beta_i and a_i are (points
        with beta_i = 0 move towards the data too instead of staying stuck).
        """
        if state.mean_kx is None:
            raise ValueError("this state was computed without mean_kx: no step can start from it")
        if state.direction is not None:  # the C kernels computed it with the state (a dozen small torch calls cost ~0.15 ms)
            return state.direction
        w = state.k_zz * state.beta[None, :]
        w.fill_diagonal_(0.0)
        s = w.sum(1, keepdim=True)
        t = w @ state.z
        a = state.mean_k[:, None]
        direction = (state.mean_kx - a * state.z) - (t - s * state.z)
        # A point the data's kernel mass does not reach (it underflows: the point is far from
        # every row) has no mean-shift step; dividing by ~0 would throw it out of float32 range.
        return torch.where(a > MIN_STEP_KERNEL_MASS, direction / a.clamp_min(MIN_STEP_KERNEL_MASS), 0.0)


class RKMETableSpecification:
    """Reduced set (z, beta) with sum_i beta_i k(z_i, .) ~ the kernel mean embedding of X."""

    type: str = TABLE_SPEC_TYPE
    # "type" values from_dict accepts; files with no "type" count as cls.type.
    accepted_types: tuple[str, ...] = TABLE_SPEC_TYPES

    def __init__(self, gamma: float = 0.1, device: str | torch.device | None = None, *, cuda_idx: int | None = None) -> None:
        """``cuda_idx`` is the reference's way to pick a device (-1 = CPU); ``device`` wins."""
        self.gamma = float(gamma)
        self.num_points = 0
        self.device = resolve_device(device, cuda_idx)
        self.z: torch.Tensor | None = None
        self.beta: torch.Tensor | None = None

    # ----- construction -------------------------------------------------
    def generate_stat_spec_from_data(
        self,
        X: Any,
        K: int = 100,
        step_size: float = 1.0,
        steps: int = 3,
        nonnegative_beta: bool = True,
        reduce: bool = True,
        random_state: int = 0,
        verbose: bool = False,
    ) -> None:
        """Fit the reduced set to X (n, d), n >= 1 (one row is its own exact embedding).

        K shrinks to max(1, 2n/3) when K >= n, and so that K * d stays within
        MAX_REDUCED_SET_SIZE (both as the reference). Z starts at k-means
        centres and beta solves the non-negative QP (sum(beta) = 1); then
        ``steps`` rounds of one step on Z and a new beta. The Z step is the
        MMD gradient preconditioned per point (a mean-shift step towards the
        data, minus the pull of the other points), scaled by ``step_size``
        and halved until the MMD to the data goes down, so no round makes the
        spec worse. With ``reduce=False``, Z = X and beta = 1/n.
        ``verbose`` shows a progress bar over the rounds.
        """
        if int(K) < 1:
            raise ValueError(f"K must be >= 1, got {K}")
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        arr, order = table_and_row_order(X)
        n, d = arr.shape
        self.num_points = n
        K = int(K)
        if K * d > MAX_REDUCED_SET_SIZE:
            K = max(20, MAX_REDUCED_SET_SIZE // d)
        if K >= n:
            K = max(1, n * 2 // 3)

        if not reduce or n == 1:
            self.z = torch.from_numpy(arr[order]).to(self.device, DTYPE)
            self.beta = torch.full((n,), 1.0 / n, dtype=DTYPE, device=self.device)
            return

        # With the C kernels on the CPU the fit's only BLAS call is the cold beta solve, which limits BLAS itself.
        with explicit_threads(limit_blas=self.device.type != "cpu" or spec_kernels() is None):
            self.z, self.beta = self._fit(arr, order, K, float(step_size), int(steps), nonnegative_beta, int(random_state), verbose)

    def _fit(
        self, arr: np.ndarray, order: np.ndarray, K: int, step_size: float, steps: int, nonnegative_beta: bool, random_state: int, verbose: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, beta) for the rows of arr taken in ``order``: k-means, then ``steps`` rounds of a Z step and a new beta."""
        n, d = arr.shape
        fit = _ReducedSetFit(arr, order, self.gamma, nonnegative_beta, self.device)
        generator = torch.Generator().manual_seed(random_state)
        on_cpu = fit.rows.device.type == "cpu"
        sample = torch.randperm(n, generator=generator)[:KMEANS_MAX_SAMPLES] if n > KMEANS_MAX_SAMPLES else None
        centres = kmeans(fit.rows if on_cpu else fit.rows.cpu(), d, K, generator, fit.buffers if on_cpu else None, sample=sample)
        state = fit.state(centres.to(self.device, DTYPE), with_kx=steps > 0)
        eta = step_size
        rounds = tqdm(range(steps), desc="RKME table spec") if verbose else range(steps)  # a disabled bar still costs ~0.1 ms
        for round_ in rounds:
            direction = fit.descent_direction(state)
            last = round_ == steps - 1
            for _ in range(MAX_STEP_HALVINGS + 1):
                trial = fit.state(state.z + eta * direction, previous=state, with_kx=not last)
                if trial.objective < state.objective:
                    break
                eta /= 2.0
            else:
                break  # no step lowers the MMD: Z is at a (local) optimum
            state = trial
            eta = min(step_size, 2.0 * eta)
        return state.z, state.beta

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

    def _check_comparable(self, other: RKMETableSpecification) -> None:
        """Raise ValueError unless self and other are specs of the same kind over the same features."""
        if type(other) is not type(self):
            raise ValueError(f"cannot compare a {self.type} with a {getattr(other, 'type', type(other).__name__)}")
        d1, d2 = self._require_fitted()[0].shape[1], other._require_fitted()[0].shape[1]
        if d1 != d2:
            raise ValueError(f"feature dimension mismatch: {d1} vs {d2}")

    def _on_device(self, other: RKMETableSpecification) -> tuple[torch.Tensor, ...]:
        self._check_comparable(other)
        z1, b1 = self._require_fitted()
        z2, b2 = other._require_fitted()
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
            "type": self.type,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], device: str | torch.device | None = None) -> RKMETableSpecification:
        """Build from a reference-format dict (for tables also old "RKMEStatSpecification" or no type)."""
        if not isinstance(d, dict):
            raise ValueError(f"RKME spec must be a JSON object, got {type(d).__name__}")
        spec_type = d.get("type", cls.type)
        if spec_type not in cls.accepted_types:
            raise ValueError(f"not an {cls.type}: type is {spec_type!r}")
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
        spec._read_extra_fields(d)
        return spec

    def _read_extra_fields(self, d: dict[str, Any]) -> None:
        """Subclasses read the fields they add to the reference table format."""

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
            loaded = self.from_dict(json.load(f), device=self.device)
        self.__dict__.update(loaded.__dict__)
        return True

    def __repr__(self) -> str:
        k = "empty" if self.z is None else f"K={self.z.shape[0]}, d={self.z.shape[1]}"
        return f"{type(self).__name__}({k}, gamma={self.gamma}, num_points={self.num_points})"


def generate_rkme_table_spec(
    X: Any,
    gamma: float = 0.1,
    reduced_set_size: int = 100,
    step_size: float = 1.0,
    steps: int = 3,
    nonnegative_beta: bool = True,
    reduce: bool = True,
    device: str | torch.device | None = None,
    random_state: int = 0,
    cuda_idx: int | None = None,
    verbose: bool = False,
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
        verbose=verbose,
    )
    return spec
