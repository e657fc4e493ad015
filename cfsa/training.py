"""One CFSA training step: 5 critic updates, one coupled generator update, one regressor update.

The two generators are coupled through their conditioning: in the generator update both modalities'
generators receive the same class embeddings and the same noise, so each synthetic row is a correlated
cross-modal pair of one class, which the alignment term then sees as a matched pair. The regressors learn
from real seen-class features, from synthetic features (of seen classes, and of unseen classes when
``synthesize_unseen``: only their class embeddings are used, never a sample), and from the alignment
between modalities in the common space.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.torch_utils import reversal_ramp
from cfsa.losses import (
    alignment_loss,
    critic_loss,
    cycle_loss,
    generator_adversarial_loss,
    gradient_penalty,
    regression_loss,
)
from cfsa.networks import ConditionalCritic, ConditionalGenerator, ModalityClassifier, Regressor


@dataclass(frozen=True)
class StepConfig:
    """The hyper-parameters a training step needs (a subset of the method's)."""

    batch_size: int = 64
    n_critic: int = 5
    gp_weight: float = 10.0
    cycle_weight: float = 0.1
    synthetic_weight: float = 0.01
    synthesize_unseen: bool = True
    alignment: str = "cmpm"
    align_weight: float = 1e-4
    modality_adversary: bool = False
    adversary_weight: float = 0.01
    lr: float = 1e-4
    beta1: float = 0.5

    @property
    def uses_synthetic(self) -> bool:
        """Whether synthetic features reach the regressors at all."""
        return self.synthetic_weight > 0 or (self.alignment != "none" and self.align_weight > 0)


class CFSANetworks(nn.Module):
    """G_m, D_m, R_m per modality and the optional modality classifier."""

    def __init__(self, feature_dims: dict[str, int], embedding_dim: int, noise_dim: int, hidden: int,
                 modality_adversary: bool):
        super().__init__()
        self.modalities = tuple(feature_dims)
        self.generators = nn.ModuleDict({m: ConditionalGenerator(embedding_dim, noise_dim, d, hidden)
                                         for m, d in feature_dims.items()})
        self.critics = nn.ModuleDict({m: ConditionalCritic(d, embedding_dim, hidden) for m, d in feature_dims.items()})
        self.regressors = nn.ModuleDict({m: Regressor(d, embedding_dim, hidden) for m, d in feature_dims.items()})
        self.adversary = (ModalityClassifier(embedding_dim, len(feature_dims), min(hidden, 512))
                          if modality_adversary else None)


def _set_trainable(module: nn.Module | None, flag: bool) -> None:
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(flag)


class CFSATrainer:
    """Holds the networks, their optimisers and the (device-resident) training data; ``step`` trains once.

    ``features[m]``/``labels[m]`` are real seen-class samples; ``targets`` are the class embeddings of all
    classes (the conditioning and the regression targets); ``seen``/``unseen`` are class ids. Index and
    noise draws come from a numpy generator and a CPU torch generator, so a seed fixes the run on CPU.
    """

    def __init__(self, nets: CFSANetworks, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                 targets: torch.Tensor, seen: np.ndarray, unseen: np.ndarray, config: StepConfig, seed: int):
        self.nets, self.config = nets, config
        self.features, self.labels, self.targets = features, labels, targets
        self.seen, self.unseen = np.asarray(seen), np.asarray(unseen)
        self.device = targets.device
        self.noise_dim = next(iter(nets.generators.values())).noise_dim
        self.rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator().manual_seed(seed)
        betas = (config.beta1, 0.999)
        self.opt_critic = torch.optim.Adam(nets.critics.parameters(), lr=config.lr, betas=betas)
        self.opt_generator = torch.optim.Adam(nets.generators.parameters(), lr=config.lr, betas=betas)
        regressor_params = list(nets.regressors.parameters())
        if nets.adversary is not None:
            regressor_params += list(nets.adversary.parameters())
        self.opt_regressor = torch.optim.Adam(regressor_params, lr=config.lr, betas=betas)

    # -- sampling ------------------------------------------------------------------------------------------
    def _real_batch(self, m: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(self.rng.integers(0, len(self.labels[m]), self.config.batch_size), device=self.device)
        return self.features[m][idx], self.labels[m][idx]

    def _classes(self, pool: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(pool[self.rng.integers(0, len(pool), self.config.batch_size)], device=self.device)

    def _uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.torch_rng).to(self.device)

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, generator=self.torch_rng).to(self.device)

    # -- the three updates ---------------------------------------------------------------------------------
    def critic_update(self, logs: dict[str, torch.Tensor]) -> None:
        cfg, nets = self.config, self.nets
        loss = 0.0
        for m in nets.modalities:
            x, y = self._real_batch(m)
            c = self.targets[y]
            with torch.no_grad():
                fake = nets.generators[m](c, self._noise(len(y)))
            scores = nets.critics[m](torch.cat([x, fake]), torch.cat([c, c]))
            real_scores, fake_scores = scores[: len(y)], scores[len(y):]
            penalty = gradient_penalty(nets.critics[m], x, fake, c, mix=self._uniform(len(y), 1))
            loss = loss + critic_loss(real_scores, fake_scores) + cfg.gp_weight * penalty
            _add(logs, f"wasserstein_{m}", (real_scores.mean() - fake_scores.mean()) / cfg.n_critic)
            _add(logs, f"gp_{m}", penalty / cfg.n_critic)
        self.opt_critic.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_critic.step()

    def generator_update(self, logs: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Returns the synthetic features per modality (detached) and their class ids, for the regressors."""
        cfg, nets = self.config, self.nets
        seen_ids = self._classes(self.seen)
        c_seen, z_seen = self.targets[seen_ids], self._noise(len(seen_ids))  # shared by all modalities
        with_unseen = cfg.synthesize_unseen and len(self.unseen) > 0
        if with_unseen:
            unseen_ids = self._classes(self.unseen)
            c_unseen, z_unseen = self.targets[unseen_ids], self._noise(len(unseen_ids))
        _set_trainable(nets.critics, False)
        _set_trainable(nets.regressors, False)
        loss, synthetic = 0.0, {}
        for m in nets.modalities:
            generator = nets.generators[m]
            fake_seen = generator(c_seen, z_seen)
            adversarial = generator_adversarial_loss(nets.critics[m](fake_seen, c_seen))
            loss = loss + adversarial
            _add(logs, f"generator_{m}", adversarial)
            fake_unseen = None
            if with_unseen:
                with torch.set_grad_enabled(cfg.cycle_weight > 0):
                    fake_unseen = generator(c_unseen, z_unseen)
            if cfg.cycle_weight > 0:
                cycle = cycle_loss(nets.regressors[m](fake_seen), c_seen)
                if fake_unseen is not None:
                    cycle = (cycle + cycle_loss(nets.regressors[m](fake_unseen), c_unseen)) / 2
                loss = loss + cfg.cycle_weight * cycle
                _add(logs, f"cycle_{m}", cycle)
            if fake_unseen is not None:
                synthetic[m] = (torch.cat([fake_seen, fake_unseen]).detach(), torch.cat([seen_ids, unseen_ids]))
            else:
                synthetic[m] = (fake_seen.detach(), seen_ids)
        self.opt_generator.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_generator.step()
        _set_trainable(nets.critics, True)
        _set_trainable(nets.regressors, True)
        return synthetic

    def regressor_update(self, synthetic: dict[str, tuple[torch.Tensor, torch.Tensor]], progress: float,
                         logs: dict[str, torch.Tensor]) -> None:
        cfg, nets = self.config, self.nets
        real, fake = {}, {}
        loss = 0.0
        for m in nets.modalities:
            x, y = self._real_batch(m)
            real[m] = (nets.regressors[m](x), y)
            reg = regression_loss(real[m][0], self.targets[y])
            loss = loss + reg
            _add(logs, f"regression_{m}", reg)
            if cfg.uses_synthetic:
                xs, ys = synthetic[m]
                fake[m] = (nets.regressors[m](xs), ys)
                if cfg.synthetic_weight > 0:
                    reg_syn = regression_loss(fake[m][0], self.targets[ys])
                    loss = loss + cfg.synthetic_weight * reg_syn
                    _add(logs, f"synthetic_{m}", reg_syn)
        if cfg.alignment != "none" and cfg.align_weight > 0:
            align = 0.0
            for a, b in combinations(nets.modalities, 2):
                align = align + alignment_loss(cfg.alignment, real[a][0], real[b][0], real[a][1], real[b][1])
                align = align + alignment_loss(cfg.alignment, fake[a][0], fake[b][0], fake[a][1], fake[b][1])
            loss = loss + cfg.align_weight * align
            _add(logs, "alignment", align)
        if nets.adversary is not None:
            embeddings = torch.cat([real[m][0] for m in nets.modalities])
            modality_ids = torch.cat([torch.full((len(real[m][1]),), i, device=self.device)
                                      for i, m in enumerate(nets.modalities)])
            logits = nets.adversary(embeddings, reversal_scale=reversal_ramp(progress))
            adversary = F.cross_entropy(logits, modality_ids)
            loss = loss + cfg.adversary_weight * adversary
            _add(logs, "modality_adversary", adversary)
        self.opt_regressor.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_regressor.step()

    def step(self, progress: float = 0.0, logs: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One generator iteration; ``progress`` in [0, 1] drives the reversal ramp. Losses add into ``logs``."""
        logs = {} if logs is None else logs
        for _ in range(self.config.n_critic):
            self.critic_update(logs)
        synthetic = self.generator_update(logs)
        self.regressor_update(synthetic, progress, logs)
        return logs


def _add(logs: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    # Kept on the device and summed lazily: a .item() per loss per step would synchronise a GPU each time.
    value = value.detach()
    logs[key] = logs[key] + value if key in logs else value
