"""DADN, ACMR, DSCMR and CCA: their distinctive losses against hand-computed values, CCA against
scikit-learn (and its two solution routes against each other), seeds, step budgets, the pairing of unpaired
data, and semantic-regression's embedding standardisation.
The method contract itself (seen classes only, determinism, refit, inputs unchanged, ...) is checked for
every registered method in ``tests/test_contract.py``. Tiny data and tiny networks: seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.acmr import hardest_other_class, modality_loss, triplet_loss
from baselines.cca import CCA, fit_cca, fit_cca_from_moments, pair_moments
from baselines.dadn import mix_rbf_mmd2, ranking_loss
from baselines.dscmr import common_space_loss, invariance_loss, label_space_loss
from baselines.pairing import cross_modal_pairs, other_class_partners, standardized_pairs
from baselines.training import batches_per_epoch, sampled_epoch
from benchmark.contract import ZSBenchError
from benchmark.core.protocol import ZSDataset, build_train_view
from benchmark.registry import available_methods, build_method
from benchmark.torch_utils import reverse_gradient
from tests.conftest import make_tiny_dataset

FOUR = ("dadn", "acmr", "dscmr", "cca")


def tiny_dataset(paired: bool) -> ZSDataset:
    """Six classes (three unseen), two modalities; unpaired, the image side has two more items per class."""
    return make_tiny_dataset(paired=paired, n_classes=6, n_unseen=3, per_class=10, dims=(24, 12), seed=7,
                             extra_per_class=0 if paired else 2)


def quick(name: str, **params):
    return build_method(name, {**available_methods()[name][0].quick_params, **params})[1]




def test_all_four_are_registered():
    registered = available_methods()
    for name in FOUR:
        assert registered[name][0].name == name


@pytest.mark.parametrize("name", ["dadn", "acmr", "dscmr"])
def test_another_seed_gives_other_embeddings_on_paired_data(name):
    ds = tiny_dataset(True)
    view = build_train_view(ds)
    X = ds.features["image"][:5]
    assert not np.allclose(quick(name).fit(view, 0).embed("image", X), quick(name).fit(view, 1).embed("image", X))


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


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
def test_cca_covariance_route_equals_the_svd_route(paired):
    """The route for large data (d x d covariances from distinct rows) solves the same ridge CCA."""
    view = build_train_view(tiny_dataset(paired))
    pairs = standardized_pairs(view, 3, "cca")
    Xa, Xb = pairs.rows(pairs.a), pairs.rows(pairs.b)
    ma, mb, Caa, Cbb, Cab = pair_moments(pairs)
    np.testing.assert_allclose(ma, Xa.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(mb, Xb.mean(axis=0), atol=1e-5)
    Za, Zb = Xa.astype(np.float64) - ma, Xb.astype(np.float64) - mb
    np.testing.assert_allclose(Cab, Za.T @ Zb, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(Caa, Za.T @ Za, rtol=1e-6, atol=1e-6)
    Wa, Wb, corr = fit_cca(Za, Zb, n_components=4, reg=0.1)
    Va, Vb, corr2 = fit_cca_from_moments(Caa, Cbb, Cab, len(pairs), n_components=4, reg=0.1)
    np.testing.assert_allclose(corr2, corr, rtol=1e-5)
    for k in range(4):  # the same directions, up to a sign shared by both modalities
        sign = np.sign((Za @ Wa[:, k]) @ (Za @ Va[:, k]))
        np.testing.assert_allclose(Za @ Va[:, k], sign * (Za @ Wa[:, k]), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(Zb @ Vb[:, k], sign * (Zb @ Wb[:, k]), rtol=1e-3, atol=1e-4)


def test_cca_takes_the_covariance_route_on_large_data(monkeypatch):
    import baselines.cca

    ds = tiny_dataset(False)
    view = build_train_view(ds)
    X = ds.features["sketch"][:6]
    small = CCA(n_components=4).fit(view, 0).embed("sketch", X)
    monkeypatch.setattr(baselines.cca, "SPAN_ROUTE_MAX_ENTRIES", 0)
    monkeypatch.setattr(baselines.cca, "CHUNK_ROWS", 7)  # several chunks
    large = CCA(n_components=4).fit(view, 0).embed("sketch", X)
    np.testing.assert_allclose(np.abs(large), np.abs(small), rtol=1e-3, atol=1e-4)


# --- sampled epochs (the step budget) -----------------------------------------------------------------

def test_a_sampled_epoch_is_a_full_epoch_below_the_cap_and_capped_above():
    full = list(sampled_epoch(50, 8, np.random.default_rng(0)))
    assert len(full) == batches_per_epoch(50, 8) == 7
    assert sorted(np.concatenate(full).tolist()) == list(range(50))
    below = list(sampled_epoch(50, 8, np.random.default_rng(0), max_steps=100))
    assert all(np.array_equal(u, v) for u, v in zip(full, below, strict=True))  # same batches as uncapped
    capped = list(sampled_epoch(1000, 8, np.random.default_rng(0), max_steps=5, drop_last=True))
    assert len(capped) == batches_per_epoch(1000, 8, 5, drop_last=True) == 5
    assert len(np.unique(np.concatenate(capped))) == 40  # without replacement
    assert batches_per_epoch(50, 8, drop_last=True) == 6 and batches_per_epoch(5, 8, drop_last=True) == 1
    assert batches_per_epoch(0, 8) == 0


@pytest.mark.parametrize("name", ["dadn", "acmr", "dscmr"])
def test_the_step_budget_bounds_training_whatever_the_data_size(name):
    """With ``max_steps_per_epoch`` the steps taken are epochs x the cap, however many pairs there are."""
    view = build_train_view(make_tiny_dataset(per_class=40, extra_per_class=10))
    method = quick(name, batch_size=4, epochs=2, max_steps_per_epoch=3)
    calls = []
    method.progress_hook_ = lambda done, total: calls.append((done, total))
    method.fit(view, 0)
    assert calls[-1] == (6, 6)


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


# --- semantic-regression's standardize_embeddings --------------------------------------------------------

def test_standardized_embeddings_use_the_seen_class_training_statistics():
    ds = tiny_dataset(True)
    view = build_train_view(ds)
    raw = quick("semantic-regression").fit(view, 0)
    scaled = quick("semantic-regression", standardize_embeddings=True).fit(view, 0)
    for m in ds.modalities:
        train_raw = raw.embed(m, view.features[m])
        train_scaled = scaled.embed(m, view.features[m])
        np.testing.assert_allclose(train_scaled.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(train_scaled.std(axis=0), 1.0, rtol=1e-3)
        # The same trained network; only the embedding is z-scored, with the training statistics.
        X = ds.features[m]
        expected = (raw.embed(m, X) - train_raw.mean(axis=0)) / train_raw.std(axis=0)
        np.testing.assert_allclose(scaled.embed(m, X), expected, rtol=1e-4, atol=1e-4)
    # Embeds from the epoch hook (validation monitoring) are standardised with the statistics of that epoch.
    monitored = quick("semantic-regression", standardize_embeddings=True)
    during = []
    monitored.epoch_hook_ = lambda epoch, entry: during.append(monitored.embed("image", view.features["image"]))
    monitored.fit(view, 0)
    assert len(during) == monitored.epochs
    np.testing.assert_allclose(during[-1].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_array_equal(during[-1], scaled.embed("image", view.features["image"]))
