"""``zsbench tune``: choose each method's hyper-parameters on validation classes, with the same budget for all.

Model selection never sees a test class. A trial fits the method on the selection view of the dataset
(the seen classes minus the split's frozen validation classes; test classes are dropped, samples and
names) and scores the validation classes exactly as the test is scored; the objective is the validation
mAP@all averaged over the dataset's tasks, the given seeds and, with ``folds`` K > 1, the split's first K
class-disjoint validation folds (``ZSDataset.validation_folds``). Every method gets the same number of
trials and the same wall-time cap, searches the space it declares beside its hyper-parameters
(``Method.search_space``), and starts from its defaults (trial 0), so a tuned configuration is never
worse on validation than the default one.

Training length is selected, not searched (one stopping rule for every method): each trial trains to the
budget's length (``Method.length_param``, epochs) while the validation classes are scored after every epoch;
the epoch with the best mean validation mAP@all over seeds (the earliest on a tie) is the trial's length
and its score the trial's value. ``--tuned`` refits on all seen classes with the best trial's length, in
epochs: an epoch is a pass over the training data (or the method's capped sampled epoch), so the same
number of epochs covers the larger seen-class set in proportion.

The sampler is Optuna's TPE. Trial k draws with a sampler seeded by ``seed + k`` from the finished trials
so far, so the same seed and budget give the same trials, and a tuning that is killed (even with SIGKILL)
resumes where it stopped: the interrupted trial is marked failed and drawn again, with the same
parameters. Studies live in SQLite files under ``<out>/<dataset>-<source>/<split>/<method>.sqlite``; the
trials' run records (validation stage) in ``<out>/trials/``, so a rerun of an interrupted trial reuses the
seeds it had finished.

``--scenario`` tunes for the standard or generalized scenario: the trials score the validation classes in
that scenario (the validation classes play the unseen role, a held-out share of the remaining training
classes' items the seen role; the test-stage seen-class test items are dropped first, see
``ZSDataset.selection_view``). Their studies are kept apart (``<method>.<scenario>.sqlite``), and ``zsbench run
--tuned`` takes each scenario's own study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.core.data import DEFAULT_SCENARIO, DatasetRequest, ZSDataset
from benchmark.core.env import DEFAULT_THREADS, resolve_device
from benchmark.core.lengths import LENGTH_RULE, best_epoch, length_param, validation_curve
from benchmark.core.spec import DEFAULT_BUDGET, default_budget, safe_name
from benchmark.core.store import ResultStore
from benchmark.execution.search_space import _in_space, _optuna, checked_space  # noqa: F401 - checked_space re-exported
from benchmark.registry import build_method, resolve_method

#: Bump when the way trials are drawn or scored changes: older studies are then not resumed into.
TUNING_VERSION = 2  # 2: the training length is selected (best validation epoch), not searched
TRIAL_SELECTION = {"protocol": "tuning trial"}
DEFAULT_TIMEOUT_S = 3600.0


@dataclass
class TuneResult:
    method: str
    study: str
    storage: Path
    budget: int
    timeout_s: float
    trials: int
    failed: int
    wall_s: float
    best_params: dict[str, Any]
    best_value: float | None
    default_value: float | None
    stopped_by: str  # "budget", "timeout" or "no search space"
    seeds: list[int] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    #: Set when a variant uses the study of its base method (``find_study``).
    base: str | None = None
    #: The best trial's selected length in epochs (None: no length selected, e.g. a closed-form method).
    best_length: int | None = None
    #: Validation folds 0..folds-1 every trial was scored on.
    folds: int = 1

    def selection(self, ds: ZSDataset) -> dict[str, Any]:
        """What a run fitted with the best parameters records as its ``selection``."""
        validation = ds.split.validation
        folds = ({"folds": list(range(self.folds)),
                  "folds_sha256": [fold.sha256 for fold in ds.validation_folds()[:self.folds]]} if self.folds > 1 else {})
        return {"protocol": "tuned on validation classes", "validation_split": f"{ds.split.name}/validation",
                "validation_sha256": validation.sha256 if validation else None, **folds, "budget": self.budget,
                "timeout_s": self.timeout_s, "trials": self.trials, "failed_trials": self.failed,
                "seeds": list(self.seeds), "best_validation_mAP@all": self.best_value,
                "default_validation_mAP@all": self.default_value, "study": f"{self.storage}::{self.study}",
                "sampler": "optuna TPE", "params": self.best_params,
                **({"length": {"epochs": self.best_length, "rule": LENGTH_RULE}} if self.best_length else {}),
                **({"study_of": f"{self.base} (this variant's own overrides kept)"} if self.base else {}),
                **({"scenario": ds.scenario} if ds.scenario != DEFAULT_SCENARIO else {})}


def base_method(spec: str) -> str | None:
    """The registered method a variant was registered from (same class, no overrides); None for a method."""
    from benchmark.registry import available_methods

    _, cls, overrides = resolve_method(spec)
    if not overrides:
        return None
    return next((other for other, (c, o) in available_methods().items() if c is cls and not o), None)


def study_key(name: str, request: DatasetRequest, ds: ZSDataset, seeds: list[int], budget: int, timeout_s: float,
              threads: int, seed: int, space: dict[str, Any], params: dict[str, Any],
              training: str = DEFAULT_BUDGET, folds: int = 1) -> str:
    """A name that changes when anything that shapes the study changes (then a new study starts)."""
    context = {"version": TUNING_VERSION, "method": name, "request": dataclasses.asdict(request),
               "data": ds.provenance, "split_sha256": ds.split.sha256, "seeds": seeds, "budget": budget,
               "timeout_s": timeout_s, "threads": threads, "sampler_seed": seed,
               "space": {k: repr(v) for k, v in sorted(space.items())}, "params": params,
               **({"training_budget": training} if training != DEFAULT_BUDGET else {}),
               **({"folds": folds} if folds > 1 else {}),
               **({"scenario": ds.scenario} if ds.scenario != DEFAULT_SCENARIO else {})}
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{name}-budget{budget}-{digest}"


def storage_path(out: Path, ds: ZSDataset, method: str, training: str = DEFAULT_BUDGET, folds: int = 1) -> Path:
    """``<out>/<dataset>-<source>/<split>/<method>.sqlite`` (``<method>.<budget>.sqlite`` for a training
    budget other than cpu, ``.folds<K>`` added for a K-fold study, then ``.<scenario>`` for a scenario other than
    zero-shot)."""
    stem = safe_name(method) + ("" if training == DEFAULT_BUDGET else f".{safe_name(training)}")
    stem += f".folds{folds}" if folds > 1 else ""
    stem += "" if ds.scenario == DEFAULT_SCENARIO else f".{safe_name(ds.scenario)}"
    return Path(out) / safe_name(f"{ds.name}-{ds.source}") / safe_name(ds.split.name) / f"{stem}.sqlite"


def _startup_trials(budget: int) -> int:
    """Random trials before TPE models the results: half the budget, at least 2, at most 10."""
    return min(10, max(2, budget // 2))


@dataclass
class _Study:
    """One method's study while it is tuned: the trial in flight and the scores of its seeds so far."""

    spec: str
    name: str
    study: Any
    storage: Any
    path: Path
    space: dict[str, Any]
    params: dict[str, Any]
    defaults: dict[str, Any]
    target: int
    stopped_by: str
    training: str = DEFAULT_BUDGET
    folds: int = 1
    scenario: str = DEFAULT_SCENARIO
    trial: Any = None
    scores: dict[tuple[int, int], float] = field(default_factory=dict)  # per (seed, fold)
    curves: dict[tuple[int, int], list[float]] = field(default_factory=dict)  # validation mAP@all per epoch
    selects_length: bool = False
    error: str | None = None
    started: float = 0.0
    in_flight: int = 0


def _open_study(spec: str, request: DatasetRequest, ds: ZSDataset, budget: int, seeds: list[int], out: Path,
                timeout_s: float, threads: int, seed: int, params: dict[str, Any], training: str,
                folds: int = 1) -> _Study:
    """The study of ``spec`` in this context, created or resumed (a trial left RUNNING by a killed tuning
    counts for nothing and is drawn again)."""
    optuna = _optuna()
    name, space, method = checked_space(spec, params, training)
    key = study_key(name, request, ds, seeds, budget, timeout_s, threads, seed, space, params, training, folds)
    path = storage_path(out, ds, name, training, folds)
    ResultStore(path.parent).ensure_folder()
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    study = optuna.create_study(storage=storage, study_name=key, direction="maximize", load_if_exists=True)
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(stale._trial_id, "interrupted", True)
        storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
    for attr, value in (("params", params), ("timeout_s", timeout_s), ("seeds", list(seeds)), ("budget", budget),
                        ("training_budget", training), ("folds", folds)):
        study.set_user_attr(attr, value)
    defaults = {p: getattr(method, p) for p in space if _in_space(type(method).search_space[p], getattr(method, p))}
    selects = length_param(method) is not None and length_param(method) not in params
    return _Study(spec, name, study, storage, path, space, params, defaults, budget if space or selects else 1,
                  "budget" if space or selects else "no search space", training, folds, ds.scenario,
                  selects_length=selects)


def _next_trial(state: _Study, budget: int, timeout_s: float, seed: int) -> bool:
    """Ask ``state``'s study for its next trial (False when its budget or time cap is spent). Trial k draws
    with a sampler seeded by ``seed + k``, so the trials do not depend on how studies interleave."""
    optuna = _optuna()
    done = _counted_trials(state.study)
    if len(done) >= state.target:
        return False
    if sum(t.user_attrs.get("wall_s", 0.0) for t in done) >= timeout_s:
        state.stopped_by = "timeout"
        return False
    state.study.sampler = optuna.samplers.TPESampler(seed=seed + len(done), n_startup_trials=_startup_trials(budget))
    if not done:
        state.study.enqueue_trial(state.defaults, user_attrs={"defaults": True}, skip_if_exists=False)
    state.trial = state.study.ask(state.space)
    state.scores, state.curves, state.error, state.started = {}, {}, None, time.perf_counter()
    return True


def _trial_specs(state: _Study, request: DatasetRequest, seeds: list[int], threads: int, device: str) -> list:
    from benchmark.execution.runner import make_spec

    params = {**state.params, **state.trial.params}
    return [make_spec(state.spec, run_seed, request, params, "validation", threads, device, TRIAL_SELECTION,
                      monitor_every=1 if state.selects_length else 0, budget=state.training, fold=fold,
                      scenario=state.scenario)
            for fold in range(state.folds) for run_seed in seeds]


def _finish_trial(state: _Study, seeds: list[int]) -> None:
    """Tell the study the trial's value: the validation mAP@all averaged over tasks, seeds and folds; a
    diverged or refused configuration is a failed trial, not a failed tuning."""
    optuna = _optuna()
    trial, state.trial = state.trial, None
    trial.set_user_attr("wall_s", time.perf_counter() - state.started)
    runs = [(s, fold) for fold in range(state.folds) for s in seeds]
    scores = [state.scores[run] for run in runs] if state.error is None else []
    value = float(sum(scores) / len(scores)) if scores else math.nan
    curves = [state.curves.get(run, []) for run in runs]
    if scores and state.selects_length and all(curves):
        best, mean_curve = best_epoch(curves)
        trial.set_user_attr("length", best + 1)
        trial.set_user_attr("final_value", value)  # the score at the budget's length, kept beside the chosen one
        trial.set_user_attr("curve", [round(v, 6) for v in mean_curve])
        value = mean_curve[best]
    if state.error is None and not math.isfinite(value):
        state.error = f"{state.name}: validation mAP@all is {value}"
    if state.error is not None:
        trial.set_user_attr("error", state.error[:300])
        state.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    trial.set_user_attr("scores", scores)
    state.study.tell(trial, value)


def tune_all(specs: list[str], request: DatasetRequest, budget: int, seeds: list[int], out: Path,
             timeout_s: float = DEFAULT_TIMEOUT_S, threads: int = DEFAULT_THREADS, device: str = "cpu",
             seed: int = 0, params: dict[str, dict[str, Any]] | None = None, executor: str = "serial",
             jobs: int = 1, address: str | None = None, on_trial=None,
             on_done: Callable[[TuneResult], None] | None = None, training: str | None = None,
             folds: int = 1, scenario: str = DEFAULT_SCENARIO) -> list[TuneResult]:
    """Tune every method with the same budget and cap on the validation classes of ``request``.

    Each study is sequential (trial k+1 is drawn from the scores of trials 0..k, hence deterministic), and
    its trials' runs (one per seed) go through the same executor as ``zsbench run``: with ``--jobs N`` the
    seeds of a trial and the trials of different methods run at once.
    """
    from benchmark.execution.executors import Job, dataset_for, iter_finished, make_executor

    if budget < 1:
        raise ZSBenchError(f"--budget must be at least 1 trial, got {budget}")
    device = resolve_device(device)
    training = training or default_budget(device)  # not asked for: paper on a GPU, cpu on a CPU
    params = params or {}
    ds = dataset_for(request).in_scenario(scenario)
    for spec in specs:  # a bad search space fails before any trial, for every method
        checked_space(spec, params.get(spec, {}), training)
    if not 1 <= folds <= len(ds.validation_folds()):
        raise ZSBenchError(f"--folds must lie in 1..{len(ds.validation_folds())} (the validation folds of split "
                           f"{ds.split.name!r} of {ds.name}), got {folds}")
    for fold in range(folds):
        ds.selection_view(fold)  # and so does a split without enough seen classes
    trials_folder = str(Path(out) / "trials")
    states = [_open_study(spec, request, ds, budget, seeds, Path(out), timeout_s, threads, seed,
                          dict(params.get(spec, {})), training, folds) for spec in specs]
    results: dict[str, TuneResult] = {}

    def start_next(i: int, runner) -> None:
        state = states[i]
        if _next_trial(state, budget, timeout_s, seed):
            for run_spec in _trial_specs(state, request, seeds, threads, device):
                runner.submit(Job(run_spec, trials_folder, tag=i))
                state.in_flight += 1
            return
        results[state.spec] = _result(state.study, state.name, state.path, budget, state.stopped_by)
        if on_done:
            on_done(results[state.spec])

    with make_executor(executor, jobs, address) as runner:
        for i in range(len(states)):
            start_next(i, runner)
        for job, outcome in iter_finished(runner):
            state = states[job.tag]
            if outcome.status == "busy":  # another tuning runs this very trial: wait for its record
                time.sleep(1.0)
                runner.submit(job)
                continue
            state.in_flight -= 1
            if outcome.status in ("failed", "unsupported"):
                state.error = state.error or f"{state.name}: {outcome.reason or outcome.status}"
            else:
                record = ResultStore(trials_folder).load(outcome.path)
                if record.oracle is not None:
                    raise ZSBenchError(f"{outcome.path} carries test-class scores (an oracle run's record); tuning "
                                       f"never reads them: move it out of {trials_folder} and rerun")
                run = (job.spec.seed, job.spec.fold)
                state.scores[run] = sum(m["mAP@all"] for m in record.metrics.values()) / len(record.metrics)
                state.curves[run] = validation_curve(record.training_log)
            if not state.in_flight:
                _finish_trial(state, seeds)
                if on_trial:
                    done = _counted_trials(state.study)
                    best = max((t.value for t in done if t.value is not None), default=None)
                    on_trial(state.name, len(done), budget, best, sum(t.user_attrs.get("wall_s", 0.0) for t in done),
                             timeout_s)
                start_next(job.tag, runner)
    return [results[spec] for spec in specs]


def _counted_trials(study) -> list:
    """The trials that count against the budget: finished ones, and failed ones that were not interrupted."""
    optuna = _optuna()
    return [t for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE
            or (t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get("interrupted"))]


def _result(study, name: str, path: Path, budget: int, stopped_by: str | None = None) -> TuneResult:
    optuna = _optuna()
    done = _counted_trials(study)
    complete = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    defaults = [t.value for t in complete if t.user_attrs.get("defaults")]
    params = dict(study.user_attrs.get("params", {}))
    timeout_s = float(study.user_attrs.get("timeout_s", DEFAULT_TIMEOUT_S))
    wall_s = sum(t.user_attrs.get("wall_s", 0.0) for t in done)
    if stopped_by is None:
        stopped_by = "budget" if len(done) >= budget else ("timeout" if wall_s >= timeout_s else "unfinished")
    best_params = {**params, **(best.params if best else {})}
    length = best.user_attrs.get("length") if best else None
    if length:  # the selected length, in the hyper-parameters that set it
        training = study.user_attrs.get("training_budget", DEFAULT_BUDGET)
        best_params.update(build_method(name, best_params, training)[1].length_params(length))
    return TuneResult(
        method=name, study=study.study_name, storage=path, budget=budget,
        timeout_s=timeout_s, trials=len(done), failed=len(done) - len(complete), wall_s=wall_s,
        best_params=best_params, best_value=best.value if best else None, best_length=length,
        folds=int(study.user_attrs.get("folds", 1)),
        default_value=defaults[0] if defaults else None, stopped_by=stopped_by,
        seeds=list(study.user_attrs.get("seeds", [])), history=[t.value for t in complete])


def find_study(out: Path, spec: str, ds: ZSDataset, training: str = DEFAULT_BUDGET, folds: int = 1) -> TuneResult:
    """The finished tuning study of ``spec`` on this dataset and split at the training budget ``training``
    over ``folds`` validation folds."""
    optuna = _optuna()
    name, _, overrides = resolve_method(spec)
    path = storage_path(out, ds, name, training, folds)
    base = base_method(spec)
    if not path.is_file() and base is not None and storage_path(out, ds, base, training, folds).is_file():
        # A variant without a study of its own (an ablation) takes its base method's chosen parameters, minus
        # the ones its registration fixes: the tuned model with exactly one thing removed.
        result = find_study(out, base, ds, training, folds)
        kept = {k: v for k, v in result.best_params.items() if k not in overrides}
        return dataclasses.replace(result, method=name, best_params=kept, base=base)
    if not path.is_file():
        raise ZSBenchError(f"no tuning study of {name} on {ds.name} ({ds.source}, split {ds.split.name}) in {path}; "
                           f"run `zsbench tune --methods {name} --dataset {ds.name}"
                           f"{' --synthetic' if ds.source == 'synthetic' else ''} --budget N"
                           f"{'' if training == DEFAULT_BUDGET else f' --training-budget {training}'}"
                           f"{'' if folds == 1 else f' --folds {folds}'}"
                           f"{'' if ds.scenario == DEFAULT_SCENARIO else f' --scenario {ds.scenario}'}` first")
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    summaries = optuna.get_all_study_summaries(storage)
    if len(summaries) != 1:
        names = ", ".join(s.study_name for s in summaries)
        raise ZSBenchError(f"{path} holds {len(summaries)} tuning studies of {name} ({names}); move the ones you do "
                           f"not want aside so that --tuned is unambiguous")
    study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
    if "budget" not in study.user_attrs:
        raise ZSBenchError(f"the tuning study {study.study_name} in {path} does not record its budget (written by an "
                           f"older zsbench); rerun the same `zsbench tune` command once to record it")
    result = _result(study, name, path, int(study.user_attrs["budget"]))
    if result.best_value is None:
        raise ZSBenchError(f"the tuning study {study.study_name} in {path} has no finished trial; rerun zsbench tune "
                           f"to finish it")
    return result


def tuned_choice(folder: Path, spec: str, request: DatasetRequest, training: str = DEFAULT_BUDGET, folds: int = 1,
                 scenario: str = DEFAULT_SCENARIO) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one place a tuned run's configuration is decided: the best parameters of ``spec``'s study on the
    dataset of ``request`` and the ``selection`` its records keep."""
    from benchmark.execution.executors import dataset_for

    ds = dataset_for(request).in_scenario(scenario)
    study = find_study(folder, spec, ds, training, folds)
    return study.best_params, study.selection(ds)
