"""The report: grouping and seed statistics, every table format, the paper tables, report.html."""

import csv
import dataclasses
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchmark.contract import ZSBenchError
from benchmark.core.record import RunRecord
from benchmark.core.store import ResultStore
from benchmark.report.build import build_report
from benchmark.report.paper import image_text_table, load_reported, sketch_table
from benchmark.report.records import aggregate, group_runs, load_runs, run_from_record
from benchmark.report.render import to_rich
from benchmark.report.tables import comparison_table, to_csv, to_latex, to_markdown

SHA = "a" * 64


def record(method="m1", seed=0, dataset="wikipedia", source="synthetic", split="dadn", sha=SHA, semantics="glove-50d",
           features="vgg fc7", values=None, config=None, tasks=("image->text", "text->image"), finished="2026-01-01"):
    values = values or {"mAP@all": 0.3, "mAP@100": 0.2, "mAP@200": 0.19, "P@100": 0.25, "P@200": 0.24}
    return RunRecord.from_json({
        "schema_version": 2, "method": method, "config": config or {"lr": 0.1}, "seed": seed, "source": source,
        "dataset": {"name": dataset, "source": source, "eval_protocol": "test->train", "semantics": semantics,
                    "features": features, "scale": 1.0, "data_seed": 0},
        "split": {"name": split, "sha256": sha, "n_seen": 5, "n_unseen": 5},
        "metrics": {task: dict(values) for task in tasks}, "finished": finished,
        "identity": {"data": {"semantics": semantics, "features": features, "scale": 1.0, "data_seed": 0}},
        "metrics_info": {}, "training_log": [], "fits": ["image+text"], "timings": {"total_s": 1.0},
        "peak_memory_mb": 1.0, "device": "cpu", "versions": {}, "git_commit": None, "started": finished,
    })


def runs_of(*records):
    return [run_from_record(Path(f"/nowhere/r{i}.json"), r) for i, r in enumerate(records)]


def with_map(value, **kw):
    return record(values={"mAP@all": value, "mAP@100": value / 2, "mAP@200": value / 3, "P@100": value,
                          "P@200": value}, **kw)


# --- aggregation -----------------------------------------------------------------------------------------

def test_mean_and_sample_std_over_seeds():
    runs = runs_of(*(with_map(v, seed=s) for s, v in enumerate((0.1, 0.2, 0.3))))
    (key, members), = group_runs(runs).items()
    stat = aggregate(members, "image->text")["m1"]["mAP@all"]
    assert stat.mean == pytest.approx(0.2)
    assert stat.std == pytest.approx(0.1)  # ddof = 1
    assert stat.n == 3
    single = aggregate(runs_of(with_map(0.4)), "image->text")["m1"]["mAP@all"]
    assert (single.mean, single.std, single.n) == (0.4, None, 1)


@pytest.mark.parametrize("field, other", [("source", "real"), ("split", "sem-pcyc"), ("sha", "b" * 64),
                                          ("semantics", "word2vec-300"), ("features", "efficientnet-lite0"),
                                          ("dataset", "nus-wide")])
def test_records_differing_in_provenance_never_share_a_cell(field, other):
    runs = runs_of(with_map(0.1, seed=0), with_map(0.9, seed=1, **{field: other}))
    groups = group_runs(runs)
    assert len(groups) == 2
    for key, members in groups.items():
        stat = aggregate(members, "image->text")["m1"]["mAP@all"]
        assert stat.n == 1 and stat.mean in (0.1, 0.9)
        table = comparison_table(key, members, "image->text")
        assert "2" not in table.sections[0].rows[0].seeds
    with pytest.raises(ZSBenchError):
        aggregate(runs, "image->text")


def test_two_configs_of_one_method_are_two_rows_and_reruns_keep_the_newest():
    runs = runs_of(with_map(0.1), with_map(0.2, config={"lr": 0.01}), with_map(0.5, seed=3, finished="2026-01-01"),
                   with_map(0.7, seed=3, finished="2026-02-01"))
    (key, members), = group_runs(runs).items()
    stats = aggregate(members, "image->text")
    assert len(stats) == 2 and all("[cfg " in label for label in stats)
    default = [label for label in stats if stats[label]["mAP@all"].n == 2][0]
    assert stats[default]["mAP@all"].mean == pytest.approx((0.1 + 0.7) / 2)


def test_load_runs_reads_the_store_and_rejects_a_missing_folder(tmp_path):
    store = ResultStore(tmp_path / "runs")
    store.save(tmp_path / "runs" / "wikipedia-synthetic" / "m1" / "seed0-x.json", record())
    assert [r.method for r in load_runs(tmp_path / "runs")] == ["m1"]
    with pytest.raises(ZSBenchError, match="does not exist"):
        load_runs(tmp_path / "nothing")


# --- table formats ---------------------------------------------------------------------------------------

@pytest.fixture
def small_table():
    runs = runs_of(with_map(0.30, method="alpha", seed=0), with_map(0.32, method="alpha", seed=1),
                   with_map(0.50, method="beta_x", seed=0), with_map(0.54, method="beta_x", seed=1))
    (key, members), = group_runs(runs).items()
    return comparison_table(key, members, "image->text")


def test_caption_states_source_split_hash_semantics_features(small_table):
    for text in ("synthetic", "dadn", SHA[:12], "glove-50d", "vgg fc7", "image->text"):
        assert text in small_table.caption


def test_markdown_table(small_table):
    md = to_markdown(small_table)
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| method | seeds | mAP@all | mAP@100 | mAP@200 | P@100 | P@200 |"
    beta = [line for line in lines if line.startswith("| beta_x")][0]
    assert "**0.520 ± 0.028**" in beta  # best, mean and sample std of 0.50, 0.54
    alpha = [line for line in lines if line.startswith("| alpha")][0]
    assert "0.310 ± 0.014" in alpha and "**" not in alpha


def test_latex_table_is_booktabs_and_escaped(small_table):
    tex = to_latex(small_table)
    for command in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{", "\\begin{tabular}{lrccccc}"):
        assert command in tex
    assert "beta\\_x" in tex and "\\textbf{0.520 $\\pm$ 0.028}" in tex
    assert "$\\to$" in tex  # the task arrow in the caption
    assert tex.count("{") - tex.count("\\{") == tex.count("}") - tex.count("\\}")
    body = [line for line in tex.splitlines() if line.startswith(("alpha", "beta"))]
    assert all(line.count("&") == 6 and line.endswith("\\\\") for line in body)


def test_csv_table(small_table):
    rows = list(csv.DictReader(io.StringIO(to_csv(small_table))))
    assert len(rows) == 2 * 5
    beta = {r["column"]: r for r in rows if r["method"] == "beta_x"}
    assert float(beta["mAP@all"]["mean"]) == pytest.approx(0.52)
    assert float(beta["mAP@all"]["std"]) == pytest.approx(np.std([0.5, 0.54], ddof=1), abs=1e-6)
    assert beta["mAP@all"]["n_seeds"] == "2" and beta["mAP@all"]["best"] == "1"
    assert {r["split_sha256"] for r in rows} == {SHA} and {r["source"] for r in rows} == {"synthetic"}


def test_console_table(small_table):
    console = Console(record=True, width=160)
    console.print(to_rich(small_table))
    text = console.export_text()
    assert "beta_x" in text and "0.520 ± 0.028" in text and "mAP@all" in text


# --- paper tables ----------------------------------------------------------------------------------------

# The reported numbers (docs/reference.md), typed in again: image-text Img2Txt/Txt2Img/Avg, sketch mAP@all/P@100.
REFERENCE_IMAGE_TEXT = {
    "CCA": ".238/.236/.237 .207/.183/.195 .400/.397/.399 .031/.044/.038",
    "DCCA": ".282/.266/.274 .297/.264/.281 .406/.407/.407 .039/.043/.041",
    "ACMR": ".276/.262/.269 .306/.291/.299 .407/.425/.416 .036/.043/.040",
    "DSCMR": ".312/.280/.296 .327/.319/.323 .473/.482/.478 .096/.051/.074",
    "DADN": ".305/.291/.298 .359/.353/.356 .423/.472/.448 .112/.130/.121",
    "TANSS": ".314/.303/.309 .362/.355/.359 .446/.483/.465 .110/.137/.124",
    "CFSA": ".341/.311/.326 .378/.368/.373 .501/.507/.504 .121/.152/.137",
    "JFSE": ".343/.314/.329 .382/.371/.377 .508/.514/.511 .123/.153/.138",
}
REFERENCE_SKETCH = {"ZSIH": ".264/.272 .234/.205", "CVAE": ".423/.386 .362/.315", "SEM-PCYC": ".349/.463 .297/.426",
                    "SAKE": ".547/.692 .475/.599", "LCALE": ".476/.583 .387/.436", "MDVAE": ".741/.853 .520/.660"}


# JFSE's tables of the other scenarios as the authors' figures print them (CFM-MSG/Code_JFSE fig/zsl.png, top:
# "zero-shot retrieval on seen classes"; fig/gzsl.png: "generalized zero-shot retrieval", Wikipedia and Pascal)
REFERENCE_STANDARD = {
    "CCA": ".261/.267/.264 .214/.183/.199 .432/.438/.435 .201/.246/.224",
    "ACMR": ".674/.863/.769 .726/.756/.741 .604/.702/.653 .704/.651/.678",
    "DSCMR": ".697/.902/.800 .766/.874/.820 .769/.778/.772 .757/.765/.761",
    "DADN": ".677/.892/.785 .748/.878/.813 .732/.712/.722 .753/.743/.748",
    "JFSE": ".708/.906/.807 .791/.896/.844 .786/.792/.789 .760/.785/.773",
}
REFERENCE_GENERALIZED = {"CCA": ".134/.118/.126 .129/.141/.135", "ACMR": ".251/.199/.225 .250/.284/.267",
                         "DSCMR": ".227/.185/.206 .254/.214/.234", "DADN": ".251/.239/.245 .265/.296/.281",
                         "JFSE": ".283/.237/.260 .310/.316/.313"}


def test_reported_numbers_match_the_papers_tables():
    numbers = {(n.table, n.dataset, n.method, n.task, n.metric): n.value for n in load_reported()}
    expected = {}
    for method, text in REFERENCE_IMAGE_TEXT.items():
        for dataset, triple in zip(("wikipedia", "pascal-sentences", "nus-wide", "xmedianet"), text.split(),
                                   strict=True):
            for task, value in zip(("image->text", "text->image", "average"), triple.split("/"), strict=True):
                expected[("image-text", dataset, method.lower(), task, "mAP@all")] = float(value)
    for method, text in REFERENCE_SKETCH.items():
        for dataset, pair in zip(("sketchy", "tu-berlin"), text.split(), strict=True):
            for metric, value in zip(("mAP@all", "P@100"), pair.split("/"), strict=True):
                expected[("sketch", dataset, method.lower(), "sketch->image", metric)] = float(value)
    for table, reference in (("image-text-standard", REFERENCE_STANDARD),
                             ("image-text-generalized", REFERENCE_GENERALIZED)):
        for method, text in reference.items():
            datasets = ("wikipedia", "pascal-sentences", "nus-wide", "xmedianet")[:len(text.split())]
            for dataset, triple in zip(datasets, text.split(), strict=True):
                for task, value in zip(("image->text", "text->image", "average"), triple.split("/"), strict=True):
                    expected[(table, dataset, method.lower(), task, "mAP@all")] = float(value)
    # SEM-PCYC's generalized TU-Berlin-Ext row as SpLIP (ECCV 2024) quotes it: 19.2 / 29.8 %
    expected[("sketch-generalized", "tu-berlin", "sem-pcyc", "sketch->image", "mAP@all")] = 0.192
    expected[("sketch-generalized", "tu-berlin", "sem-pcyc", "sketch->image", "P@100")] = 0.298
    assert numbers == expected
    assert all(n.source.strip() and "REFERENCE" not in n.source for n in load_reported())


def test_one_naming_reported_rows_use_the_registry_names():
    from benchmark.registry import available_methods

    registered = set(available_methods())
    reported = {n.method for n in load_reported()}
    assert {"cfsa", "dscmr", "dadn", "acmr", "cca", "cvae", "sem-pcyc"} <= reported & registered
    assert all(m == m.lower() for m in reported)


def test_paper_tables_keep_reported_and_measured_apart():
    runs = runs_of(with_map(0.9, method="cfsa", seed=0), with_map(0.8, method="cfsa", seed=1),
                   with_map(0.6, method="cfsa", dataset="tu-berlin", tasks=("sketch->image",)))
    groups = group_runs(runs)
    numbers = load_reported()
    assert len(image_text_table(groups, numbers).sections) == 1  # synthetic rows only when asked for
    assert any("--include-synthetic" in n for n in image_text_table(groups, numbers).notes)
    table = image_text_table(groups, numbers, include_synthetic=True)
    reported, measured = table.sections
    assert reported.label.startswith("As reported") and "SYNTHETIC" in measured.label
    cfsa_reported = [r for r in reported.rows if r.label == "cfsa"][0]
    assert [c.mean for c in cfsa_reported.cells[:3]] == [0.341, 0.311, 0.326]
    cfsa_measured = measured.rows[0]
    assert cfsa_measured.cells[0].mean == pytest.approx(0.85) and cfsa_measured.cells[0].n == 2
    assert cfsa_measured.cells[2].mean == pytest.approx(0.85)  # Avg: per-seed mean of the two tasks
    assert cfsa_measured.cells[3].empty  # no Pascal Sentences run
    # 0.85 measured beats every reported number, yet the reported best (JFSE) stays marked in its own section
    assert [r for r in reported.rows if r.label == "jfse"][0].cells[0].best
    assert any("synthetic" in note and SHA[:12] in note for note in table.notes)
    md = to_markdown(table)
    assert md.index("As reported") < md.index("SYNTHETIC")
    tex = to_latex(table)
    assert "\\begin{table*}" in tex and "\\resizebox{\\textwidth}" in tex and "\\cmidrule(lr){3-5}" in tex
    assert tex.count("{") - tex.count("\\{") == tex.count("}") - tex.count("\\}")
    sketch = sketch_table(groups, numbers, include_synthetic=True)
    assert sketch.sections[1].rows[0].cells[2].mean == pytest.approx(0.6)


def test_reported_file_errors(tmp_path):
    with pytest.raises(ZSBenchError, match="not found"):
        load_reported(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("table,dataset,method,task,metric,value,source\nsketch,sketchy,X,sketch->image,P@100,.5,\n")
    with pytest.raises(ZSBenchError, match="without a source"):
        load_reported(bad)


# --- the whole report and its HTML page ------------------------------------------------------------------

class _Checker(HTMLParser):
    VOID = {"meta", "img", "br", "link", "hr", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.refs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.refs += [value for name, value in attrs if name in ("href", "src")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


def _write_run(store_root, method, seed, embeddings, labels, good):
    rng = np.random.default_rng(seed)
    arrays = {}
    for modality in ("image", "text"):
        for part in ("test", "train"):
            Z = embeddings[labels] * (1.0 if good else 0.0) + rng.standard_normal((labels.size, 8)) * 0.5
            arrays[f"{modality}/{part}/embeddings"] = Z.astype(np.float32)
            arrays[f"{modality}/{part}/labels"] = labels.astype(np.int32)
    folder = store_root / "wikipedia-synthetic" / method
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"seed{seed}-x.npz", **arrays)
    rec = with_map(0.8 if good else 0.3, method=method, seed=seed)
    rec.embeddings_file = f"seed{seed}-x.npz"
    ResultStore(store_root).save(folder / f"seed{seed}-x.json", rec)


@pytest.mark.slow
def test_report_html_is_well_formed_and_links_only_existing_files(tmp_path):
    runs_dir, out = tmp_path / "runs", tmp_path / "report"
    centres = np.random.default_rng(0).standard_normal((4, 8)) * 2
    labels = np.repeat(np.arange(4), 6)
    for seed in (0, 1):
        _write_run(runs_dir, "good", seed, centres, labels, good=True)
        _write_run(runs_dir, "random", seed, centres, labels, good=False)
    result = build_report(runs_dir, out, paper=True, per_class=5)
    html = result.html.read_text()
    checker = _Checker()
    checker.feed(html)
    assert not checker.errors and not checker.stack
    assert html.startswith("<!DOCTYPE html>")
    local = [ref for ref in checker.refs if not ref.startswith(("data:", "#"))]
    assert local, "the page should link the tables' files and the PDFs"
    for ref in local:
        assert not re.match(r"^[a-z]+://", ref) and not ref.startswith("/"), ref
        assert (out / ref).is_file(), ref
    assert html.count("data:image/png;base64,") == len(result.figures) == 3  # t-SNE + 2 PR curves
    for name in ("report.md", "report.tex", "report.csv"):
        assert (out / name).is_file()
    # the good method separates the classes: its re-scored numbers beat the random one's
    table = result.sensitivity[0]
    recorded = {s.label: s.rows[0].cells[0].mean for s in table.sections}
    assert recorded == {"good": pytest.approx(0.8), "random": pytest.approx(0.3)}
    rescored = {s.label: s.rows[1].cells[0].mean for s in table.sections}
    assert [s.rows[1].label.split()[0] for s in table.sections] == ["zsbench", "zsbench"]
    assert rescored["good"] > rescored["random"] + 0.2


def test_report_command(tmp_path):
    from click.testing import CliRunner

    from benchmark.cli import cli

    runs_dir = tmp_path / "runs"
    ResultStore(runs_dir).save(runs_dir / "wikipedia-synthetic" / "m1" / "seed0-x.json", record())
    outcome = CliRunner().invoke(cli, ["report", "--results", str(runs_dir), "--out", str(tmp_path / "out"),
                                       "--paper", "--no-plots", "--include-synthetic"])
    assert outcome.exit_code == 0, outcome.output
    assert "SYNTHETIC" in outcome.output and "jfse" in outcome.output
    assert (tmp_path / "out" / "tables" / "paper-image-text.tex").is_file()
    outcome = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "none")])
    assert isinstance(outcome.exception, ZSBenchError)


def test_gpu_runs_are_a_row_of_their_own():
    cpu, gpu = with_map(0.3), dataclasses.replace(with_map(0.5), device="cuda:0")
    (_, members), = group_runs(runs_of(cpu, gpu)).items()
    assert sorted(run.label for run in members) == ["m1", "m1 [cuda]"]
    stats = aggregate(members, "image->text")
    assert (stats["m1"]["mAP@all"].mean, stats["m1 [cuda]"]["mAP@all"].mean) == (0.3, 0.5)


def test_ablation_table_lists_cfsa_variants_only():
    from benchmark.report.paper import ablation_table

    runs = runs_of(with_map(0.5, method="cfsa"), with_map(0.4, method="cfsa-no-cycle"),
                   with_map(0.3, method="semantic-regression"))
    table = ablation_table(group_runs(runs), include_synthetic=True)
    (section,) = table.sections
    assert [r.label for r in section.rows] == ["cfsa", "cfsa-no-cycle"]
    assert "(cfsa, cfsa-no-cycle)" in table.caption
    assert table.column_groups == [("Wikipedia", 1)]
    assert section.rows[0].cells[0].mean == pytest.approx(0.5) and section.rows[0].cells[0].best


def test_a_foreign_record_is_named_in_the_error(tmp_path):
    bad = tmp_path / "runs" / "x" / "seed0-y.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"schema_version": 2, "method": "m1", "metrics": {}}')
    with pytest.raises(ZSBenchError, match="seed0-y.json"):
        load_runs(tmp_path / "runs")


def test_each_scenario_paper_table_shows_its_own_scenario_only():
    from benchmark.report.paper import scenario_tables

    zero = with_map(0.9, method="dadn", source="real")
    gen = dataclasses.replace(with_map(0.4, method="dadn", source="real"), scenario="generalized")
    std = dataclasses.replace(with_map(0.7, method="dadn", source="real"), scenario="standard")
    standard, generalized, sketch = scenario_tables(group_runs(runs_of(zero, gen, std)), load_reported())

    def measured(table):
        (section,) = [s for s in table.sections if s.label.startswith("Measured here")]
        (row,) = section.rows
        return row.cells[0].mean  # Wikipedia Img2Txt

    assert measured(standard) == pytest.approx(0.7) and measured(generalized) == pytest.approx(0.4)
    reported = {row.label: row.cells[0].mean for row in generalized.sections[0].rows}
    assert reported["jfse"] == pytest.approx(0.283) and reported["dadn"] == pytest.approx(0.251)
    assert not [s for s in sketch.sections if s.label.startswith("Measured here")]  # no sketch run here
