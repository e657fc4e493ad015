"""The zero-shot protocol: train views hold seen classes only, validation is held out, bad data is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmark.contract import LeakageError, ZSBenchError
from benchmark.core.protocol import ZSDataset, build_train_view, check_no_leakage, evaluate
from benchmark.registry import build_method
from tests.conftest import make_tiny_dataset


def test_train_view_has_only_seen_classes(tiny_sketch):
    view = build_train_view(tiny_sketch)
    seen = set(tiny_sketch.seen_classes.tolist())
    for m in view.modalities:
        assert set(view.labels[m].tolist()) <= seen
        assert set(view.holdout_labels[m].tolist()) <= seen
        assert view.features[m].shape[0] == view.labels[m].shape[0]
    assert view.class_embeddings.shape[0] == len(tiny_sketch.class_names)  # unseen names are side information
    np.testing.assert_array_equal(view.unseen_classes, [0, 1])


def test_validation_part_is_disjoint_and_stable(tiny_sketch):
    a, b = build_train_view(tiny_sketch), build_train_view(tiny_sketch)
    for m in a.modalities:
        np.testing.assert_array_equal(a.holdout_features[m], b.holdout_features[m])
        train_rows = {r.tobytes() for r in a.features[m]}
        assert not any(r.tobytes() in train_rows for r in a.holdout_features[m])
        n_seen = np.isin(tiny_sketch.labels[m], tiny_sketch.seen_classes).sum()
        assert a.holdout_labels[m].size == round(0.2 * n_seen)


def test_paired_view_keeps_pairs_and_uses_train_part_only(tiny_paired):
    view = build_train_view(tiny_paired)
    np.testing.assert_array_equal(view.labels["image"], view.labels["text"])
    np.testing.assert_array_equal(view.holdout_labels["image"], view.holdout_labels["text"])
    n_train_seen = np.sum(np.isin(tiny_paired.labels["image"], tiny_paired.seen_classes)
                          & (tiny_paired.parts["image"] == 0))
    assert view.labels["image"].size + view.holdout_labels["image"].size == n_train_seen


@pytest.mark.parametrize("part, field", [("train", "labels"), ("hold-out", "holdout_labels")])
def test_leakage_guard_refuses_an_unseen_sample(tiny_sketch, part, field):
    view = build_train_view(tiny_sketch)
    check_no_leakage(view, tiny_sketch.unseen_classes)  # the view as built passes
    unseen = int(tiny_sketch.unseen_classes[0])
    leaked_labels = dict(getattr(view, field))
    leaked_labels["sketch"] = np.concatenate([leaked_labels["sketch"], [unseen]])
    with pytest.raises(LeakageError, match=f"leaks 1 unseen-class sketch sample\\(s\\) into its {part} part"):
        check_no_leakage(dataclasses.replace(view, **{field: leaked_labels}), tiny_sketch.unseen_classes)


def _mutate(ds: ZSDataset, **changes) -> None:
    fields = {f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)}
    fields.update(changes)
    ZSDataset(**fields)


def test_nan_features_are_refused(tiny_sketch):
    features = dict(tiny_sketch.features)
    features["image"] = features["image"].copy()
    features["image"][3, 0] = np.nan
    with pytest.raises(ZSBenchError, match=r"image features have 1 row\(s\) with NaN"):
        _mutate(tiny_sketch, features=features)


def test_label_feature_length_mismatch_is_refused(tiny_sketch):
    labels = dict(tiny_sketch.labels)
    labels["sketch"] = labels["sketch"][:-1]
    with pytest.raises(ZSBenchError, match="feature rows but .* labels"):
        _mutate(tiny_sketch, labels=labels)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"class_names": ("a", "a", "b", "c", "d", "e")}, "duplicate class names"),
        ({"source": "made-up"}, "source must be"),
        ({"class_embeddings": np.zeros((3, 8), dtype=np.float32)}, "class embeddings have shape"),
    ],
)
def test_other_bad_datasets_are_refused(tiny_sketch, change, message):
    with pytest.raises(ZSBenchError, match=message):
        _mutate(tiny_sketch, **change)


def test_labels_out_of_range_and_wrong_dtype_are_refused(tiny_sketch):
    labels = dict(tiny_sketch.labels)
    labels["image"] = labels["image"].copy()
    labels["image"][0] = 99
    with pytest.raises(ZSBenchError, match="labels must lie in"):
        _mutate(tiny_sketch, labels=labels)
    features = dict(tiny_sketch.features)
    features["image"] = features["image"].astype(np.float64)
    with pytest.raises(ZSBenchError, match="must be float32"):
        _mutate(tiny_sketch, features=features)


def test_evaluate_scores_only_unseen_items_and_blocks_agree(tiny_paired):
    _, method = build_method("semantic-regression", {"hidden": 16, "epochs": 2})
    method.fit(build_train_view(tiny_paired), seed=0)
    whole, details = evaluate(method, tiny_paired, ks=(5,))
    blocked, _ = evaluate(method, tiny_paired, ks=(5,), block_bytes=64)
    assert whole == blocked
    n_unseen_test = np.sum(np.isin(tiny_paired.labels["image"], tiny_paired.unseen_classes)
                           & (tiny_paired.parts["image"] == 1))
    assert details["tasks"]["image->text"]["n_queries"] == n_unseen_test


def test_evaluate_refuses_nan_embeddings(tiny_sketch):
    _, method = build_method("random")
    method.fit(build_train_view(tiny_sketch), seed=0)
    method.embed = lambda modality, X: np.full((len(X), 4), np.nan, dtype=np.float32)
    with pytest.raises(ZSBenchError, match="NaN or inf embeddings"):
        evaluate(method, tiny_sketch)


def test_tiny_fixture_is_valid():
    assert make_tiny_dataset(paired=True).paired
