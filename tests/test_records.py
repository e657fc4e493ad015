"""Run records as one typed shape: schema checks, per-query sidecars that add up to the record, the stage and the
thread count in a run's identity, --param overrides, the device check."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmark.contract import ZSBenchError
from benchmark.core.env import resolve_device
from benchmark.core.record import DEFAULTS_SELECTION, SCHEMA_VERSION, RunRecord
from benchmark.core.store import ResultStore
from benchmark.execution.grid import grid_from_cli, parse_param
from benchmark.execution.plan import make_spec, plan_grid
from tests.conftest import make_tiny_dataset, run_method

QUICK = {"epochs": 2, "hidden": 16}


def test_a_record_round_trips_and_an_unknown_version_is_refused(tmp_path, tiny_sketch):
    outcome = run_method("semantic-regression", tiny_sketch, 0, ResultStore(tmp_path), params=QUICK)
    loaded = RunRecord.load(outcome.path)
    assert loaded == outcome.record and loaded.schema_version == SCHEMA_VERSION
    assert loaded.threads == 1 and loaded.stage == "test" and loaded.selection == {"protocol": "defaults"}
    data = json.loads(outcome.path.read_text())
    data["schema_version"] = 99
    outcome.path.write_text(json.dumps(data))
    with pytest.raises(ZSBenchError, match=r"schema version 99; this zsbench reads versions 1, 2"):
        RunRecord.load(outcome.path)
    del data["metrics"]
    data["schema_version"] = 2
    outcome.path.write_text(json.dumps(data))
    with pytest.raises(ZSBenchError, match="lacks metrics"):
        RunRecord.load(outcome.path)


def test_a_version_1_record_still_loads():
    data = {"schema_version": 1, "method": "random", "config": {}, "dataset": {"name": "d", "items": {"a": 1, "b": 2}},
            "source": "synthetic", "split": {"name": "s", "sha256": "0"}, "seed": 0, "metrics": {},
            "metrics_info": {}, "training_log": [], "timings": {}, "peak_memory_mb": 0.0, "device": "cpu",
            "versions": {}, "git_commit": None, "started": "", "finished": "", "identity": {}}
    record = RunRecord.from_json(data)
    assert record.fits == ["a+b"] and record.threads is None and record.stage == "test"


@pytest.mark.parametrize("paired", [False, True])
def test_the_per_query_sidecar_adds_up_to_the_record_exactly(tmp_path, paired):
    ds = make_tiny_dataset(paired=paired)
    outcome = run_method("semantic-regression", ds, 0, ResultStore(tmp_path), params=QUICK)
    table = pq.read_table(outcome.path.with_name(outcome.record.queries_file)).to_pandas()
    assert set(table["task"]) == set(outcome.record.metrics)
    for task, metrics in outcome.record.metrics.items():
        rows = table[(table["task"] == task) & (table["n_relevant"] > 0)]
        assert len(table[table["task"] == task]) == outcome.record.metrics_info[task]["n_queries"]
        assert set(rows["class_name"]) <= {ds.class_names[c] for c in ds.unseen_classes}
        for metric, value in metrics.items():
            assert float(np.mean(rows[metric].to_numpy())) == value, (task, metric)


def test_threads_and_stage_are_part_of_the_identity(tmp_path, tiny_sketch):
    store = ResultStore(tmp_path)
    one = run_method("random", tiny_sketch, 0, store)
    two = run_method("random", tiny_sketch, 0, store, threads=2)
    validation = run_method("random", make_tiny_dataset(n_classes=8).selection_view(), 0, store)
    assert len({one.path, two.path, validation.path}) == 3
    assert two.record.threads == 2 and validation.record.stage == "validation"
    assert validation.record.split["name"].endswith("/validation")


def test_a_validation_stage_fit_logs_the_validation_map_per_epoch(tmp_path):
    view = make_tiny_dataset(n_classes=8).selection_view()
    record = run_method("semantic-regression", view, 0, ResultStore(tmp_path), params={"epochs": 3, "hidden": 16}).record
    assert [entry["epoch"] for entry in record.training_log] == [0, 1, 2]
    assert all(0 <= entry["val_mAP@all"] <= 1 for entry in record.training_log)
    final = np.mean([m["mAP@all"] for m in record.metrics.values()])
    assert record.training_log[-1]["val_mAP@all"] == pytest.approx(final)


def test_param_overrides_are_checked_and_recorded():
    assert parse_param("cfsa.lr=1e-4") == ("cfsa", "lr", 1e-4)
    assert parse_param("cfsa.alignment=mmd") == ("cfsa", "alignment", "mmd")
    assert parse_param("my.pkg:M.flag=true") == ("my.pkg:M", "flag", True)
    grid = grid_from_cli(None, "semantic-regression,random", "wikipedia", True, None, 0.05, "0", None,
                         params=["semantic-regression.epochs=3", "random.dim=4"])
    assert [m.params for m in grid.methods] == [{"epochs": 3}, {"dim": 4}]
    assert plan_grid(grid).provenance["methods"][0]["params"]["epochs"] == 3
    with pytest.raises(ZSBenchError, match="no method 'cfsa' in this grid"):
        grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0", None, params=["cfsa.epochs=3"])
    with pytest.raises(ZSBenchError, match="random has no hyper-parameter 'epochs'; its hyper-parameters: dim"):
        grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0", None, params=["random.epochs=3"])
    with pytest.raises(ZSBenchError, match="write it as METHOD.PARAM=VALUE"):
        parse_param("epochs=3")


def test_a_gpu_run_is_another_run_and_cpu_identities_are_unchanged(tiny_sketch):
    spec = make_spec("random", 0, tiny_sketch.name, {"dim": 4})
    cpu = spec.identity(tiny_sketch)
    assert "device" not in cpu  # so the records written before the device joined the identity keep their names
    assert cpu == {"method": "random", "config": {"dim": 4}, "dataset": tiny_sketch.name, "source": tiny_sketch.source,
                   "split": tiny_sketch.split.name, "split_sha256": tiny_sketch.split.sha256, "stage": "test",
                   "seed": 0, "data": dict(tiny_sketch.provenance), "eval_protocol": tiny_sketch.eval_protocol,
                   "threads": 1, "selection": DEFAULTS_SELECTION}
    assert dataclasses.replace(spec, device="cuda:1").identity(tiny_sketch) == {**cpu, "device": "cuda"}
    cuda = dataclasses.replace(spec, device="cuda").identity(tiny_sketch)
    assert ResultStore("r").path_for(cuda) != ResultStore("r").path_for(cpu)


def test_the_device_is_checked_once_and_recorded_as_it_ran():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ZSBenchError, match="--device cuda: this torch .* has no usable CUDA"):
            resolve_device("cuda")
    with pytest.raises(ZSBenchError, match="--device must be cpu"):
        resolve_device("tpu")


@pytest.mark.slow
def test_sigterm_lists_finished_runs_prints_the_rerun_command_and_leaves_no_lock_or_temp(tmp_path):
    import os
    import signal
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = tmp_path / "r"
    args = [sys.executable, "-m", "benchmark.cli", "run", "--methods", "benchmark.testing:RidgeProjection",
            "--dataset", "wikipedia", "--synthetic", "--scale", "0.05", "--seeds", "0,1,2,3,4,5",
            "--param", "benchmark.testing:RidgeProjection.delay_s=0.25", "--results", str(results)]
    proc = subprocess.Popen(args, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(results.rglob("*.json"))) < 1:
        time.sleep(0.05)
    while time.monotonic() < deadline and not list(results.rglob("*.lock")):  # a run in flight holds its claim
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: " in err and "rerun to finish the rest" in err and "zsbench run --methods" in err
    assert "done: wikipedia benchmark.testing:RidgeProjection seed 0" in err
    assert not list(results.rglob("*.lock")) and not list(results.rglob(".*.tmp"))
    assert 1 <= len(list(results.rglob("*.json"))) < 6


@pytest.mark.parametrize("recorded_s, warned", [(4000.0, True), (3000.0, False)])
def test_the_cli_warns_before_a_grid_estimated_at_over_an_hour(tmp_path, recorded_s, warned):
    from click.testing import CliRunner

    from benchmark.cli import cli

    args = ["run", "--methods", "random", "--dataset", "wikipedia", "--synthetic", "--scale", "0.05",
            "--results", str(tmp_path)]
    assert CliRunner().invoke(cli, [*args, "--seeds", "0"]).exit_code == 0
    (path,) = tmp_path.rglob("*.json")
    data = json.loads(path.read_text())
    data["timings"]["total_s"] = recorded_s  # seed 0 took this long on this machine
    path.write_text(json.dumps(data))
    outcome = CliRunner().invoke(cli, [*args, "--seeds", "0,1"])
    assert outcome.exit_code == 0, outcome.output
    text = " ".join(outcome.output.split())
    assert "for the one run to do, one at a time; 1 from this machine's" in text
    assert ("warning: this grid runs for over an hour" in text) is warned
    assert ("warning" in text) is warned


def test_an_estimate_comes_from_earlier_records_of_the_same_configuration(tmp_path):
    from benchmark.core.store import ResultStore
    from benchmark.execution.estimates import estimate_plan
    from benchmark.execution.plan import run_grid_with

    plan = plan_grid(grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0,1", None))
    fresh = estimate_plan(plan, tmp_path)
    assert (fresh.measured, fresh.modelled) == (0, 2)  # no record yet: the shipped cost model times both
    assert estimate_plan(plan, tmp_path, use_model=False).known == 0
    run_grid_with(grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0", None), tmp_path)
    (_, record), = ResultStore(tmp_path).records()
    # Seed 0 has its record (the grid will skip it); seed 1 is estimated from seed 0's time, not the model.
    estimate = estimate_plan(plan, tmp_path)
    assert (estimate.total, estimate.recorded, estimate.measured, estimate.modelled, estimate.unknown) == (2, 1, 1, 0, 0)
    assert record.total_s > 0 and estimate.seconds == record.total_s
    forced = estimate_plan(plan, tmp_path, force=True)
    assert (forced.measured, forced.seconds) == (2, 2 * record.total_s)  # --force reruns both
    other = plan_grid(grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0", None, params=["random.dim=8"]))
    assert estimate_plan(other, tmp_path).measured == 0
    # A CPU record neither skips nor times a GPU run.
    on_gpu = dataclasses.replace(plan, specs=[dataclasses.replace(s, device="cuda") for s in plan.specs])
    assert (estimate_plan(on_gpu, tmp_path).recorded, estimate_plan(on_gpu, tmp_path).measured) == (0, 0)
