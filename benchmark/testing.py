"""Small methods for tests and the perf suite: fast and deterministic, and ones that fail on purpose.

They are not registered (they would clutter ``zsbench methods``); use them as ``benchmark.testing:Name``,
which every executor's workers can import.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from benchmark.contract import IntRange, LogUniform, Method, TrainView

#: When set, every ``fit`` appends a line "<method> <seed>" to this file (tests count runs with it).
FIT_LOG_ENV = "ZSBENCH_TEST_FIT_LOG"


@dataclass
class RidgeProjection(Method):
    """A seeded random projection of each modality, then ridge regression onto its class embeddings.

    Closed form, so a fit takes milliseconds; ``delay_s`` stretches it to give tests time to kill a grid.
    """

    name = "ridge-projection"
    search_space = {"ridge": LogUniform(1e-3, 1e2), "proj_dim": IntRange(8, 64, log=True)}
    proj_dim: int = 64
    ridge: float = 1.0
    delay_s: float = 0.0

    def fit(self, train: TrainView, seed: int) -> RidgeProjection:
        log = os.environ.get(FIT_LOG_ENV)
        if log:
            with open(log, "a") as handle:
                handle.write(f"{self.name} {seed}\n")
        rng = self.begin_fit(seed)
        self.set_total_steps(1)
        targets = train.class_embeddings / np.linalg.norm(train.class_embeddings, axis=1, keepdims=True)
        self.projections_, self.weights_, losses = {}, {}, {}
        for m in train.modalities:
            P = (rng.standard_normal((train.dim(m), self.proj_dim)) / np.sqrt(train.dim(m))).astype(np.float32)
            H = (train.features[m] @ P).astype(np.float64)
            T = targets[train.labels[m]]
            W = np.linalg.solve(H.T @ H + self.ridge * np.eye(self.proj_dim), H.T @ T)
            self.projections_[m], self.weights_[m] = P, W
            losses[f"mse_{m}"] = float(np.mean((H @ W - T) ** 2))
        self.advance()
        self.log_epoch(0, **losses)
        time.sleep(self.delay_s)
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        H = (np.asarray(X, dtype=np.float32) @ self.projections_[modality]).astype(np.float64)
        return (H @ self.weights_[modality]).astype(np.float32)


@dataclass
class RaisesMidTraining(RidgeProjection):
    """Fails after its first epoch, the way a method with a bug does."""

    name = "raises-mid-training"

    def fit(self, train: TrainView, seed: int) -> RaisesMidTraining:
        self.begin_fit(seed)
        self.log_epoch(0, loss=1.0)
        raise RuntimeError("simulated failure in epoch 1")


@dataclass
class FailsWhenNarrow(RidgeProjection):
    """Raises in ``fit`` below 24 projection dimensions: some trials of a tuning study fail, the others score."""

    name = "fails-when-narrow"

    def fit(self, train: TrainView, seed: int) -> FailsWhenNarrow:
        if self.proj_dim < 24:
            raise RuntimeError(f"simulated failure at proj_dim {self.proj_dim}")
        return super().fit(train, seed)


@dataclass
class NaNEmbeddings(RidgeProjection):
    """Trains, then embeds some items as NaN (a diverged network that no loss check caught)."""

    name = "nan-embeddings"

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        Z = super().embed(modality, X)
        Z[::7] = np.nan
        return Z


#: When set, :class:`SpyRidge` appends one JSON line per fit: the class names of its view and of its samples.
SPY_LOG_ENV = "ZSBENCH_TEST_SPY_LOG"


@dataclass
class SpyRidge(RidgeProjection):
    """RidgeProjection that writes down what its train view holds (tests check no test class reaches it)."""

    name = "spy-ridge"

    def fit(self, train: TrainView, seed: int) -> SpyRidge:
        import json

        log = os.environ.get(SPY_LOG_ENV)
        if log:
            sample_classes = sorted({train.class_names[c] for m in train.modalities
                                     for part in (train.labels, train.holdout_labels) for c in part[m]})
            with open(log, "a") as handle:
                handle.write(json.dumps({"view_classes": list(train.class_names), "sample_classes": sample_classes})
                             + "\n")
        return super().fit(train, seed)


#: When set, :class:`WorkerSpy` appends one JSON line per fit: where and how the fit ran.
WORKER_LOG_ENV = "ZSBENCH_TEST_WORKER_LOG"


@dataclass
class WorkerSpy(RidgeProjection):
    """RidgeProjection that writes down its process, thread count, device and whether the orphan watchdog of
    a local worker is running (tests check that ``run`` and ``tune`` start their workers the same way)."""

    name = "worker-spy"

    def fit(self, train: TrainView, seed: int) -> WorkerSpy:
        import json
        import threading

        import torch

        fitted = super().fit(train, seed)
        log = os.environ.get(WORKER_LOG_ENV)
        if log:
            watchdog = any(t.name == "zsbench-driver-watch" for t in threading.enumerate())
            with open(log, "a") as handle:
                handle.write(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads(), "seed": seed,
                                         "device": str(self.device_), "watchdog": watchdog}) + "\n")
        return fitted


@dataclass
class PeaksAtEpoch(RidgeProjection):
    """Trains for ``epochs`` epochs and embeds well only at epoch ``peak`` (the ridge solution) and as random
    noise (chance-level retrieval) at every other epoch: tests know the epoch a stopping rule must pick."""

    name = "peaks-at-epoch"
    epochs: int = 6
    peak: int = 3

    def fit(self, train: TrainView, seed: int) -> PeaksAtEpoch:
        super().fit(train, seed)
        self.history_ = []
        for epoch in range(self.epochs):
            self.epoch_ = epoch
            self.log_epoch(epoch, loss=float(abs(epoch - self.peak)))
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        Z = super().embed(modality, X)
        if getattr(self, "epoch_", self.peak) == self.peak:
            return Z
        return np.random.default_rng(len(X)).standard_normal(Z.shape).astype(np.float32)
