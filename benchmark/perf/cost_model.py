"""How ``benchmark/execution/cost_model.json`` was derived: ``python -m benchmark.perf.cost_model RECORDS``.

Two anchors per method and training budget on the reference machine (a 2-core x86-64 VM, one thread per
run, the machine of the committed records and of ``docs/scale.md``), each at the parameters the budget
resolves to:

- the committed emoji records (``results/records/emoji-embedded``: the median fit seconds of the test-stage,
  zero-shot runs at the method's defaults for that budget, oracle runs left out; input widths 1,280 + 1,280
  and 1,280 + 50), or for CFSA at the ``paper`` budget, too long to run there, its measured seconds per step;
- the TU-Berlin stand-in at its default scale, 0.05 (input width 4,096 + 4,096): at the ``cpu`` budget every
  method's fit seconds in one run (``TU_BERLIN_CPU``); at the ``paper`` budget the seconds per step that
  ``zsbench perf steps`` measured for the methods whose paper fit there is too long to run (``docs/scale.md``).

From them: seconds per step at the reference width and the exponent of the width (two equations, two
unknowns; a method's steps follow its budget). A method with one anchor at a budget (its emoji records, or
only the stand-in's step time) takes the width exponent of its ``cpu`` entry, and a variant (an ablation of
CFSA) its base method's. Seconds per scored pair: the evaluation times on the TU-Berlin stand-in at scale 1.0
over its 2,400 x 24,540 pairs. On the GPU (one H200, ``docs/scale.md``): one anchor (TU-Berlin, scale 1.0,
three runs sharing the GPU, at the parameters the runs had then), so a step's cost does not grow with the
width there (kernel launch bound, as ``docs/scale.md`` observed); the GPU has no ``paper`` entry, none having
been measured.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmark.core.record import RunRecord
from benchmark.core.spec import config_key
from benchmark.execution.costs import COST_MODEL, dataset_sizes, planned_steps
from benchmark.registry import build_method, resolve_method

REFERENCE_DIMS = 4096
STEPS_RULES = {
    "cfsa": "epochs_x_epoch_steps", "dadn": "epochs_x_pairs", "acmr": "epochs_x_pairs",
    "dscmr": "epochs_x_pairs", "cvae": "epochs_x_pairs_min_steps", "sem-pcyc": "epochs_x_batches",
    "semantic-regression": "epochs_x_rows_per_modality", "cca": "closed_form", "random": "closed_form",
}
#: The CFSA variants: their own emoji fit times with CFSA's width exponent at the cpu budget; elsewhere (the
#: GPU, the paper budget) ``benchmark.execution.costs`` gives them CFSA's entry.
VARIANTS = {v: "cfsa" for v in ("cfsa-no-synthesis", "cfsa-no-cycle", "cfsa-no-align", "cfsa-no-adversary",
                                 "cfsa-unseen-synthesis")}
TU_BERLIN_REQUEST = {"name": "tu-berlin", "synthetic": True, "split": "sake-30", "scale": 0.05}
#: ``zsbench run --methods M --dataset tu-berlin --synthetic`` at the cpu budget, seed 0, at the code of 3922ee3
#: (docs/scale.md, "Every method on the TU-Berlin stand-in at its default scale"): fit seconds.
TU_BERLIN_CPU = {
    "acmr": 130.261, "cca": 99.678, "cfsa": 319.589, "cvae": 16.222, "dadn": 398.191, "dscmr": 335.179,
    "random": 0.0, "sem-pcyc": 99.776, "semantic-regression": 267.224,
}
#: ``zsbench perf steps --method M --dataset tu-berlin --synthetic --budget paper`` (docs/scale.md, "The same
#: command at --budget paper"): seconds per step at the paper budget, measured beside another grid.
TU_BERLIN_PAPER_STEP_S = {"cfsa": 5.68, "dadn": 12.4}
#: ``zsbench perf steps --method cfsa --dataset emoji --budget paper --steps 10`` (load average 1.9): seconds per
#: step of the one emoji fit of a method whose paper run there is too long to run.
EMOJI_PAPER_STEP_S = {"cfsa": 2.415}
#: docs/scale.md, "Every method on the TU-Berlin stand-in at scale 1.0": CPU evaluation seconds and H200 run
#: seconds per method, seed 0, with the parameters that differed then from today's cpu budget.
TU_BERLIN_1_REQUEST = {"name": "tu-berlin", "synthetic": True, "split": "sake-30", "scale": 1.0}
TU_BERLIN_1 = {
    "acmr": (4.17, 27, {}), "cca": (3.02, 65, {}), "cvae": (5.60, 15, {}), "dscmr": (11.45, 13, {}),
    "cfsa": (5.52, 31, {"epochs": 15, "epoch_steps": 25}), "dadn": (4.48, 31, {"epochs": 10}),
    "random": (4.10, 1, {}), "sem-pcyc": (6.39, 38, {}), "semantic-regression": (4.88, 30, {"epochs": 40}),
}
EMOJI_REQUEST = {"name": "emoji", "synthetic": False, "split": "emoji-v1", "scale": None}
REFERENCE_MACHINE = {"host": "vm", "cpus": 2, "processor": "x86_64",
                     "about": "2-core x86-64 VM without a GPU, one torch/BLAS thread per run, load average about 2 "
                              "(two runs side by side); the machine of results/records and docs/scale.md"}
GPU_MACHINE = {"about": "one NVIDIA H200 (141 GB), 16 CPU cores, torch 2.11.0+cu130, three runs sharing the GPU "
                        "(docs/scale.md)"}


def _budget_params(method: str, budget: str) -> dict[str, Any]:
    return build_method(method, {}, budget=budget)[1].get_params()


def _emoji_fit_seconds(records: Path, method: str, budget: str) -> float | None:
    """Median fit seconds of a method's test-stage, zero-shot runs at a budget's defaults (no oracle runs)."""
    key = config_key(_budget_params(method, budget))
    found = []
    for path in sorted((records / method).glob("seed*.json")):
        record = RunRecord.load(path)
        if (record.stage == "test" and (record.selection or {}).get("protocol") == "defaults"
                and record.scenario == "zero-shot" and not record.oracle and record.training_budget == budget
                and config_key(record.config) == key):
            found.append(record.timings["fit_s"])
    return statistics.median(found) if found else None


def _steps_and_widths(method: str, params: dict, request: dict) -> list[tuple[float, int]]:
    _, cls, _ = resolve_method(method)
    sizes = dataset_sizes(request, "test", getattr(cls, "max_modalities", None))
    return [(planned_steps(STEPS_RULES[VARIANTS.get(method, method)], params, fit), fit.dims) for fit in sizes.fits]


def _solve_exponent(emoji: list[tuple[float, int]], emoji_s: float, tu: list[tuple[float, int]], tu_s: float) -> float:
    """The width exponent a with sum(steps (D/D0)^a) ratios matching the two measured fit times (bisection)."""
    def ratio(a: float) -> float:
        return sum(s * (d / REFERENCE_DIMS) ** a for s, d in tu) / sum(s * (d / REFERENCE_DIMS) ** a for s, d in emoji)

    target = tu_s / emoji_s
    low, high = -1.0, 6.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if ratio(mid) < target else (low, mid)
    return round((low + high) / 2, 4)


def _width_sum(method: str, params: dict, request: dict, exponent: float) -> float:
    """Steps of a run's fits, each weighted by (its input width / the reference width) ** exponent."""
    return sum(s * (d / REFERENCE_DIMS) ** exponent for s, d in _steps_and_widths(method, params, request))


def _budget_entry(method: str, budget: str, records: Path, base: dict[str, Any] | None) -> dict[str, Any] | None:
    """A method's CPU entry at a budget from its anchors; ``base``: the entry whose width exponent a method with
    one anchor takes (its own ``cpu`` entry, or its base method's)."""
    anchor = VARIANTS.get(method, method)
    params = _budget_params(method, budget)
    fit_emoji = _emoji_fit_seconds(records, method, budget)
    if fit_emoji is None and budget == "paper" and method in EMOJI_PAPER_STEP_S:
        fit_emoji = EMOJI_PAPER_STEP_S[method] * _width_sum(method, params, EMOJI_REQUEST, 0.0)
    if budget == "cpu" and method in TU_BERLIN_CPU:
        fit_tu = TU_BERLIN_CPU[method]
    elif budget == "paper" and anchor in TU_BERLIN_PAPER_STEP_S and method == anchor:
        fit_tu = TU_BERLIN_PAPER_STEP_S[anchor] * _width_sum(method, params, TU_BERLIN_REQUEST, 0.0)
    else:
        fit_tu = None
    entry: dict[str, Any] = {"steps": STEPS_RULES[anchor]}
    if 0.0 in (fit_emoji, fit_tu):  # nothing to train (random)
        return {**entry, "step_s": 0.0, "dims_exponent": 0.0}
    if fit_emoji is not None and fit_tu is not None:
        exponent = _solve_exponent(_steps_and_widths(method, params, EMOJI_REQUEST), fit_emoji,
                                   _steps_and_widths(method, params, TU_BERLIN_REQUEST), fit_tu)
    elif base is not None and (fit_emoji is not None or fit_tu is not None):
        exponent = base["dims_exponent"]
    else:
        return None
    request, fit_s = (TU_BERLIN_REQUEST, fit_tu) if fit_tu is not None else (EMOJI_REQUEST, fit_emoji)
    return {**entry, "step_s": round(fit_s / _width_sum(method, params, request, exponent), 6),
            "dims_exponent": exponent}


def derive(records: str | Path) -> dict[str, Any]:
    records = Path(records)
    pairs_tu = dataset_sizes(TU_BERLIN_1_REQUEST, "test", 2).scored_pairs
    methods: dict[str, Any] = {}
    for method in [*STEPS_RULES, *VARIANTS]:
        anchor = VARIANTS.get(method, method)
        cpu = _budget_entry(method, "cpu", records, methods.get(anchor, {}).get("cpu", {}).get("cpu"))
        entry: dict[str, Any] = {"cpu": {"cpu": cpu}}
        if method in TU_BERLIN_1:
            _, gpu_run, then = TU_BERLIN_1[method]
            gpu_fit = max(gpu_run - 1.0, 0.0)  # less the GPU evaluation (the random method's whole run: 1 s)
            params_then = {**_budget_params(method, "cpu"), **then}
            entry["cpu"]["cuda"] = {"steps": STEPS_RULES[method], "dims_exponent": 0.0, "step_s": round(
                gpu_fit / max(_width_sum(method, params_then, TU_BERLIN_1_REQUEST, 0.0), 1.0), 6)}
        if "paper" in resolve_method(method)[1].budgets:
            paper = _budget_entry(method, "paper", records, cpu)
            if paper is not None:
                entry["paper"] = {"cpu": paper}
        methods[method] = entry
    eval_s = statistics.median(e for e, _, _ in TU_BERLIN_1.values())
    return {
        "about": "Seconds per optimisation step and per scored query-gallery pair, derived by "
                 "benchmark/perf/cost_model.py; keyed method -> budget -> device class.",
        "reference_machine": {"cpu": REFERENCE_MACHINE, "cuda": GPU_MACHINE},
        "derived_from": ["results/records/emoji-embedded (test stage, zero-shot, defaults of each budget; median "
                         "fit_s)",
                         "docs/scale.md: every method on the TU-Berlin stand-in at scale 0.05 (cpu budget) and "
                         "the paper budget's seconds per step there; evaluation and H200 times at scale 1.0"],
        "reference_dims": REFERENCE_DIMS,
        "devices": {"cpu": {"pair_s": float(f"{eval_s / pairs_tu:.4g}"), "run_s": 2.0},
                    "cuda": {"pair_s": float(f"{1.0 / pairs_tu:.4g}"), "run_s": 1.0}},
        "methods": methods,
    }


def main(argv: list[str]) -> None:
    model = derive(argv[0] if argv else "results/records/emoji-embedded")
    COST_MODEL.write_text(json.dumps(model, indent=1) + "\n")
    print(f"wrote {COST_MODEL}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
