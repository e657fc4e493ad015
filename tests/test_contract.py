"""The method contract, checked for every registered method (scikit-learn's check_estimator, for zsbench)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmark.contract import Method, TrainView
from benchmark.protocol import ZSDataset, build_train_view, evaluate
from benchmark.registry import available_methods, build_method
from tests.conftest import make_tiny_dataset

METHODS = list(available_methods())


def quick(name: str) -> Method:
    cls, overrides = available_methods()[name]
    return build_method(name, dict(cls.quick_params))[1]


def test_the_first_methods_are_registered():
    assert {"random", "semantic-regression"} <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("paired", [False, True])
def test_fit_sees_only_seen_classes_and_embeds_every_row(name, paired):
    ds = make_tiny_dataset(paired=paired)
    method = quick(name)
    seen_by_fit: list[TrainView] = []
    original_fit = method.fit

    def spying_fit(train, seed):
        seen_by_fit.append(train)
        return original_fit(train, seed)

    method.fit = spying_fit
    assert method.fit(build_train_view(ds), seed=0) is method
    (train,) = seen_by_fit
    for m in train.modalities:
        assert not np.isin(train.labels[m], ds.unseen_classes).any()
        assert not np.isin(train.holdout_labels[m], ds.unseen_classes).any()
    for m in ds.modalities:
        Z = method.embed(m, ds.features[m][:7])
        assert Z.shape[0] == 7 and np.isfinite(Z).all()
    metrics, _ = evaluate(method, ds, ks=(5,))
    assert all(np.isfinite(v) for task in metrics.values() for v in task.values())


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_embeddings(name):
    ds = make_tiny_dataset()
    probe = ds.features["sketch"][:5]
    a = quick(name).fit(build_train_view(ds), seed=3).embed("sketch", probe)
    b = quick(name).fit(build_train_view(ds), seed=3).embed("sketch", probe)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_unseen_samples_cannot_influence_training(name):
    """Changing every unseen-class sample must leave the trained model exactly as it was."""
    ds = make_tiny_dataset()
    features = {m: x.copy() for m, x in ds.features.items()}
    rng = np.random.default_rng(9)
    for m, x in features.items():
        unseen_rows = np.isin(ds.labels[m], ds.unseen_classes)
        x[unseen_rows] = rng.standard_normal((unseen_rows.sum(), x.shape[1])).astype(np.float32) * 5
    changed = ZSDataset(**{**{f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)}, "features": features})
    probe = ds.features["image"][ds.labels["image"] >= 2][:5]
    a = quick(name).fit(build_train_view(ds), seed=1).embed("image", probe)
    b = quick(name).fit(build_train_view(changed), seed=1).embed("image", probe)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_hyper_parameters_are_constructor_arguments(name):
    method = quick(name)
    params = method.get_params()
    assert type(method)(**params).get_params() == params
    assert all(not key.endswith("_") for key in params)
