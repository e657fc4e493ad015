"""zsbench tune: selection on validation classes only, the same trials for the same seed and budget, resume after
SIGKILL, bad search spaces refused before any trial, and --tuned runs that record how they were chosen."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.contract import IntRange, LogUniform, ZSBenchError
from benchmark.core.data import DatasetRequest
from benchmark.core.record import RunRecord
from benchmark.datasets.requests import load_request
from benchmark.execution.tuning import checked_space, find_study, tune_all
from benchmark.testing import SPY_LOG_ENV, RidgeProjection

ROOT = Path(__file__).resolve().parents[1]
WIKI = DatasetRequest("wikipedia", synthetic=True, scale=0.05)
RIDGE = "benchmark.testing:RidgeProjection"


@pytest.fixture(scope="module")
def wiki():
    return load_request(WIKI)


NARROW = "benchmark.testing:FailsWhenNarrow"


def _trials(result) -> list:
    """Every trial of ``result``'s study, read from its SQLite file."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{result.storage}")
    return optuna.load_study(study_name=result.study, storage=storage).get_trials()


def _trial_params(result) -> list[dict]:
    return [t.params for t in _trials(result) if t.state == optuna.trial.TrialState.COMPLETE]


def _values_from_records(out: Path, trial_params: dict, seeds: list[int]) -> float | None:
    """The mean validation mAP@all over tasks and seeds of the trial run with ``trial_params``, read from the
    trial records themselves (None when the trial left no record)."""
    per_seed = {}
    for path in (out / "trials").rglob("*.json"):
        if "superseded" in path.parts:
            continue
        record = json.loads(path.read_text())
        if record["stage"] != "validation" or any(record["config"][k] != v for k, v in trial_params.items()):
            continue
        maps = [task["mAP@all"] for task in record["metrics"].values()]
        per_seed[record["seed"]] = sum(maps) / len(maps)
    if not per_seed:
        return None
    assert sorted(per_seed) == sorted(seeds), per_seed
    return sum(per_seed.values()) / len(per_seed)


@pytest.mark.slow
def test_the_same_seed_and_budget_give_the_same_trials_and_best(tmp_path, wiki):
    a = tune_all([RIDGE], WIKI, 5, [0], tmp_path / "a")[0]
    b = tune_all([RIDGE], WIKI, 5, [0], tmp_path / "b")[0]
    assert a.trials == b.trials == 5 and a.best_params == b.best_params and a.best_value == b.best_value
    assert _trial_params(a) == _trial_params(b)
    assert _trial_params(a)[0] == {"ridge": 1.0, "proj_dim": 64}  # trial 0: the method's defaults
    # Each trial's value is the mean mAP@all over tasks and seeds of its own trial records; the defaults are trial 0.
    values = [_values_from_records(tmp_path / "a", params, [0]) for params in _trial_params(a)]
    assert [t.value for t in _trials(a)] == pytest.approx(values, abs=1e-12)
    assert a.default_value == pytest.approx(values[0], abs=1e-12) and a.best_value == pytest.approx(max(values))
    assert a.best_params == _trial_params(a)[values.index(max(values))]
    again = tune_all([RIDGE], WIKI, 5, [0], tmp_path / "a")[0]  # a finished study is not rerun
    assert again.trials == 5 and _trial_params(again) == _trial_params(a)
    other = tune_all([RIDGE], WIKI, 5, [0], tmp_path / "c", seed=1)[0]
    assert _trial_params(other)[1:] != _trial_params(a)[1:]


@dataclass
class _BadWidth(RidgeProjection):
    search_space = {"proj_dim": IntRange(0, 8)}

    def validate_params(self) -> None:
        if self.proj_dim < 1:
            raise ZSBenchError(f"proj_dim must be at least 1, got {self.proj_dim}")


@dataclass
class _Mistyped(RidgeProjection):
    search_space = {"proj_dim": LogUniform(1e-3, 1.0)}


@dataclass
class _Unknown(RidgeProjection):
    search_space = {"width": IntRange(1, 8)}


@pytest.mark.parametrize("cls, message", [
    (_BadWidth, r"search space of 'proj_dim' includes 0, which the method refuses \(proj_dim must be at least 1"),
    (_Mistyped, r"search space of 'proj_dim': a float range for an integer hyper-parameter"),
    (_Unknown, r"search space names 'width', which is not one of its hyper-parameters"),
])
def test_a_bad_search_space_fails_before_any_trial(monkeypatch, cls, message):
    import tests.test_tuning as here

    monkeypatch.setattr(here, "_Probe", cls, raising=False)
    with pytest.raises(ZSBenchError, match=message) as caught:
        checked_space("tests.test_tuning:_Probe", {})
    assert "\n" not in str(caught.value)


def _cli(*args: str, env_extra: dict | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], cwd=kw.get("cwd", ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_killed_tuning_resumes_with_the_remaining_trials_only(tmp_path, wiki):
    reference = tune_all([RIDGE], WIKI, 6, [0], tmp_path / "reference")[0]  # the delay changes no draw
    out = tmp_path / "killed"
    args = ["tune", "--methods", RIDGE, "--dataset", "wikipedia", "--synthetic", "--scale", "0.05", "--budget", "6",
            "--param", f"{RIDGE}.delay_s=0.15", "--out", str(out)]
    proc = _cli(*args)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 2:
        time.sleep(0.1)
        done = sum(1 for line in (out / "trials").rglob("*.json")) if (out / "trials").exists() else 0
        assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = find_study(out, RIDGE, wiki)
    assert 1 <= partial.trials < 6, "the kill must land halfway through the study"
    rerun = CliRunner().invoke(cli, args)
    assert rerun.exit_code == 0, rerun.output
    trial_lines = [line for line in rerun.stdout.splitlines() if ": trial " in line]
    assert len(trial_lines) == 6 - partial.trials, rerun.stdout
    resumed = find_study(out, RIDGE, wiki)
    assert resumed.trials == 6 and _trial_params(resumed) == _trial_params(reference)
    assert {k: v for k, v in resumed.best_params.items() if k != "delay_s"} == reference.best_params


def test_no_test_class_reaches_a_spy_in_tuning_or_in_the_tuned_fit(tmp_path, wiki, monkeypatch):
    log = tmp_path / "spy.jsonl"
    spy = "benchmark.testing:SpyRidge"
    env = {SPY_LOG_ENV: str(log)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tune = CliRunner().invoke(cli, ["tune", "--methods", spy, "--dataset", "wikipedia", "--synthetic", "--scale",
                                    "0.05", "--budget", "3", "--out", str(tmp_path / "tuning")])
    assert tune.exit_code == 0, tune.output
    tuning_fits = [json.loads(line) for line in log.read_text().splitlines()]
    test_classes = set(wiki.split.unseen)
    assert len(tuning_fits) == 3
    for fit in tuning_fits:  # during selection no test class exists at all, not even its name
        assert not test_classes & set(fit["view_classes"]) and not test_classes & set(fit["sample_classes"])
        assert set(fit["sample_classes"]) == set(wiki.split.seen) - set(wiki.split.validation.classes)
    run = CliRunner().invoke(cli, ["run", "--methods", spy, "--dataset", "wikipedia", "--synthetic", "--scale", "0.05",
                                   "--tuned", "--tuning", str(tmp_path / "tuning"), "--results", str(tmp_path / "runs"),
                                   "--json"])
    assert run.exit_code == 0, run.output
    out = run.stdout
    final = json.loads(log.read_text().splitlines()[-1])
    assert set(final["sample_classes"]) == set(wiki.split.seen)  # the final fit: all seen classes, samples
    (outcome,) = json.loads(out)
    record = json.loads(Path(outcome["record"]).read_text())
    selection = record["selection"]
    assert selection["protocol"] == "tuned on validation classes" and selection["budget"] == 3
    assert selection["trials"] == 3 and selection["validation_sha256"] == wiki.split.validation.sha256
    assert record["config"]["ridge"] == selection["params"]["ridge"]
    assert record["stage"] == "test"


def test_a_variants_overrides_and_fixed_parameters_are_not_searched(monkeypatch):
    from benchmark.contract import METHOD_REGISTRY

    monkeypatch.setitem(METHOD_REGISTRY, "ridge-fixed", (RidgeProjection, {"ridge": 2.0}))
    _, space, method = checked_space("ridge-fixed", {})
    assert set(space) == {"proj_dim"} and method.ridge == 2.0
    _, space, method = checked_space(RIDGE, {"proj_dim": 16})
    assert set(space) == {"ridge"} and method.proj_dim == 16


def test_a_grid_file_mixes_default_and_tuned_entries(tmp_path, wiki):
    from benchmark.execution.grid import load_grid
    from benchmark.execution.plan import run_grid_with

    tune_all([RIDGE], WIKI, 2, [0], tmp_path / "studies")[0]
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(f'tuning = "{tmp_path / "studies"}"\nseeds = [0]\n'
                         f'[[methods]]\nname = "{RIDGE}"\n[[methods]]\nname = "{RIDGE}"\ntuned = true\n'
                         '[[datasets]]\nname = "wikipedia"\nsynthetic = true\nscale = 0.05\n')
    report = run_grid_with(load_grid(grid_file), tmp_path / "runs")
    default, tuned = (RunRecord.load(outcome.path) for outcome in report.results)
    assert default.selection == {"protocol": "defaults"}
    assert tuned.selection["protocol"] == "tuned on validation classes" and tuned.selection["budget"] == 2
    grid_file.write_text(grid_file.read_text().replace('tuned = true\n', 'tuned = true\nparams = { ridge = 2.0 }\n'))
    with pytest.raises(ZSBenchError, match="a tuned entry takes its parameters from the tuning study"):
        load_grid(grid_file)


def test_a_variant_without_a_study_takes_its_base_methods_choice_minus_its_overrides(tmp_path, wiki, monkeypatch):
    from benchmark.contract import METHOD_REGISTRY
    from benchmark.execution.grid import expand_methods
    from benchmark.registry import build_method

    monkeypatch.setitem(METHOD_REGISTRY, "ridge-base", (RidgeProjection, {}))
    monkeypatch.setitem(METHOD_REGISTRY, "ridge-fixed", (RidgeProjection, {"ridge": 2.0}))
    assert "ridge-base" in expand_methods(["all"], variants=False)
    assert "ridge-fixed" not in expand_methods(["all"], variants=False) and "cfsa-no-cycle" not in \
        expand_methods(["all"], variants=False)
    with pytest.raises(ZSBenchError, match="no tuning study of ridge-fixed"):
        find_study(tmp_path, "ridge-fixed", wiki)
    base = tune_all(["ridge-base"], WIKI, 3, [0], tmp_path)[0]
    assert set(base.best_params) == {"proj_dim", "ridge"}
    variant = find_study(tmp_path, "ridge-fixed", wiki)
    assert variant.base == "ridge-base" and variant.best_params == {"proj_dim": base.best_params["proj_dim"]}
    assert build_method("ridge-fixed", variant.best_params)[1].ridge == 2.0  # the ablation's override stands
    assert variant.selection(wiki)["study_of"].startswith("ridge-base")


def test_a_trial_that_raises_is_recorded_as_failed_and_the_study_goes_on(tmp_path, wiki):
    result = tune_all([NARROW], WIKI, 6, [0, 1], tmp_path)[0]
    trials = _trials(result)
    assert len(trials) == result.trials == 6, "every trial of the budget ran, failed ones included"
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert 0 < len(failed) < 6 and result.failed == len(failed)
    for trial in trials:
        narrow = trial.params["proj_dim"] < 24
        assert (trial.state == optuna.trial.TrialState.FAIL) is narrow, trial.params
        if narrow:
            assert "simulated failure at proj_dim" in trial.user_attrs["error"] and trial.value is None
            assert _values_from_records(tmp_path, trial.params, [0, 1]) is None, "a failed fit leaves no record"
        else:
            assert trial.value == pytest.approx(_values_from_records(tmp_path, trial.params, [0, 1]), abs=1e-12)
    scored = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(scored, key=lambda t: t.value)
    assert result.best_value == best.value and result.best_params == best.params


def test_tune_timeout_stops_the_study_once_its_trials_have_used_the_cap(tmp_path, wiki):
    """--timeout caps the wall time summed over a method's trials: no trial starts once the cap is spent (the
    trial that crosses it finishes and counts), the study says it stopped by timeout, and a rerun adds nothing."""
    out = tmp_path / "tuning"
    args = ["tune", "--methods", RIDGE, "--dataset", "wikipedia", "--synthetic", "--scale", "0.05", "--budget", "8",
            "--param", f"{RIDGE}.delay_s=0.4", "--timeout", "2", "--out", str(out)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    study = find_study(out, RIDGE, wiki)
    walls = [t.user_attrs["wall_s"] for t in sorted(_trials(study), key=lambda t: t.number)]
    assert 1 <= len(walls) < 8 and study.trials == len(walls)
    assert min(walls) >= 0.4, "a trial's time is measured around its fit (0.4 s of it asleep)"
    assert sum(walls[:-1]) < 2.0 <= sum(walls), walls
    assert study.stopped_by == "timeout"
    assert "timeout" in first.stdout.split("stopped by")[-1]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert len(_trials(find_study(out, RIDGE, wiki))) == len(walls), "a rerun starts no trial past the cap"


@pytest.mark.slow  # worker processes (and Ray, about 20 s to start on two cores)
@pytest.mark.parametrize("executor", ["processes", pytest.param("ray", marks=pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed (pip install 'zsbench[ray]'); tuning on Ray is untested here"))])
def test_tuning_on_two_workers_gives_the_serial_studies(tmp_path, executor):
    specs = [RIDGE, NARROW]  # two studies at once, one of them with failing trials
    serial = tune_all(specs, WIKI, 4, [0, 1], tmp_path / "serial")
    parallel = tune_all(specs, WIKI, 4, [0, 1], tmp_path / executor, executor=executor, jobs=2)
    for a, b in zip(serial, parallel, strict=True):
        assert a.method == b.method and (a.trials, a.failed) == (b.trials, b.failed)
        assert [(t.params, t.state, t.value) for t in _trials(a)] == [(t.params, t.state, t.value) for t in _trials(b)]
        assert (a.best_params, a.best_value, a.default_value) == (b.best_params, b.best_value, b.default_value)
    assert sum(r.failed for r in serial) > 0, "the failing method failed some trials"
