"""The report's check of selection: Kendall tau between validation and test rankings, per fold and over folds,
on hand-made records whose taus are known (-1 on fold 0, +1 over two folds)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import kendalltau

from benchmark.report.trust import kendall_tau_b, trust_tables
from tests.test_report import record, runs_of

TEST = {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1}
FOLD0 = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}  # the reverse of the test ranking
FOLD1 = {"a": 1.0, "b": 0.7, "c": 0.5, "d": 0.2}  # mean over folds: a .55, b .45, c .40, d .30, the test's order


def _with(method, seed, value, split="dadn", stage="test"):
    r = record(method=method, seed=seed, split=split, values={"mAP@all": value}, tasks=("image->text",))
    return dataclasses.replace(r, stage=stage)


def test_kendall_tau_per_fold_and_over_folds():
    tests = [_with(m, s, v) for m, v in TEST.items() for s in (0, 1)]
    vals = [_with(m, s, v, "dadn/validation", "validation") for m, v in FOLD0.items() for s in (0, 1)]
    vals += [_with(m, s, v, "dadn/validation-fold1", "validation") for m, v in FOLD1.items() for s in (0, 1)]
    runs = runs_of(*tests, *vals)
    tau, spread = trust_tables(runs[:len(tests)], runs[len(tests):])
    one, both = tau.sections[0].rows
    assert one.label == "fold 0" and one.cells[0].mean == pytest.approx(-1.0)
    assert both.label.startswith("2 folds") and both.cells[0].mean == pytest.approx(1.0)
    assert one.cells[0].low <= one.cells[0].mean <= one.cells[0].high  # seeds agree: a degenerate interval
    ranges = {row.label: row.cells[1].mean for row in spread.sections[0].rows}
    assert ranges == pytest.approx({"a": 0.9, "b": 0.5, "c": 0.2, "d": 0.2})


def test_no_table_without_validation_records_or_with_fewer_than_three_methods():
    tests = [_with(m, 0, v) for m, v in TEST.items()]
    assert trust_tables(runs_of(*tests), []) == []
    two = [_with(m, 0, v, "dadn/validation", "validation") for m, v in list(FOLD0.items())[:2]]
    assert trust_tables(runs_of(*tests), runs_of(*two)) == []


def test_kendall_tau_b_equals_scipys_with_and_without_ties():
    rng = np.random.default_rng(0)
    for n in (3, 5, 9):
        for _ in range(50):
            a, b = rng.integers(0, 4, n).astype(float), rng.normal(size=n)  # ties in a
            c = rng.integers(0, 3, n).astype(float)  # ties in both
            assert kendall_tau_b(a, b) == pytest.approx(kendalltau(a, b).statistic, nan_ok=True)
            assert kendall_tau_b(a, c) == pytest.approx(kendalltau(a, c).statistic, nan_ok=True)
    assert np.isnan(kendall_tau_b([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # a constant ranking has no tau
