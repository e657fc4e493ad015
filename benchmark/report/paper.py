"""The CFSA paper's comparisons, laid out with numbers measured here beside numbers "as reported".

Reported numbers live in a data file (``results/reported.csv``: table, dataset, method, task, metric, value,
source), one line per number with the publication it comes from. They were obtained on other features,
splits and metric conventions (docs/reference.md), so they sit in their own section of each table and are
never ranked against measured rows. Measured rows come in one section per data source and selection
(defaults, or tuned with a budget), whose label says it, so a number measured on a synthetic stand-in can
never be read as the paper's. Synthetic stand-ins are left out unless asked for (``include_synthetic``);
records of the model-selection stage (scored on validation classes) never appear here, and each table holds
one evaluation scenario: the zero-shot tables, and the standard (seen classes) and generalized zero-shot
tables where the papers report numbers for them (JFSE's Tables 5 and 7, SEM-PCYC's generalized ZS-SBIR).

One naming: rows are labelled with zsbench's method names (``cfsa``, ``dscmr``, ...), and the reported
numbers file uses the same names, lower case, also for methods zsbench does not implement (``jfse``).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.report.records import GroupKey, Run, Stat, sections_of
from benchmark.report.tables import Cell, Row, Section, Table, seed_range

IMAGE_TEXT_DATASETS = (("wikipedia", "Wikipedia"), ("pascal-sentences", "Pascal Sentences"),
                       ("nus-wide", "NUS-WIDE"), ("xmedianet", "PKU XMediaNet"))
IMAGE_TEXT_COLUMNS = (("image->text", "Img2Txt"), ("text->image", "Txt2Img"), ("average", "Avg"))
SKETCH_DATASETS = (("sketchy", "Sketchy"), ("tu-berlin", "TU-Berlin"))
SKETCH_COLUMNS = (("mAP@all", "mAP@all"), ("P@100", "P@100"))
SKETCH_TASK = "sketch->image"
ABLATION_METHODS = ("cfsa", "cfsa-no-synthesis", "cfsa-no-cycle", "cfsa-no-align", "cfsa-no-adversary",
                    "cfsa-unseen-synthesis")

SOURCE_LABELS = {
    "synthetic": "Measured here: SYNTHETIC stand-in data, not the paper's data",
    "embedded": "Measured here: EMBEDDED emoji data, not the paper's data",
    "real": "Measured here: REAL data (features as noted below)",
}
REPORTED_LABEL = "As reported in the papers (not measured here; sources below)"


def default_reported_path() -> Path:
    return Path(__file__).resolve().parents[2] / "results" / "reported.csv"


@dataclass(frozen=True)
class ReportedNumber:
    table: str
    dataset: str
    method: str
    task: str
    metric: str
    value: float
    source: str


def load_reported(path: str | Path | None = None) -> list[ReportedNumber]:
    """The reported numbers from a ``.csv`` or ``.json`` (a list of objects with the same fields)."""
    path = Path(path) if path else default_reported_path()
    if not path.is_file():
        raise ZSBenchError(f"reported-numbers file {path} not found; pass --reported PATH (results/reported.csv "
                           f"in a zsbench checkout)")
    try:
        if path.suffix == ".json":
            rows = json.loads(path.read_text())
        else:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
        numbers = [ReportedNumber(r["table"], r["dataset"], r["method"], r["task"], r["metric"], float(r["value"]),
                                  r["source"]) for r in rows]
    except (KeyError, ValueError, TypeError) as err:
        raise ZSBenchError(f"reported-numbers file {path} is malformed ({err}); each row needs table, dataset, "
                           f"method, task, metric, value, source") from None
    missing = [n for n in numbers if not n.source.strip()]
    if missing:
        raise ZSBenchError(f"reported-numbers file {path}: {len(missing)} number(s) without a source; "
                           f"every reported number must name its publication")
    named = sorted({n.method for n in numbers if n.method != n.method.lower()})
    if named:
        raise ZSBenchError(f"reported-numbers file {path}: method names {named} are not zsbench names; write them "
                           f"lower case as `zsbench methods` lists them (cfsa, dscmr, ...)")
    return numbers


def _reported_section(numbers: list[ReportedNumber], table: str,
                      columns: list[tuple[str, str, str]]) -> tuple[Section, list[str]]:
    """Rows of reported numbers; ``columns`` are (dataset, task, metric) triples."""
    values: dict[str, dict[tuple[str, str, str], float]] = defaultdict(dict)
    sources = []
    for n in numbers:
        if n.table == table:
            values[n.method][(n.dataset, n.task, n.metric)] = n.value
            if n.source not in sources:
                sources.append(n.source)
    rows = [Row(method, [Cell(per.get(col)) for col in columns]) for method, per in values.items()]
    return Section(REPORTED_LABEL, rows), sources


def _value(run: Run, task: str, metric: str) -> float | None:
    """One run's value; task ``average`` is the mean over the group's tasks, as the papers' Avg column."""
    if task == "average":
        values = [m[metric] for m in run.metrics.values() if metric in m]
        return float(np.mean(values)) if values else None
    return run.metrics.get(task, {}).get(metric)


def _pick_groups(groups: dict[GroupKey, list[Run]], source: str, datasets: list[str],
                 wanted: set[str] | None, scenario: str = "zero-shot") -> dict[str, tuple[GroupKey, list[Run]]]:
    """Per dataset, the test-stage group of this source and scenario with the most (wanted) runs; ties go to
    the first."""
    picked: dict[str, tuple[GroupKey, list[Run]]] = {}
    for key, runs in groups.items():
        if key.source != source or key.dataset not in datasets or key.stage != "test" or key.scenario != scenario:
            continue
        runs = [r for r in runs if wanted is None or r.method in wanted]
        if runs and (key.dataset not in picked or len(runs) > len(picked[key.dataset][1])):
            picked[key.dataset] = (key, runs)
    return picked


def _measured_sections(groups, datasets: list[str], columns: list[tuple[str, str, str]],
                       wanted: set[str] | None = None, include_synthetic: bool = False,
                       scenario: str = "zero-shot") -> tuple[list[Section], list[str]]:
    sections, notes = [], []
    sources = ("real", "embedded", "synthetic") if include_synthetic else ("real", "embedded")
    for source in sources:
        picked = _pick_groups(groups, source, datasets, wanted, scenario)
        if not picked:
            continue
        everything = [r for _, runs in picked.values() for r in runs]
        for selection, members in sections_of(everything).items():
            rows = []
            for label in sorted({r.label for r in members}):
                stats: list[Stat | None] = []
                for dataset, task, metric in columns:
                    runs = [r for r in members if r.label == label and r.group.dataset == dataset]
                    stats.append(Stat.of([_value(r, task, metric) for r in runs]))
                rows.append(Row(label, [Cell.of(s) for s in stats], seed_range(stats)))
            title = SOURCE_LABELS.get(source, f"Measured here, data source: {source}")
            sections.append(Section(title if selection == "defaults" else f"{title}; {selection} on validation "
                                    "classes", rows))
        for dataset in datasets:
            if dataset in picked:
                key = picked[dataset][0]
                others = sum(1 for k in groups if k.source == source and k.dataset == dataset and k.stage == "test"
                             and k.scenario == scenario) - 1
                notes.append(f"[{source}] {key.caption()}"
                             + (f" ({others} other configuration(s) of this dataset are in the comparison tables)"
                                if others else ""))
    if not include_synthetic and any(k.source == "synthetic" and k.dataset in datasets for k in groups):
        notes.append("Runs on synthetic stand-ins are left out of this table (zsbench report --include-synthetic "
                     "adds them in their own labelled section); they are in the comparison tables.")
    return sections, notes


def _paper_table(key: str, title: str, caption: str, datasets, column_defs, reported_table: str | None,
                 numbers, groups, wanted=None, extra_notes=(), include_synthetic: bool = False,
                 scenario: str = "zero-shot") -> Table:
    columns = [(d, task, metric) for d, _ in datasets for task, metric in column_defs]
    sections, notes = [], []
    if reported_table:
        reported, sources = _reported_section(numbers, reported_table, columns)
        sections.append(reported)
        notes.append(f"Reported rows: {'; '.join(sources)}. They were obtained on other features, splits and metric "
                      f"conventions (docs/reference.md) and are not the same measurement as the rows below.")
    measured, measured_notes = _measured_sections(groups, [d for d, _ in datasets], columns, wanted,
                                                  include_synthetic, scenario)
    notes += measured_notes
    if not measured:
        notes.append("No runs measured here for these datasets yet.")
    sections += measured
    header = [label for _, label in column_defs]
    table = Table(key=key, title=title, caption=caption, columns=header * len(datasets), sections=sections,
                  column_groups=[(label, len(column_defs)) for _, label in datasets],
                  notes=[*extra_notes, *notes], meta={"paper_table": key})
    return table.mark_best()


def image_text_table(groups, numbers, include_synthetic: bool = False) -> Table:
    col_defs = [(task, "mAP@all") for task, _ in IMAGE_TEXT_COLUMNS]
    table = _paper_table(
        "paper-image-text", "Image-text retrieval, unseen classes (mAP@all)",
        "Zero-shot image-text retrieval on unseen classes, mAP@all: Img2Txt, Txt2Img and their average. "
        "Reported rows and each data source's measured rows are separate sections; best per column is marked "
        "within a section only. Measured: mean ± sample std over seeds; Avg is the per-seed mean of the two tasks.",
        IMAGE_TEXT_DATASETS, col_defs, "image-text", numbers, groups, include_synthetic=include_synthetic)
    table.columns = [label for _ in IMAGE_TEXT_DATASETS for _, label in IMAGE_TEXT_COLUMNS]
    return table


def scenario_tables(groups, numbers, include_synthetic: bool = False) -> list[Table]:
    """The standard (seen classes) and generalized zero-shot tables of the papers that report them."""
    col_defs = [(task, "mAP@all") for task, _ in IMAGE_TEXT_COLUMNS]
    both = "Reported rows and each data source's measured rows are separate sections; best per column is marked "
    standard = _paper_table(
        "paper-image-text-standard", "Image-text retrieval, seen classes' test items (mAP@all)",
        "Standard retrieval in the zero-shot split: trained on the seen classes, scored on their held-out test "
        "items (JFSE's 'zero-shot retrieval on seen classes'). " + both + "within a section only.",
        IMAGE_TEXT_DATASETS, col_defs, "image-text-standard", numbers, groups, include_synthetic=include_synthetic,
        scenario="standard")
    generalized = _paper_table(
        "paper-image-text-generalized", "Image-text retrieval, generalized zero-shot (mAP@all)",
        "Generalized zero-shot retrieval: queries and gallery hold the seen classes' test items and the unseen "
        "classes' items. " + both + "within a section only.",
        IMAGE_TEXT_DATASETS[:2], col_defs, "image-text-generalized", numbers, groups,
        include_synthetic=include_synthetic, scenario="generalized")
    sketch = _paper_table(
        "paper-sketch-generalized", "Sketch-based image retrieval, generalized zero-shot (mAP@all, P@100)",
        "Generalized zero-shot sketch -> image retrieval. " + both + "within a section only.",
        SKETCH_DATASETS, [(SKETCH_TASK, metric) for metric, _ in SKETCH_COLUMNS], "sketch-generalized", numbers,
        groups, extra_notes=["SEM-PCYC draws its generalized seen-class items from the training lists, 1 seen to 5 "
                             "unseen; zsbench holds them out of training (docs/scenarios.md): not the same "
                             "measurement."], include_synthetic=include_synthetic, scenario="generalized")
    for table in (standard, generalized):
        table.columns = [label for _ in range(len(table.column_groups)) for _, label in IMAGE_TEXT_COLUMNS]
    return [standard, generalized, sketch]


def sketch_table(groups, numbers, include_synthetic: bool = False) -> Table:
    col_defs = [(SKETCH_TASK, metric) for metric, _ in SKETCH_COLUMNS]
    return _paper_table(
        "paper-sketch", "Sketch-based image retrieval, unseen classes (mAP@all, P@100)",
        "Zero-shot sketch -> image retrieval on unseen classes, mAP@all and P@100. Reported rows and each data "
        "source's measured rows are separate sections; best per column is marked within a section only.",
        SKETCH_DATASETS, col_defs, "sketch", numbers, groups,
        extra_notes=["CFSA's own sketch numbers were not found in any reachable source (docs/reference.md)."],
        include_synthetic=include_synthetic)


def ablation_table(groups, include_synthetic: bool = False) -> Table:
    present = {r.method for runs in groups.values() for r in runs}
    wanted = set(ABLATION_METHODS) | {m for m in present if m.startswith("cfsa")}
    shown = sorted(wanted & present, key=lambda m: (m not in ABLATION_METHODS, m))
    datasets = [(d, label) for d, label in IMAGE_TEXT_DATASETS + SKETCH_DATASETS
                if any(k.dataset == d and any(r.method in wanted for r in runs) for k, runs in groups.items())]
    datasets += sorted({(k.dataset, k.dataset) for k, runs in groups.items()
                        if k.dataset not in {d for d, _ in IMAGE_TEXT_DATASETS + SKETCH_DATASETS}
                        and any(r.method in wanted for r in runs)})
    return _paper_table(
        "paper-ablation", "CFSA ablation (mAP@all, mean over the dataset's tasks)",
        f"CFSA and its ablated variants ({', '.join(shown)}): mAP@all averaged over each dataset's "
        "retrieval tasks per seed, then mean ± sample std over seeds.",
        datasets, [("average", "mAP@all")], None, [], groups, wanted,
        extra_notes=["No reported ablation numbers: the CFSA paper's full text is not reachable (docs/reference.md), "
                     "so only measured rows are shown."], include_synthetic=include_synthetic)


def paper_tables(groups: dict[GroupKey, list[Run]], numbers: list[ReportedNumber],
                 include_synthetic: bool = False) -> list[Table]:
    return [image_text_table(groups, numbers, include_synthetic), sketch_table(groups, numbers, include_synthetic),
            ablation_table(groups, include_synthetic), *scenario_tables(groups, numbers, include_synthetic)]
