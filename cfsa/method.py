"""``cfsa``: Correlated Features Synthesis and Alignment (Xu, Lin, Lu, Gao, Shen; SIGIR 2020), and its ablations.

Reconstructed from the paper's abstract and its journal successor's released code (JFSE; see
REFERENCE.md s.2): two coupled conditional WGAN-GPs synthesise features of both modalities from class
embeddings, regressors map real and synthetic features into the class-embedding space, a cycle term makes
R_m(G_m(c, z)) return c, and an alignment term matches the modalities in that space. Retrieval embeds a
feature with its modality's regressor and ranks by cosine.

Deviations, each deliberate:
- Features are z-scored with training statistics instead of JFSE's per-batch min-max scaling (which makes
  an item's scaled value depend on its batch-mates), so generators have a linear output.
- Regression targets and the generators' condition are L2-normalised class embeddings (GloVe here).
- Unseen-class synthesis (``synthesize_unseen``) is on by default: our reading of "knowledge transferred
  to unseen classes under the cycle-consistency constraint" (JFSE's code synthesises seen classes only).
- ``hidden`` defaults to 256 and ``epochs`` to a CPU-sized count (a step costs ~20 GFLOP at width 256 on
  4096-d features, 85% of it in the critics' gradient penalty); the paper family uses 4096 (the
  ``cfsa-paper-width`` variant) and trains longer on a GPU.
- No model selection: a fixed number of epochs; nothing is ever chosen on the test (unseen) classes.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.contract import Method, TrainView, ZSBenchError, register_method
from benchmark.torch_utils import predict, resolve_device, seed_everything, to_tensor
from cfsa.losses import ALIGNMENTS
from cfsa.training import CFSANetworks, CFSATrainer, StepConfig


class _Standardizer:
    """Per-dimension z-scoring with statistics from the seen-class training features."""

    def __init__(self, X: np.ndarray):
        self.mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.std = np.maximum(X.std(axis=0, dtype=np.float64), 1e-6).astype(np.float32)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float32) - self.mean) / self.std).astype(np.float32)


#: Below this many multiply-adds in the widest layer's forward product, a CPU step runs on one thread.
SMALL_LAYER_MACS = 2**20


@contextmanager
def _cpu_threads(count: int | None):
    """Run the block with ``count`` torch CPU threads (None: leave as is), then restore the setting.

    Tiny problems (the test suite's) gain nothing from a thread pool, and on a loaded machine its workers'
    waiting made each step a hundred times slower than one thread.
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@register_method("cfsa")
@dataclass
class CFSA(Method):
    name = "cfsa"
    #: Seconds-long smoke configuration for the contract test suite; never used for reported runs.
    quick_params = {"hidden": 16, "epochs": 2, "batch_size": 16, "n_critic": 2}
    #: Width of every network's hidden layer (4096 in the paper family; smaller so CPUs finish in minutes).
    hidden: int = 256
    #: An epoch is one pass over the smaller modality's seen-class training set, in steps of ``batch_size``;
    #: each step is ``n_critic`` critic updates, one generator update and one regressor update.
    epochs: int = 10
    batch_size: int = 64
    #: The paper family's 1e-4. At the CPU budget (190 steps on TU-Berlin) it leaves the regressors far from
    #: trained: on TU-Berlin's seen-class validation part (seed 0) 1e-4 gave mAP@all 0.134 and 1e-3 gave 0.559.
    lr: float = 1e-4
    beta1: float = 0.5
    #: Noise size; 0 means "equal to the class-embedding size", the paper family's choice.
    noise_dim: int = 0
    n_critic: int = 5
    gp_weight: float = 10.0
    #: Weight of R_m(G_m(c, z)) -> c in the generators' objective (0.1 in the sibling code).
    cycle_weight: float = 0.1
    #: Weight of the synthetic features' regression in the regressors' objective (0.01 in the sibling code).
    synthetic_weight: float = 0.01
    #: Also synthesise features of the unseen classes from their class embeddings (never their samples).
    synthesize_unseen: bool = True
    #: Cross-modal alignment in the common space: cmpm, mmd, coral or none.
    alignment: str = "cmpm"
    align_weight: float = 1e-4
    #: A modality classifier behind a gradient-reversal layer (the sibling code's adversary).
    modality_adversary: bool = False
    adversary_weight: float = 0.01

    def _validate(self, train: TrainView) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ZSBenchError(f"cfsa: alignment={self.alignment!r} is unknown; use one of {', '.join(ALIGNMENTS)}")
        for field_name in ("hidden", "epochs", "batch_size", "n_critic"):
            if int(getattr(self, field_name)) < 1:
                raise ZSBenchError(f"cfsa: {field_name} must be a positive integer, got {getattr(self, field_name)}")
        if self.noise_dim < 0:
            raise ZSBenchError(f"cfsa: noise_dim must be >= 0 (0 = embedding size), got {self.noise_dim}")
        if len(train.modalities) < 2:
            raise ZSBenchError(f"cfsa needs two modalities, the dataset has {list(train.modalities)}")

    def step_config(self) -> StepConfig:
        """The step's hyper-parameters are this method's fields of the same names."""
        return StepConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(StepConfig)})

    def build(self, train: TrainView, seed: int) -> CFSATrainer:
        """Networks, optimisers and device-resident data for ``train``; fit() then runs the epochs."""
        self._validate(train)
        seed_everything(seed)
        self.device_ = resolve_device(self.device)
        emb = np.asarray(train.class_embeddings, dtype=np.float32)
        targets = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self.scalers_ = {m: _Standardizer(train.features[m]) for m in train.modalities}
        features = {m: to_tensor(self.scalers_[m](train.features[m]), self.device_) for m in train.modalities}
        labels = {m: torch.as_tensor(np.asarray(train.labels[m], dtype=np.int64), device=self.device_)
                  for m in train.modalities}
        noise_dim = self.noise_dim or train.embedding_dim
        nets = CFSANetworks({m: train.dim(m) for m in train.modalities}, train.embedding_dim, noise_dim,
                            self.hidden, self.modality_adversary).to(self.device_)
        self.regressors_ = nets.regressors
        # Only class *embeddings* of unseen classes go in: the view holds no unseen sample to give.
        return CFSATrainer(nets, features, labels, to_tensor(targets, self.device_), np.asarray(train.seen_classes),
                           np.asarray(train.unseen_classes), self.step_config(), seed)

    def fit(self, train: TrainView, seed: int) -> CFSA:
        trainer = self.build(train, seed)
        widest = max(train.dim(m) for m in train.modalities) + train.embedding_dim
        tiny = self.device_.type == "cpu" and self.batch_size * self.hidden * widest < SMALL_LAYER_MACS
        with _cpu_threads(1 if tiny else None):
            self._train(trainer, train)
        return self

    def _train(self, trainer: CFSATrainer, train: TrainView) -> None:
        n_min = min(len(train.labels[m]) for m in train.modalities)
        steps_per_epoch = max(1, math.ceil(n_min / self.batch_size))
        total = self.epochs * steps_per_epoch
        for epoch in range(self.epochs):
            logs: dict[str, torch.Tensor] = {}
            for step in range(steps_per_epoch):
                trainer.step(progress=(epoch * steps_per_epoch + step) / total, logs=logs)
            # The critic terms were already divided by n_critic; every sum is over this epoch's steps.
            self.log_epoch(epoch, **{k: float(v) / steps_per_epoch for k, v in logs.items()})

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        if modality not in self.regressors_:
            raise ZSBenchError(f"cfsa was trained on {list(self.regressors_)}, not on modality {modality!r}")
        return predict(self.regressors_[modality], self.scalers_[modality](X), self.device_)


register_method("cfsa-no-synthesis", CFSA, synthesize_unseen=False)
register_method("cfsa-no-cycle", CFSA, cycle_weight=0.0)
register_method("cfsa-no-align", CFSA, alignment="none")
register_method("cfsa-paper-width", CFSA, hidden=4096)
