"""The method contract, checked for every registered method (scikit-learn's check_estimator, for zsbench).

Every check runs on each method's ``quick_params`` (a seconds-long configuration) on the tiny datasets of
``tests/conftest.py``: only seen classes reach ``fit``; ``fit`` leaves its inputs unchanged; the same seed
gives the same embeddings and another seed others; a refit is a fresh fit; unseen samples cannot influence
training; ``embed`` before ``fit`` is a clear error, and a row's embedding does not depend on its batch;
embeds during training (the runner's validation monitor) work and change nothing;
progress is reported from the first step to the declared total; hyper-parameters are constructor arguments;
every declared search space names real hyper-parameters and its ends make a method that fits.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmark.contract import Choice, IntRange, LogUniform, Method, NotFittedError, TrainView, Uniform
from benchmark.core.protocol import ZSDataset, build_train_view, evaluate
from benchmark.registry import available_methods, build_method
from tests.conftest import make_tiny_dataset

METHODS = list(available_methods())


def quick(name: str, **params) -> Method:
    cls, overrides = available_methods()[name]
    return build_method(name, {**cls.quick_params, **params})[1]


def tiny(paired: bool = False) -> ZSDataset:
    # Unequal modality sizes on unpaired data, as in real sketch datasets.
    return make_tiny_dataset(paired=paired, extra_per_class=0 if paired else 2)


def every_embedding(method: Method, ds: ZSDataset) -> dict[str, np.ndarray]:
    return {m: method.embed(m, ds.features[m]) for m in ds.modalities}


def assert_same_embeddings(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    for m in first:
        np.testing.assert_array_equal(first[m], second[m], err_msg=m)




def test_the_first_methods_are_registered():
    assert {"random", "semantic-regression"} <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_declares_quick_params_of_its_own_hyper_parameters(name):
    cls, _ = available_methods()[name]
    assert cls.quick_params, f"{name} declares no quick_params (the contract suite would fit its full defaults)"
    assert set(cls.quick_params) <= set(quick(name).get_params())


def _map_by_hand(method: Method, ds: ZSDataset) -> list[float]:
    """Per task, mAP@all from the method's embeddings of the unseen-class items, scored with scikit-learn:
    queries from the test part and gallery from the train part on paired data ("test->train"), every item
    otherwise ("all"); queries without a relevant gallery item left out."""
    unseen = np.isin(np.arange(len(ds.class_names)), ds.unseen_classes)
    out = []
    for q, g in ds.tasks:
        rows = {}
        for modality, part in ((q, 0), (g, 1)):
            keep = unseen[ds.labels[modality]]
            if ds.eval_protocol == "test->train":
                keep &= ds.parts[modality] == (1 if part == 0 else 0)
            rows[modality, part] = (method.embed(modality, ds.features[modality][keep]), ds.labels[modality][keep])
        (Zq, yq), (Zg, yg) = rows[q, 0], rows[g, 1]
        scores = np.asarray(method.similarity(Zq, Zg), dtype=np.float64)
        aps = [average_precision_score(yg == yq[i], scores[i]) for i in range(yq.size) if (yg == yq[i]).any()]
        out.append(float(np.mean(aps)))
    return out


@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_a_fitted_method_beats_the_random_floor_where_there_is_signal(paired):
    """Tiny data whose features are a linear map of the class embeddings: CCA (closed form) ranks the five
    unseen classes far better than random embeddings do (about 0.8 against 0.25 mAP@all), and so does a method
    trained by gradient descent, semantic regression at 40 epochs (0.42 to 0.63 over seeds 0 to 4; untrained,
    its random network already keeps some of the features' class structure, hence the margin)."""
    ds = make_tiny_dataset(paired=paired, n_classes=14, n_unseen=5, extra_per_class=0 if paired else 2)
    scores = {}
    for name, params in (("cca", {}), ("semantic-regression", {"epochs": 40}), ("random", {})):
        method = quick(name, **params)
        method.fit(build_train_view(ds), seed=0)
        scores[name] = _map_by_hand(method, ds)
    for name, margin in (("cca", 0.3), ("semantic-regression", 0.15)):
        assert all(t > r + margin for t, r in zip(scores[name], scores["random"], strict=True)), scores


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("paired", [False, True], ids=["unpaired", "paired"])
def test_fit_sees_only_seen_classes_and_embeds_every_row(name, paired):
    ds = tiny(paired)
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
        X = ds.features[m][np.isin(ds.labels[m], ds.unseen_classes)]
        Z = method.embed(m, X)
        assert Z.ndim == 2 and Z.shape[0] == X.shape[0] and Z.dtype == np.float32
        assert np.isfinite(Z).all()
    metrics, _ = evaluate(method, ds, ks=(5,))
    assert set(metrics) == {f"{q}->{g}" for q, g in ds.tasks}
    for (q, g), expected in zip(ds.tasks, _map_by_hand(method, ds), strict=True):
        assert metrics[f"{q}->{g}"]["mAP@all"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert all(np.isfinite(v) for task in metrics.values() for v in task.values())
    assert method.history_ or name == "random", "a method that trains logs its losses"  # random learns nothing
    assert all(math.isfinite(v) for row in method.history_ for v in row.values() if isinstance(v, (int, float)))


@pytest.mark.parametrize("name", METHODS)
def test_fit_does_not_change_its_inputs(name):
    ds = tiny()
    view = build_train_view(ds)
    arrays = {"class_embeddings": view.class_embeddings, "seen_classes": view.seen_classes,
              "unseen_classes": view.unseen_classes,
              **{f"{part}[{m}]": getattr(view, part)[m] for part in ("features", "labels", "holdout_features",
                                                                    "holdout_labels") for m in view.modalities}}
    before = {key: array.copy() for key, array in arrays.items()}
    dataset_before = {m: ds.features[m].copy() for m in ds.modalities}
    method = quick(name).fit(view, seed=0)
    for key, array in arrays.items():
        assert array.dtype == before[key].dtype, key
        np.testing.assert_array_equal(array, before[key], err_msg=f"fit changed the train view's {key}")
    for m in ds.modalities:
        method.embed(m, ds.features[m])
        np.testing.assert_array_equal(ds.features[m], dataset_before[m], err_msg=f"embed changed its {m} input")


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_embeddings_another_seed_others(name):
    ds = tiny()
    view = build_train_view(ds)
    first = every_embedding(quick(name).fit(view, seed=3), ds)
    assert_same_embeddings(first, every_embedding(quick(name).fit(view, seed=3), ds))
    other = every_embedding(quick(name).fit(view, seed=4), ds)
    assert any(not np.array_equal(first[m], other[m]) for m in ds.modalities), "the seed changes nothing"


@pytest.mark.parametrize("name", METHODS)
def test_refit_is_a_fresh_fit(name):
    """Fitting an already fitted method (other data, other seed) gives exactly what a fresh fit gives."""
    ds, other = tiny(), make_tiny_dataset(seed=5, extra_per_class=1)
    refitted = quick(name).fit(build_train_view(other), seed=7)
    refitted.fit(build_train_view(ds), seed=3)
    fresh = quick(name).fit(build_train_view(ds), seed=3)
    assert_same_embeddings(every_embedding(refitted, ds), every_embedding(fresh, ds))
    assert refitted.history_ == fresh.history_  # started over, not appended


@pytest.mark.parametrize("name", METHODS)
def test_unseen_samples_cannot_influence_training(name):
    """Changing every unseen-class sample must leave the trained model exactly as it was."""
    ds = tiny()
    features = {m: x.copy() for m, x in ds.features.items()}
    rng = np.random.default_rng(9)
    for m, x in features.items():
        unseen_rows = np.isin(ds.labels[m], ds.unseen_classes)
        x[unseen_rows] = rng.standard_normal((unseen_rows.sum(), x.shape[1])).astype(np.float32) * 5
    changed = ZSDataset(**{**{f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)}, "features": features})
    probe = {m: ds.features[m][np.isin(ds.labels[m], ds.seen_classes)][:5] for m in ds.modalities}
    a = quick(name).fit(build_train_view(ds), seed=1)
    b = quick(name).fit(build_train_view(changed), seed=1)
    assert_same_embeddings({m: a.embed(m, X) for m, X in probe.items()}, {m: b.embed(m, X) for m, X in probe.items()})


@pytest.mark.parametrize("name", METHODS)
def test_embed_before_fit_is_a_clear_error(name):
    ds = tiny()
    with pytest.raises(NotFittedError, match="before fit"):
        quick(name).embed(ds.modalities[0], ds.features[ds.modalities[0]][:3])


@pytest.mark.parametrize("name", METHODS)
def test_an_embedding_does_not_depend_on_its_batch(name):
    ds = tiny()
    method = quick(name).fit(build_train_view(ds), seed=0)
    for m in ds.modalities:
        X = ds.features[m][:6]
        whole = method.embed(m, X)
        one_by_one = np.concatenate([method.embed(m, X[i:i + 1]) for i in range(len(X))])
        reversed_order = method.embed(m, X[::-1])[::-1]
        np.testing.assert_allclose(one_by_one, whole, rtol=1e-5, atol=1e-6, err_msg=m)
        np.testing.assert_allclose(reversed_order, whole, rtol=1e-5, atol=1e-6, err_msg=m)


@pytest.mark.parametrize("name", METHODS)
def test_progress_is_reported_from_the_first_step_to_the_total(name):
    calls: list[tuple[int, int | None]] = []
    method = quick(name)
    method.progress_hook_ = lambda done, total: calls.append((done, total))
    method.fit(build_train_view(tiny()), seed=0)
    assert calls, f"{name} never reports progress"
    first_done, total = calls[0]
    assert first_done == 0 and total is not None and total >= 1, "set_total_steps must come before the first step"
    assert all(t == total for _, t in calls), "the total is declared once"
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total, f"progress ends at {done[-1]} of {total}"


@pytest.mark.parametrize("name", METHODS)
def test_embeds_during_training_work_and_change_nothing(name):
    """The runner's validation monitor embeds from the epoch hook, mid-fit: that must work, and must not change
    the trained model (no random draws, no BatchNorm statistics moved, no state replaced)."""
    ds = tiny()
    view = build_train_view(ds)
    monitored, seen = quick(name), []

    def monitor(epoch, entry):
        seen.append({m: monitored.embed(m, ds.features[m][:5]) for m in ds.modalities})
        return {"val_mAP@all": 0.5}

    monitored.epoch_hook_ = monitor
    monitored.fit(view, seed=2)
    monitored.epoch_hook_ = None
    assert all(np.isfinite(Z).all() for embeddings in seen for Z in embeddings.values())
    assert len(seen) == len(monitored.history_)
    assert all(entry["val_mAP@all"] == 0.5 for entry in monitored.history_)
    assert_same_embeddings(every_embedding(monitored, ds), every_embedding(quick(name).fit(view, seed=2), ds))


@pytest.mark.parametrize("name", METHODS)
def test_hyper_parameters_are_constructor_arguments(name):
    method = quick(name)
    params = method.get_params()
    assert type(method)(**params).get_params() == params
    assert all(not key.endswith("_") for key in params)
    assert {f.name for f in dataclasses.fields(method) if f.init} == set(params)
    # The constructor only stores: no learned state before fit.
    assert not [key for key in vars(type(method)(**params)) if key.endswith("_") and key != "history_"]


def _space_ends(space) -> tuple:
    if isinstance(space, Choice):
        return tuple(space.values)
    return space.low, space.high


@pytest.mark.parametrize("name", [n for n in METHODS if available_methods()[n][0].search_space])
def test_search_space_names_hyper_parameters_and_its_ends_fit(name):
    cls, overrides = available_methods()[name]
    defaults = quick(name).get_params()
    # A registered variant (an ablation) fixes its overrides; tuning leaves them alone.
    space_items = {param: space for param, space in cls.search_space.items() if param not in overrides}
    for param, space in space_items.items():
        assert param in defaults, f"{name}: search space names {param!r}, not a hyper-parameter"
        assert isinstance(space, (LogUniform, Uniform, IntRange, Choice)), (param, space)
        if isinstance(space, Choice):
            assert len(space.values) >= 2, param
            continue
        assert space.low < space.high, param
        if isinstance(space, LogUniform):
            assert space.low > 0, param
        if isinstance(space, IntRange):
            assert isinstance(space.low, int) and isinstance(space.high, int) and space.step >= 1, param
        default = build_method(name, {})[1].get_params()[param]
        assert space.low <= default <= space.high, f"{name}.{param}: the default {default} is outside {space}"
    ds = tiny()
    for end in (0, -1):
        values = {param: _space_ends(space)[end] for param, space in space_items.items()}
        assert build_method(name, values)[1].get_params().items() >= values.items()  # the ends construct
        # ... and fit, with quick_params keeping the cost-driving sizes tiny.
        method = build_method(name, {**values, **cls.quick_params})[1].fit(build_train_view(ds), seed=0)
        assert all(np.isfinite(method.embed(m, ds.features[m][:4])).all() for m in ds.modalities)
