"""A grid of runs (methods with hyper-parameters x datasets x seeds), from command-line flags or a TOML file.

A grid file describes a whole experiment, so that ``zsbench run --config grid.toml`` of a committed file
regenerates the committed records::

    seeds = [0, 1]
    device = "cpu"                 # optional
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

The same method may appear twice with different ``params`` (a sweep). The grid is *resolved* (every
hyper-parameter with its value, every split and scale spelled out) and the resolved form goes into every
record it writes, as provenance; it is not part of a run's identity.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.data import DatasetRequest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport (a dependency there)
    import tomli as tomllib

TOP_KEYS = {"seeds", "device", "results", "methods", "datasets"}
METHOD_KEYS = {"name", "params"}
DATASET_KEYS = {"name", "synthetic", "split", "scale", "data_seed", "semantics", "synthetic_version"}


@dataclass(frozen=True)
class MethodEntry:
    spec: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridTask:
    """One run of the grid; ``index`` is its place in the grid's fixed order (dataset, method, seed)."""

    index: int
    method: str
    params: dict[str, Any]
    dataset: DatasetRequest
    seed: int


@dataclass
class Grid:
    methods: list[MethodEntry]
    datasets: list[DatasetRequest]
    seeds: list[int]
    device: str = "cpu"
    results: str | None = None
    file: str | None = None
    file_sha256: str | None = None

    def tasks(self) -> list[GridTask]:
        """Dataset-major, so a worker that loaded a dataset keeps using it."""
        order = [(d, m, s) for d in self.datasets for m in self.methods for s in self.seeds]
        return [GridTask(i, m.spec, dict(m.params), d, s) for i, (d, m, s) in enumerate(order)]

    def check(self) -> None:
        """Fail on an unknown method, hyper-parameter, dataset or split before anything runs."""
        from benchmark.datasets import check_available
        from benchmark.registry import build_method

        for entry in self.methods:
            build_method(entry.spec, entry.params)
        for request in self.datasets:
            check_available(request.name, request.synthetic, request.split)
            if request.scale is not None and not 0 < request.scale <= 1:
                raise ZSBenchError(f"dataset {request.name!r}: scale must lie in (0, 1], got {request.scale}")

    def resolved(self) -> dict[str, Any]:
        """The grid with every default spelled out (kept in each record)."""
        from benchmark.datasets.specs import SPECS
        from benchmark.datasets.synthetic import DEFAULT_VERSION, default_scale
        from benchmark.registry import build_method

        methods = []
        for entry in self.methods:
            name, method = build_method(entry.spec, entry.params)
            methods.append({"name": name, "overrides": dict(entry.params), "params": method.get_params()})
        datasets = []
        for request in self.datasets:
            spec = SPECS.get(request.name)  # None: a prepared folder of the user's own
            scale = request.scale
            if request.synthetic and scale is None:
                scale = default_scale(spec)
            entry = {"name": request.name, "synthetic": request.synthetic,
                     "split": request.split or (spec.default_split if spec else None), "scale": scale,
                     "data_seed": request.data_seed, "semantics": request.semantics or "glove"}
            if request.synthetic:
                entry["synthetic_version"] = request.synthetic_version or DEFAULT_VERSION
            datasets.append(entry)
        return {"file": self.file, "file_sha256": self.file_sha256, "methods": methods, "datasets": datasets,
                "seeds": list(self.seeds), "device": self.device}


def grid_from_flags(methods: list[str], datasets: list[str], seeds: list[int], synthetic: bool = False,
                    split: str | None = None, scale: float | None = None, device: str = "cpu",
                    semantics: str | None = None) -> Grid:
    from benchmark.runner import dataset_requests, expand_methods

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
        methods.append(MethodEntry(name, dict(params)))

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
    if not seeds:
        raise ZSBenchError(f"{where}: seeds is empty")
    for seed in seeds:
        _expect(seed, int, where, "every seed")
    if len(set(seeds)) != len(seeds):
        raise ZSBenchError(f"{where}: seeds has duplicates {seeds}")
    grid = Grid(methods=methods, datasets=datasets, seeds=[int(s) for s in seeds],
                device=_expect(data.get("device", "cpu"), str, where, "device"),
                results=None if data.get("results") is None else _expect(data["results"], str, where, "results"),
                file=str(path), file_sha256=hashlib.sha256(raw).hexdigest())
    return grid


def grid_from_cli(config: str | None, methods: str | None, datasets: str | None, synthetic: bool,
                  split: str | None, scale: float | None, seeds: str | None, device: str | None,
                  semantics: str | None = None) -> Grid:
    """The grid of ``zsbench run``: a grid file, or the flags; flags that a file would contradict are errors."""
    from benchmark.runner import parse_seeds

    if config is not None:
        clashing = [flag for flag, value in (("--methods", methods), ("--dataset", datasets), ("--split", split),
                                             ("--scale", scale), ("--semantics", semantics))
                    if value is not None]
        if synthetic:
            clashing.append("--synthetic")
        if clashing:
            raise ZSBenchError(f"--config describes the grid; drop {', '.join(clashing)} (or edit {config})")
        grid = load_grid(config)
        if seeds is not None:
            grid.seeds = parse_seeds(seeds)
        if device is not None:
            grid.device = device
        return grid
    if not methods or not datasets:
        raise ZSBenchError("give --methods and --dataset, or --config GRID.toml")
    split_list = lambda text: [part.strip() for part in text.split(",") if part.strip()]  # noqa: E731
    return grid_from_flags(split_list(methods), split_list(datasets), parse_seeds(seeds or "0"), synthetic, split,
                           scale, device or "cpu", semantics)
