"""DADN, ACMR, DSCMR and CCA: the method contract, their distinctive losses against hand-computed values,
CCA against scikit-learn, and determinism. Tiny data and tiny networks, so the file runs in seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.acmr import ACMR, hardest_other_class, modality_loss, triplet_loss
from baselines.cca import CCA, fit_cca
from baselines.dadn import DADN, mix_rbf_mmd2, ranking_loss
from baselines.dscmr import DSCMR, common_space_loss, invariance_loss, label_space_loss
from baselines.pairing import cross_modal_pairs, other_class_partners
from benchmark.contract import ZSBenchError
from benchmark.data import Split
from benchmark.protocol import ZSDataset, build_train_view, evaluate
from benchmark.registry import available_methods
from benchmark.torch_utils import reverse_gradient

N_CLASSES, PER_CLASS, EMB_DIM = 6, 10, 8

TINY = {
    "dadn": lambda: DADN(hidden=16, critic_hidden=(16, 8), batch_size=8, epochs=2),
    "acmr": lambda: ACMR(common_dim=8, image_hidden=(16,), text_hidden=(8,), batch_size=8, epochs=2),
    "dscmr": lambda: DSCMR(hidden=16, common_dim=8, batch_size=8, epochs=2),
    "cca": lambda: CCA(n_components=4),
}


def tiny_dataset(paired: bool) -> ZSDataset:
    """Six classes (three unseen), class-structured features in two modalities, paired or not."""
    rng = np.random.default_rng(7)
    names = tuple(f"class{i}" for i in range(N_CLASSES))
    emb = rng.standard_normal((N_CLASSES, EMB_DIM)).astype(np.float32)
    mods = ("image", "text") if paired else ("sketch", "image")
    dims = {mods[0]: 24, mods[1]: 12}
    maps = {m: rng.standard_normal((EMB_DIM, d)).astype(np.float32) for m, d in dims.items()}
    y = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    features, labels = {}, {}
    for i, m in enumerate(mods):
        ym = y if paired or i == 0 else np.repeat(np.arange(N_CLASSES), PER_CLASS + 2)
        latent = emb[ym] + 0.3 * rng.standard_normal((ym.size, EMB_DIM)).astype(np.float32)
        features[m] = (latent @ maps[m] + 0.1 * rng.standard_normal((ym.size, dims[m]))).astype(np.float32)
        labels[m] = ym
    split = Split(dataset="tiny", name="tiny", seen=names[:3], unseen=names[3:], holdout_fraction=0.2,
                  holdout_seed=0, sha256="", path="")
    tasks = ((mods[0], mods[1]), (mods[1], mods[0])) if paired else ((mods[0], mods[1]),)
    return ZSDataset(name="tiny", source="synthetic", modalities=mods, features=features, labels=labels,
                     class_names=names, class_embeddings=emb, split=split, tasks=tasks, paired=paired)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny networks gain nothing from threads, and on a busy shared machine thread hand-offs dominate."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=[True, False], ids=["paired", "unpaired"])
def dataset(request) -> ZSDataset:
    return tiny_dataset(request.param)


def test_all_four_are_registered():
    registered = available_methods()
    for name, make in TINY.items():
        assert registered[name][0] is type(make())


@pytest.mark.parametrize("name", sorted(TINY))
def test_contract(name, dataset):
    view = build_train_view(dataset)
    seen_fit_labels = []
    method = TINY[name]()
    original_fit = method.fit

    def spying_fit(train, seed):
        seen_fit_labels.extend(np.unique(np.concatenate([train.labels[m] for m in train.modalities])).tolist())
        return original_fit(train, seed)

    method.fit = spying_fit
    assert method.fit(view, 0) is method
    assert set(seen_fit_labels) <= set(dataset.seen_classes.tolist())
    twin = TINY[name]().fit(view, 0)
    for m in dataset.modalities:
        X = dataset.features[m][np.isin(dataset.labels[m], dataset.unseen_classes)]
        Z = method.embed(m, X)
        assert Z.shape[0] == X.shape[0] and Z.ndim == 2 and Z.dtype == np.float32
        assert np.isfinite(Z).all()
        np.testing.assert_allclose(twin.embed(m, X), Z, rtol=0, atol=1e-6)  # same seed, same embeddings
    metrics, _ = evaluate(method, dataset)
    assert set(metrics) == {f"{q}->{g}" for q, g in dataset.tasks}
    assert all(0.0 <= v["mAP@all"] <= 1.0 for v in metrics.values())
    assert method.history_ and all(math.isfinite(v) for row in method.history_ for v in row.values())


@pytest.mark.parametrize("name", ["dadn", "acmr", "dscmr"])
def test_another_seed_gives_other_embeddings(name):
    ds = tiny_dataset(True)
    view = build_train_view(ds)
    X = ds.features["image"][:5]
    assert not np.allclose(TINY[name]().fit(view, 0).embed("image", X), TINY[name]().fit(view, 1).embed("image", X))


def test_three_modalities_are_refused():
    ds = tiny_dataset(True)
    view = build_train_view(ds)
    three = view.__class__(**{**view.__dict__, "modalities": ("image", "text", "audio")})
    with pytest.raises(ZSBenchError, match="exactly two modalities"):
        CCA().fit(three, 0)


# --- DADN ---------------------------------------------------------------------------------------------

def test_dadn_mmd_by_hand():
    X, Y = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    # One bandwidth: k(x,x) = k(y,y) = 1, k(x,y) = exp(-25 / (2 * 25)) -> 2 - 2 e^-0.5.
    assert mix_rbf_mmd2(X, Y, [5.0]).item() == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-6)
    # The paper's six bandwidths: 12 - 2 * sum_s exp(-25 / (2 s^2)), worked out = 3.0150711.
    assert mix_rbf_mmd2(X, Y).item() == pytest.approx(3.0150711004706015, rel=1e-5)
    # Identical samples have zero discrepancy.
    assert mix_rbf_mmd2(X, X).item() == pytest.approx(0.0, abs=1e-6)


def test_dadn_ranking_loss_by_hand():
    fake, target = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    other_a, other_b = torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 2.0]])
    # l(fake, target) = 0.5, l(fake, a) = 2, l(fake, b) = 2: 20 * 0.5 - 2 - 2 = 6; margin 2 gives 1 - 4 < 0 -> 0.
    assert ranking_loss(fake, target, other_a, other_b, 20.0).item() == pytest.approx(6.0)
    assert ranking_loss(fake, target, other_a, other_b, 2.0).item() == 0.0


# --- ACMR ---------------------------------------------------------------------------------------------

def test_acmr_triplet_by_hand():
    anchor, positive, negative = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    # 0.1 + 5 * 0.5 - 2 = 0.6
    assert triplet_loss(anchor, positive, negative, 0.1, 5.0).item() == pytest.approx(0.6)
    assert triplet_loss(anchor, positive, negative, 0.1, 1.0).item() == 0.0


def test_acmr_adversarial_term_by_hand():
    zeros = torch.zeros(3, 2)
    # Uninformed modality classifier: cross-entropy ln 2 per modality.
    assert modality_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    confident = torch.tensor([[10.0, -10.0]]), torch.tensor([[-10.0, 10.0]])
    assert modality_loss(*confident).item() == pytest.approx(0.0, abs=1e-6)
    x = torch.ones(4, requires_grad=True)
    reverse_gradient(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.full((4,), -0.5))


def test_acmr_hard_negative_is_of_another_class():
    X = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 2])
    # Row 0's nearest row (1) shares its class, so the nearest of another class is row 2.
    assert hardest_other_class(X, labels).tolist() == [2, 2, 1, 2]


# --- DSCMR --------------------------------------------------------------------------------------------

def test_dscmr_invariance_by_hand():
    za, zb = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    assert invariance_loss(za, zb).item() == pytest.approx(2.5)  # (5 + 0) / 2


def test_dscmr_discriminative_losses_by_hand():
    same = torch.tensor([[1.0, 0.0]])
    # One pair of identical vectors of one class: theta = 1/2 in all three matrices.
    expected = 3 * (math.log(1 + math.exp(0.5)) - 0.5)
    assert common_space_loss(same, same, same, same).item() == pytest.approx(expected, rel=1e-6)
    z = torch.eye(2)
    # Two orthogonal samples of two classes: theta = 1/2 on the diagonal (S=1), 0 off it (S=0).
    assert common_space_loss(z, z, z, z).item() == pytest.approx(1.7508362471100778, rel=1e-6)
    assert label_space_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])).item() == pytest.approx(2**0.5)


# --- CCA ----------------------------------------------------------------------------------------------

def test_cca_matches_sklearn_on_a_toy_case():
    from sklearn.cross_decomposition import CCA as SklearnCCA

    rng = np.random.default_rng(0)
    n = 400
    z = rng.standard_normal((n, 2))
    Xa = np.c_[2 * z[:, 0] + 0.3 * rng.standard_normal(n), z[:, 1] + 0.8 * rng.standard_normal(n),
               rng.standard_normal((n, 3))]
    Xb = np.c_[z[:, 0] + 0.5 * rng.standard_normal(n), rng.standard_normal((n, 2)),
               z[:, 1] - 0.6 * rng.standard_normal(n)]
    Xa, Xb = Xa - Xa.mean(0), Xb - Xb.mean(0)
    Wa, Wb, corr = fit_cca(Xa, Xb, n_components=2, reg=0.0)
    sk = SklearnCCA(n_components=2, scale=False, max_iter=2000, tol=1e-10).fit(Xa, Xb)
    ska, skb = sk.transform(Xa, Xb)
    for k in range(2):
        assert corr[k] == pytest.approx(np.corrcoef(ska[:, k], skb[:, k])[0, 1], abs=1e-6)
        assert abs(np.corrcoef(ska[:, k], Xa @ Wa[:, k])[0, 1]) == pytest.approx(1.0, abs=1e-6)
        assert abs(np.corrcoef(skb[:, k], Xb @ Wb[:, k])[0, 1]) == pytest.approx(1.0, abs=1e-6)
    assert corr[0] > corr[1] > 0.5


def test_cca_more_dimensions_than_samples_stays_finite():
    rng = np.random.default_rng(1)
    Xa, Xb = rng.standard_normal((20, 50)), rng.standard_normal((20, 30))
    Wa, Wb, corr = fit_cca(Xa - Xa.mean(0), Xb - Xb.mean(0), n_components=5, reg=0.1)
    assert Wa.shape == (50, 5) and Wb.shape == (30, 5) and np.isfinite(Wa).all() and (corr <= 1 + 1e-9).all()


# --- pairing of unpaired data -------------------------------------------------------------------------

def test_unpaired_pairs_are_same_class_cover_every_sample_and_follow_the_seed():
    view = build_train_view(tiny_dataset(False))
    ia, ib, y = cross_modal_pairs(view, seed=3)
    a, b = view.modalities
    assert np.array_equal(view.labels[a][ia], y) and np.array_equal(view.labels[b][ib], y)
    assert set(ia) == set(range(view.labels[a].size)) and set(ib) == set(range(view.labels[b].size))
    again = cross_modal_pairs(view, seed=3)
    assert all(np.array_equal(u, v) for u, v in zip((ia, ib, y), again, strict=True))
    assert not np.array_equal(ia, cross_modal_pairs(view, seed=4)[0])


def test_other_class_partners_differ_in_class():
    labels = np.array([0, 0, 0, 1, 2, 2])
    partners = other_class_partners(labels, np.random.default_rng(0))
    assert (labels[partners] != labels).all()
