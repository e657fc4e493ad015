"""Run records -> comparable groups -> per-method statistics over seeds.

Two records are comparable only when they share the dataset, the data source (real, embedded, synthetic),
the split name and its sha256, the evaluation protocol, and the whole data provenance (semantics, feature
backbone, stand-in scale, data seed, ...). A :class:`GroupKey` holds exactly these; records that differ in
any of them land in different groups and so never share a table cell.

The stage is part of the key too: records of the model-selection stage (``stage: validation``, scored on
validation classes) never share a group with test records. So is the scenario (zero-shot, generalized,
standard): records scored on different query and gallery sets never share a group, so never a table row.

Inside a group, a method is identified by its name, how its configuration was chosen (``selection``:
defaults, or tuned with a budget), its full configuration and the device class it ran on: two
configurations under one name (a sweep) become two rows, labelled with a short hash of the configuration,
and GPU runs are a row of their own (``name [cuda]``), never pooled with the CPU runs of the same seeds.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.core.convergence import assess
from benchmark.core.env import device_class
from benchmark.core.record import DEFAULTS_SELECTION, RunRecord
from benchmark.core.spec import config_key, safe_name
from benchmark.core.store import ResultStore
from benchmark.registry import resolve_method

#: The metrics the peers' conventions are compared on (benchmark.report.sensitivity).
RANKING_METRICS: tuple[str, ...] = ("mAP@all", "mAP@100", "mAP@200", "P@100", "P@200")
#: The report's columns: R-precision (whose ceiling is 1, unlike P@k's) is in records written since it was added.
METRICS: tuple[str, ...] = (*RANKING_METRICS, "R-precision")
#: Each scenario in words (captions and section titles).
SCENARIO_TEXT = {"zero-shot": "zero-shot (unseen classes)",
                 "generalized": "generalized zero-shot (the seen classes' test items and the unseen classes' test "
                                "items, as queries and gallery alike, in place of the evaluation protocol above)",
                 "standard": "standard (the seen classes' test items, as queries and gallery alike, in place of the "
                             "evaluation protocol above)"}


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
    stage: str = "test"  # "test" or "validation" (model selection on validation classes)
    scenario: str = "zero-shot"  # "zero-shot", "generalized" or "standard" (see benchmark.core.data.SCENARIOS)

    @property
    def slug(self) -> str:
        """A file-name stem naming the group; the hash part keeps differing provenance apart."""
        digest = config_key({"split": self.split_sha256, "provenance": self.provenance, "semantics": self.semantics,
                             "features": self.features, "eval": self.eval_protocol})[:8]
        stem = f"{self.dataset}-{self.source}-{self.split}-{digest}"
        stem += "" if self.stage == "test" else f"-{self.stage}"
        stem += "" if self.scenario == "zero-shot" else f"-{self.scenario}"
        return safe_name(stem)

    def caption(self) -> str:
        extra = json.loads(self.provenance)
        extras = "; ".join(f"{k.replace('_', ' ')} {describe(v)}" for k, v in extra.items() if v is not None)
        stage = "" if self.stage == "test" else f"; stage {self.stage} (scored on validation classes, not test classes)"
        scenario = "" if self.scenario == "zero-shot" else f"; scenario {SCENARIO_TEXT[self.scenario]}"
        return (f"{self.dataset}, data source: {self.source}; split {self.split} (sha256 {self.split_sha256[:12]}); "
                f"evaluation {self.eval_protocol}; semantics: {self.semantics}; features: {self.features}"
                + (f"; {extras}" if extras else "") + stage + scenario)

    def meta(self) -> dict[str, str]:
        return {"dataset": self.dataset, "source": self.source, "split": self.split,
                "split_sha256": self.split_sha256, "eval_protocol": self.eval_protocol,
                "semantics": self.semantics, "features": self.features, "provenance": self.provenance,
                "stage": self.stage, "scenario": self.scenario}


def describe(value: Any) -> str:
    """A provenance value in words: nested mappings as ``key value, key value``, lists comma-separated."""
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {describe(v)}" if not isinstance(v, dict) else
                         f"{k.replace('_', ' ')} ({describe(v)})" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(describe(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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
    def selection(self) -> dict[str, Any]:
        """How the configuration was chosen: ``{"protocol": "defaults"}`` (also for records before selection
        existed) or ``{"protocol": "tuned", "budget": N, ...}``."""
        return dict(self.record.selection if self.record is not None and self.record.selection else
                    DEFAULTS_SELECTION)

    @property
    def device(self) -> str:
        """``cpu`` or ``cuda``: where the run was computed."""
        return device_class(self.record.device if self.record is not None else "cpu")

    @property
    def training_budget(self) -> str:
        """``cpu`` (also for records before budgets existed) or ``paper``."""
        return self.record.training_budget if self.record is not None else "cpu"

    @property
    def protocol(self) -> str:
        """How the configuration was chosen, in words: ``defaults``, or the tuning protocol with the number of
        validation folds when it is more than one (selections over different folds are different rows)."""
        selection = self.selection
        folds = selection.get("folds") or []
        return str(selection.get("protocol", "defaults")) + (f" over {len(folds)} folds" if len(folds) > 1 else "")

    @property
    def selection_label(self) -> str:
        """``defaults``, or ``tuned, budget N trials``, with ``, paper training budget`` for runs at a training
        budget other than cpu (the rows of one label are kept in one table section: runs of different
        training budgets are never ranked together)."""
        if self.protocol == "defaults":
            label = "defaults"
        else:
            budget = self.selection.get("budget")
            label = (f"{self.protocol}, budget {budget} trials" if budget is not None else self.protocol)
        return label if self.training_budget == "cpu" else f"{label}, {self.training_budget} training budget"

    @property
    def queries_path(self) -> Path | None:
        """The per-query sidecar (``<record stem>.queries.parquet``), if it exists."""
        name = (self.record.queries_file if self.record is not None else None) or f"{self.path.stem}.queries.parquet"
        path = self.path.with_name(name)
        return path if path.is_file() else None

    def info(self, task: str) -> dict[str, Any]:
        """The task's ``metrics_info`` (n_queries, n_gallery, queries_without_relevant), or {}."""
        return dict(self.record.metrics_info.get(task) or {}) if self.record is not None else {}

    @property
    def convergence(self) -> dict[str, Any] | None:
        """The record's ``convergence``; for records written before it was recorded, the same rule applied to
        their training log with the method's declared main loss (None when the method is not registered)."""
        if self.record is None:
            return None
        if self.record.convergence:
            return self.record.convergence
        try:
            cls = resolve_method(self.method)[1]
        except ZSBenchError:
            return None
        return assess(self.record.training_log or [], cls.convergence_loss)

    @property
    def converged(self) -> bool | None:
        """True or False by the one convergence rule; None when not assessed."""
        verdict = (self.convergence or {}).get("converged")
        return None if verdict is None else bool(verdict)

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
                        provenance=json.dumps(provenance, sort_keys=True, default=str), stage=record.stage,
                        scenario=record.scenario)
    except (KeyError, TypeError) as err:
        raise ZSBenchError(f"run record {path} lacks the field {err}; it is not a zsbench run record "
                           f"(move it out of the results folder)") from None


def run_from_record(path: Path, record: RunRecord) -> Run:
    return Run(path=Path(path), method=record.method, config_hash=config_key(record.config)[:8], seed=record.seed,
               group=group_key(record, path), metrics=record.metrics, finished=record.finished, record=record)


@dataclass(frozen=True)
class Selection:
    """Which records a command works on, chosen with ``zsbench run``'s flags and meaning the same: ``--dataset``
    (names), ``--synthetic`` (the stand-ins; without it, real and embedded data) and ``--split``. A selection
    with none of them given (``synthetic`` None) takes every record."""

    datasets: tuple[str, ...] = ()
    synthetic: bool | None = None
    split: str | None = None

    @classmethod
    def from_flags(cls, datasets: str | None = None, synthetic: bool = False, split: str | None = None) -> Selection:
        names = tuple(d.strip() for d in (datasets or "").split(",") if d.strip())
        given = bool(names) or synthetic or split is not None
        return cls(names, bool(synthetic) if given else None, split)

    def matches(self, key: GroupKey) -> bool:
        return ((not self.datasets or key.dataset in self.datasets)
                and (self.synthetic is None or (key.source == "synthetic") == self.synthetic)
                and (self.split is None or key.split == self.split))

    def describe(self) -> str:
        data = {None: "", True: "synthetic stand-in ", False: "real or embedded "}[self.synthetic]
        names = ", ".join(self.datasets) or "any dataset"
        return f"{data}records of {names}" + (f", split {self.split}" if self.split else "")


def load_runs(results: str | Path, selection: Selection | None = None, oracle: bool = False) -> list[Run]:
    """Every run record under ``results`` (superseded ones excluded) that ``selection`` takes; a selection that
    takes nothing is an error saying what there is. Records with test-class scores during training (an oracle
    run, ``benchmark.core.oracle``) are never among them: ``oracle=True`` returns those alone, for the one
    table that reads them."""
    root = Path(results)
    if root.is_file():
        raise ZSBenchError(f"--results {root} is a file; pass the folder that holds the run records (e.g. "
                           f"{root.parents[2] if len(root.parents) > 2 else root.parent})")
    if not root.is_dir():
        raise ZSBenchError(f"results folder {root} does not exist; run `zsbench run` first or pass --results DIR")
    runs = [run_from_record(path, record) for path, record in ResultStore(root).records()
            if (record.oracle is not None) == oracle]
    if selection is None or selection.synthetic is None and not selection.datasets and selection.split is None:
        return runs
    chosen = [run for run in runs if selection.matches(run.group)]
    if runs and not chosen:
        there = sorted({(r.group.dataset, r.group.source, r.group.split) for r in runs})
        hint = " (add --synthetic for the stand-ins)" if selection.synthetic is False and any(
            s == "synthetic" for _, s, _ in there) else ""
        raise ZSBenchError(f"no {selection.describe()} under {root}{hint}; it holds: "
                           + ", ".join(f"{d} ({s}, split {sp})" for d, s, sp in there))
    return chosen


def group_runs(runs: list[Run]) -> dict[GroupKey, list[Run]]:
    """Runs per comparable group, each run labelled; a repeated (method, selection, config, device, seed) keeps
    the newest.

    Labels are the method name, ``name (tuned)`` for a tuned configuration, ``[cfg <hash>]`` appended
    when one method has several configurations under one selection (a sweep), and ``[cuda]`` for GPU runs.
    Tuned and default rows also sit in different sections of a table (see :func:`sections_of`).
    """
    groups: dict[GroupKey, dict[tuple[str, str, str, str, int], Run]] = defaultdict(dict)
    for run in runs:
        slot = (run.method, run.selection_label, run.config_hash, run.device, run.seed)
        kept = groups[run.group].get(slot)
        if kept is None or run.finished > kept.finished:
            groups[run.group][slot] = run
    out: dict[GroupKey, list[Run]] = {}
    for key in sorted(groups):
        members = sorted(groups[key].values(),
                         key=lambda r: (r.method, r.selection_label, r.config_hash, r.device, r.seed))
        configs: dict[tuple[str, str], set[str]] = defaultdict(set)
        for run in members:
            configs[(run.method, run.selection_label)].add(run.config_hash)
        for run in members:
            several = len(configs[(run.method, run.selection_label)]) > 1
            protocol = run.protocol
            run.label = run.method + ("" if protocol == "defaults" else f" ({protocol})") + (
                f" [cfg {run.config_hash}]" if several else "") + ("" if run.device == "cpu" else f" [{run.device}]")
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


def section_title(label: str) -> str:
    """A table section's heading for a selection label: ``defaults`` reads "default hyper-parameters" (with the
    training budget when it is not cpu); a tuned label says that validation classes chose it."""
    if label == "defaults" or label.startswith("defaults, "):
        return "default hyper-parameters" + label[len("defaults"):]
    return label if "validation" in label else f"{label} on validation classes"


def sections_of(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs by selection label, ``defaults`` first: tuned and default rows are never ranked together."""
    out: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        out[run.selection_label].append(run)
    return dict(sorted(out.items(), key=lambda item: (item[0] != "defaults", item[0])))


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
