"""``zsbench tune``: choose each method's hyper-parameters on validation classes, with the same budget for all.

Model selection never sees a test class. A trial fits the method on the selection view of the dataset
(the seen classes minus the split's frozen validation classes; test classes are dropped, samples and
names) and scores the validation classes exactly as the test is scored; the objective is the validation
mAP@all averaged over the dataset's tasks and the given seeds. Every method gets the same number of
trials and the same wall-time cap, searches the space it declares beside its hyper-parameters
(``Method.search_space``), and starts from its defaults (trial 0), so a tuned configuration is never
worse on validation than the default one.

The sampler is Optuna's TPE. Trial k draws with a sampler seeded by ``seed + k`` from the finished trials
so far, so the same seed and budget give the same trials, and a tuning that is killed (even with SIGKILL)
resumes where it stopped: the interrupted trial is marked failed and drawn again, with the same
parameters. Studies live in SQLite files under ``<out>/<dataset>-<source>/<split>/<method>.sqlite``; the
trials' run records (validation stage) in ``<out>/trials/``, so a rerun of an interrupted trial reuses the
seeds it had finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.contract import Choice, IntRange, LogUniform, Method, Uniform, ZSBenchError
from benchmark.core.data import DatasetRequest, ZSDataset
from benchmark.core.store import ResultStore
from benchmark.registry import build_method, resolve_method

#: Bump when the way trials are drawn or scored changes: older studies are then not resumed into.
TUNING_VERSION = 1
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

    def selection(self, ds: ZSDataset) -> dict[str, Any]:
        """What a run fitted with the best parameters records as its ``selection``."""
        validation = ds.split.validation
        return {"protocol": "tuned on validation classes", "validation_split": f"{ds.split.name}/validation",
                "validation_sha256": validation.sha256 if validation else None, "budget": self.budget,
                "timeout_s": self.timeout_s, "trials": self.trials, "failed_trials": self.failed,
                "seeds": list(self.seeds), "best_validation_mAP@all": self.best_value,
                "default_validation_mAP@all": self.default_value, "study": f"{self.storage}::{self.study}",
                "sampler": "optuna TPE", "params": self.best_params,
                **({"study_of": f"{self.base} (this variant's own overrides kept)"} if self.base else {})}


def base_method(spec: str) -> str | None:
    """The registered method a variant was registered from (same class, no overrides); None for a method."""
    from benchmark.registry import available_methods

    _, cls, overrides = resolve_method(spec)
    if not overrides:
        return None
    return next((other for other, (c, o) in available_methods().items() if c is cls and not o), None)


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - a dependency
        raise ZSBenchError("zsbench tune needs optuna: pip install 'optuna>=4,<5'") from None
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def distribution(name: str, method_name: str, space: Any, default: Any):
    """The Optuna distribution of one declared range, checked against the hyper-parameter's default type."""
    optuna = _optuna()
    d = optuna.distributions
    where = f"{method_name}: search space of {name!r}"
    if isinstance(space, Choice):
        if not space.values:
            raise ZSBenchError(f"{where} is an empty Choice")
        return d.CategoricalDistribution(list(space.values))
    if isinstance(default, bool):
        raise ZSBenchError(f"{where}: a switch takes Choice((False, True)), not {type(space).__name__}")
    if isinstance(space, IntRange):
        if not isinstance(default, int):
            raise ZSBenchError(f"{where}: IntRange for a {type(default).__name__} hyper-parameter; use LogUniform/Uniform")
        if space.low > space.high or space.step < 1 or (space.log and space.low < 1):
            raise ZSBenchError(f"{where}: IntRange({space.low}, {space.high}) is empty or not positive on a log scale")
        return d.IntDistribution(space.low, space.high, log=space.log, step=space.step)
    if isinstance(space, LogUniform | Uniform):
        if isinstance(default, int):
            raise ZSBenchError(f"{where}: a float range for an integer hyper-parameter; use IntRange")
        if not space.low < space.high or (isinstance(space, LogUniform) and space.low <= 0):
            raise ZSBenchError(f"{where}: {type(space).__name__}({space.low}, {space.high}) is empty or not positive")
        return d.FloatDistribution(space.low, space.high, log=isinstance(space, LogUniform))
    raise ZSBenchError(f"{where} is {space!r}; use LogUniform, Uniform, IntRange or Choice from benchmark.contract")


def checked_space(spec: str, base_params: dict[str, Any]) -> tuple[str, dict[str, Any], Method]:
    """(method name, param -> distribution, the method at its base parameters); fails before any trial on a
    space naming an unknown hyper-parameter, an empty or mistyped range, or ends the method refuses.

    A registered variant's overrides (an ablation's ``cycle_weight=0``) and the parameters fixed with
    ``--param`` are not searched: they define what is being tuned."""
    name, cls, overrides = resolve_method(spec)
    _, method = build_method(spec, base_params)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    space = {}
    for param, declared in cls.search_space.items():
        if param not in fields:
            raise ZSBenchError(f"{name}: search space names {param!r}, which is not one of its hyper-parameters")
        if param in overrides or param in base_params:
            continue
        space[param] = distribution(param, name, declared, getattr(method, param))
        ends = declared.values if isinstance(declared, Choice) else (declared.low, declared.high)
        for value in ends:
            try:
                build_method(spec, {**base_params, param: value})[1].validate_params()
            except (ZSBenchError, ValueError, TypeError) as err:
                raise ZSBenchError(f"{name}: search space of {param!r} includes {value!r}, which the method refuses "
                                   f"({err})") from None
    return name, space, method


def study_key(name: str, request: DatasetRequest, ds: ZSDataset, seeds: list[int], budget: int, timeout_s: float,
              threads: int, seed: int, space: dict[str, Any], params: dict[str, Any]) -> str:
    """A name that changes when anything that shapes the study changes (then a new study starts)."""
    context = {"version": TUNING_VERSION, "method": name, "request": dataclasses.asdict(request),
               "data": ds.provenance, "split_sha256": ds.split.sha256, "seeds": seeds, "budget": budget,
               "timeout_s": timeout_s, "threads": threads, "sampler_seed": seed,
               "space": {k: repr(v) for k, v in sorted(space.items())}, "params": params}
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{name}-budget{budget}-{digest}"


def storage_path(out: Path, request: DatasetRequest, ds: ZSDataset, method: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{ds.name}-{ds.source}")
    split = "".join(c if c.isalnum() or c in "-_." else "_" for c in ds.split.name)
    return Path(out) / safe / split / f"{''.join(c if c.isalnum() or c in '-_.' else '_' for c in method)}.sqlite"


def _startup_trials(budget: int) -> int:
    """Random trials before TPE models the results: half the budget, at least 2, at most 10."""
    return min(10, max(2, budget // 2))


def tune_method(spec: str, request: DatasetRequest, ds: ZSDataset, budget: int, seeds: list[int], out: Path,
                timeout_s: float = DEFAULT_TIMEOUT_S, threads: int = 1, device: str = "cpu", seed: int = 0,
                params: dict[str, Any] | None = None,
                on_trial: Callable[[str, int, int, float | None, float, float], None] | None = None) -> TuneResult:
    """Tune one method on ``ds.selection_view()``; resumes the study of the same context if there is one."""
    from benchmark.execution.runner import run_one

    optuna = _optuna()
    if budget < 1:
        raise ZSBenchError(f"--budget must be at least 1 trial, got {budget}")
    params = dict(params or {})
    name, space, method = checked_space(spec, params)
    view = ds.selection_view()
    key = study_key(name, request, ds, seeds, budget, timeout_s, threads, seed, space, params)
    path = storage_path(out, request, ds, name)
    ResultStore(path.parent).ensure_folder()
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    study = optuna.create_study(storage=storage, study_name=key, direction="maximize", load_if_exists=True)
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # A trial left RUNNING was killed with its process: it counts for nothing and is drawn again.
        storage.set_trial_user_attr(stale._trial_id, "interrupted", True)
        storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
    trials_store = ResultStore(Path(out) / "trials")
    study.set_user_attr("params", params)
    study.set_user_attr("timeout_s", timeout_s)
    study.set_user_attr("seeds", list(seeds))
    defaults = {p: getattr(method, p) for p in space if _in_space(type(method).search_space[p], getattr(method, p))}

    stopped_by = "budget" if space else "no search space"
    target = budget if space else 1
    while len(done := _counted_trials(study)) < target:
        spent = sum(t.user_attrs.get("wall_s", 0.0) for t in done)
        if spent >= timeout_s:
            stopped_by = "timeout"
            break
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(done), n_startup_trials=_startup_trials(budget))
        if not done:
            study.enqueue_trial(defaults, user_attrs={"defaults": True}, skip_if_exists=False)
        trial = study.ask(space)
        trial_params = {**params, **trial.params}
        t0 = time.perf_counter()
        try:
            scores = []
            for run_seed in seeds:
                outcome = run_one(spec, view, run_seed, trials_store, trial_params, device=device, threads=threads,
                                  selection=TRIAL_SELECTION, monitor_every=0)
                record = outcome.record or trials_store.load(outcome.path)
                scores.append(sum(m["mAP@all"] for m in record.metrics.values()) / len(record.metrics))
            value = float(sum(scores) / len(scores))
            if not math.isfinite(value):
                raise ZSBenchError(f"{name}: validation mAP@all is {value}")
        except ZSBenchError as err:  # a diverged or refused configuration is a failed trial, not a failed tuning
            trial.set_user_attr("wall_s", time.perf_counter() - t0)
            trial.set_user_attr("error", str(err)[:300])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            value = None
        else:
            trial.set_user_attr("wall_s", time.perf_counter() - t0)
            trial.set_user_attr("scores", scores)
            study.tell(trial, value)
        if on_trial:
            done = _counted_trials(study)
            best = max((t.value for t in done if t.value is not None), default=None)
            on_trial(name, len(done), budget, best, sum(t.user_attrs.get("wall_s", 0.0) for t in done), timeout_s)
    return _result(study, path, budget, stopped_by)


def _in_space(declared: Any, value: Any) -> bool:
    if isinstance(declared, Choice):
        return value in declared.values
    return declared.low <= value <= declared.high


def _counted_trials(study) -> list:
    """The trials that count against the budget: finished ones, and failed ones that were not interrupted."""
    optuna = _optuna()
    return [t for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE
            or (t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get("interrupted"))]


def _result(study, path: Path, budget: int, stopped_by: str | None = None) -> TuneResult:
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
    return TuneResult(
        method=study.study_name.split("-budget")[0], study=study.study_name, storage=path, budget=budget,
        timeout_s=timeout_s, trials=len(done), failed=len(done) - len(complete), wall_s=wall_s,
        best_params={**params, **(best.params if best else {})}, best_value=best.value if best else None,
        default_value=defaults[0] if defaults else None, stopped_by=stopped_by,
        seeds=list(study.user_attrs.get("seeds", [])), history=[t.value for t in complete])


def find_study(out: Path, spec: str, request: DatasetRequest, ds: ZSDataset) -> TuneResult:
    """The finished tuning study of ``spec`` on this dataset and split (for ``zsbench run --tuned``)."""
    optuna = _optuna()
    name, _, overrides = resolve_method(spec)
    path = storage_path(out, request, ds, name)
    base = base_method(spec)
    if not path.is_file() and base is not None and storage_path(out, request, ds, base).is_file():
        # A variant without a study of its own (an ablation) takes its base method's chosen parameters, minus
        # the ones its registration fixes: the tuned model with exactly one thing removed.
        result = find_study(out, base, request, ds)
        kept = {k: v for k, v in result.best_params.items() if k not in overrides}
        return dataclasses.replace(result, method=name, best_params=kept, base=base)
    if not path.is_file():
        raise ZSBenchError(f"no tuning study of {name} on {ds.name} ({ds.source}, split {ds.split.name}) in {path}; "
                           f"run `zsbench tune --methods {name} --dataset {request.name}"
                           f"{' --synthetic' if request.synthetic else ''} --budget N` first")
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    summaries = optuna.get_all_study_summaries(storage)
    if len(summaries) != 1:
        names = ", ".join(s.study_name for s in summaries)
        raise ZSBenchError(f"{path} holds {len(summaries)} tuning studies of {name} ({names}); move the ones you do "
                           f"not want aside so that --tuned is unambiguous")
    study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
    result = _result(study, path, int(summaries[0].study_name.split("-budget")[-1].split("-")[0]))
    if result.best_value is None:
        raise ZSBenchError(f"the tuning study {study.study_name} in {path} has no finished trial; rerun zsbench tune "
                           f"to finish it")
    return result


def _tune_task(spec: str, request: DatasetRequest, budget: int, seeds: list[int], out: str, timeout_s: float,
               threads: int, device: str, seed: int, params: dict[str, Any]) -> TuneResult | str:
    """One method's tuning in a worker (a process or a Ray task): the dataset is loaded there."""
    from benchmark.execution.runner import thread_limit

    try:
        with thread_limit(threads):
            return tune_method(spec, request, request.load(), budget, seeds, Path(out), timeout_s, threads, device,
                               seed, params)
    except ZSBenchError as err:
        return f"{spec}: {err}"


def tune_all(specs: list[str], request: DatasetRequest, budget: int, seeds: list[int], out: Path,
             timeout_s: float = DEFAULT_TIMEOUT_S, threads: int = 1, device: str = "cpu", seed: int = 0,
             params: dict[str, dict[str, Any]] | None = None, executor: str = "serial", jobs: int = 1,
             address: str | None = None, on_trial=None, on_done: Callable[[TuneResult], None] | None = None
             ) -> list[TuneResult]:
    """Tune every method with the same budget and cap. Serially each study reports every trial (``on_trial``);
    with ``--jobs N`` / Ray, N methods are tuned at once (each study stays sequential, hence deterministic)."""
    from benchmark.execution.runner import thread_limit

    params = params or {}
    ds = request.load()
    for spec in specs:  # a bad search space fails before any trial, for every method
        checked_space(spec, params.get(spec, {}))
    ds.selection_view()  # and so does a split without enough seen classes
    results: dict[str, TuneResult] = {}
    errors: list[str] = []

    def collect(spec: str, result: TuneResult | str) -> None:
        if isinstance(result, str):
            errors.append(result)
            return
        results[spec] = result
        if on_done:
            on_done(result)

    if executor == "serial":
        if jobs > 1:
            raise ZSBenchError(f"--jobs {jobs} needs --executor processes or ray; serial tunes one method at a time")
        for spec in specs:
            with thread_limit(threads):
                collect(spec, tune_method(spec, request, ds, budget, seeds, out, timeout_s, threads, device, seed,
                                          params.get(spec, {}), on_trial))
    elif executor == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_tune_task, spec, request, budget, seeds, str(out), timeout_s, threads, device,
                                   seed, params.get(spec, {})): spec for spec in specs}
            for future in as_completed(futures):
                collect(futures[future], future.result())
    elif executor == "ray":
        from benchmark.execution.executors import ray_session

        with ray_session(address, jobs if jobs > 1 else None) as ray:
            remote = ray.remote(num_cpus=threads)(_tune_task)
            refs = {remote.remote(spec, request, budget, seeds, str(Path(out).resolve()), timeout_s, threads, device,
                                  seed, params.get(spec, {})): spec for spec in specs}
            pending = list(refs)
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                collect(refs[finished[0]], ray.get(finished[0]))
    else:
        raise ZSBenchError(f"unknown executor {executor!r}; choose serial, processes or ray")
    if errors:
        raise ZSBenchError(f"{len(errors)} of {len(specs)} tunings failed (the others' studies are kept); first: "
                           f"{errors[0]}")
    return [results[spec] for spec in specs]
