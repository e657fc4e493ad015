"""Executors give the serial records; grid files; determinism of the same command run twice."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.contract import ZSBenchError
from benchmark.core.store import ResultStore
from benchmark.execution.executors import make_executor
from benchmark.execution.grid import grid_from_cli, load_grid
from benchmark.execution.plan import check_grid, plan_grid, run_grid_with

ROOT = Path(__file__).resolve().parents[1]
GRID = """
seeds = [0, 1]
[[methods]]
name = "benchmark.testing:RidgeProjection"
[[methods]]
name = "semantic-regression"
params = { epochs = 2, hidden = 32 }
[[datasets]]
name = "wikipedia"
synthetic = true
scale = 0.05
"""
RUN_FIELDS = ("metrics", "metrics_info", "config", "identity", "training_log", "dataset", "split", "grid")


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("grid") / "grid.toml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def serial_one_thread(tmp_path_factory, grid_file) -> Path:
    """The serial records every executor is compared with (one thread per run, as a Ray task has)."""
    root = tmp_path_factory.mktemp("serial")
    report = run_grid_with(load_grid(grid_file), root)
    assert [r.status for r in report.results] == ["done"] * 4
    return root


def _records(root: Path) -> dict[str, dict]:
    return {str(path.relative_to(root)): record.to_json() for path, record in ResultStore(root).records()}


def _assert_same_records(a: Path, b: Path) -> None:
    ra, rb = _records(a), _records(b)
    assert sorted(ra) == sorted(rb) and ra
    for name in ra:
        for key in RUN_FIELDS:
            # Byte-identical JSON: the same floats to the last bit, not approximately equal ones.
            assert json.dumps(ra[name][key]) == json.dumps(rb[name][key]), (name, key)
        with np.load((a / name).with_suffix(".npz")) as za, np.load((b / name).with_suffix(".npz")) as zb:
            assert sorted(za.files) == sorted(zb.files)
            for key in za.files:
                assert np.array_equal(za[key], zb[key]), (name, key)


def test_the_same_grid_twice_gives_byte_identical_metrics(tmp_path, grid_file, serial_one_thread):
    second = run_grid_with(load_grid(grid_file), tmp_path)
    assert [r.status for r in second.results] == ["done"] * 4
    _assert_same_records(serial_one_thread, tmp_path)


@pytest.mark.slow  # two spawned workers import torch and build the dataset: about 20 s on two cores
def test_two_local_worker_processes_give_the_serial_records(tmp_path, grid_file, serial_one_thread):
    parallel = run_grid_with(load_grid(grid_file), tmp_path, executor="processes", jobs=2)
    assert [r.status for r in parallel.results] == ["done"] * 4
    _assert_same_records(serial_one_thread, tmp_path)


@pytest.mark.slow  # starting Ray takes about 20 s on two cores
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install 'zsbench[ray]'); --executor ray is untested here")
def test_local_ray_gives_the_serial_records(tmp_path, grid_file, serial_one_thread):
    on_ray = run_grid_with(load_grid(grid_file), tmp_path, executor="ray", jobs=2)
    assert [r.status for r in on_ray.results] == ["done"] * 4
    _assert_same_records(serial_one_thread, tmp_path)
    import ray

    assert not ray.is_initialized(), "the Ray the command started is stopped at the end"


@pytest.mark.slow  # starting Ray takes about 20 s on two cores
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install 'zsbench[ray]'); block scoring on Ray is untested here")
def test_query_blocks_spread_over_ray_workers_give_the_serial_metrics():
    from benchmark.core.env import thread_limit
    from benchmark.core.protocol import evaluate
    from benchmark.execution.executors import map_blocks_on_ray, ray_session
    from benchmark.perf.suite import Precomputed, gallery_dataset

    ds = gallery_dataset(600, 2000, dim=16, n_unseen=6)
    block_bytes = 4 * 2000 * 50  # 50 queries a block: 12 blocks
    with thread_limit(1):  # as a Ray task with one CPU: the same sums, so the same last bits
        here, _ = evaluate(Precomputed(), ds, block_bytes=block_bytes)
    with ray_session(None, 2):
        spread, _ = evaluate(Precomputed(), ds, block_bytes=block_bytes, map_blocks=map_blocks_on_ray)
    assert json.dumps(spread) == json.dumps(here)


def test_results_come_back_in_grid_order_and_a_failure_does_not_stop_the_grid(tmp_path):
    grid = grid_from_cli(None, "benchmark.testing:RaisesMidTraining,benchmark.testing:RidgeProjection",
                         "wikipedia", True, None, 0.05, "0,1", None)
    report = run_grid_with(grid, tmp_path)
    assert [(r.method, r.seed, r.status) for r in report.results] == [
        ("benchmark.testing:RaisesMidTraining", 0, "failed"), ("benchmark.testing:RaisesMidTraining", 1, "failed"),
        ("benchmark.testing:RidgeProjection", 0, "done"), ("benchmark.testing:RidgeProjection", 1, "done")]
    with pytest.raises(ZSBenchError, match=r"2 of 4 runs failed.*RuntimeError: simulated failure in epoch 1"):
        report.raise_for_failures()
    assert len(_records(tmp_path)) == 2


def test_the_committed_smoke_grid_resolves():
    grid = load_grid(ROOT / "configs" / "smoke.toml")
    plan = plan_grid(grid)
    resolved = plan.provenance
    assert [m["name"] for m in resolved["methods"]] == ["random", "semantic-regression"]
    regression = resolved["methods"][1]
    assert regression["overrides"] == {"epochs": 5, "hidden": 128}
    assert regression["params"]["epochs"] == 5 and regression["params"]["lr"] == 1e-3  # defaults spelled out
    assert resolved["datasets"][1]["split"]  # the default split, named
    assert resolved["seeds"] == [0, 1] and len(plan.specs) == 8


def test_a_grid_file_run_keeps_the_resolved_grid_in_every_record(grid_file, serial_one_thread):
    records = _records(serial_one_thread)
    expected = plan_grid(load_grid(grid_file)).provenance
    assert records and all(r["grid"] == json.loads(json.dumps(expected)) for r in records.values())
    assert all(r["grid"]["file_sha256"] for r in records.values())


@pytest.mark.parametrize("text, message", [
    ("seeds = [0]\n[[datasets]]\nname = 'wikipedia'\n", r"needs at least one \[\[methods\]\]"),
    ("seed = [0]\n[[methods]]\nname = 'random'\n[[datasets]]\nname = 'wikipedia'\n", r"unknown key\(s\) seed"),
    ("[[methods]]\nname = 'random'\nparams = 3\n[[datasets]]\nname = 'wikipedia'\n", r"methods\[0\]: params must"),
    ("[[methods]]\nname = 'random'\n[[datasets]]\nname = 'wikipedia'\nscale = 'big'\n", r"datasets\[0\]: scale"),
    ("seeds = [0, 0]\n[[methods]]\nname = 'random'\n[[datasets]]\nname = 'wikipedia'\n", "seeds repeats seed 0"),
    ("[[methods]\nname = 'random'\n", "not valid TOML"),
])
def test_a_bad_grid_file_is_a_one_line_error_naming_it(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ZSBenchError, match=message) as caught:
        load_grid(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_grid_check_names_an_unknown_hyper_parameter_and_split(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text("[[methods]]\nname = 'random'\nparams = { dims = 3 }\n[[datasets]]\nname = 'wikipedia'\n")
    with pytest.raises(ZSBenchError, match=r"g.toml, methods\[0\] params: random has no hyper-parameter 'dims'"):
        check_grid(load_grid(path))
    path.write_text("[[methods]]\nname = 'random'\n[[datasets]]\nname = 'wikipedia'\nsplit = 'nope'\n")
    with pytest.raises(ZSBenchError, match="has no split 'nope'"):
        check_grid(load_grid(path))


def test_flags_that_contradict_a_grid_file_are_refused(grid_file):
    with pytest.raises(ZSBenchError, match="drop --methods"):
        grid_from_cli(str(grid_file), "random", None, True, None, None, None, None)
    grid = grid_from_cli(str(grid_file), None, None, False, None, None, "7", "cpu")
    assert grid.seeds == [7]


def test_executor_arguments_are_checked():
    with pytest.raises(ZSBenchError, match="--jobs must be at least 1"):
        make_executor("processes", 0)
    with pytest.raises(ZSBenchError, match="unknown executor"):
        make_executor("dask")
    with pytest.raises(ZSBenchError, match="--jobs 2 needs --executor processes or ray"):
        make_executor("serial", 2)
    with pytest.raises(ZSBenchError, match="--threads must be at least 1"):
        check_grid(grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0", None, threads=0))


@pytest.mark.slow
def test_tune_and_run_start_their_workers_the_same_way(tmp_path, monkeypatch):
    """``tune --jobs 2`` runs its trials through the executor of ``run --jobs 2``: worker processes started by
    the same initialisation (the orphan watchdog), each run with its own thread count and device."""
    import os

    from click.testing import CliRunner

    from benchmark.cli import cli
    from benchmark.testing import WORKER_LOG_ENV

    spy = "benchmark.testing:WorkerSpy"
    common = ["--dataset", "wikipedia", "--synthetic", "--scale", "0.05", "--seeds", "0,1", "--jobs", "2",
              "--threads", "1"]
    facts = {}
    for command, extra in (("tune", ["--budget", "2", "--out", str(tmp_path / "tuning")]),
                           ("run", ["--results", str(tmp_path / "runs")])):
        log = tmp_path / f"{command}.jsonl"
        monkeypatch.setenv(WORKER_LOG_ENV, str(log))
        result = CliRunner().invoke(cli, [command, "--methods", spy, *common, *extra])
        assert result.exit_code == 0, result.output
        facts[command] = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(facts["tune"]) == 4 and len(facts["run"]) == 2  # 2 trials x 2 seeds; 2 seeds
    for command, fits in facts.items():
        assert all(f["pid"] != os.getpid() for f in fits), command  # in worker processes, not the driver
        assert all(f["watchdog"] for f in fits), command  # the orphan watchdog of init_worker runs there
        assert {(f["threads"], f["device"]) for f in fits} == {(1, "cpu")}, command
