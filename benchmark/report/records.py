"""Run records -> comparable groups -> per-method statistics over seeds.

Two records are comparable only when they share the dataset, the data source (real, embedded, synthetic),
the split name and its sha256, the evaluation protocol, and the whole data provenance (semantics, feature
backbone, stand-in scale, data seed, ...). A :class:`GroupKey` holds exactly these; records that differ in
any of them land in different groups and so never share a table cell.

Inside a group, a method is identified by its name and its full configuration: two configurations under
one name (a sweep) become two rows, labelled with a short hash of the configuration.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.record import RunRecord
from benchmark.store import ResultStore, config_key

METRICS: tuple[str, ...] = ("mAP@all", "mAP@100", "mAP@200", "P@100", "P@200")


@dataclass(frozen=True, order=True)
class GroupKey:
    dataset: str
    source: str
    split: str
    split_sha256: str
    eval_protocol: str
    semantics: str
    features: str
    provenance: str  # canonical JSON of every other data-provenance field

    @property
    def slug(self) -> str:
        """A file-name stem naming the group; the hash part keeps differing provenance apart."""
        digest = config_key({"split": self.split_sha256, "provenance": self.provenance, "semantics": self.semantics,
                             "features": self.features, "eval": self.eval_protocol})[:8]
        stem = f"{self.dataset}-{self.source}-{self.split}-{digest}"
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)

    def caption(self) -> str:
        extra = json.loads(self.provenance)
        extras = "; ".join(f"{k} {v}" for k, v in extra.items())
        return (f"{self.dataset}, data source: {self.source}; split {self.split} (sha256 {self.split_sha256[:12]}); "
                f"evaluation {self.eval_protocol}; semantics: {self.semantics}; features: {self.features}"
                + (f"; {extras}" if extras else ""))

    def meta(self) -> dict[str, str]:
        return {"dataset": self.dataset, "source": self.source, "split": self.split,
                "split_sha256": self.split_sha256, "eval_protocol": self.eval_protocol,
                "semantics": self.semantics, "features": self.features, "provenance": self.provenance}


@dataclass
class Run:
    path: Path
    method: str
    config_hash: str
    seed: int
    group: GroupKey
    metrics: dict[str, dict[str, float]]
    finished: str = ""
    label: str = ""  # the row label: the method name, with a config hash when :func:`group_runs` needs one
    record: RunRecord | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.label = self.label or self.method

    @property
    def embeddings_path(self) -> Path | None:
        name = self.record.embeddings_file if self.record is not None else None
        path = self.path.with_name(name) if name else None
        return path if path is not None and path.is_file() else None


def group_key(record: RunRecord, path: Path | str = "record") -> GroupKey:
    try:
        dataset = record.dataset
        provenance = dict(record.identity.get("data") or
                          {k: v for k, v in dataset.items() if k not in ("name", "source", "n_classes", "items",
                                                                        "eval_protocol")})
        semantics = str(provenance.pop("semantics", dataset.get("semantics", "unknown")))
        features = str(provenance.pop("features", dataset.get("features", "unknown")))
        return GroupKey(dataset=dataset["name"], source=record.source, split=record.split["name"],
                        split_sha256=record.split["sha256"], eval_protocol=dataset["eval_protocol"],
                        semantics=semantics, features=features,
                        provenance=json.dumps(provenance, sort_keys=True, default=str))
    except (KeyError, TypeError) as err:
        raise ZSBenchError(f"run record {path} lacks the field {err}; it is not a zsbench run record "
                           f"(move it out of the results folder)") from None


def run_from_record(path: Path, record: RunRecord) -> Run:
    return Run(path=Path(path), method=record.method, config_hash=config_key(record.config)[:8], seed=record.seed,
               group=group_key(record, path), metrics=record.metrics, finished=record.finished, record=record)


def load_runs(results: str | Path) -> list[Run]:
    """Every run record under ``results`` (superseded ones excluded)."""
    root = Path(results)
    if not root.is_dir():
        raise ZSBenchError(f"results folder {root} does not exist; run `zsbench run` first or pass --results DIR")
    return [run_from_record(path, record) for path, record in ResultStore(root).records()]


def group_runs(runs: list[Run]) -> dict[GroupKey, list[Run]]:
    """Runs per comparable group, each run labelled; a repeated (method, config, seed) keeps the newest."""
    groups: dict[GroupKey, dict[tuple[str, str, int], Run]] = defaultdict(dict)
    for run in runs:
        slot = (run.method, run.config_hash, run.seed)
        kept = groups[run.group].get(slot)
        if kept is None or run.finished > kept.finished:
            groups[run.group][slot] = run
    out: dict[GroupKey, list[Run]] = {}
    for key in sorted(groups):
        members = sorted(groups[key].values(), key=lambda r: (r.method, r.config_hash, r.seed))
        configs: dict[str, set[str]] = defaultdict(set)
        for run in members:
            configs[run.method].add(run.config_hash)
        for run in members:
            run.label = run.method if len(configs[run.method]) == 1 else f"{run.method} [cfg {run.config_hash}]"
        out[key] = members
    return out


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof 1; None for a single seed) over ``n`` seeds."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat | None:
        values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not values:
            return None
        std = float(np.std(values, ddof=1)) if len(values) > 1 else None
        return cls(float(np.mean(values)), std, len(values))


def tasks_of(runs: list[Run]) -> list[str]:
    return sorted({task for run in runs for task in run.metrics})


def methods_of(runs: list[Run]) -> list[str]:
    return sorted({run.label for run in runs})


def aggregate(runs: list[Run], task: str, metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, Stat | None]]:
    """method label -> metric -> statistics over that method's seeds, for one task of one group."""
    if len({run.group for run in runs}) > 1:
        raise ZSBenchError("aggregate() was given runs of different groups; group them with group_runs() first")
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for metric in metrics:
            value = run.metrics.get(task, {}).get(metric)
            if value is not None:
                values[run.label][metric].append(value)
    return {label: {metric: Stat.of(per_metric.get(metric, [])) for metric in metrics}
            for label, per_metric in sorted(values.items())}
