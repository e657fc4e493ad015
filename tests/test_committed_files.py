"""What the repository ships: every grid file under configs/ loads and names registered methods, datasets and
splits, and every committed run record under results/ loads with RunRecord.load and agrees with its own
per-query file."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from benchmark.core.record import RunRecord
from benchmark.datasets.specs import SPECS
from benchmark.execution.grid import load_grid
from benchmark.execution.tuning import base_method
from benchmark.registry import available_methods, build_method

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
GRID_FILES = sorted((ROOT / "configs").glob("*.toml"))
RECORDS = sorted(p for p in (ROOT / "results").rglob("*.json")
                 if p.parent.parent.parent.name in ("records", "trials", "validation"))


def test_the_repository_ships_grid_files_and_records():
    assert len(GRID_FILES) >= 8
    assert len(RECORDS) >= 150  # results/records, results/validation and results/tuning/trials


@pytest.mark.parametrize("path", GRID_FILES, ids=lambda p: p.name)
def test_every_grid_file_loads_with_registered_methods_datasets_and_splits(path):
    raw = tomllib.loads(path.read_text())
    grid = load_grid(path)
    seeds = raw.get("seeds", [0])
    # one task per (method entry, dataset entry, seed), counted from the TOML itself
    assert (len(grid.methods), len(grid.datasets), len(grid.seeds)) == (len(raw["methods"]), len(raw["datasets"]),
                                                                        len(seeds))
    assert [m.spec for m in grid.methods] == [m["name"] for m in raw["methods"]]
    assert grid.seeds == seeds
    registered = available_methods()
    for entry in grid.methods:
        assert entry.spec in registered, entry.spec
        _, method = build_method(entry.spec, entry.params)
        method.validate_params()  # the grid's parameters are ones the method accepts
    for request in grid.datasets:
        spec = SPECS[request.name]
        assert request.split is None or request.split in spec.splits
        spec.split(request.split)  # the frozen split file matches its registered hash
    tuning = ROOT / (grid.tuning or "results/tuning")
    for entry in (e for e in grid.methods if e.tuned):
        # a tuned entry's study is committed (its own, or its base method's for a variant)
        for request in grid.datasets:
            assert request.name == "emoji" and not request.synthetic, "tuned studies are committed for emoji only"
            folder = tuning / "emoji-embedded" / SPECS["emoji"].split(request.split).name
            studies = [folder / f"{name}.sqlite" for name in (entry.spec, base_method(entry.spec)) if name]
            study = next((s for s in studies if s.is_file()), None)
            assert study is not None, f"{path.name}: no committed study for {entry.spec} in {folder}"
            (summary,) = optuna.get_all_study_summaries(f"sqlite:///{study}")
            assert summary.best_trial is not None and summary.best_trial.value is not None


@pytest.mark.parametrize("folder", ["records", "validation", "tuning/trials"])
def test_every_committed_record_loads_and_matches_its_query_file(folder):
    paths = [p for p in RECORDS if p.is_relative_to(ROOT / "results" / folder)]
    assert paths
    for path in paths:
        _check_record(path, stage="test" if folder == "records" else "validation")


def _check_record(path: Path, stage: str) -> None:
    record = RunRecord.load(path)
    assert path.parent.name == record.method and path.name.startswith(f"seed{record.seed}-"), path
    assert record.stage == stage and record.metrics, path
    for task, values in record.metrics.items():
        assert all(0.0 <= v <= 1.0 for v in values.values()), (path, task, values)
    if record.queries_file is None:
        return
    queries = pd.read_parquet(path.parent / record.queries_file)
    assert set(queries["task"]) == set(record.metrics), path
    for task, rows in queries.groupby("task"):
        with_relevant = rows[rows["n_relevant"] > 0]
        for metric, value in record.metrics[task].items():
            # the record's task mean is the mean over the task's queries that have a relevant item
            mean = float(np.mean(with_relevant[metric]))
            assert math.isclose(mean, value, rel_tol=1e-9, abs_tol=1e-12), (path, task, metric, mean, value)
