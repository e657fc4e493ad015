"""The run specification: the one description of a run, from which its record's name, its time estimate and
its resume decision all follow.

A grid (``zsbench run``), a tuning trial (``zsbench tune``) and an estimate all expand to :class:`RunSpec`\\ s,
and an executor runs lists of them. A spec holds the method's registered name with *every* hyper-parameter
resolved, the dataset request, the stage, the seed, the thread count, the resolved device and how the
configuration was chosen. :meth:`RunSpec.identity` adds the loaded dataset's facts (split hash, data
provenance) and is what the store hashes into the record's file name: the same identity is the same run,
whichever grid or tuning asked for it.

The thread count is part of the identity: floating-point sums split over threads differ in their last bits,
and the same seed must give the same numbers everywhere. A GPU run is another run than the CPU one of the
same seed (its numbers differ in rounding, which GAN training amplifies); CPU identities carry no device, so
records written before the device joined the identity keep their names. The scenario works the same way: a
zero-shot identity carries none (so every record from before scenarios keeps its name and meaning); a
standard or generalized one carries the scenario and how its seen-class test items were drawn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.core.data import DEFAULT_SCENARIO, DatasetRequest, ZSDataset
from benchmark.core.env import DEFAULT_THREADS, device_class
from benchmark.core.record import DEFAULTS_SELECTION

#: The training budgets a run may ask for: ``cpu`` (what a CPU affords, the default) and ``paper`` (the
#: authors' released lengths and widths).
BUDGETS = ("cpu", "paper")
DEFAULT_BUDGET = "cpu"


def default_budget(device: str) -> str:
    """The training budget a run gets when none is asked for: ``paper`` (the released lengths and widths) on a
    GPU, ``cpu`` on a CPU."""
    return "paper" if device_class(device) == "cuda" else DEFAULT_BUDGET


def safe_name(text: str) -> str:
    """``text`` as one file or folder name: letters, digits, ``-``, ``_`` and ``.`` kept, the rest ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def config_key(identity: Mapping[str, Any]) -> str:
    """A short stable hash of a run's identity (canonical JSON): the record's file name carries it."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunSpec:
    """One run: what is fitted, on what, how, and how its configuration was chosen.

    ``params`` are the method's full hyper-parameters (its registered overrides included), so the spec says
    everything the method is built from. ``device`` is already resolved (``cpu``, ``cuda[:N]``; see
    :func:`benchmark.core.env.resolve_device`). ``selection`` None means the method's defaults.
    ``monitor_every`` (validation stage only: the validation mAP every N epochs in the training log) and
    ``index`` (the place in its grid) describe how the run is carried out, not what it is: neither is part
    of the identity. ``budget`` is (for a budget other than ``cpu``), and so is ``oracle_every`` (test stage,
    opt-in: the test classes scored every N epochs into the record's ``oracle`` field, never a result; see
    :mod:`benchmark.core.oracle`), so an oracle run never replaces or doubles a plain one.
    """

    method: str
    params: Mapping[str, Any]
    dataset: DatasetRequest
    seed: int
    stage: str = "test"
    threads: int = DEFAULT_THREADS
    device: str = "cpu"
    selection: Mapping[str, Any] | None = None
    monitor_every: int = 1
    index: int = field(default=-1, compare=False)
    #: The training budget the parameters were resolved at (``cpu`` or ``paper``; see ``Method.budgets``).
    budget: str = DEFAULT_BUDGET
    #: What the run is scored on: ``zero-shot`` (default), ``generalized`` or ``standard`` (see
    #: ``benchmark.core.data.SCENARIOS``).
    scenario: str = DEFAULT_SCENARIO
    #: Test stage only: score the test classes every N epochs for the oracle table (0: never).
    oracle_every: int = 0
    #: Validation stage only: which validation fold is scored (0: the split's validation classes). The fold's
    #: view names the split (``<split>/validation-fold<i>``) and its hash, so the identity follows from it.
    fold: int = 0

    @property
    def chosen_by(self) -> dict[str, Any]:
        """The record's ``selection``: how the configuration was chosen."""
        return dict(self.selection or DEFAULTS_SELECTION)

    def identity(self, ds: ZSDataset) -> dict[str, Any]:
        """Everything that defines the run on the loaded dataset ``ds`` (its stage's view); its hash names the
        record, so rerunning finds what is done."""
        identity = {"method": self.method, "config": dict(self.params), "dataset": ds.name, "source": ds.source,
                    "split": ds.split.name, "split_sha256": ds.split.sha256, "stage": self.stage,
                    "seed": int(self.seed), "data": dict(ds.provenance), "eval_protocol": ds.eval_protocol,
                    "threads": int(self.threads), "selection": self.chosen_by}
        if (kind := device_class(self.device)) != "cpu":
            identity["device"] = kind
        if self.budget != DEFAULT_BUDGET:  # cpu-budget identities carry no budget, so older records keep names
            identity["budget"] = self.budget
        if self.scenario != DEFAULT_SCENARIO:  # zero-shot identities carry none, so older records keep names
            identity["scenario"] = self.scenario
            identity["heldout_sha256"] = ds.in_scenario(self.scenario).heldout_record()["sha256"]
        if self.oracle_every:
            identity["oracle_every"] = int(self.oracle_every)
        return identity

    def configuration(self, dataset: Mapping[str, Any]) -> str:
        """What the run's time depends on (the identity less seed, selection and data hashes): the key of the
        time estimate. ``dataset`` is the request as resolved without loading (name, synthetic, split, scale;
        see ``benchmark.datasets.requests.describe_request``)."""
        split = dataset["split"] if self.stage == "test" else (f"{dataset['split']}/validation"
                                                               + (f"-fold{self.fold}" if self.fold else ""))
        return configuration_key(self.method, self.params, dataset["name"], dataset["source"], split,
                                 dataset["scale"], self.stage, self.threads, self.device, self.scenario,
                                 self.oracle_every)


def configuration_key(method: str, config: Mapping[str, Any], dataset: str, source: str, split: str, scale: Any,
                      stage: str, threads: Any, device: str | None, scenario: str | None = None,
                      oracle_every: int | None = 0) -> str:
    """The shape of :meth:`RunSpec.configuration`, shared with the records it is matched against. A scenario
    other than zero-shot and an oracle curve are appended (they change what runs), so zero-shot keys stay as
    the shipped cost model has them."""
    key = [method, dict(config), dataset, source, split, scale, stage, threads, device_class(device)]
    if scenario not in (None, DEFAULT_SCENARIO):
        key.append({"scenario": scenario})
    if oracle_every:
        key.append({"oracle_every": int(oracle_every)})
    return json.dumps(key, sort_keys=True, default=str)
