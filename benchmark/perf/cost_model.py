"""How ``benchmark/execution/cost_model.json`` was derived: ``python -m benchmark.perf.cost_model RECORDS``.

Two anchors per method on the reference machine (a 2-core x86-64 VM, one thread per run, the machine of
the committed records and of ``docs/scale.md``):

- the committed emoji records (``results/records/emoji-embedded``: the median fit and evaluation seconds
  of the test-stage runs at the method's defaults; input widths 1,280 + 1,280 and 1,280 + 50);
- every method on the TU-Berlin stand-in at scale 1.0 (``docs/scale.md``, fit seconds, input width
  4,096 + 4,096; copied below as measured).

From them: seconds per step at the reference width and the exponent of the width (two equations, two
unknowns; a method whose steps are fixed by its budget). Seconds per scored pair: the TU-Berlin evaluation
times over its 2,400 x 24,540 pairs. On the GPU (one H200, ``docs/scale.md``): one anchor (TU-Berlin,
scale 1.0, three runs sharing the GPU), so a step's cost does not grow with the width there (kernel launch
bound, as ``docs/scale.md`` observed).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmark.core.record import RunRecord
from benchmark.execution.costs import COST_MODEL, dataset_sizes, planned_steps

REFERENCE_DIMS = 4096
STEPS_RULES = {
    "cfsa": "epochs_x_epoch_steps", "cfsa-no-synthesis": "epochs_x_epoch_steps",
    "cfsa-no-unseen-synthesis": "epochs_x_epoch_steps", "cfsa-no-cycle": "epochs_x_epoch_steps",
    "cfsa-no-align": "epochs_x_epoch_steps", "cfsa-paper-width": "epochs_x_epoch_steps",
    "dadn": "epochs_x_pairs", "acmr": "epochs_x_pairs", "dscmr": "epochs_x_pairs",
    "cvae": "epochs_x_pairs_min_steps", "sem-pcyc": "epochs_x_batches",
    "semantic-regression": "epochs_x_rows_per_modality", "cca": "closed_form", "random": "closed_form",
}
#: docs/scale.md, "Every method on the TU-Berlin stand-in at scale 1.0": (CPU fit s, CPU evaluation s,
#: H200 run s) per method, seed 0, defaults.
TU_BERLIN_1 = {
    "acmr": (199.2, 4.17, 27), "cca": (339.1, 3.02, 65), "cfsa": (154.4, 5.52, 31),
    "cfsa-no-align": (141.9, 4.01, 20), "cfsa-no-cycle": (151.5, 3.88, 21), "cfsa-no-synthesis": (39.0, 4.95, 18),
    "cfsa-no-unseen-synthesis": (151.9, 4.59, 30), "cvae": (97.6, 5.60, 15), "dadn": (500.4, 4.48, 31),
    "dscmr": (418.4, 11.45, 13), "random": (0.0, 4.10, 1), "sem-pcyc": (191.8, 6.39, 38),
    "semantic-regression": (329.9, 4.88, 30),
}
TU_BERLIN_1_REQUEST = {"name": "tu-berlin", "synthetic": True, "split": "sake-30", "scale": 1.0}
EMOJI_REQUEST = {"name": "emoji", "synthetic": False, "split": "emoji-v1", "scale": None}
REFERENCE_MACHINE = {"host": "vm", "cpus": 2, "processor": "x86_64",
                     "about": "2-core x86-64 VM without a GPU, one torch/BLAS thread per run, load average about 2 "
                              "(two runs side by side); the machine of results/records and docs/scale.md"}
GPU_MACHINE = {"about": "one NVIDIA H200 (141 GB), 16 CPU cores, torch 2.11.0+cu130, three runs sharing the GPU "
                        "(docs/scale.md)"}


def _emoji_fit_seconds(records: Path) -> dict[str, tuple[float, dict[str, Any]]]:
    """Median fit seconds of each method's test-stage default runs, with their config."""
    found: dict[str, list[RunRecord]] = {}
    for path in sorted(records.glob("*/seed*.json")):
        record = RunRecord.load(path)
        if record.stage == "test" and (record.selection or {}).get("protocol") == "defaults":
            found.setdefault(record.method, []).append(record)
    return {m: (statistics.median(r.timings["fit_s"] for r in rs), rs[0].config) for m, rs in found.items()}


def _steps_and_widths(method: str, params: dict, request: dict) -> list[tuple[float, int]]:
    from benchmark.registry import resolve_method

    _, cls, _ = resolve_method(method)
    sizes = dataset_sizes(request, "test", getattr(cls, "max_modalities", None))
    return [(planned_steps(STEPS_RULES[method], params, fit), fit.dims) for fit in sizes.fits]


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


def derive(records: str | Path) -> dict[str, Any]:
    from benchmark.registry import build_method

    emoji = _emoji_fit_seconds(Path(records))
    pairs_tu = dataset_sizes(TU_BERLIN_1_REQUEST, "test", 2).scored_pairs
    methods: dict[str, Any] = {}
    for method, (fit_tu, _, gpu_run) in TU_BERLIN_1.items():
        params = build_method(method, {})[1].get_params()
        tu = _steps_and_widths(method, params, TU_BERLIN_1_REQUEST)
        cpu: dict[str, Any] = {"steps": STEPS_RULES[method]}
        if method in emoji and fit_tu > 0:
            fit_emoji, emoji_params = emoji[method]
            em = _steps_and_widths(method, emoji_params, EMOJI_REQUEST)
            exponent = _solve_exponent(em, fit_emoji, tu, fit_tu)
            cpu.update(step_s=round(fit_tu / sum(s * (d / REFERENCE_DIMS) ** exponent for s, d in tu), 6),
                       dims_exponent=exponent)
        else:
            cpu.update(step_s=round(fit_tu / sum(s for s, _ in tu), 6), dims_exponent=0.0)
        gpu_fit = max(gpu_run - 1.0, 0.0)  # less the GPU evaluation (the random method's whole run: 1 s)
        cuda = {"steps": STEPS_RULES[method], "step_s": round(gpu_fit / sum(s for s, _ in tu), 6),
                "dims_exponent": 0.0}
        methods[method] = {"cpu": {"cpu": cpu, "cuda": cuda}}
    eval_s = statistics.median(e for _, e, _ in TU_BERLIN_1.values())
    return {
        "about": "Seconds per optimisation step and per scored query-gallery pair, derived by "
                 "benchmark/perf/cost_model.py; keyed method -> budget -> device class.",
        "reference_machine": {"cpu": REFERENCE_MACHINE, "cuda": GPU_MACHINE},
        "derived_from": ["results/records/emoji-embedded (test stage, defaults; median fit_s)",
                         "docs/scale.md: every method on the TU-Berlin stand-in at scale 1.0"],
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
