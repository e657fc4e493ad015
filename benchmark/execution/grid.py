"""A grid of runs (methods with hyper-parameters x datasets x seeds), from command-line flags or a TOML file.

A grid file describes a whole experiment, so that ``zsbench run --config grid.toml`` of a committed file
regenerates the committed records::

    seeds = [0, 1]
    device = "cpu"                 # optional
    threads = 1                    # optional: torch/BLAS threads per run (part of a run's identity)
    stage = "test"                 # optional: "validation" scores the validation classes (model selection)
    budget = "cpu"                 # optional: the training budget, "cpu" or "paper" (the released lengths)
    scenario = "zero-shot"         # optional: "generalized", "standard", "all", or a list of them
    oracle_every = 0               # optional: test-class scores every N epochs, for the oracle table only
    fold = 0                       # optional, validation stage: which validation fold is scored
    tuning_folds = 1               # optional: tuned entries read the studies tuned over this many folds
    results = "results/runs"       # optional; --results overrides it

    [[methods]]
    name = "semantic-regression"   # a registered name or module:Class
    params = { epochs = 5 }        # hyper-parameter overrides (optional)

    [[datasets]]
    name = "wikipedia"
    synthetic = true               # optional, default false
    split = "dadn"                 # optional, default: the dataset's default split
    scale = 0.1                    # optional, synthetic stand-ins only
    data_seed = 0                  # optional
    synthetic_version = 1          # optional, stand-ins only: the generator version (default: the current, 2)

The same method may appear twice with different ``params`` (a sweep). ``zsbench run --param
cfsa.epochs=20`` overrides one hyper-parameter of the grid's ``cfsa`` entries from the command line, the
same way. This module only parses (names such as ``all`` and comma lists are expanded here and nowhere
else); ``benchmark.execution.plan`` checks a grid, resolves it (every hyper-parameter with its value,
every split and scale spelled out, the form each record keeps as provenance, not part of a run's
identity) and lays it out as run specifications.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.core.data import DEFAULT_SCENARIO, SCENARIOS, DatasetRequest
from benchmark.core.env import DEFAULT_THREADS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport (a dependency there)
    import tomli as tomllib

TOP_KEYS = {"seeds", "device", "threads", "stage", "budget", "scenario", "oracle_every", "fold", "tuning_folds",
            "results", "tuning", "methods", "datasets"}
#: The word that expands to every registered method, dataset or split.
ALL = "all"
METHOD_KEYS = {"name", "params", "tuned"}
DATASET_KEYS = {"name", "synthetic", "split", "scale", "data_seed", "semantics", "synthetic_version"}


@dataclass(frozen=True)
class MethodEntry:
    spec: str
    params: dict[str, Any] = field(default_factory=dict)
    #: Take the parameters from this method's tuning study on each dataset (``tuned = true`` in a grid file).
    tuned: bool = False


@dataclass
class Grid:
    methods: list[MethodEntry]
    datasets: list[DatasetRequest]
    seeds: list[int]
    device: str = "cpu"
    threads: int = DEFAULT_THREADS
    stage: str = "test"
    #: The training budget of every run: ``cpu`` (default) or ``paper`` (see ``Method.budgets``).
    budget: str | None = None  # None: paper on a GPU, cpu on a CPU (resolved by plan.check_grid)
    #: Score the test classes every N epochs into each record's ``oracle`` field (0: never; never a result).
    oracle_every: int = 0
    #: Validation stage: the validation fold scored (0: the split's validation classes).
    fold: int = 0
    #: Tuned entries read the studies tuned over this many validation folds (``zsbench tune --folds K``).
    tuning_folds: int = 1
    results: str | None = None
    #: Folder of the tuning studies that ``tuned`` entries read (default results/tuning).
    tuning: str | None = None
    #: The scenarios every (method, dataset, seed) is run in (``all`` expanded; see ``parse_scenarios``).
    scenarios: list[str] = field(default_factory=lambda: [DEFAULT_SCENARIO])
    file: str | None = None
    file_sha256: str | None = None

    def with_params(self, assignments: Sequence[str]) -> Grid:
        """The grid with ``method.param=value`` overrides (``--param``), checked against the methods' fields."""
        if not assignments:
            return self
        entries = list(self.methods)
        for text in assignments:
            target, param, value = parse_param(text)
            hits = [i for i, entry in enumerate(entries) if entry.spec == target]
            if not hits:
                names = ", ".join(entry.spec for entry in entries)
                raise ZSBenchError(f"--param {text}: no method {target!r} in this grid (its methods: {names})")
            for i in hits:
                coerced = coerce_param(entries[i].spec, param, value, f"--param {text}")
                entries[i] = dataclasses.replace(entries[i], params={**entries[i].params, param: coerced})
        return dataclasses.replace(self, methods=entries)


def parse_param(text: str) -> tuple[str, str, Any]:
    """``method.param=value`` -> (method, param, value); the value is read as TOML (1e-4, 20, true, "mmd")."""
    head, sep, raw = text.partition("=")
    method, dot, param = head.strip().rpartition(".")
    if not sep or not dot or not method or not param or not raw.strip():
        raise ZSBenchError(f"--param {text!r}: write it as METHOD.PARAM=VALUE, e.g. --param cfsa.epochs=20")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string: --param cfsa.alignment=mmd
    return method, param.strip(), value


def coerce_param(spec: str, param: str, value: Any, where: str) -> Any:
    """The value as the type of the method's field (see :func:`benchmark.registry.coerce_param`)."""
    from benchmark.registry import coerce_param as coerce

    return coerce(spec, param, value, where)


def expand_methods(specs: Sequence[str], variants: bool = True) -> list[str]:
    """``all`` becomes every registered method (sorted; without the registered variants, ablations and
    paper-width ones, when ``variants`` is False); other names are kept, in order, once each."""
    from benchmark.registry import available_methods

    registered = [name for name, (_, overrides) in available_methods().items() if variants or not overrides]
    expanded: list[str] = []
    for spec in specs:
        for name in (registered if spec == ALL else [spec]):
            if name not in expanded:
                expanded.append(name)
    return expanded


def dataset_requests(names: Sequence[str], synthetic: bool = False, split: str | None = None,
                     scale: float | None = None, semantics: str | None = None) -> list[DatasetRequest]:
    """``all`` becomes every registered dataset; split ``all`` runs each dataset on every one of its splits.

    With several datasets a named split must exist in each of them (split names are per dataset).
    """
    from benchmark.datasets.specs import SPECS, get_spec

    expanded: list[str] = []
    for name in names:
        for dataset in (list(SPECS) if name == ALL else [name]):
            if dataset not in expanded:
                expanded.append(dataset)
    requests = []
    for dataset in expanded:
        if dataset not in SPECS and Path(dataset).is_dir():  # a prepared folder of the user's own
            requests.append(DatasetRequest(dataset, synthetic, split, scale, semantics=semantics))
            continue
        spec = get_spec(dataset)
        if split == ALL:
            requests.extend(DatasetRequest(dataset, synthetic, s, scale, semantics=semantics) for s in spec.splits)
            continue
        if split is not None and split not in spec.splits and len(expanded) > 1:
            raise ZSBenchError(f"dataset {dataset!r} has no split {split!r} (its splits: {', '.join(spec.splits)}); "
                               f"leave --split out for each dataset's default, or pass --split all")
        requests.append(DatasetRequest(dataset, synthetic, split, scale, semantics=semantics))
    return requests


def parse_scenarios(value: str | Sequence[str], where: str = "--scenario") -> list[str]:
    """``all``, one scenario, a comma list or a list of them -> the scenarios in :data:`SCENARIOS` order, once each."""
    names = split_list(value) if isinstance(value, str) else [str(v) for v in value]
    wanted = set(SCENARIOS) if ALL in names else set(names)
    unknown = sorted(wanted - set(SCENARIOS))
    if unknown or not wanted:
        raise ZSBenchError(f"{where}: scenario must be one of {', '.join(SCENARIOS)} or all, got "
                           f"{', '.join(unknown) or 'none'}")
    return [s for s in SCENARIOS if s in wanted]


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]: non-negative, unique, at least one (``--seeds ""`` is an error, not seed 0)."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ZSBenchError(f"--seeds must be comma-separated non-negative integers, e.g. --seeds 0,1,2; got "
                           f"{text!r}") from None
    check_seeds(seeds)
    return seeds


def check_seeds(seeds: Sequence[int], where: str = "--seeds") -> None:
    """Seeds are non-negative, unique and at least one."""
    if not seeds:
        raise ZSBenchError(f"{where} is empty; give at least one seed, e.g. --seeds 0")
    negative = [s for s in seeds if s < 0]
    if negative:
        raise ZSBenchError(f"{where}: seed {negative[0]} is negative; a seed is a non-negative integer, e.g. 0")
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise ZSBenchError(f"{where} repeats seed {', '.join(map(str, repeated))}; give each seed once")


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def grid_from_flags(methods: list[str], datasets: list[str], seeds: list[int], synthetic: bool = False,
                    split: str | None = None, scale: float | None = None, device: str = "cpu",
                    semantics: str | None = None) -> Grid:
    return Grid(methods=[MethodEntry(m) for m in expand_methods(methods)],
                datasets=dataset_requests(datasets, synthetic=synthetic, split=split, scale=scale, semantics=semantics),
                seeds=list(seeds), device=device)


def _expect(value: Any, kinds: type | tuple[type, ...], where: str, what: str) -> Any:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ZSBenchError(f"{where}: {what} must be {_kind_names(kinds)}, got {value!r}")
    if not isinstance(value, kinds):
        raise ZSBenchError(f"{where}: {what} must be {_kind_names(kinds)}, got {value!r}")
    return value


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join({str: "a string", int: "an integer", float: "a number", bool: "true/false",
                        list: "a list", dict: "a table"}.get(k, k.__name__) for k in kinds)


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ZSBenchError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file; every problem is a one-line error naming the file and the entry."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ZSBenchError(f"cannot read grid file {path}: {err.strerror or err}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ZSBenchError(f"grid file {path} is not valid TOML: {str(err).splitlines()[0]}") from None
    where = f"grid file {path}"
    _unknown_keys(data, TOP_KEYS, where)
    for key in ("methods", "datasets"):
        if not data.get(key):
            raise ZSBenchError(f"{where}: needs at least one [[{key}]] entry")
        _expect(data[key], list, where, key)

    methods = []
    for i, table in enumerate(data["methods"]):
        at = f"{where}, methods[{i}]"
        _expect(table, dict, at, "the entry")
        _unknown_keys(table, METHOD_KEYS, at)
        name = _expect(table.get("name"), str, at, "name")
        params = _expect(table.get("params", {}), dict, at, "params")
        tuned = _expect(table.get("tuned", False), bool, at, "tuned")
        if tuned and params:
            raise ZSBenchError(f"{at}: a tuned entry takes its parameters from the tuning study; drop params")
        methods.append(MethodEntry(name, dict(params), tuned=tuned))

    datasets = []
    for i, table in enumerate(data["datasets"]):
        at = f"{where}, datasets[{i}]"
        _expect(table, dict, at, "the entry")
        _unknown_keys(table, DATASET_KEYS, at)
        scale = table.get("scale")
        datasets.append(DatasetRequest(
            name=_expect(table.get("name"), str, at, "name"),
            synthetic=_expect(table.get("synthetic", False), bool, at, "synthetic"),
            split=None if table.get("split") is None else _expect(table["split"], str, at, "split"),
            scale=None if scale is None else float(_expect(scale, (int, float), at, "scale")),
            data_seed=_expect(table.get("data_seed", 0), int, at, "data_seed"),
            semantics=None if table.get("semantics") is None else _expect(table["semantics"], str, at, "semantics"),
            synthetic_version=None if table.get("synthetic_version") is None else _expect(
                table["synthetic_version"], int, at, "synthetic_version"),
        ))

    seeds = _expect(data.get("seeds", [0]), list, where, "seeds")
    for seed in seeds:
        _expect(seed, int, where, "every seed")
    check_seeds(seeds, f"{where}: seeds")
    grid = Grid(methods=methods, datasets=datasets, seeds=[int(s) for s in seeds],
                device=_expect(data.get("device", "cpu"), str, where, "device"),
                threads=_expect(data.get("threads", DEFAULT_THREADS), int, where, "threads"),
                stage=_expect(data.get("stage", "test"), str, where, "stage"),
                budget=None if data.get("budget") is None else _expect(data["budget"], str, where, "budget"),
                scenarios=parse_scenarios(_expect(data.get("scenario", DEFAULT_SCENARIO), (str, list), where,
                                                  "scenario"), f"{where}: scenario"),
                oracle_every=_expect(data.get("oracle_every", 0), int, where, "oracle_every"),
                fold=_expect(data.get("fold", 0), int, where, "fold"),
                tuning_folds=_expect(data.get("tuning_folds", 1), int, where, "tuning_folds"),
                results=None if data.get("results") is None else _expect(data["results"], str, where, "results"),
                tuning=None if data.get("tuning") is None else _expect(data["tuning"], str, where, "tuning"),
                file=str(path), file_sha256=hashlib.sha256(raw).hexdigest())
    return grid


def grid_from_cli(config: str | None, methods: str | None, datasets: str | None, synthetic: bool,
                  split: str | None, scale: float | None, seeds: str | None, device: str | None,
                  semantics: str | None = None, threads: int | None = None, stage: str | None = None,
                  params: Sequence[str] = (), budget: str | None = None, oracle_every: int | None = None,
                  fold: int | None = None, tuning_folds: int | None = None, scenario: str | None = None) -> Grid:
    """The grid of ``zsbench run``: a grid file, or the flags; flags that a file would contradict are errors.
    ``seeds``, ``device``, ``threads``, ``stage``, ``budget``, ``scenario`` and ``params`` apply to either."""
    grid = _grid_from_cli(config, methods, datasets, synthetic, split, scale, seeds, device, semantics)
    given = {"threads": threads, "stage": stage, "budget": budget, "oracle_every": oracle_every, "fold": fold,
             "tuning_folds": tuning_folds, "scenarios": None if scenario is None else parse_scenarios(scenario)}
    for name, value in given.items():
        if value is not None:
            setattr(grid, name, value)
    return grid.with_params(params)


def _grid_from_cli(config, methods, datasets, synthetic, split, scale, seeds, device, semantics) -> Grid:
    if config is not None:
        clashing = [flag for flag, value in (("--methods", methods), ("--dataset", datasets), ("--split", split),
                                             ("--semantics", semantics))
                    if value is not None]
        if clashing:
            raise ZSBenchError(f"--config describes the grid; drop {', '.join(clashing)} (or edit {config})")
        grid = load_grid(config)
        if synthetic or scale is not None:  # the whole grid on the stand-ins (at one scale), e.g. the paper grid
            if scale is not None and not synthetic:
                raise ZSBenchError("--scale with --config applies to the synthetic stand-ins: add --synthetic")
            grid.datasets = [dataclasses.replace(d, synthetic=True, scale=scale if scale is not None else d.scale,
                                                 semantics=None) for d in grid.datasets]
        if seeds is not None:
            grid.seeds = parse_seeds(seeds)
        if device is not None:
            grid.device = device
        return grid
    if not methods or not datasets:
        raise ZSBenchError("give --methods and --dataset, or --config GRID.toml")
    return grid_from_flags(split_list(methods), split_list(datasets), parse_seeds(seeds if seeds is not None else "0"), synthetic, split,
                           scale, device or "cpu", semantics)
