"""Training length selected on validation classes (one stopping rule for every method): the rule on hand-made
curves, a tuning that must find a known best epoch, the tuned refit at that length, and every iterative
method running exactly the length it is given."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.core.data import DatasetRequest
from benchmark.core.lengths import best_epoch, length_param, validation_curve
from benchmark.core.record import RunRecord
from benchmark.execution.tuning import tune_all, tuned_choice
from benchmark.registry import available_methods, build_method

WIKI = DatasetRequest("wikipedia", synthetic=True, scale=0.05)
PEAK = "benchmark.testing:PeaksAtEpoch"


def test_the_validation_curve_averages_fits_and_the_best_epoch_is_the_earliest_maximum():
    log = [{"modalities": "a", "epoch": 0, "loss": 1, "val_mAP@all": 0.2},
           {"modalities": "a", "epoch": 1, "val_mAP@all": 0.4},
           {"modalities": "b", "epoch": 0, "val_mAP@all": 0.6},
           {"modalities": "b", "epoch": 1, "val_mAP@all": 0.2},
           {"modalities": "b", "epoch": 2, "val_mAP@all": 0.9}]  # fit a stopped earlier: cut to 2 epochs
    assert validation_curve(log) == pytest.approx([0.4, 0.3])
    assert validation_curve([{"epoch": 0, "loss": 1.0}]) == []
    index, mean = best_epoch([[0.1, 0.5, 0.5, 0.2], [0.3, 0.3, 0.5]])  # means 0.2, 0.4, 0.5 (cut to 3)
    assert index == 2 and mean == pytest.approx([0.2, 0.4, 0.5])
    assert best_epoch([[0.3, 0.5, 0.5]])[0] == 1  # a tie: the earliest


def test_tuning_selects_the_best_validation_epoch_and_the_tuned_refit_uses_it(tmp_path):
    result = tune_all([PEAK], WIKI, 2, [0, 1], tmp_path)[0]
    # independently of the tuning code: the trials' records, their per-epoch validation scores, mean over seeds
    records = [RunRecord.load(p) for p in sorted((tmp_path / "trials").rglob("*.json"))]
    assert len(records) == 4 and all(r.stage == "validation" and r.config["epochs"] == 6 for r in records)
    best_trial = [r for r in records if r.config["ridge"] == result.best_params["ridge"]
                  and r.config["proj_dim"] == result.best_params["proj_dim"]]
    per_epoch = np.mean([[e["val_mAP@all"] for e in r.training_log] for r in best_trial], axis=0)
    assert int(np.argmax(per_epoch)) == 3 and per_epoch[3] > per_epoch[5] + 0.02  # the peak is real (few validation classes: chance is high)
    assert result.best_length == 4 and result.best_params["epochs"] == 4
    assert result.best_value == pytest.approx(per_epoch[3], abs=1e-9)
    params, selection = tuned_choice(tmp_path, PEAK, WIKI)
    assert params["epochs"] == 4 and selection["length"]["epochs"] == 4


ITERATIVE = sorted(n for n, (cls, o) in available_methods().items() if not o and length_param(build_method(n)[1]))


def test_closed_form_methods_have_no_length_and_iterative_ones_do():
    assert {"cca", "random"}.isdisjoint(ITERATIVE) and {"cfsa", "dadn", "semantic-regression"} <= set(ITERATIVE)


@pytest.mark.parametrize("name", ITERATIVE)
def test_an_iterative_method_runs_exactly_the_length_it_is_given(name, tiny_sketch):
    from benchmark.core.protocol import build_train_view

    cls = available_methods()[name][0]
    _, method = build_method(name, dict(cls.quick_params))
    ds = tiny_sketch if cls.max_modalities is None else tiny_sketch.restrict(tiny_sketch.modalities[:2])
    _, method = build_method(name, {**cls.quick_params, **method.length_params(3)})
    method.fit(build_train_view(ds), 0)
    assert [e["epoch"] for e in method.history_] == [0, 1, 2]


