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
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.contract import Choice, IntRange, LogUniform, Method, TrainView, Uniform, ZSBenchError, register_method
from benchmark.torch_utils import Standardizer, predict, to_tensor
from cfsa.losses import ALIGNMENTS
from cfsa.training import CFSANetworks, CFSATrainer, LossMeter, StepConfig

SCHEDULES = ("joint", "two-stage")
#: Below this many multiply-adds in the widest layer's forward product, a CPU step runs on one thread.
SMALL_LAYER_MACS = 2**20
#: The embedding statistics (``standardize_embeddings``) come from at most this many training rows per modality.
STATISTICS_ROWS = 4096


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
    quick_params = {"hidden": 16, "epochs": 2, "epoch_steps": 4, "batch_size": 16, "n_critic": 2}
    search_space = {
        "epochs": IntRange(10, 60, step=5),
        "lr": LogUniform(3e-5, 1e-3),
        "regressor_lr": LogUniform(1e-4, 3e-3),
        "regressor_steps": IntRange(1, 4),
        "dropout": Uniform(0.0, 0.5),
        "cycle_weight": LogUniform(0.01, 10.0),
        "synthetic_weight": LogUniform(0.01, 1.0),
        "align_weight": LogUniform(0.01, 1.0),
        "temperature": LogUniform(0.03, 1.0),
        "schedule": Choice(SCHEDULES),
        "standardize_embeddings": Choice((True, False)),
    }
    #: Width of every network's hidden layer (4096 in the paper family; smaller so CPUs finish in minutes).
    hidden: int = 256
    #: The budget, in iterations: ``epochs`` x ``epoch_steps``, whatever the dataset's size. An epoch is a
    #: fixed number of iterations (not a pass over the data), so run time follows the budget, not the data.
    epochs: int = 20
    epoch_steps: int = 25
    #: ``joint``: regressors learn from synthetic features while the GANs train. ``two-stage``: the GANs
    #: train first (the regressors meanwhile on real features only, the cycle term's anchor), then the
    #: regressors on real plus synthetic features for ``regressor_epochs``.
    schedule: str = "joint"
    #: Regressor-only epochs after the GAN epochs (generators frozen, real plus synthetic features).
    regressor_epochs: int = 0
    batch_size: int = 64
    #: The GANs' Adam learning rate and beta1 (the paper family's 1e-4 and 0.5).
    lr: float = 1e-4
    beta1: float = 0.5
    #: Noise size; 0 means "equal to the class-embedding size", the paper family's choice.
    noise_dim: int = 0
    n_critic: int = 5
    gp_weight: float = 10.0
    #: Synthesise features at all (False: no GAN is trained; the regressors see real features only).
    synthesis: bool = True
    #: Also synthesise features of the unseen classes from their class embeddings (never their samples).
    synthesize_unseen: bool = True
    #: Weight of R_m(G_m(c, z)) -> c in the generators' objective.
    cycle_weight: float = 1.0
    #: Weight of the synthetic features' regression in the regressors' objective.
    synthetic_weight: float = 0.1
    #: Cross-modal alignment in the common space: cmpm, mmd, coral or none.
    alignment: str = "cmpm"
    align_weight: float = 0.1
    #: cmpm's softmax temperature over cosine similarities.
    temperature: float = 0.1
    #: The regressors' own optimiser (AdamW) and updates per iteration, and their hidden-layer dropout.
    regressor_lr: float = 1e-3
    regressor_steps: int = 2
    regressor_weight_decay: float = 1e-4
    dropout: float = 0.2
    #: Z-score each modality's embeddings with the statistics of its seen-class training embeddings.
    standardize_embeddings: bool = False
    #: A modality classifier behind a gradient-reversal layer (the sibling code's adversary).
    modality_adversary: bool = False
    adversary_weight: float = 0.01

    def _validate(self, train: TrainView) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ZSBenchError(f"cfsa: alignment={self.alignment!r} is unknown; use one of {', '.join(ALIGNMENTS)}")
        if self.schedule not in SCHEDULES:
            raise ZSBenchError(f"cfsa: schedule={self.schedule!r} is unknown; use one of {', '.join(SCHEDULES)}")
        for field_name in ("hidden", "epochs", "epoch_steps", "batch_size", "n_critic", "regressor_steps"):
            if int(getattr(self, field_name)) < 1:
                raise ZSBenchError(f"cfsa: {field_name} must be a positive integer, got {getattr(self, field_name)}")
        if self.regressor_epochs < 0:
            raise ZSBenchError(f"cfsa: regressor_epochs must be >= 0, got {self.regressor_epochs}")
        if self.schedule == "two-stage" and self.synthesis and self.regressor_epochs < 1:
            raise ZSBenchError("cfsa: schedule='two-stage' trains the regressors on synthetic features only after "
                               "the GANs; set regressor_epochs >= 1")
        if self.noise_dim < 0:
            raise ZSBenchError(f"cfsa: noise_dim must be >= 0 (0 = embedding size), got {self.noise_dim}")
        if self.temperature <= 0:
            raise ZSBenchError(f"cfsa: temperature must be > 0, got {self.temperature}")
        if not 0 <= self.dropout < 1:
            raise ZSBenchError(f"cfsa: dropout must be in [0, 1), got {self.dropout}")
        if len(train.modalities) < 2:
            raise ZSBenchError(f"cfsa needs two modalities, the dataset has {list(train.modalities)}")

    def step_config(self) -> StepConfig:
        """The step's hyper-parameters are this method's fields of the same names."""
        return StepConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(StepConfig)})

    def build(self, train: TrainView, seed: int) -> CFSATrainer:
        """Networks, optimisers and device-resident data for ``train``; fit() then runs the epochs."""
        self._validate(train)
        self.begin_fit(seed)
        emb = np.asarray(train.class_embeddings, dtype=np.float32)
        targets = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self.scalers_ = {m: Standardizer(train.features[m]) for m in train.modalities}
        scaled = {m: self.scalers_[m](train.features[m]) for m in train.modalities}
        features = {m: to_tensor(scaled[m], self.device_) for m in train.modalities}
        labels = {m: torch.as_tensor(np.asarray(train.labels[m], dtype=np.int64), device=self.device_)
                  for m in train.modalities}
        # The rows the embedding statistics are computed on: a fixed sample, so their cost is bounded.
        pick = np.random.default_rng(seed)
        self._statistics_rows = {m: x[np.sort(pick.permutation(len(x))[:STATISTICS_ROWS])] for m, x in scaled.items()}
        self.embedding_scalers_ = None
        noise_dim = self.noise_dim or train.embedding_dim
        nets = CFSANetworks({m: train.dim(m) for m in train.modalities}, train.embedding_dim, noise_dim,
                            self.hidden, self.modality_adversary, self.dropout).to(self.device_)
        self.regressors_ = nets.regressors
        # Only class *embeddings* of unseen classes go in: the view holds no unseen sample to give.
        return CFSATrainer(nets, features, labels, to_tensor(targets, self.device_), np.asarray(train.seen_classes),
                           np.asarray(train.unseen_classes), self.step_config(), seed, paired=train.paired)

    def fit(self, train: TrainView, seed: int) -> CFSA:
        trainer = self.trainer_ = self.build(train, seed)
        widest = max(train.dim(m) for m in train.modalities) + train.embedding_dim
        tiny = self.device_.type == "cpu" and self.batch_size * self.hidden * widest < SMALL_LAYER_MACS
        with _cpu_threads(1 if tiny else None):
            self._train(trainer)
        return self

    def _train(self, trainer: CFSATrainer) -> None:
        n_epochs = self.epochs + self.regressor_epochs
        total = n_epochs * self.epoch_steps
        self.set_total_steps(total)
        for epoch in range(n_epochs):
            gan_epoch = epoch < self.epochs
            synthetic_to_regressors = not gan_epoch or self.schedule == "joint"
            logs = LossMeter()
            for step in range(self.epoch_steps):
                trainer.step((epoch * self.epoch_steps + step) / total, logs, train_gan=gan_epoch,
                             synthetic_to_regressors=synthetic_to_regressors)
                self.advance(1)
            self._refresh_embedding_statistics()
            self.log_epoch(epoch, **logs.means())

    def _refresh_embedding_statistics(self) -> None:
        if self.standardize_embeddings:
            self.embedding_scalers_ = {m: Standardizer(predict(self.regressors_[m], X, self.device_))
                                       for m, X in self._statistics_rows.items()}

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        if modality not in self.regressors_:
            raise ZSBenchError(f"cfsa was trained on {list(self.regressors_)}, not on modality {modality!r}")
        Z = predict(self.regressors_[modality], self.scalers_[modality](X), self.device_)
        if self.standardize_embeddings:
            if self.embedding_scalers_ is None:  # before the first epoch ended (a hook looking early)
                self._refresh_embedding_statistics()
            Z = self.embedding_scalers_[modality](Z)
        return Z


register_method("cfsa-no-synthesis", CFSA, synthesis=False)
register_method("cfsa-no-unseen-synthesis", CFSA, synthesize_unseen=False)
register_method("cfsa-no-cycle", CFSA, cycle_weight=0.0)
register_method("cfsa-no-align", CFSA, alignment="none")
register_method("cfsa-paper-width", CFSA, hidden=4096)
