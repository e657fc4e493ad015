"""The run record: the one shape a run's result has in memory and on disk (a versioned JSON file).

:class:`RunRecord` is what the runner writes, the store saves and loads, and the report and the CLI read
(by field, never by ``.get(key, '?')``). Loading checks the schema version: version 1 (records written
before validation classes, thread counts and per-query sidecars existed) still loads, its missing fields
filled with what was true then; an unknown version is a one-line error naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: How a configuration was chosen when nobody tuned it.
DEFAULTS_SELECTION: dict[str, Any] = {"protocol": "defaults"}


@dataclass
class RunRecord:
    method: str
    config: dict[str, Any]
    dataset: dict[str, Any]
    source: str
    split: dict[str, Any]
    seed: int
    metrics: dict[str, dict[str, float]]
    metrics_info: dict[str, dict[str, Any]]
    training_log: list[dict[str, Any]]
    fits: list[str]
    timings: dict[str, float]
    peak_memory_mb: float
    device: str
    versions: dict[str, str]
    git_commit: str | None
    started: str
    finished: str
    identity: dict[str, Any]
    #: ``test`` (scored on the unseen classes) or ``validation`` (the selection problem's validation classes).
    stage: str = "test"
    #: torch/BLAS threads the run used (None in version-1 records: whatever the process had).
    threads: int | None = None
    #: Where it ran (host, CPU count, architecture), for time estimates of later runs on the same machine.
    machine: dict[str, Any] | None = None
    #: How the configuration was chosen: ``{"protocol": "defaults"}`` or a tuning study's details.
    selection: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS_SELECTION))
    #: The grid file (resolved) that asked for the run, as provenance; not part of its identity.
    grid: dict[str, Any] | None = None
    #: Sidecars beside the record: unseen-class embeddings (.npz) and per-query metrics (.parquet).
    embeddings_file: str | None = None
    queries_file: str | None = None
    #: The training budget (``paper``; None: ``cpu``, as every record before budgets existed).
    budget: str | None = None
    #: Whether training converged, by the one rule of ``benchmark.core.convergence`` (None in older records).
    convergence: dict[str, Any] | None = None
    #: What was scored: ``zero-shot`` (the unseen classes; every record before scenarios), ``generalized``
    #: (seen and unseen classes) or ``standard`` (the seen classes' test items).
    scenario: str = "zero-shot"
    #: How the seen classes' test items were drawn (standard and generalized scenarios; see
    #: ``ZSDataset.heldout_record``).
    heldout: dict[str, Any] | None = None
    #: Generalized scenario: per task, each metric over the seen-class queries, the unseen-class queries and
    #: their harmonic mean (``seen`` / ``unseen`` / ``harmonic`` -> metric -> value).
    metrics_by_role: dict[str, dict[str, dict[str, float]]] | None = None
    #: Opt-in test-class scores during training (``benchmark.core.oracle``): never a result; tuning refuses it
    #: and only the report's "What test-set selection adds" reads it.
    oracle: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def split_name(self) -> str:
        return str(self.split["name"])

    @property
    def training_budget(self) -> str:
        return self.budget or "cpu"

    @property
    def total_s(self) -> float:
        return float(self.timings.get("total_s", 0.0))

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data, ``schema_version`` first; empty optional fields left out."""
        data = {"schema_version": self.schema_version}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "schema_version" or (value is None and f.name in _OPTIONAL):
                continue
            data[f.name] = value
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, default=str) + "\n"

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "record") -> RunRecord:
        if not isinstance(data, dict) or "schema_version" not in data:
            raise ZSBenchError(f"{path} is not a zsbench run record (no schema_version); move it out of the "
                               f"results folder")
        version = data["schema_version"]
        if version not in READABLE_VERSIONS:
            raise ZSBenchError(f"run record {path} has schema version {version!r}; this zsbench reads versions "
                               f"{', '.join(map(str, READABLE_VERSIONS))} (upgrade zsbench, or move the record aside)")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.name in _REQUIRED]
        if version == 1:
            missing = [name for name in missing if name not in ("fits",)]
        if missing:
            raise ZSBenchError(f"run record {path} lacks {', '.join(missing)}; it is damaged or not a zsbench run "
                               f"record (move it aside and rerun)")
        values = {k: v for k, v in data.items() if k in known}
        if version == 1:
            values.setdefault("fits", ["+".join(values.get("dataset", {}).get("items", {}))])
        values["schema_version"] = version
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        return cls.from_json(read_json(path), path)


def read_json(path: Path) -> Any:
    """A record file's JSON data; an unreadable file is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ZSBenchError(f"record {path} is unreadable ({err}); move it aside and rerun to regenerate it") from None


_OPTIONAL = {"threads", "machine", "grid", "embeddings_file", "queries_file", "budget", "convergence", "heldout",
             "metrics_by_role", "oracle"}
_REQUIRED = {f.name for f in dataclasses.fields(RunRecord)
             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
