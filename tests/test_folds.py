"""Validation folds: class-disjoint, seen-only, frozen and hashed for every split; fold views; K-fold tuning
(no test class reaches a spy; the objective is the mean over folds and seeds)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from benchmark.contract import ZSBenchError
from benchmark.core.data import DatasetRequest
from benchmark.core.record import RunRecord
from benchmark.core.store import ResultStore
from benchmark.datasets.specs import FOLDS_SHA256, SPECS
from benchmark.datasets.splits import SPLITS_DIR, folds_path, load_folds, load_split, load_validation, validation_path
from benchmark.execution.tuning import tune_all
from benchmark.testing import SPY_LOG_ENV
from tests.conftest import run_method

WIKI = DatasetRequest("wikipedia", synthetic=True, scale=0.05)
SPLITS = [(name, split) for name, spec in sorted(SPECS.items()) for split in spec.splits]


@pytest.mark.parametrize(("dataset", "split"), SPLITS)
def test_every_split_has_frozen_disjoint_seen_only_folds(dataset, split):
    loaded = SPECS[dataset].split(split)
    fold0 = loaded.validation.classes
    folds = [fold0, *(f.classes for f in loaded.folds)]
    every = [c for fold in folds for c in fold]
    assert len(every) == len(set(every)) and set(every) <= set(loaded.seen)  # disjoint, seen classes only
    assert {len(f) for f in folds} == {len(fold0)}
    assert len(folds) == min(5, len(loaded.seen) // len(fold0)) and len(folds) >= 2
    assert len(loaded.seen) - len(fold0) >= 2  # every fold leaves at least two classes to train on
    path = folds_path(SPLITS_DIR / dataset / SPECS[dataset].splits[split].file)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FOLDS_SHA256[dataset][split]
    assert len({f.sha256 for f in loaded.folds} | {loaded.validation.sha256}) == len(folds)


def test_the_fold_draw_is_pinned():
    # a change of numpy's generator or of the draw would silently move the derived folds of users' datasets and
    # the folds of the next frozen split: the draw must reproduce the frozen files, and this literal
    from benchmark.core.data import draw_folds

    wiki = SPECS["wikipedia"].split("dadn")
    drawn = draw_folds(wiki.seen, wiki.validation.classes, "wikipedia/dadn")
    assert drawn == (("biology", "warfare"),) == tuple(f.classes for f in wiki.folds)
    emoji = SPECS["emoji"].split("emoji-v1")
    assert draw_folds(emoji.seen, emoji.validation.classes, "emoji/emoji-v1") == tuple(f.classes for f in emoji.folds)


def test_an_edited_folds_file_is_refused(tmp_path):
    spec = SPECS["wikipedia"]
    ref = spec.splits["dadn"]
    for name in (ref.file, validation_path(ref.file).name, folds_path(ref.file).name):
        shutil.copy(SPLITS_DIR / "wikipedia" / name, tmp_path / name)
    split = load_validation(load_split(tmp_path / ref.file, ref.sha256), validation_path(tmp_path / ref.file),
                            ref.validation_sha256)
    folds = folds_path(tmp_path / ref.file)
    folds.write_text(folds.read_text().replace("warfare", "history"))
    with pytest.raises(ZSBenchError, match="validation folds file .* has sha256 .* the registry expects"):
        load_folds(split, folds, FOLDS_SHA256["wikipedia"]["dadn"])
    with pytest.raises(ZSBenchError, match="folds overlap or name classes that are not seen"):
        load_folds(split, folds, None)  # history is fold 0's: the folds overlap


def test_a_fold_view_scores_that_fold_and_trains_on_the_rest(tmp_path, tiny_sketch):
    folds = tiny_sketch.validation_folds()
    assert len(folds) >= 2
    view = tiny_sketch.selection_view(1)
    assert view.split.name == "tiny/validation-fold1" and set(view.split.unseen) == set(folds[1].classes)
    assert set(view.split.seen) == set(tiny_sketch.split.seen) - set(folds[1].classes)
    record = run_method("semantic-regression", view, 0, ResultStore(tmp_path), params={"hidden": 8, "epochs": 2}).record
    assert record.split["name"] == "tiny/validation-fold1" and record.split["sha256"] == folds[1].sha256
    with pytest.raises(ZSBenchError, match="has .* validation folds"):
        tiny_sketch.selection_view(len(folds))


def test_k_fold_tuning_never_shows_a_test_class_and_averages_folds_and_seeds(tmp_path, monkeypatch):
    from benchmark.datasets.requests import load_request

    wiki = load_request(WIKI)
    log = tmp_path / "spy.jsonl"
    monkeypatch.setenv(SPY_LOG_ENV, str(log))
    result = tune_all(["benchmark.testing:SpyRidge"], WIKI, 1, [0, 1], tmp_path / "tuning", folds=2)[0]
    fits = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(fits) == 4  # 2 folds x 2 seeds
    test = set(wiki.split.unseen)
    trained_on = {frozenset(fit["sample_classes"]) for fit in fits}
    expected = {frozenset(set(wiki.split.seen) - set(fold.classes)) for fold in wiki.validation_folds()[:2]}
    assert trained_on == expected
    for fit in fits:
        assert not test & set(fit["view_classes"]) and not test & set(fit["sample_classes"])
    records = [RunRecord.load(p) for p in (tmp_path / "tuning" / "trials").rglob("*.json")]
    assert sorted(r.split["name"] for r in records) == ["dadn/validation"] * 2 + ["dadn/validation-fold1"] * 2
    by_hand = np.mean([np.mean([m["mAP@all"] for m in r.metrics.values()]) for r in records])
    assert result.best_value == pytest.approx(by_hand, abs=1e-12) and result.folds == 2
    assert result.selection(wiki)["folds"] == [0, 1]
