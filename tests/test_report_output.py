"""The report's output: a folder owned through its manifest, TREC export, figures (palette, PR styles, loss
curves, fits)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.colors import to_rgb

from benchmark.cli import cli
from benchmark.contract import ZSBenchError
from benchmark.core.store import ResultStore
from benchmark.metrics import retrieval_metrics
from benchmark.report.build import build_report
from benchmark.report.curves import curve_styles
from benchmark.report.export import average_precision_from_trec, export_run, strictly_decreasing, write_trec
from benchmark.report.folder import MANIFEST, ReportFolder
from benchmark.report.records import load_runs
from benchmark.report.sidecars import load_sidecar, task_arrays
from benchmark.report.training import family_of, loss_series
from benchmark.report.tsne import class_colours

from .test_report import record


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _store(tmp_path, methods=("m1",)):
    root = tmp_path / "runs"
    for method in methods:
        ResultStore(root).save(root / "wikipedia-synthetic" / method / "seed0-x.json", record(method=method))
    return root


# --- the folder and its manifest ------------------------------------------------------------------------

def test_two_reports_into_one_folder_leave_exactly_the_second_reports_files(tmp_path):
    out = tmp_path / "out"
    first = build_report(_store(tmp_path, ("m1", "m2")), out, paper=True, plots=False, sensitivity=False)
    assert _files(out) == sorted(first.files + [MANIFEST])
    other = tmp_path / "runs2"
    ResultStore(other).save(other / "emoji-embedded" / "m3" / "seed0-y.json",
                            record(method="m3", dataset="emoji", source="embedded", split="emoji-v1"))
    second = build_report(other, out, plots=False, sensitivity=False)
    assert _files(out) == sorted(second.files + [MANIFEST])
    assert not any("wikipedia" in f or "paper" in f for f in _files(out))
    assert json.loads((out / MANIFEST).read_text())["files"] == sorted(second.files)


def test_the_report_never_touches_files_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ZSBenchError, match="did not list as its own"):
        build_report(_store(tmp_path), out, plots=False, sensitivity=False)
    assert _files(out) == ["notes.txt"]
    fresh = tmp_path / "fresh"
    build_report(_store(tmp_path), fresh, plots=False, sensitivity=False)
    (fresh / "mine.txt").write_text("kept")  # a file added beside a report survives the next report
    build_report(_store(tmp_path), fresh, plots=False, sensitivity=False)
    assert (fresh / "mine.txt").read_text() == "kept"
    folder = ReportFolder(fresh)
    folder.prepare()
    (fresh / "report.md").write_text("someone else's")
    with pytest.raises(ZSBenchError, match="not written by this report"):
        folder.write_text(fresh / "report.md", "x")


def test_the_default_out_is_not_the_committed_report():
    param = {p.name: p for p in cli.commands["report"].params}["out"]
    assert param.default != "results/report"


def test_report_cli_twice_into_one_folder(tmp_path):
    runs, out = _store(tmp_path), tmp_path / "out"
    for _ in range(2):
        outcome = CliRunner().invoke(cli, ["report", "--results", str(runs), "--out", str(out), "--no-plots",
                                           "--no-sensitivity"])
        assert outcome.exit_code == 0, outcome.output
    assert set(_files(out)) == set(json.loads((out / MANIFEST).read_text())["files"]) | {MANIFEST}


# --- TREC export ------------------------------------------------------------------------------------------

def test_trec_export_on_a_case_computed_by_hand(tmp_path):
    # one query of class 0; gallery cosine scores 0.9 (rel), 0.8, 0.7 (rel), 0.1: AP = (1/1 + 2/3) / 2 = 5/6
    Zq = np.array([[1.0, 0.0]])
    angles = np.arccos([0.9, 0.8, 0.7, 0.1])
    Zg = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    yq, yg = np.array([0]), np.array([0, 1, 0, 1])
    run_file, qrels_file = tmp_path / "t.run", tmp_path / "t.qrels"
    assert write_trec(Zq, yq, Zg, yg, run_file, qrels_file, "m-seed0") == (1, 4, 0)
    lines = run_file.read_text().splitlines()
    assert [line.split()[:4] for line in lines] == [["q0", "Q0", f"d{j}", str(r)] for r, j in
                                                   enumerate((0, 1, 2, 3), start=1)]
    assert qrels_file.read_text().splitlines() == ["q0 0 d0 1", "q0 0 d2 1"]
    assert average_precision_from_trec(run_file, qrels_file) == {"q0": pytest.approx(5 / 6)}
    assert retrieval_metrics(Zq @ Zg.T, yq, yg)["mAP@all"] == pytest.approx(5 / 6)


def test_trec_export_breaks_ties_by_gallery_position_and_says_so(tmp_path):
    # every gallery item ties: written order is gallery order, scores made strictly decreasing
    Zq, Zg = np.ones((1, 2)), np.ones((3, 2))
    counts = write_trec(Zq, np.array([1]), Zg, np.array([0, 1, 1]), tmp_path / "r", tmp_path / "q", "t")
    assert counts == (1, 3, 2)
    rows = [line.split() for line in (tmp_path / "r").read_text().splitlines()]
    assert [r[2] for r in rows] == ["d0", "d1", "d2"]
    scores = [float(r[4]) for r in rows]
    assert scores[0] > scores[1] > scores[2]
    assert average_precision_from_trec(tmp_path / "r", tmp_path / "q") == {"q0": pytest.approx((1 / 2 + 2 / 3) / 2)}
    assert list(strictly_decreasing(np.array([0.5, 0.5, 0.2]))) == pytest.approx([0.5, 0.35, 0.2])


def _trec_eval_order(lines):
    """The order trec_eval ranks a query's lines in: by score descending, ties by doc id descending (it
    ignores the rank column)."""
    rows = [line.split() for line in lines]
    return [r[2] for r in sorted(rows, key=lambda r: (float(r[4]), r[2]), reverse=True)]


def test_broken_ties_are_strictly_decreasing_for_any_tie_pattern_even_one_ulp_apart():
    for seed in range(300):
        _check_tie_pattern(np.random.default_rng(seed))


def _check_tie_pattern(rng):
    # distinct levels: random scores, some of them one or two units in the last place below the previous one
    levels = [float(rng.choice([1.0, 0.0, -1.0, rng.uniform(-1, 1)]))]
    for _ in range(rng.integers(1, 12)):
        step = rng.choice(["ulp", "two ulps", "random"])
        below = np.nextafter(levels[-1], -np.inf)
        levels.append(float(below if step == "ulp" else np.nextafter(below, -np.inf) if step == "two ulps"
                            else levels[-1] - rng.uniform(1e-9, 0.5)))
    sizes = rng.integers(1, 6, size=len(levels))
    values = np.repeat(levels, sizes)
    out = strictly_decreasing(values)
    assert out.dtype == np.float64 and out.shape == values.shape
    assert np.all(np.diff(out) < 0), (values.tolist(), out.tolist())
    assert np.all(out <= values)  # never raised; the first item of every block keeps its score...
    firsts = np.r_[0, np.cumsum(sizes)[:-1]]
    gaps = np.abs(values[firsts] - np.r_[values[firsts[1:]], values[-1] - 1.0])
    # ...and any item moves at most its block's gap plus one unit in the last place per item ranked above it
    allowed = np.repeat(gaps, sizes) + values.size * np.spacing(np.abs(values) + 1.0)
    assert np.all(values - out <= allowed)
    written = [float(f"{v:.17g}") for v in out]
    assert written == out.tolist()  # 17 significant digits keep every score distinct
    lines = [f"q0 Q0 d{j:02d} {j + 1} {v:.17g} t" for j, v in enumerate(out)]
    assert _trec_eval_order(lines) == [f"d{j:02d}" for j in range(values.size)]


def test_a_tie_one_ulp_above_the_next_score_is_still_broken():
    below = np.nextafter(1.0, 0.0)
    out = strictly_decreasing(np.array([1.0, 1.0, 1.0, below]))
    assert out[0] == 1.0 and np.all(np.diff(out) < 0)
    assert out[-1] <= below and 1.0 - out[-1] < 8 * np.spacing(1.0)


def _sidecar_run(tmp_path, fits, noise=0.3):
    """A record whose .npz holds fit-prefixed keys (a two-modality method on a three-modality dataset); with
    ``noise=0`` every class's items share one embedding (every query has tied gallery items)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 4)
    arrays = {}
    for fit in fits:
        for modality in fit.split("+"):
            Z = np.eye(3)[labels] * 2 + [[0.5, 0.25, 0.125]] + noise * rng.standard_normal((labels.size, 3))
            arrays[f"{fit}/{modality}/all/embeddings"] = Z.astype(np.float32)
            arrays[f"{fit}/{modality}/all/labels"] = labels.astype(np.int32)
    root = tmp_path / "runs"
    folder = root / "emoji-embedded" / "cca"
    folder.mkdir(parents=True)
    np.savez(folder / "seed0-x.npz", **arrays)
    rec = record(method="cca", dataset="emoji", source="embedded", split="emoji-v1",
                 tasks=("sketch->image", "image->text", "text->image"))
    rec.dataset["eval_protocol"] = "all"
    rec.embeddings_file = "seed0-x.npz"
    rec.training_log = [{"modalities": fit, "epoch": e, "loss_a": 1.0 / (e + 1), "val_mAP@all": 0.1 * e}
                           for fit in fits for e in range(3)]
    ResultStore(root).save(folder / "seed0-x.json", rec)
    return root


def test_sidecars_with_fits_serve_every_task_and_export(tmp_path):
    root = _sidecar_run(tmp_path, ("sketch+image", "image+text"))
    (run,) = load_runs(root)
    sidecar = load_sidecar(run)
    assert sorted(sidecar.fits) == ["image+text", "sketch+image"]
    assert sidecar.fit_for(("text", "image")) == "image+text"
    for task in run.metrics:
        assert task_arrays(sidecar, task, "all") is not None
    exported = export_run(run, tmp_path / "trec")
    assert sorted(e.task for e in exported) == sorted(run.metrics)
    outcome = CliRunner().invoke(cli, ["export", "--format", "trec", "--results", str(root), "--out",
                                       str(tmp_path / "cli")])
    assert outcome.exit_code == 0, outcome.output
    assert len(list((tmp_path / "cli").rglob("*.run"))) == 3


@pytest.mark.parametrize("keep_ties", [False, True])
def test_export_keep_ties_writes_raw_cosine_scores_and_the_default_breaks_them(tmp_path, keep_ties):
    root = _sidecar_run(tmp_path, ("sketch+image", "image+text"), noise=0.0)
    out = tmp_path / "trec"
    outcome = CliRunner().invoke(cli, ["export", "--results", str(root), "--out", str(out)]
                                 + (["--keep-ties"] if keep_ties else []))
    assert outcome.exit_code == 0, outcome.output
    # 3 tasks x 12 queries, each with 3 tied items per class block: (4 - 1) * 3 adjacent tied pairs per query
    assert f"{3 * 12 * 9} tied adjacent pair(s) {'kept' if keep_ties else 'broken by gallery position'}" in \
        " ".join(outcome.output.split())
    lines = (next(out.rglob("sketch2image.run"))).read_text().splitlines()
    assert len(lines) == 12 * 12
    query = [line.split() for line in lines if line.startswith("q00 ")]
    # the raw cosine of q00 (class 0) with every gallery item, by hand: all items of a class share one vector
    vectors = np.eye(3) * 2 + [[0.5, 0.25, 0.125]]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit[0]
    expected_order = [f"d{j:02d}" for c in np.argsort(-cosine, kind="stable") for j in range(4 * c, 4 * c + 4)]
    assert [r[2] for r in query] == expected_order and [int(r[3]) for r in query] == list(range(1, 13))
    scores = [float(r[4]) for r in query]
    raw = [cosine[int(r[2][1:]) // 4] for r in query]
    if keep_ties:
        assert scores == pytest.approx(raw, abs=1e-15) and len(set(scores)) == 3
        assert _trec_eval_order([" ".join(r) for r in query]) != expected_order  # trec_eval reverses tied ids
    else:
        assert np.all(np.diff(scores) < 0)
        assert _trec_eval_order([" ".join(r) for r in query]) == expected_order
        assert scores[0::4] == pytest.approx(raw[0::4], abs=1e-15)  # a block's first item keeps its score


def test_loss_curves_group_families_and_keep_fits_apart(tmp_path):
    (run,) = load_runs(_sidecar_run(tmp_path, ("sketch+image", "image+text")))
    series = loss_series(run)
    assert list(series) == ["loss", "validation mAP@all"]
    assert sorted(series["loss"]) == ["loss_a [image+text]", "loss_a [sketch+image]"]
    assert family_of("wasserstein_sketch") == "wasserstein" and family_of("alignment") == "alignment"


@pytest.mark.slow
def test_the_report_draws_fits_as_panels_and_the_loss_curves(tmp_path):
    root = _sidecar_run(tmp_path, ("sketch+image", "image+text"))
    result = build_report(root, tmp_path / "out", sensitivity=False, loss_curves=("cca",), per_class=4,
                          n_resamples=200)
    names = [f.png.name for f in result.figures]
    assert any(n.startswith("tsne-") for n in names) and any(n.startswith("loss-") for n in names)
    assert sum(n.startswith("pr-") for n in names) == 3


# --- figure styling -----------------------------------------------------------------------------------------

def test_nineteen_classes_get_clearly_different_colours():
    colours = [np.array(to_rgb(c)) for c in class_colours(np.arange(19)).values()]
    gaps = [np.abs(a - b).sum() for i, a in enumerate(colours) for b in colours[i + 1:]]
    assert min(gaps) > 0.25  # tab20's light/dark pairs differ by less than this
    assert len(class_colours(np.arange(40))) == 40


def test_pr_curves_differ_in_style_marker_and_width():
    styles = curve_styles(12)
    assert len({(s["linestyle"], s["marker"]) for s in styles}) == 12
    widths = [s["linewidth"] for s in styles]
    assert widths == sorted(widths, reverse=True) and [s["zorder"] for s in styles] == sorted(s["zorder"]
                                                                                              for s in styles)
