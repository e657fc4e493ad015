"""A run's time before any record exists: the cost model shipped with the package, scaled by the grid's sizes.

``cost_model.json`` (beside this module) holds, per method, budget and device class, the seconds one
optimisation step takes at a reference input width and how that grows with the width, plus the seconds
per scored query-gallery pair and a fixed cost per run. It was derived (``benchmark.perf.cost_model``) from
measured runs on the reference machine it names: the committed emoji records and the TU-Berlin stand-in
runs of ``docs/scale.md``. A method without an entry of its own at a budget and device (a variant) costs what
its base method does there. A run's seconds are then::

    fits x steps(method, training pairs) x step_s x (input width / reference width) ** exponent
    + scored pairs x pair_s + run_s

where the steps follow the method's own budget rule (its ``steps`` entry) from its resolved
hyper-parameters and the dataset's sizes (real counts, or the stand-in's at its scale; seen classes for
training, less the 10 % hold-out; unseen classes for scoring). Everything is computed from the request,
without loading data. A prepared folder of one's own has no sizes here, so it has no model estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmark.core.env import device_class

COST_MODEL = Path(__file__).with_name("cost_model.json")


@cache
def load_cost_model(path: str | Path = COST_MODEL) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


@dataclass(frozen=True)
class Fit:
    """One fit of a run: its modalities' input widths and training rows, and its training pairs."""

    dims: int
    rows: dict[str, float]
    pairs: float


@dataclass(frozen=True)
class Sizes:
    """What a run's time depends on, from a described dataset request and a method's modality limit."""

    fits: list[Fit]
    scored_pairs: float


def dataset_sizes(described: Mapping[str, Any], stage: str = "test",
                  max_modalities: int | None = None) -> Sizes | None:
    """The sizes of a described request (see ``benchmark.datasets.requests.describe_request``); None for a
    prepared folder (its counts are not known without reading it)."""
    from benchmark.datasets.specs import SPECS
    from benchmark.datasets.synthetic import MIN_PER_CLASS

    spec = SPECS.get(described["name"])
    if spec is None:
        return None
    split = spec.split(described.get("split"))
    n_classes = len(split.seen) + len(split.unseen)
    validation = len(split.validation.classes) if split.validation is not None else 0
    seen, scored = (len(split.seen) - validation, validation) if stage == "validation" else \
        (len(split.seen), len(split.unseen))
    scale = described.get("scale") if described.get("synthetic") else None

    def per_class(modality: str, part: str) -> float:
        count = spec.counts[modality][part]
        if scale is None:
            return count / n_classes
        return max(MIN_PER_CLASS, round(count * scale / n_classes))

    parts = spec.parts
    train_part, query_part, gallery_part = ("train", "test", "train") if "train" in parts else ("all",) * 3
    modalities = list(spec.modalities)
    if max_modalities is None or len(modalities) <= max_modalities:
        groups = [tuple(modalities)]
    else:
        groups = []
        for q, g in spec.tasks:
            group = tuple(m for m in modalities if m in (q, g))
            if group not in groups:
                groups.append(group)
    fits = []
    for group in groups:
        rows = {m: seen * per_class(m, train_part) * (1 - split.holdout_fraction) for m in group}
        pairs = max(rows.values())  # paired: one pair per item; unpaired: the larger side of each class
        fits.append(Fit(sum(spec.modalities[m] for m in group), rows, pairs))
    scored_pairs = sum(scored * per_class(q, query_part) * scored * per_class(g, gallery_part) for q, g in spec.tasks)
    return Sizes(fits, scored_pairs)


def planned_steps(rule: str, params: Mapping[str, Any], fit: Fit) -> float:
    """Optimisation steps of one fit under the method's budget ``rule`` (how its ``fit`` counts them)."""
    epochs = params.get("epochs", 1)
    batch = params.get("batch_size", 1)
    cap = params.get("max_steps_per_epoch")

    def per_epoch(rows: float) -> float:
        full = max(1, math.floor(rows / batch))
        return full if cap is None else min(full, cap)

    if rule == "epochs_x_epoch_steps":  # CFSA: (epochs + regressor epochs) x epoch_steps (0: one pass)
        epoch_steps = params["epoch_steps"] or math.ceil(max(fit.rows.values()) / batch)
        return (epochs + params.get("regressor_epochs", 0)) * epoch_steps
    if rule == "epochs_x_batches":  # SEM-PCYC: a fixed number of sampled batches per epoch
        return epochs * params["batches_per_epoch"]
    if rule == "epochs_x_pairs":  # sampled epochs over the training pairs, capped
        return epochs * per_epoch(fit.pairs)
    if rule == "epochs_x_pairs_min_steps":  # CVAE: as above, but at least min_steps
        return max(epochs * per_epoch(fit.pairs), params.get("min_steps", 0))
    if rule == "epochs_x_rows_per_modality":  # semantic regression: each modality's sampled epoch in turn
        return epochs * sum(per_epoch(rows) for rows in fit.rows.values())
    if rule == "closed_form":  # one solve (CCA) or nothing to train (random)
        return 1
    raise ValueError(f"cost model: unknown steps rule {rule!r}")


def model_seconds(method: str, params: Mapping[str, Any], described: Mapping[str, Any], stage: str = "test",
                  device: str = "cpu", budget: str = "cpu", model: Mapping[str, Any] | None = None) -> float | None:
    """The cost model's seconds for one run; None when the model has no entry for it (method, budget, device)
    or the dataset's sizes are unknown."""
    from benchmark.registry import resolve_method

    model = model or load_cost_model()
    _, cls, _ = resolve_method(method)
    entry = model["methods"].get(method, {}).get(budget, {}).get(device_class(device))
    if entry is None:  # a variant without measurements of its own (at this budget) costs what its base method does
        from benchmark.execution.tuning import base_method

        base = base_method(method)
        entry = model["methods"].get(base, {}).get(budget, {}).get(device_class(device)) if base else None
    general = model["devices"].get(device_class(device))
    if entry is None or general is None:
        return None
    sizes = dataset_sizes(described, stage, getattr(cls, "max_modalities", None))
    if sizes is None:
        return None
    fit_s = sum(planned_steps(entry["steps"], params, fit) * entry["step_s"]
                * (fit.dims / model["reference_dims"]) ** entry.get("dims_exponent", 0.0) for fit in sizes.fits)
    return fit_s + sizes.scored_pairs * general["pair_s"] + general["run_s"]


def spec_seconds(spec, described: Mapping[str, Any], model: Mapping[str, Any] | None = None) -> float | None:
    """:func:`model_seconds` of a :class:`~benchmark.core.spec.RunSpec`."""
    return model_seconds(spec.method, spec.params, described, spec.stage, spec.device,
                         getattr(spec, "budget", "cpu"), model)
