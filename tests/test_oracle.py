"""The oracle protocol (opt-in test-class scores during training): a separate run whose own results equal a
plain run's, scores checked against sklearn, refused by validation runs and by tuning, and the three numbers
of the report's table on a hand-made case."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmark.contract import ZSBenchError
from benchmark.core.data import DatasetRequest
from benchmark.core.oracle import BEST_EPOCH, BEST_POST, HONEST, oracle_numbers
from benchmark.core.protocol import build_train_view
from benchmark.core.record import RunRecord
from benchmark.core.store import ResultStore
from benchmark.execution.grid import grid_from_cli
from benchmark.execution.plan import check_grid
from benchmark.execution.tuning import tune_all
from benchmark.registry import build_method
from tests.conftest import run_method

QUICK = {"hidden": 32, "epochs": 4}


def _map_all(Zq, yq, Zg, yg) -> float:
    """mAP@all by sklearn on cosine scores (queries without a relevant item left out)."""
    qn = Zq / np.linalg.norm(Zq, axis=1, keepdims=True)
    gn = Zg / np.linalg.norm(Zg, axis=1, keepdims=True)
    scores = qn @ gn.T
    aps = [average_precision_score(yg == y, s) for y, s in zip(yq, scores, strict=True) if (yg == y).any()]
    return float(np.mean(aps))


def test_an_oracle_run_is_a_separate_run_whose_own_results_equal_a_plain_run(tmp_path, tiny_sketch):
    store = ResultStore(tmp_path)
    plain = run_method("semantic-regression", tiny_sketch, 0, store, params=QUICK).record
    oracle = run_method("semantic-regression", tiny_sketch, 0, store, params=QUICK, oracle_every=2)
    assert oracle.status == "done" and len(list(tmp_path.rglob("*.json"))) == 2  # nothing replaced
    record = oracle.record
    assert record.metrics == plain.metrics and record.training_log == plain.training_log
    assert plain.oracle is None and record.identity["oracle_every"] == 2 and "oracle_every" not in plain.identity
    assert [p["epoch"] for p in record.oracle["curve"]] == [1, 3]  # every 2nd of 4 epochs
    last = record.oracle["curve"][-1]  # the last epoch's model is the final model
    assert last["raw"] == {t: m["mAP@all"] for t, m in record.metrics.items()}

    # test z-score, independently: the same fit (same seed), embeddings standardised with the test items' statistics
    _, method = build_method("semantic-regression", QUICK)
    method.fit(build_train_view(tiny_sketch), 0)
    ds = tiny_sketch
    Z = {m: method.embed(m, ds.features[m][ds.items(m, ds.unseen_classes, None)]).astype(np.float64)
         for m in ds.modalities}
    y = {m: ds.labels[m][ds.items(m, ds.unseen_classes, None)] for m in ds.modalities}
    Zs = {m: (Z[m] - Z[m].mean(0)) / Z[m].std(0) for m in Z}
    (task,) = record.metrics
    q, g = task.split("->")
    assert last["test z-score"][task] == pytest.approx(_map_all(Zs[q], y[q], Zs[g], y[g]), abs=1e-5)
    assert last["raw"][task] == pytest.approx(_map_all(Z[q], y[q], Z[g], y[g]), abs=1e-5)


def test_the_oracle_is_refused_for_validation_runs(tiny_sketch):
    grid = grid_from_cli(None, "semantic-regression", "wikipedia", True, None, 0.05, "0", None, stage="validation",
                         oracle_every=1)
    with pytest.raises(ZSBenchError, match="--oracle-every must be a positive number of epochs on the test stage"):
        check_grid(grid)
    generalized = grid_from_cli(None, "semantic-regression", "wikipedia", True, None, 0.05, "0", None,
                                oracle_every=1, scenario="generalized")
    with pytest.raises(ZSBenchError, match="run it with --scenario zero-shot"):
        check_grid(generalized)
    with pytest.raises(ZSBenchError, match="applies to the test stage only"):
        run_method("semantic-regression", tiny_sketch.selection_view(), 0, ResultStore("unused"), params=QUICK,
                   oracle_every=1)


def test_tuning_refuses_a_record_with_test_class_scores(tmp_path):
    request = DatasetRequest("wikipedia", synthetic=True, scale=0.05)
    ridge = "benchmark.testing:RidgeProjection"
    tune_all([ridge], request, 1, [0], tmp_path)
    (path,) = (tmp_path / "trials").rglob("*.json")
    data = json.loads(path.read_text())
    data["oracle"] = {"every": 1, "curve": []}
    path.write_text(json.dumps(data))
    assert RunRecord.load(path).oracle is not None
    for study in tmp_path.rglob("*.sqlite"):
        study.unlink()  # the trial is run again, finds its record, and must refuse it
    with pytest.raises(ZSBenchError, match="carries test-class scores"):
        tune_all([ridge], request, 1, [0], tmp_path)


def test_the_three_numbers_on_a_hand_made_case():
    metrics = {"a->b": {"mAP@all": 0.30}, "b->a": {"mAP@all": 0.20}}  # the last model: mean 0.25
    curve = [{"modalities": "x", "epoch": 0, "raw": {"a->b": 0.1, "b->a": 0.1}, "test z-score": {"a->b": 0.5, "b->a": 0.3}},
             {"modalities": "x", "epoch": 1, "raw": {"a->b": 0.4, "b->a": 0.2}, "test z-score": {"a->b": 0.2, "b->a": 0.2}}]
    numbers = oracle_numbers(metrics, {"curve": curve})
    assert numbers[HONEST] == pytest.approx(0.25)
    assert numbers[BEST_EPOCH] == pytest.approx(0.30)  # epoch 1, raw: (0.4 + 0.2) / 2
    assert numbers[BEST_POST] == pytest.approx(0.40)  # epoch 0, z-scored: (0.5 + 0.3) / 2
    assert oracle_numbers(metrics, {"curve": []}) == {HONEST: 0.25, BEST_EPOCH: 0.25, BEST_POST: 0.25}


def test_the_report_keeps_oracle_runs_out_of_every_table_but_their_own(tmp_path, tiny_sketch):
    from benchmark.report.build import build_report

    store = ResultStore(tmp_path / "runs")
    for seed in (0, 1):
        run_method("semantic-regression", tiny_sketch, seed, store, params=QUICK)
        run_method("semantic-regression", tiny_sketch, seed, store, params=QUICK, oracle_every=1)
    result = build_report(tmp_path / "runs", tmp_path / "report", plots=False, sensitivity=False, statistics=False)
    (table,) = result.comparison
    (row,) = table.sections[0].rows
    assert row.seeds == "2"  # the two plain runs only
    (oracle,) = result.oracle
    (orow,) = oracle.sections[0].rows
    records = [RunRecord.load(p) for p in sorted((tmp_path / "runs").rglob("*.json"))]
    oracle_records = [r for r in records if r.oracle is not None]
    assert len(oracle_records) == 2
    # by hand: per seed, the best mean-over-tasks raw score over the oracle epochs and the last model
    best = [max([np.mean(list(p["raw"].values())) for p in r.oracle["curve"]]
                + [np.mean([m["mAP@all"] for m in r.metrics.values()])]) for r in oracle_records]
    honest = [np.mean([m["mAP@all"] for m in r.metrics.values()]) for r in oracle_records]
    assert orow.cells[0].mean == pytest.approx(np.mean(honest)) and orow.cells[1].mean == pytest.approx(np.mean(best))
    assert orow.cells[3].mean == pytest.approx(np.mean(best) - np.mean(honest))
    assert "never a result" in oracle.caption
