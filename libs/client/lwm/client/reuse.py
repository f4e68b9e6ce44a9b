"""Reusing downloaded learnwares locally: `load_learnware` and the market's reusers.

A loaded learnware's model runs in the sandbox of lwm.runtime (a child process),
never in the caller's process. The reusers are the ones the reuse service runs
(lwm.reuse.reusers), with the reference package's call shapes: build with
`learnware_list` (and `mode`), `fit` the data-dependent ones, then `predict(user_data)`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

# Before torch loads (lwm.reuse.reusers imports it), as `lwm serve` does: OpenMP threads
# sleep instead of spinning between the job selector's small kernels, which on a busy
# machine makes a 0.1 s selection take seconds.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lwm.learnware.archive import LearnwareArchive
from lwm.learnware.semantic import input_descriptions
from lwm.learnware.vocabulary import TABLE_SPEC_TYPES, TEXT_SPEC_TYPE
from lwm.reuse import align
from lwm.reuse import reusers as reuse
from lwm.runtime.runner import ModelRunner, open_learnware
from lwm.runtime.sandbox import SandboxConfig
from lwm.spec.rkme import RKMETableSpecification
from lwm.spec.text import RKMETextSpecification, check_embedder, embed_sentences

DEFAULT_TIMEOUT_S = 120.0


class LocalLearnware:
    """A learnware whose model runs in a local sandboxed process; close it (or use `with`) when done."""

    def __init__(self, learnware_id: str, archive: LearnwareArchive, runner: ModelRunner, workdir: Path) -> None:
        self.id = learnware_id
        self.archive = archive
        self.runner = runner
        self._workdir = workdir

    @property
    def semantic_spec(self) -> dict[str, Any] | None:
        return self.archive.semantic_spec()

    @property
    def stat_spec(self) -> RKMETableSpecification:
        """The learnware's RKME table specification, else its RKMETextSpecification (ValueError when the zip has neither)."""
        for spec_class, types in ((RKMETableSpecification, TABLE_SPEC_TYPES), (RKMETextSpecification, (TEXT_SPEC_TYPE,))):
            for entry in self.archive.config.stat_specs:
                if entry.class_name in types:
                    return spec_class.from_dict(self.archive.stat_spec_json(entry.class_name), device="cpu")
        raise ValueError(f"learnware {self.id} has no RKMETableSpecification or RKMETextSpecification")

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.runner.predict(np.asarray(X))

    def close(self) -> None:
        self.runner.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> LocalLearnware:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalLearnware({self.id!r})"


def load_learnware(zip_path: str | Path, learnware_id: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, sandbox: SandboxConfig | None = None) -> LocalLearnware:
    """Start a learnware zip's model in a sandbox; `timeout_s` bounds each call to it.

    `sandbox`: the isolation backend and limits (default: from the LWM_SANDBOX* variables).

    The zip is read into memory: the file may be removed once this returns.
    """
    zip_path = Path(zip_path)
    archive = LearnwareArchive.from_bytes(zip_path.read_bytes())
    workdir = Path(tempfile.mkdtemp(prefix="lwm-learnware-"))
    try:
        runner = open_learnware(archive, workdir, timeout_s=timeout_s, sandbox=sandbox)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return LocalLearnware(learnware_id or zip_path.stem, archive, runner, workdir)


class SandboxedLearnware(Protocol):
    """What the reusers need of a learnware: its id, its table spec and a predict that runs in a sandbox."""

    @property
    def id(self) -> str: ...

    @property
    def stat_spec(self) -> RKMETableSpecification: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


class DescribedLearnware(SandboxedLearnware, Protocol):
    """A learnware whose semantic spec is known: a LocalLearnware, or one a compat search returned."""

    @property
    def semantic_spec(self) -> dict[str, Any] | None: ...


class _LocalReuser:
    """Runs a shared reuser on local learnwares, each learnware's calls in parallel with the others'."""

    def __init__(self, learnware_list: Sequence[SandboxedLearnware], reuser: reuse.Reuser) -> None:
        self.learnware_list = list(learnware_list)
        self.reuser = reuser

    def _run(self, jobs: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=len(jobs)) as executor:
            return list(executor.map(lambda job: self.learnware_list[job[0]].predict(job[1]), jobs))

    def predict(self, user_data: np.ndarray) -> np.ndarray:
        return self.reuser.predict(np.asarray(user_data), self._run)

    def describe(self) -> str:
        return self.reuser.describe()


def _ids(learnware_list: Sequence[SandboxedLearnware]) -> list[str]:
    return [learnware.id for learnware in learnware_list]


class JobSelectorReuser(_LocalReuser):
    """Each row goes to the learnware whose specification fits it best (see lwm.reuse.reusers)."""

    def __init__(self, learnware_list: Sequence[SandboxedLearnware], user_spec: RKMETableSpecification | None = None) -> None:
        specs = [learnware.stat_spec for learnware in learnware_list]
        texts = [spec for spec in specs + [user_spec] if isinstance(spec, RKMETextSpecification)]
        for spec in texts:  # the user's texts are embedded here to be routed in the specs' space
            check_embedder(spec, "the user's" if spec is user_spec else "a learnware's")
        super().__init__(learnware_list, reuse.JobSelectorReuser(_ids(learnware_list), specs, user_spec, embed_sentences if texts else None))


class AveragingReuser(_LocalReuser):
    """mode: mean (regression), vote_by_label or vote_by_prob (classification)."""

    def __init__(self, learnware_list: Sequence[SandboxedLearnware], mode: str = "mean") -> None:
        super().__init__(learnware_list, reuse.AveragingReuser(_ids(learnware_list), mode))


class EnsemblePruningReuser(_LocalReuser):
    """mode: classification or regression; `fit` on labelled data before `predict`."""

    def __init__(self, learnware_list: Sequence[SandboxedLearnware], mode: str = "classification") -> None:
        self.pruning = reuse.EnsemblePruningReuser(_ids(learnware_list), mode)
        super().__init__(learnware_list, self.pruning)

    def fit(self, val_X: np.ndarray, val_y: np.ndarray) -> None:
        self.pruning.fit(np.asarray(val_X), np.asarray(val_y), self._run)

    @property
    def selected_learnwares(self) -> list[SandboxedLearnware]:
        return [self.learnware_list[i] for i in self.pruning.selected]


class FeatureAugmentReuser(_LocalReuser):
    """mode: classification or regression; `fit` on labelled data before `predict`."""

    def __init__(self, learnware_list: Sequence[SandboxedLearnware], mode: str = "classification") -> None:
        self.augment = reuse.FeatureAugmentReuser(_ids(learnware_list), mode)
        super().__init__(learnware_list, self.augment)

    def fit(self, x_train: np.ndarray, y_train: np.ndarray) -> None:
        self.augment.fit(np.asarray(x_train), np.asarray(y_train), self._run)


class HeteroMapAlignLearnware:
    """A learnware with other columns than the user's, aligned to the user's (see lwm.reuse.align).

    As the reference's HeteroMapAlignLearnware: `align(user_data, x_train, y_train)` with
    the user's rows or RKME specification and, optionally, labelled samples; then `predict`
    on the user's columns. It has an `id` and `predict`, so several aligned learnwares
    combine with AveragingReuser, EnsemblePruningReuser or FeatureAugmentReuser.
    Column descriptions come from `user_semantic_spec`'s and the learnware's "Input"
    (matched by MiniLM sentence embeddings); without them columns match by their distributions.
    """

    def __init__(self, learnware: DescribedLearnware, mode: str, user_semantic_spec: dict[str, Any] | None = None) -> None:
        self.learnware = learnware
        self.id = learnware.id
        self.mode = reuse.check_task(mode)
        self.user_semantic_spec = user_semantic_spec
        self.aligner: align.HeteroAlignReuser | None = None

    def _run(self, jobs: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        return [self.learnware.predict(rows) for _, rows in jobs]

    def align(self, user_data: np.ndarray | RKMETableSpecification, x_train: np.ndarray | None = None, y_train: np.ndarray | None = None) -> None:
        spec = self.learnware.stat_spec
        if isinstance(spec, RKMETextSpecification):
            raise ValueError(f"hetero alignment maps table columns; learnware {self.id} is a text learnware (reuse it with averaging, job selection or ensemble pruning)")
        data = user_data if isinstance(user_data, RKMETableSpecification) else np.asarray(user_data)
        user_dim = data.get_z().shape[1] if isinstance(data, RKMETableSpecification) else data.shape[-1]
        described = align.described_input_count(self.user_semantic_spec)
        if described and described != user_dim:
            raise ValueError(f"user_semantic_spec describes {described} input columns but the user's data has {user_dim}")
        user_texts = input_descriptions(self.user_semantic_spec or {}, user_dim)
        learnware_texts = input_descriptions(self.learnware.semantic_spec or {}, spec.get_z().shape[1])
        embed = _embed_texts if user_texts is not None and learnware_texts is not None else None
        aligner = align.HeteroAlignReuser([self.id], [spec], self.mode, [learnware_texts], user_texts, embed)
        aligner.fit(data, self._run, None if x_train is None else np.asarray(x_train), None if y_train is None else np.asarray(y_train))
        self.aligner = aligner

    def predict(self, user_data: np.ndarray) -> np.ndarray:
        if self.aligner is None:
            raise ValueError(f"align learnware {self.id} to the user's data before predicting")
        return self.aligner.predict(np.asarray(user_data), self._run)

    def describe(self) -> str:
        return self.aligner.describe() if self.aligner is not None else f"learnware {self.id}, not aligned"


def _embed_texts(texts: Sequence[str]) -> np.ndarray:
    from lwm.spec.text import embed_sentences  # loads sentence-transformers: only when descriptions are matched

    return embed_sentences(texts)
