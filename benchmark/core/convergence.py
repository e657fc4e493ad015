"""Did a run's training converge? One rule for every method, applied to the training log a run records.

The rule: the method's main training loss (the sum of the per-epoch log entries it names in
``Method.convergence_loss``), compared between the epoch that starts the last fifth of training and the
last epoch; the fit converged when the relative change is below ``THRESHOLD``. A method fitted once per
modality pair (``fits`` in the record) converged when every fit did. Methods without iterative training
(closed form, random) declare an empty tuple and count as converged; a method that names no loss is
"not assessed" (``converged`` None).

The rule reads the *training* loss: it says whether the optimiser had stopped moving, not whether the model
is good, and it never looks at a validation or test score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Share of the epochs at the end of training over which the loss must have settled.
WINDOW = 0.2
#: Largest relative change of the main loss over that window for a converged fit.
THRESHOLD = 0.05
RULE = (f"relative change of the main training loss over the last {WINDOW:.0%} of the epochs below "
        f"{THRESHOLD:.0%}")


def _matches(key: str, names: Sequence[str]) -> bool:
    """``names`` are exact log keys, or prefixes ending in ``_`` (``regression_`` covers ``regression_image``)."""
    return any(key == name or (name.endswith("_") and key.startswith(name)) for name in names)


def main_loss(entry: dict[str, Any], names: Sequence[str]) -> float | None:
    values = [float(v) for k, v in entry.items() if _matches(k, names) and isinstance(v, (int, float))]
    return sum(values) if values else None


def fit_convergence(losses: Sequence[float]) -> dict[str, Any]:
    """The rule on one fit's per-epoch main loss."""
    n = len(losses)
    if n < 2:
        return {"converged": None, "epochs": n, "why": "fewer than 2 epochs logged"}
    k = max(1, round(WINDOW * n))
    start, end = losses[n - 1 - k], losses[-1]
    change = abs(end - start) / max(abs(start), 1e-12)
    converged = bool(math.isfinite(change) and change < THRESHOLD)
    return {"converged": converged, "epochs": n, "relative_change": round(change, 6),
            "from_epoch": n - 1 - k, "loss_start": start, "loss_end": end}


def assess(training_log: Sequence[dict[str, Any]], names: Sequence[str] | None) -> dict[str, Any]:
    """The record's ``convergence``: the rule, the loss it read, and the verdict of each fit and overall."""
    if names is None:
        return {"rule": RULE, "converged": None, "why": "the method names no main training loss"}
    if not names:
        return {"rule": RULE, "converged": True, "why": "no iterative training (closed form or none)"}
    fits: dict[str, list[float]] = {}
    for entry in training_log:
        value = main_loss(entry, names)
        if value is not None:
            fits.setdefault(str(entry.get("modalities", "")), []).append(value)
    if not fits:
        return {"rule": RULE, "loss": list(names), "converged": None, "why": "the training log holds no main loss"}
    verdicts = {fit: fit_convergence(losses) for fit, losses in fits.items()}
    flags = [v["converged"] for v in verdicts.values()]
    overall = None if None in flags else all(flags)
    out: dict[str, Any] = {"rule": RULE, "loss": list(names), "converged": overall}
    if list(verdicts) == [""]:
        out.update({k: v for k, v in verdicts[""].items() if k != "converged"})
    else:
        out["fits"] = verdicts
    return out
