"""``sem-pcyc``: the semantically aligned paired cycle-consistent GAN of Dutta & Akata, CVPR 2019.

Paper: A. Dutta, Z. Akata, "Semantically Tied Paired Cycle Consistency for Zero-Shot Sketch-based Image
Retrieval", CVPR 2019 (code: AnjanDutta/sem-pcyc, PyTorch).

What is implemented (as in the released code):
- semantic side information: the class embeddings (the paper concatenates word2vec and a WordNet
  hierarchy embedding, ``src/options.py`` l. 26; with the one source a dataset has, that one) pass through an
  auto-encoder (FC to 128 + ReLU, FC back), trained on reconstruction plus 0.001 x the summed column norms of
  its encoder weight (a feature-selection regulariser), SGD lr 100 x lr, momentum 0.9. Its code is the target
  semantic space;
- generators sketch->semantic, image->semantic, semantic->sketch, semantic->image, each FC to (in+out)/2,
  BatchNorm, LeakyReLU 0.2, dropout 0.5, twice, then FC; Adam lr 1e-4;
- discriminators on the semantic space (real: the encoded class embedding; fake: both mapped modalities)
  and on each feature space (real features against features generated from the semantic code), with
  input noise of std 0.3, FC to in/2, BatchNorm, LeakyReLU, twice, then FC to 1; least-squares GAN loss with
  soft noisy labels (real 0.7-1.0, fake 0-0.3); SGD lr 1e-4, momentum 0.9; weights 0.25 / 0.5 / 0.5;
- generator losses: adversarial (x1), cycle consistency (L1, x1: feature -> semantic -> feature for both
  modalities, semantic -> feature -> semantic for both), classification (x1, cross-entropy of fixed linear
  classifiers over the seen classes on the generated semantic codes and features; the released code
  freezes these classifiers at their random initialisation, and so does this one), and the released
  code's regression term (x0.1: the two mapped modalities towards each other, semantic->feature outputs
  towards the real features); the per-space weights are 10 each;
- batches of 128 same-class (sketch, image) pairs, classes drawn uniformly; an epoch is 100 batches;
- retrieval: both modalities are mapped into the semantic space by their generators and ranked by
  Euclidean distance (the code scores exp(-distance); negative distance gives the same ranking without
  underflow ties).

Roles: the query modality of the dataset's first task plays the sketch, the other modality the image; the
model is symmetric in the two, so every task of a two-modality dataset is served.

Deviations, each for a stated reason:
- Inputs: the paper learns 512-d features (a VGG-16 whose last layer is replaced by FC 4096->512, trained
  on the seen classes, then frozen). The datasets here ship fixed features, so they are z-scored and
  reduced by PCA to 512 dimensions (``feature_dim``; None keeps them as they are).
- Training length: the release (AnjanDutta/sem-pcyc at 2e083fa) trains up to ``--epochs 100``
  (``src/options.py`` l. 53) epochs of ``--epoch-size 100`` batches of 128 (l. 45-46, drawn with replacement by
  a ``WeightedRandomSampler``, ``src/train.py`` l. 148), validates every epoch on held-out classes, stops when
  21 epochs in a row have not improved the best validation mAP (``--early-stop 20``, options l. 51; train
  l. 242-250: at least 22 epochs) and tests the best validation checkpoint (train l. 266-276). The defaults
  here are the upper bound of that length, ``epochs = 100`` of ``batches_per_epoch = 100``: 10,000 steps (each
  an auto-encoder, a generator and a discriminator update) whatever the dataset's size, with no early
  stopping and no checkpoint selection (the method sees no held-out class; the model after the last epoch is
  scored). Training budgets (``zsbench run --budget``): ``paper`` is the defaults; ``cpu`` (the default) is
  ``epochs = 10``: 1,000 steps.
- Pairs: the release pairs every training sketch with every training photo *of its class* (the
  coarse-grained product of ``get_coarse_grained_samples``, at most 100,000 pairs a class, ``src/utils.py``
  l. 103-128), for Sketchy (l. 163) as for TU-Berlin (l. 215): Sketchy's sketch-photo instance pairs are not
  used. Here unpaired data gets the same (a same-class item of the other modality), but paired datasets keep
  their pairs (row i of both modalities).
- Semantic sizes: the paper's auto-encoder compresses word2vec (300-d) plus a hierarchy embedding to 128
  (``--dim-out``, options l. 43; ``sem_dim`` is the sum of the sources' sizes, train l. 68-72), so its
  column-norm term selects input dimensions. Here the class embeddings are the dataset's, 50-d GloVe by
  default: the encoder *expands* 50 to 128 (``semantic_dim``), and the feature-selection term has nothing to
  select; it remains only as a small weight penalty.
- The auto-encoder's decoder output is linear (the code's ReLU cannot reconstruct the negative
  coordinates that word vectors have).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from baselines.feature_space import ReducedFeatures, modality_roles, two_modality_reason
from benchmark.contract import IntRange, LogUniform, Method, TrainView, ZSBenchError, register_method
from benchmark.torch_utils import predict, to_tensor


class GaussianNoise(nn.Module):
    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x) if self.training and self.std > 0 else x


def generator(d_in: int, d_out: int, dropout: float = 0.5) -> nn.Sequential:
    hidden = (d_in + d_out) // 2
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
        nn.Linear(hidden, d_out),
    )


def discriminator(d_in: int, noise_std: float = 0.3) -> nn.Sequential:
    hidden = max(1, d_in // 2)
    return nn.Sequential(
        GaussianNoise(noise_std), nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1),
    )


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss against soft, noisy labels (real in [0.7, 1), fake in [0, 0.3))."""
    noise = 0.3 * torch.rand(scores.shape[0], device=scores.device)
    target = 0.7 + noise if real else noise
    return (scores.reshape(-1) - target).pow(2).mean()


def cycle_consistency(image: torch.Tensor, image_back: torch.Tensor, sketch: torch.Tensor,
                      sketch_back: torch.Tensor, semantic: torch.Tensor, semantic_via_sketch: torch.Tensor,
                      semantic_via_image: torch.Tensor, w_image: float, w_sketch: float,
                      w_semantic: float) -> torch.Tensor:
    """The paired cycle term: mean absolute error of every round trip, weighted per space."""
    l1 = nn.functional.l1_loss
    return (w_image * l1(image_back, image) + w_sketch * l1(sketch_back, sketch)
            + w_semantic * (l1(semantic_via_sketch, semantic) + l1(semantic_via_image, semantic)))


class SemanticAutoEncoder(nn.Module):
    def __init__(self, d_sem: int, d_code: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d_sem, d_code), nn.ReLU())
        self.decoder = nn.Linear(d_code, d_sem)

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(s)
        return code, self.decoder(code)

    def column_norms(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.encoder[0].weight, dim=0).sum()


@register_method("sem-pcyc")
@dataclass
class SemPCYC(Method):
    name = "sem-pcyc"
    #: The main training loss the convergence rule reads: the generators' loss.
    convergence_loss = ("generator",)
    max_modalities = 2
    quick_params = {"semantic_dim": 8, "feature_dim": 8, "epochs": 2, "batches_per_epoch": 3, "batch_size": 16}
    #: ``paper``: the defaults (the release's upper bound of 100 epochs). ``cpu``: 10 epochs.
    budgets = {"paper": {}, "cpu": {"epochs": 10}}
    search_space = {
        "lr": LogUniform(1e-5, 1e-3),
        "weight_cycle": LogUniform(0.1, 10.0),
        "weight_adversarial": LogUniform(0.1, 10.0),
        "weight_classification": LogUniform(0.1, 10.0),
        "weight_regression": LogUniform(0.01, 1.0),
        "semantic_dim": IntRange(32, 256, log=True),
    }
    semantic_dim: int = 128  # the paper's dim_out
    feature_dim: int | None = 512  # the paper's feature size; inputs are PCA-reduced to it
    epochs: int = 100  # the release's upper bound (it stops early on held-out classes, after 22 epochs at least)
    batches_per_epoch: int = 100
    batch_size: int = 128
    lr: float = 1e-4
    momentum: float = 0.9
    weight_semantic: float = 10.0
    weight_image: float = 10.0
    weight_sketch: float = 10.0
    weight_cycle: float = 1.0
    weight_adversarial: float = 1.0
    weight_classification: float = 1.0
    weight_regression: float = 0.1
    weight_disc_semantic: float = 0.25
    weight_disc_sketch: float = 0.5
    weight_disc_image: float = 0.5
    weight_autoencoder_sparsity: float = 0.001
    query_modality: str | None = None  # None: the query modality of the dataset's first task

    def supports(self, train: TrainView) -> str | None:
        return two_modality_reason(self.name, train, self.query_modality)

    def fit(self, train: TrainView, seed: int) -> SemPCYC:
        reason = self.supports(train)
        if reason:
            raise ZSBenchError(reason)
        rng = self.begin_fit(seed)
        dev = self.device_
        sk_m, im_m = self.sketch_modality_, self.image_modality_ = modality_roles(train, self.query_modality)
        self.reducers_ = {m: ReducedFeatures(train.features[m], self.feature_dim, seed) for m in (sk_m, im_m)}
        SK = to_tensor(self.reducers_[sk_m](train.features[sk_m]), dev)
        IM = to_tensor(self.reducers_[im_m](train.features[im_m]), dev)
        y_sk, y_im = train.labels[sk_m], train.labels[im_m]
        classes = np.intersect1d(np.unique(y_sk), np.unique(y_im))
        if classes.size == 0:
            raise ZSBenchError(f"sem-pcyc: no seen class has both {sk_m} and {im_m} training items")
        by_class_sk = [np.flatnonzero(y_sk == c) for c in classes]
        by_class_im = [np.flatnonzero(y_im == c) for c in classes]
        semantics = to_tensor(train.class_embeddings[classes], dev)
        d_sk, d_im, d_se = SK.shape[1], IM.shape[1], self.semantic_dim

        self.sk2se_, self.im2se_ = generator(d_sk, d_se).to(dev), generator(d_im, d_se).to(dev)
        se2sk, se2im = generator(d_se, d_sk).to(dev), generator(d_se, d_im).to(dev)
        disc_se, disc_sk, disc_im = (discriminator(d).to(dev) for d in (d_se, d_sk, d_im))
        autoencoder = SemanticAutoEncoder(semantics.shape[1], d_se).to(dev)
        classify_se, classify_sk, classify_im = (nn.Linear(d, classes.size, bias=False).to(dev)
                                                 for d in (d_se, d_sk, d_im))
        for frozen in (classify_se, classify_sk, classify_im):
            frozen.requires_grad_(False)
        generators = [self.sk2se_, self.im2se_, se2sk, se2im]
        discriminators = [disc_se, disc_sk, disc_im]
        opt_gen = torch.optim.Adam([p for g in generators for p in g.parameters()], lr=self.lr)
        opt_disc = torch.optim.SGD([p for d in discriminators for p in d.parameters()], lr=self.lr,
                                   momentum=self.momentum)
        opt_ae = torch.optim.SGD(autoencoder.parameters(), lr=100 * self.lr, momentum=self.momentum)
        mse, ce = nn.functional.mse_loss, nn.functional.cross_entropy
        w_se, w_im, w_sk = self.weight_semantic, self.weight_image, self.weight_sketch

        for module in (*generators, *discriminators, autoencoder):
            module.train()
        self.set_total_steps(self.epochs * self.batches_per_epoch)
        for epoch in range(self.epochs):
            sums: dict[str, float] = {}
            for _ in range(self.batches_per_epoch):
                cls, i_sk, i_im = self._sample_batch(rng, by_class_sk, by_class_im, train.paired)
                cls_t = torch.as_tensor(cls, device=dev)
                sk, im = SK[torch.as_tensor(i_sk, device=dev)], IM[torch.as_tensor(i_im, device=dev)]
                se = semantics[cls_t]

                se_code, se_rec = autoencoder(se)
                loss_ae = mse(se_rec, se) + self.weight_autoencoder_sparsity * autoencoder.column_norms() / len(cls)
                opt_ae.zero_grad()
                loss_ae.backward()
                opt_ae.step()
                se_code = se_code.detach()

                sk2se, im2se = self.sk2se_(sk), self.im2se_(im)
                fake_sk, fake_im = se2sk(se_code), se2im(se_code)
                loss_adv = self.weight_adversarial * (
                    lsgan_loss(disc_se(im2se), True) + lsgan_loss(disc_se(sk2se), True)
                    + lsgan_loss(disc_im(fake_im), True) + lsgan_loss(disc_sk(fake_sk), True))
                loss_cyc = self.weight_cycle * cycle_consistency(
                    im, se2im(im2se), sk, se2sk(sk2se), se_code, self.sk2se_(fake_sk), self.im2se_(fake_im),
                    w_im, w_sk, w_se)
                loss_cls = self.weight_classification * (
                    w_se * (ce(classify_se(im2se), cls_t) + ce(classify_se(sk2se), cls_t))
                    + w_sk * ce(classify_sk(fake_sk), cls_t) + w_im * ce(classify_im(fake_im), cls_t))
                loss_reg = self.weight_regression * (
                    w_se * (mse(im2se, sk2se) + mse(sk2se, im2se)) + w_im * mse(fake_im, im) + w_sk * mse(fake_sk, sk))
                loss_gen = loss_adv + loss_cyc + loss_cls + loss_reg
                opt_gen.zero_grad()
                loss_gen.backward()
                opt_gen.step()

                loss_disc_se = self.weight_disc_semantic * (
                    2 * lsgan_loss(disc_se(se_code), True) + lsgan_loss(disc_se(im2se.detach()), False)
                    + lsgan_loss(disc_se(sk2se.detach()), False))
                loss_disc_sk = self.weight_disc_sketch * (
                    lsgan_loss(disc_sk(sk), True) + lsgan_loss(disc_sk(fake_sk.detach()), False))
                loss_disc_im = self.weight_disc_image * (
                    lsgan_loss(disc_im(im), True) + lsgan_loss(disc_im(fake_im.detach()), False))
                loss_disc = loss_disc_se + loss_disc_sk + loss_disc_im
                opt_disc.zero_grad()
                loss_disc.backward()
                opt_disc.step()

                for key, value in (("autoencoder", loss_ae), ("adversarial", loss_adv), ("cycle", loss_cyc),
                                   ("classification", loss_cls), ("regression", loss_reg), ("generator", loss_gen),
                                   ("discriminator", loss_disc)):
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                self.advance()
            self.log_epoch(epoch, **{k: v / max(self.batches_per_epoch, 1) for k, v in sums.items()})
        for module in (*generators, *discriminators, autoencoder):
            module.eval()
        return self

    def _sample_batch(self, rng: np.random.Generator, by_class_sk: list[np.ndarray], by_class_im: list[np.ndarray],
                      paired: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Classes uniformly (the paper's inverse-frequency sampler), then a (sketch, image) pair of each:
        a true pair on paired data (row i of both modalities is one item), else two same-class items."""
        cls = rng.integers(len(by_class_sk), size=self.batch_size)
        if paired:
            picks = np.array([by_class_sk[c][rng.integers(by_class_sk[c].size)] for c in cls])
            return cls, picks, picks
        i_sk = np.array([by_class_sk[c][rng.integers(by_class_sk[c].size)] for c in cls])
        i_im = np.array([by_class_im[c][rng.integers(by_class_im[c].size)] for c in cls])
        return cls, i_sk, i_im

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        nets = {self.sketch_modality_: self.sk2se_, self.image_modality_: self.im2se_}
        if modality not in nets:
            raise ZSBenchError(f"sem-pcyc was fitted on {', '.join(nets)}, not {modality!r}")
        features = self.reducers_[modality](X)
        if not len(features):
            return np.zeros((0, self.semantic_dim), np.float32)
        # predict() runs the generator in eval mode (BatchNorm's running statistics, no dropout) and restores
        # its mode, so an embed during training (validation monitoring) neither draws noise nor moves the model.
        return predict(nets[modality], features, self.device_)

    def similarity(self, zq: np.ndarray, zg: np.ndarray) -> np.ndarray:
        """Negative Euclidean distance (the code's exp(-distance) ranks the same)."""
        zq = np.asarray(zq, dtype=np.float32)
        zg = np.asarray(zg, dtype=np.float32)
        sq = (zq * zq).sum(1)[:, None] + (zg * zg).sum(1)[None, :] - 2.0 * (zq @ zg.T)
        return -np.sqrt(np.maximum(sq, 0.0)).astype(np.float32)
