"""Training length selected on validation classes: one stopping rule for every method (``zsbench tune``).

A tuning trial trains to its budget's length while the runner's validation monitor scores the validation
classes after every epoch (``val_mAP@all`` in the training log); the epoch with the best validation
mAP@all, averaged over the trial's seeds, is the trial's length. Only validation classes are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from benchmark.contract import Method

LENGTH_RULE = "best epoch of the trial by mean validation mAP@all over seeds (earliest on a tie)"


def length_param(method: Method) -> str | None:
    """The hyper-parameter tuning selects as the training length, if the method has one."""
    name = type(method).length_param
    return name if name and name in {f.name for f in dataclasses.fields(method) if f.init} else None


def validation_curve(training_log: list[dict[str, Any]]) -> list[float]:
    """The per-epoch validation mAP@all of one run (the monitor's ``val_mAP@all``), averaged over the run's
    fits (one per modality pair on emoji) epoch by epoch; [] when the run was not monitored."""
    fits: dict[Any, list[float]] = {}
    for entry in training_log:
        if "val_mAP@all" in entry:
            fits.setdefault(entry.get("modalities"), []).append(float(entry["val_mAP@all"]))
    if not fits:
        return []
    n = min(len(curve) for curve in fits.values())
    return [sum(curve[i] for curve in fits.values()) / len(fits) for i in range(n)]


def best_epoch(curves: Sequence[Sequence[float]]) -> tuple[int, list[float]]:
    """(index of the best epoch, the mean curve): the curves of a trial's seeds averaged epoch by epoch (cut
    to the shortest), and the epoch where that mean is highest, the earliest on a tie."""
    n = min(len(curve) for curve in curves)
    if n == 0:
        raise ValueError("best_epoch needs at least one monitored epoch per seed")
    mean_curve = [sum(curve[i] for curve in curves) / len(curves) for i in range(n)]
    return max(range(n), key=lambda i: (mean_curve[i], -i)), mean_curve
