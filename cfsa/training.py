"""CFSA's training iteration: the coupled GAN update (critics, then generators) and the regressor updates.

One iteration is ``n_critic`` critic updates and one generator update (the *GAN step*, skipped when the
GANs are frozen or synthesis is off), then ``regressor_steps`` regressor updates, each on a fresh real
batch and, when synthetic features are in use, a fresh synthetic batch from the current generators.

The generators are coupled through their conditioning: every modality's generator receives the same class
embeddings (and, with ``shared_noise``, the same noise; JFSE draws each modality's noise apart), so each
synthetic row is a cross-modal pair of one class, which the alignment term sees as a matched pair (a
correlated one with shared noise). The regressors learn from real seen-class features,
from synthetic features (of seen classes, and of unseen classes when ``synthesize_unseen``: only their
class embeddings are used, never a sample), and from the alignment between modalities in the common space.
On paired data (row i of every modality is one item) real batches draw the same rows in every modality,
so the alignment sees each item's cross-modal partner.
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
    regression_loss,
)
from cfsa.networks import ConditionalCritic, ConditionalGenerator, ModalityClassifier, Regressor


@dataclass(frozen=True)
class StepConfig:
    """The hyper-parameters a training iteration needs: a subset of the method's, same names, and no defaults of its
    own (``CFSA.step_config()`` builds it from the method, where the defaults and their sources are)."""

    batch_size: int
    n_critic: int
    gp_weight: float
    lr: float
    beta1: float
    synthesis: bool
    synthesize_unseen: bool
    cycle_weight: float
    synthetic_weight: float
    alignment: str
    align_weight: float
    synthetic_align_weight: float
    temperature: float
    regressor_lr: float
    regressor_beta1: float
    regressor_steps: int
    regressor_weight_decay: float
    modality_adversary: bool
    adversary_weight: float
    shared_noise: bool
    critic_same_batch: bool
    distance_reduction: str

    @property
    def aligns(self) -> bool:
        return self.alignment != "none" and (self.align_weight > 0 or self.synthetic_align_weight > 0)

    @property
    def synthetic_to_regressors(self) -> bool:
        """Whether synthetic features reach the regressors' updates (given a stage that allows them)."""
        return self.synthesis and (self.synthetic_weight > 0 or
                                   (self.alignment != "none" and self.synthetic_align_weight > 0))


class CFSANetworks(nn.Module):
    """G_m, D_m, R_m per modality and the optional modality classifier."""

    def __init__(self, feature_dims: dict[str, int], embedding_dim: int, noise_dim: int, hidden: int,
                 modality_adversary: bool, dropout: float = 0.0):
        super().__init__()
        self.modalities = tuple(feature_dims)
        self.generators = nn.ModuleDict({m: ConditionalGenerator(embedding_dim, noise_dim, d, hidden)
                                         for m, d in feature_dims.items()})
        self.critics = nn.ModuleDict({m: ConditionalCritic(d, embedding_dim, hidden) for m, d in feature_dims.items()})
        self.regressors = nn.ModuleDict({m: Regressor(d, embedding_dim, hidden, dropout)
                                         for m, d in feature_dims.items()})
        self.adversary = (ModalityClassifier(embedding_dim, len(feature_dims), min(hidden, 512))
                          if modality_adversary else None)


def _set_trainable(module: nn.Module | None, flag: bool) -> None:
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(flag)


class LossMeter(dict):
    """Loss name -> (sum, count) over an epoch, kept on the device (a .item() per loss per step would
    synchronise a GPU each time); ``means()`` gives the per-epoch means that ``log_epoch`` records."""

    def add(self, key: str, value: torch.Tensor) -> None:
        total, count = self.get(key, (0.0, 0))
        self[key] = (total + value.detach(), count + 1)

    def means(self) -> dict[str, float]:
        return {k: float(total) / count for k, (total, count) in self.items()}


class CFSATrainer:
    """Holds the networks, their optimisers and the (device-resident) training data; ``step`` trains once.

    ``features[m]``/``labels[m]`` are real seen-class samples; ``targets`` are the class embeddings of all
    classes (the conditioning and the regression targets); ``seen``/``unseen`` are class ids; ``paired``
    says that row i of every modality is one item. Index and noise draws come from a numpy generator and a
    CPU torch generator, so a seed fixes the run on CPU.
    """

    def __init__(self, nets: CFSANetworks, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                 targets: torch.Tensor, seen: np.ndarray, unseen: np.ndarray, config: StepConfig, seed: int,
                 paired: bool = False):
        self.nets, self.config = nets, config
        self.features, self.labels, self.targets = features, labels, targets
        # The generators' and critics' condition: the unit-norm class embedding scaled to unit variance per
        # dimension, the scale of the noise and of the z-scored features beside it in their inputs. At unit
        # norm the condition was a 50-d whisper next to 50 noise dimensions (norm ~7) and 1280 feature
        # dimensions (norm ~36): the GANs were unconditional in effect and their features carried no class.
        self.conditions = targets * targets.shape[1] ** 0.5
        self.seen, self.unseen = np.asarray(seen), np.asarray(unseen)
        sizes = {len(y) for y in labels.values()}
        if paired and len(sizes) != 1:
            raise ValueError(f"paired data must have as many rows in every modality, got {sorted(sizes)}")
        self.paired = paired
        self.device = targets.device
        self.noise_dim = next(iter(nets.generators.values())).noise_dim
        self.rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator().manual_seed(seed)
        betas = (config.beta1, 0.999)
        # Fused Adam: one kernel per parameter instead of a dozen element-wise passes; the unfused update took
        # a fifth of a step's time at width 256 (the critics' first layers are the largest tensors).
        fused = {"fused": True}
        self.opt_critic = torch.optim.Adam(nets.critics.parameters(), lr=config.lr, betas=betas, **fused)
        self.opt_generator = torch.optim.Adam(nets.generators.parameters(), lr=config.lr, betas=betas, **fused)
        regressor_params = list(nets.regressors.parameters())
        if nets.adversary is not None:
            regressor_params += list(nets.adversary.parameters())
        self.opt_regressor = torch.optim.AdamW(regressor_params, lr=config.regressor_lr,
                                               betas=(config.regressor_beta1, 0.999),
                                               weight_decay=config.regressor_weight_decay, **fused)

    # -- sampling ------------------------------------------------------------------------------------------
    def real_batches(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """One real batch per modality; on paired data the same rows (items) in every modality."""
        n = self.config.batch_size
        shared = self.rng.integers(0, len(next(iter(self.labels.values()))), n) if self.paired else None
        batches = {}
        for m in self.nets.modalities:
            idx = shared if shared is not None else self.rng.integers(0, len(self.labels[m]), n)
            idx = torch.as_tensor(idx, device=self.device)
            batches[m] = (self.features[m][idx], self.labels[m][idx])
        return batches

    def _classes(self, pool: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(pool[self.rng.integers(0, len(pool), self.config.batch_size)], device=self.device)

    def _uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.torch_rng).to(self.device)

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, generator=self.torch_rng).to(self.device)

    def synthetic_conditions(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Class ids for one synthetic batch of all modalities (seen, then unseen classes) and each modality's
        noise: one draw shared by all modalities (``shared_noise``) or one draw each (JFSE)."""
        ids = self._classes(self.seen)
        if self.config.synthesize_unseen and len(self.unseen) > 0:
            ids = torch.cat([ids, self._classes(self.unseen)])
        return ids, self._noises(len(ids))

    def _noises(self, n: int) -> dict[str, torch.Tensor]:
        if self.config.shared_noise:
            noise = self._noise(n)
            return {m: noise for m in self.nets.modalities}
        return {m: self._noise(n) for m in self.nets.modalities}

    # -- the updates ---------------------------------------------------------------------------------------
    def critic_update(self, logs: LossMeter, batches=None, noises=None) -> None:
        """One critic update on ``batches`` with generator ``noises`` (fresh draws, one per modality, when not
        given)."""
        cfg, nets = self.config, self.nets
        batches = self.real_batches() if batches is None else batches
        loss = 0.0
        for m, (x, y) in batches.items():
            c = self.conditions[y]
            with torch.no_grad():
                fake = nets.generators[m](c, self._noise(len(y)) if noises is None else noises[m][: len(y)])
            real_scores, fake_scores, penalty = nets.critics[m].scores_and_penalty(x, fake, c,
                                                                                   self._uniform(len(y), 1))
            loss = loss + critic_loss(real_scores, fake_scores) + cfg.gp_weight * penalty
            logs.add(f"wasserstein_{m}", real_scores.mean() - fake_scores.mean())
            logs.add(f"gp_{m}", penalty)
        self.opt_critic.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_critic.step()

    def generator_update(self, logs: LossMeter) -> None:
        """The coupled generators: fool the critics on seen classes; the cycle term R_m(G_m(c, z)) -> c on the
        seen and (when synthesised) unseen classes, through the frozen regressors in evaluation mode."""
        cfg, nets = self.config, self.nets
        ids, noises = self.synthetic_conditions()
        n_seen = self.config.batch_size
        c, target = self.conditions[ids], self.targets[ids]
        _set_trainable(nets.critics, False)
        _set_trainable(nets.regressors, False)
        nets.regressors.eval()
        loss = 0.0
        for m in nets.modalities:
            with_cycle = cfg.cycle_weight > 0
            rows = slice(None) if with_cycle else slice(0, n_seen)  # unseen rows serve the cycle term only
            fake = nets.generators[m](c[rows], noises[m][rows])
            adversarial = generator_adversarial_loss(nets.critics[m](fake[:n_seen], c[:n_seen]))
            loss = loss + adversarial
            logs.add(f"generator_{m}", adversarial)
            if with_cycle:
                cycle = cycle_loss(nets.regressors[m](fake), target, cfg.distance_reduction)
                loss = loss + cfg.cycle_weight * cycle
                logs.add(f"cycle_{m}", cycle)
        self.opt_generator.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_generator.step()
        nets.regressors.train()
        _set_trainable(nets.critics, True)
        _set_trainable(nets.regressors, True)

    def gan_step(self, logs: LossMeter) -> None:
        """``n_critic`` critic updates (on one real batch and one noise draw with ``critic_same_batch``, as
        JFSE's five discriminator steps share their feed), then one generator update."""
        if self.config.critic_same_batch:
            batches, noises = self.real_batches(), self._noises(self.config.batch_size)
            for _ in range(self.config.n_critic):
                self.critic_update(logs, batches, noises)
        else:
            for _ in range(self.config.n_critic):
                self.critic_update(logs)
        self.generator_update(logs)

    def synthetic_batches(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Fresh synthetic features per modality (no gradient to the generators), coupled across modalities."""
        ids, noises = self.synthetic_conditions()
        with torch.no_grad():
            return {m: (self.nets.generators[m](self.conditions[ids], noises[m]), ids) for m in self.nets.modalities}

    def regressor_update(self, logs: LossMeter, progress: float = 0.0, with_synthetic: bool = True) -> None:
        cfg, nets = self.config, self.nets
        real_batches = self.real_batches()
        synthetic = self.synthetic_batches() if with_synthetic and cfg.synthetic_to_regressors else {}
        real, fake = {}, {}
        for m, (x, y) in real_batches.items():
            if m not in synthetic:
                real[m] = (nets.regressors[m](x), y)
                continue
            # One pass over the real and synthetic rows: one product per layer and no gradient to sum.
            x_synthetic, y_synthetic = synthetic[m]
            embedded = nets.regressors[m](torch.cat([x, x_synthetic]))
            real[m], fake[m] = (embedded[: len(y)], y), (embedded[len(y):], y_synthetic)
        loss = 0.0
        for m in nets.modalities:
            reg = regression_loss(real[m][0], self.targets[real[m][1]], cfg.distance_reduction)
            loss = loss + reg
            logs.add(f"regression_{m}", reg)
            if fake and cfg.synthetic_weight > 0:
                reg_syn = regression_loss(fake[m][0], self.targets[fake[m][1]], cfg.distance_reduction)
                loss = loss + cfg.synthetic_weight * reg_syn
                logs.add(f"synthetic_{m}", reg_syn)
        if cfg.aligns:
            for name, embedded, weight in (("alignment", real, cfg.align_weight),
                                           ("alignment_synthetic", fake, cfg.synthetic_align_weight)):
                if not embedded or weight <= 0:
                    continue
                align = sum(alignment_loss(cfg.alignment, embedded[a][0], embedded[b][0], embedded[a][1],
                                           embedded[b][1], cfg.temperature)
                            for a, b in combinations(nets.modalities, 2))
                loss = loss + weight * align
                logs.add(name, align)
        if nets.adversary is not None:
            embeddings = torch.cat([real[m][0] for m in nets.modalities])
            modality_ids = torch.cat([torch.full((len(real[m][1]),), i, device=self.device)
                                      for i, m in enumerate(nets.modalities)])
            logits = nets.adversary(embeddings, reversal_scale=reversal_ramp(progress))
            adversary = F.cross_entropy(logits, modality_ids)
            loss = loss + cfg.adversary_weight * adversary
            logs.add("modality_adversary", adversary)
        self.opt_regressor.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_regressor.step()

    def step(self, progress: float = 0.0, logs: LossMeter | None = None, train_gan: bool = True,
             synthetic_to_regressors: bool = True) -> LossMeter:
        """One iteration: the GAN step (when ``train_gan`` and synthesis is on), then ``regressor_steps``
        regressor updates (on synthetic features too when ``synthetic_to_regressors``). ``progress`` in
        [0, 1] drives the adversary's reversal ramp. Losses add into ``logs``."""
        logs = LossMeter() if logs is None else logs
        if train_gan and self.config.synthesis:
            self.gan_step(logs)
        for _ in range(self.config.regressor_steps):
            self.regressor_update(logs, progress, synthetic_to_regressors)
        return logs
