"""CVAE and SEM-PCYC: the method contract on tiny data, their loss terms against hand-computed values,
determinism, and the two-modality roles on sketch-image and image-text data."""

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
from benchmark.data import Split
from benchmark.protocol import ZSDataset, build_train_view, evaluate
from benchmark.runner import run_one
from benchmark.store import ResultStore

N_CLASSES, N_UNSEEN, PER_CLASS = 8, 3, 14

#: Small enough that a fit takes well under a second.
TINY = {
    "cvae": lambda: CVAE(hidden_dim=16, latent_dim=4, feature_dim=8, epochs=2, min_steps=4, batch_size=16,
                         n_samples=5),
    "sem-pcyc": lambda: SemPCYC(semantic_dim=8, feature_dim=8, epochs=2, batches_per_epoch=3, batch_size=16),
}


def tiny_dataset(paired: bool, seed: int = 0) -> ZSDataset:
    """Class-structured features: a class centre through a per-modality random map, plus noise."""
    rng = np.random.default_rng(seed)
    names = tuple(f"class{i}" for i in range(N_CLASSES))
    emb = rng.standard_normal((N_CLASSES, 6)).astype(np.float32)
    modalities = ("image", "text") if paired else ("sketch", "image")
    dims = {modalities[0]: 24, modalities[1]: 12}
    y_shared = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    features, labels, parts = {}, {}, {}
    for m in modalities:
        y = y_shared if paired else np.repeat(np.arange(N_CLASSES), PER_CLASS + (2 if m == "image" else 0))
        W = rng.standard_normal((6, dims[m])).astype(np.float32)
        features[m] = (np.abs(emb[y] @ W) + 0.3 * rng.standard_normal((y.size, dims[m]))).astype(np.float32)
        labels[m] = y
        parts[m] = (np.arange(y.size) % 4 == 0).astype(np.int8)  # every fourth item is a test item
    split = Split(dataset="tiny", name="tiny", seen=names[N_UNSEEN:], unseen=names[:N_UNSEEN],
                  holdout_fraction=0.1, holdout_seed=0, sha256="0" * 64, path="")
    tasks = (("image", "text"), ("text", "image")) if paired else (("sketch", "image"),)
    return ZSDataset(name="tiny", source="synthetic", modalities=modalities, features=features, labels=labels,
                     class_names=names, class_embeddings=emb, split=split, tasks=tasks,
                     eval_protocol="test->train" if paired else "all", paired=paired,
                     parts=parts if paired else None)


def all_embeddings(method, ds: ZSDataset) -> dict[str, np.ndarray]:
    return {m: method.embed(m, ds.features[m]) for m in ds.modalities}


@pytest.mark.parametrize("paired", [False, True], ids=["sketch-image", "image-text"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_contract(name, paired, tmp_path, monkeypatch):
    ds = tiny_dataset(paired)
    seen_by_fit: list[TrainView] = []
    cls = type(TINY[name]())
    original_fit = cls.fit

    def spying_fit(self, train, seed):
        seen_by_fit.append(train)
        return original_fit(self, train, seed)

    monkeypatch.setattr(cls, "fit", spying_fit)
    params = {k: v for k, v in TINY[name]().get_params().items()}
    outcome = run_one(name, ds, 0, ResultStore(tmp_path), params=params)
    assert outcome.status == "done"
    (train,) = seen_by_fit
    unseen = ds.unseen_classes
    for m in train.modalities:
        assert not np.isin(train.labels[m], unseen).any()
        assert not np.isin(train.holdout_labels[m], unseen).any()
    for task, values in outcome.record.metrics.items():
        assert 0.0 <= values["mAP@all"] <= 1.0, task
    method = TINY[name]().fit(build_train_view(ds), seed=3)
    again = TINY[name]().fit(build_train_view(ds), seed=3)
    other = TINY[name]().fit(build_train_view(ds), seed=4)
    first, second, third = all_embeddings(method, ds), all_embeddings(again, ds), all_embeddings(other, ds)
    for m in ds.modalities:
        assert first[m].shape[0] == ds.features[m].shape[0]
        assert np.isfinite(first[m]).all()
        np.testing.assert_array_equal(first[m], second[m])
    assert any(not np.array_equal(first[m], third[m]) for m in ds.modalities)
    one_by_one = np.concatenate([method.embed(ds.modalities[0], ds.features[ds.modalities[0]][i:i + 1])
                                 for i in range(5)])
    np.testing.assert_allclose(one_by_one, first[ds.modalities[0]][:5], rtol=1e-5, atol=1e-6)
    assert len(method.history_) >= 2 and all(math.isfinite(v) for row in method.history_ for v in row.values())


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
    method = TINY["cvae"]().fit(build_train_view(ds), seed=0)
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


@pytest.mark.parametrize("name", sorted(TINY))
def test_supports_exactly_two_modalities(name):
    ds = tiny_dataset(paired=False)
    view = build_train_view(ds)
    assert TINY[name]().supports(view) is None
    three = TrainView(**{**view.__dict__, "modalities": ("sketch", "image", "text")})
    assert "exactly two modalities" in TINY[name]().supports(three)
    wrong = TINY[name]()
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
    for name in TINY:
        method = TINY[name]().fit(build_train_view(ds), seed=0)
        metrics, _ = evaluate(method, ds)
        assert set(metrics) == {"image->text", "text->image"}
