"""CVAE and SEM-PCYC: a full run through the runner, their loss terms against hand-computed values, the
reduced feature space, and the two-modality roles on sketch-image and image-text data (the method contract
is checked for every registered method in tests/test_contract.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from baselines.cvae import CVAE, CVAENetwork, gaussian_kl
from baselines.feature_space import ReducedFeatures, class_matched_partners
from baselines.sem_pcyc import SemPCYC, cycle_consistency
from benchmark.contract import TrainView, ZSBenchError
from benchmark.core.protocol import ZSDataset, build_train_view, evaluate
from benchmark.core.store import ResultStore
from benchmark.registry import available_methods, build_method
from tests.conftest import make_tiny_dataset, run_method
from tests.test_contract import _map_by_hand

NAMES = ("cvae", "sem-pcyc")


def tiny_dataset(paired: bool, seed: int = 0) -> ZSDataset:
    """Eight classes (three unseen); unpaired, the image side has two more items per class than the sketches."""
    return make_tiny_dataset(paired=paired, n_classes=8, n_unseen=3, per_class=14, dims=(24, 12), seed=seed,
                             embedding_dim=6, extra_per_class=0 if paired else 2, holdout_fraction=0.1)


def quick(name: str, **params):
    return build_method(name, {**available_methods()[name][0].quick_params, **params})[1]


@pytest.mark.parametrize("paired", [False, True], ids=["sketch-image", "image-text"])
@pytest.mark.parametrize("name", NAMES)
def test_runs_through_the_runner(name, paired, tmp_path, monkeypatch):
    """One full run (fit, evaluation, record) of the quick configuration; the train view holds seen classes only.
    The rest of the contract is checked for every method in tests/test_contract.py."""
    ds = tiny_dataset(paired)
    seen_by_fit: list[TrainView] = []
    cls = available_methods()[name][0]
    original_fit = cls.fit

    fitted = []

    def spying_fit(self, train, seed):
        seen_by_fit.append(train)
        fitted.append(self)
        return original_fit(self, train, seed)

    monkeypatch.setattr(cls, "fit", spying_fit)
    outcome = run_method(name, ds, 0, ResultStore(tmp_path), params=dict(cls.quick_params))
    assert outcome.status == "done"
    (train,) = seen_by_fit
    for m in train.modalities:
        assert not np.isin(train.labels[m], ds.unseen_classes).any()
        assert not np.isin(train.holdout_labels[m], ds.unseen_classes).any()
    # the record's mAP@all is scikit-learn's over the fitted method's own embeddings
    for (q, g), expected in zip(ds.tasks, _map_by_hand(fitted[0], ds), strict=True):
        assert outcome.record.metrics[f"{q}->{g}"]["mAP@all"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert len(outcome.record.training_log) >= 2


def test_kl_term_against_hand_value():
    mu = torch.tensor([[0.5, -1.0]])
    log_var = torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * [(1 + 0.25 - 1 - 0) + (2 + 1 - 1 - ln 2)]
    expected = 0.5 * (0.25 + 2.0 - math.log(2.0))
    assert gaussian_kl(mu, log_var).item() == pytest.approx(expected, rel=1e-6)
    rng = torch.Generator().manual_seed(0)
    mu, log_var = torch.randn(5, 3, generator=rng), torch.randn(5, 3, generator=rng)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(log_var / 2)), torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, log_var), reference)


def test_cycle_term_against_hand_value():
    image, image_back = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 2.0]])  # L1 mean 0.5
    sketch, sketch_back = torch.zeros(1, 3), torch.tensor([[3.0, 0.0, 0.0]])  # 1.0
    semantic = torch.tensor([[1.0, 1.0]])
    via_sketch, via_image = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 3.0]])  # 0.0 and 1.5
    value = cycle_consistency(image, image_back, sketch, sketch_back, semantic, via_sketch, via_image,
                              w_image=2.0, w_sketch=3.0, w_semantic=10.0)
    assert value.item() == pytest.approx(2 * 0.5 + 3 * 1.0 + 10 * (0.0 + 1.5))


@pytest.mark.parametrize("relu_output", [True, False])
def test_cvae_mean_generation_is_the_mean_of_decoded_draws(relu_output):
    torch.manual_seed(0)
    net = CVAENetwork(target_dim=7, condition_dim=5, hidden=9, latent=3, dropout=0.0, relu_output=relu_output).eval()
    condition, noise = torch.randn(4, 5), torch.randn(6, 3)
    with torch.no_grad():
        explicit = torch.stack([net.decode(noise[k].expand(4, 3), condition) for k in range(6)]).mean(0)
    torch.testing.assert_close(net.mean_generation(condition, noise), explicit, rtol=1e-5, atol=1e-6)


def test_cvae_roles_query_generates_gallery_features():
    ds = tiny_dataset(paired=False)
    method = quick("cvae").fit(build_train_view(ds), seed=0)
    assert (method.condition_modality_, method.target_modality_) == ("sketch", "image")
    query, gallery = method.embed("sketch", ds.features["sketch"]), method.embed("image", ds.features["image"])
    assert query.shape[1] == gallery.shape[1]
    with pytest.raises(ZSBenchError, match="not 'text'"):
        method.embed("text", ds.features["image"])
    reversed_roles = CVAE(**{**method.get_params(), "query_modality": "image"}).fit(build_train_view(ds), seed=0)
    assert reversed_roles.condition_modality_ == "image"


def test_sem_pcyc_similarity_is_negative_euclidean():
    rng = np.random.default_rng(0)
    zq, zg = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((6, 5)).astype(np.float32)
    np.testing.assert_allclose(SemPCYC().similarity(zq, zg), -cdist(zq, zg), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_supports_exactly_two_modalities(name):
    ds = tiny_dataset(paired=False)
    view = build_train_view(ds)
    assert quick(name).supports(view) is None
    three = TrainView(**{**view.__dict__, "modalities": ("sketch", "image", "text")})
    assert "exactly two modalities" in quick(name).supports(three)
    wrong = quick(name)
    wrong.query_modality = "audio"
    assert "audio" in wrong.supports(view)
    with pytest.raises(ZSBenchError):
        wrong.fit(view, 0)


def test_reduced_features_deterministic_and_scaled():
    X = np.random.default_rng(0).standard_normal((300, 40)).astype(np.float32) * np.arange(1, 41, dtype=np.float32)
    a, b = ReducedFeatures(X, 10, seed=1), ReducedFeatures(X, 10, seed=1)
    np.testing.assert_array_equal(a(X), b(X))
    assert a(X).shape == (300, 10)
    assert a(X).var(axis=0).mean() == pytest.approx(1.0, rel=1e-3)
    assert ReducedFeatures(X, 64, seed=1)(X).shape == (300, 40)  # fewer dimensions than asked: z-scored only
    np.testing.assert_array_equal(ReducedFeatures(X, None, seed=1)(X), X)


def test_class_matched_partners_share_the_class():
    rng = np.random.default_rng(0)
    query, gallery = np.array([0, 1, 1, 2, 5]), np.array([2, 2, 1, 0, 0, 1, 3])
    partners = class_matched_partners(query, gallery, rng)
    assert partners[-1] == -1  # class 5 has no gallery item
    np.testing.assert_array_equal(gallery[partners[:-1]], query[:-1])


def test_evaluate_runs_both_directions_on_image_text():
    ds = tiny_dataset(paired=True)
    for name in NAMES:
        method = quick(name).fit(build_train_view(ds), seed=0)
        metrics, _ = evaluate(method, ds)
        assert set(metrics) == {"image->text", "text->image"}
