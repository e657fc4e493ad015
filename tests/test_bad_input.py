"""Malformed input gives one clear error line, writes no partial record and touches no earlier record.

Dataset problems are checked where a dataset is built (:class:`ZSDataset` validation, the split hash);
store and method problems through the ``zsbench`` command itself (its ``main``, in this process).
Tests run as root, where a read-only folder still takes writes, so "read-only" is simulated with a
refusing ``os.access`` and with a file standing where the folder should be.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.contract import ZSBenchError
from benchmark.datasets import load_dataset
from benchmark.datasets.splits import SPLITS_DIR, load_split

TINY = ["--dataset", "wikipedia", "--synthetic", "--scale", "0.05"]
RIDGE = "benchmark.testing:RidgeProjection"


def zsbench(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the command in this process; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["zsbench", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, hidden ones included, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier_results(tmp_path_factory) -> Path:
    """A results folder holding one finished record (seed 0) that no failure may touch."""
    root = tmp_path_factory.mktemp("earlier") / "runs"
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["zsbench", "run", "--methods", RIDGE, *TINY, "--seeds", "0", "--results", str(root)])
    try:
        main()
    finally:
        mp.undo()
    assert len(list(root.rglob("*.json"))) == 1
    return root


@pytest.fixture()
def results(tmp_path, earlier_results) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(earlier_results, root)
    return root


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("wikipedia", synthetic=True, scale=0.05)


# --- datasets ------------------------------------------------------------------------------------------------

def _variant(ds, **changes):
    return dataclasses.replace(ds, **changes)


def test_wrong_dtype_is_refused(tiny):
    features = {**tiny.features, "image": tiny.features["image"].astype(np.float64)}
    with pytest.raises(ZSBenchError, match="image features must be float32, got float64"):
        _variant(tiny, features=features)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_rows_are_refused_and_named(tiny, bad):
    text = tiny.features["text"].copy()
    text[[3, 8], 5] = bad
    with pytest.raises(ZSBenchError, match=r"text features have 2 row\(s\) with NaN or inf \(first rows \[3, 8\]\)"):
        _variant(tiny, features={**tiny.features, "text": text})


def test_an_empty_class_is_refused_and_named(tiny):
    gone = 4
    keep = tiny.labels["image"] != gone  # paired: drop the class's pairs from both modalities
    with pytest.raises(ZSBenchError, match=f"class '{tiny.class_names[gone]}' has no image items"):
        _variant(tiny, features={m: X[keep] for m, X in tiny.features.items()},
                 labels={m: y[keep] for m, y in tiny.labels.items()},
                 parts={m: p[keep] for m, p in tiny.parts.items()})


def test_labels_out_of_range_are_refused(tiny):
    labels = {m: y.copy() for m, y in tiny.labels.items()}
    for y in labels.values():
        y[0] = len(tiny.class_names)
    with pytest.raises(ZSBenchError, match=r"labels must lie in 0\.\.9, found 0\.\.10"):
        _variant(tiny, labels=labels)


def test_mismatched_feature_and_label_counts_are_refused(tiny):
    labels = {**tiny.labels, "text": tiny.labels["text"][:-1]}
    with pytest.raises(ZSBenchError, match="rows but .* labels; they must match"):
        _variant(tiny, labels=labels)


def test_duplicate_class_names_are_refused(tiny):
    names = list(tiny.class_names)
    names[1] = names[0]
    with pytest.raises(ZSBenchError, match="duplicate class names"):
        _variant(tiny, class_names=tuple(names))


def test_an_edited_split_file_is_refused(tmp_path):
    original = SPLITS_DIR / "wikipedia" / "dadn.json"
    edited = tmp_path / "dadn.json"
    edited.write_text(original.read_text().replace('"seen"', '"seen" ', 1))
    expected = load_split(original, None).sha256
    with pytest.raises(ZSBenchError, match=r"has sha256 .*, the registry expects .*git checkout") as caught:
        load_split(edited, expected)
    assert "\n" not in str(caught.value)


def test_an_edited_split_file_stops_the_command_before_any_run(monkeypatch, capsys, tmp_path, results):
    splits = tmp_path / "splits"
    shutil.copytree(SPLITS_DIR, splits)
    (splits / "wikipedia" / "dadn.json").write_text((SPLITS_DIR / "wikipedia" / "dadn.json").read_text() + " ")
    monkeypatch.setattr("benchmark.datasets.specs.SPLITS_DIR", splits)
    before = snapshot(results)
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", RIDGE, *TINY, "--seeds", "1",
                        "--results", str(results))
    assert_one_line_error(code, err, "dadn.json", "registry expects")
    assert snapshot(results) == before


# --- the results store --------------------------------------------------------------------------------------

def test_a_truncated_record_is_reported_not_skipped_or_overwritten(monkeypatch, capsys, results):
    record = next(results.rglob("*.json"))
    record.write_bytes(record.read_bytes()[:100])  # a copy that was cut short
    before = snapshot(results)
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", RIDGE, *TINY, "--seeds", "0",
                        "--results", str(results))
    assert_one_line_error(code, err, str(record), "unreadable", "move it aside")
    assert snapshot(results) == before


def test_a_file_where_the_results_folder_should_be(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", RIDGE, *TINY, "--results", str(blocker / "runs"))
    assert_one_line_error(code, err, "cannot create results folder", "--results")
    assert blocker.read_text() == "not a folder"


def test_a_read_only_results_folder(monkeypatch, capsys, results):
    real_access = os.access

    def refuse_writes(path, mode, *args, **kwargs):
        if mode & os.W_OK and str(path).startswith(str(results)):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", refuse_writes)
    before = snapshot(results)
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", RIDGE, *TINY, "--seeds", "1",
                        "--results", str(results))
    assert_one_line_error(code, err, str(results), "is not writable")
    assert snapshot(results) == before


def test_a_full_disk_leaves_no_partial_record(monkeypatch, capsys, results):
    """The embeddings sidecar is written, then the record's write fails: neither may remain."""
    real_fsync, calls = os.fsync, []

    def fsync_disk_full_on_second_write(fd):
        calls.append(fd)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    before = snapshot(results)
    monkeypatch.setattr(os, "fsync", fsync_disk_full_on_second_write)
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", RIDGE, *TINY, "--seeds", "1",
                        "--results", str(results))
    assert len(calls) == 2
    assert_one_line_error(code, err, "1 of 1 run failed", "No space left on device", "earlier records are untouched")
    assert snapshot(results) == before


# --- methods --------------------------------------------------------------------------------------------------

def test_a_method_that_raises_mid_training(monkeypatch, capsys, results):
    before = snapshot(results)
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", "benchmark.testing:RaisesMidTraining", *TINY,
                        "--seeds", "0", "--results", str(results))
    assert_one_line_error(code, err, "RaisesMidTraining", "RuntimeError: simulated failure in epoch 1")
    assert snapshot(results) == before


def test_a_method_that_returns_nan_embeddings(monkeypatch, capsys, results):
    before = snapshot(results)
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", "benchmark.testing:NaNEmbeddings", *TINY,
                        "--seeds", "0", "--results", str(results))
    assert_one_line_error(code, err, "returned NaN or inf embeddings", "no record written")
    assert snapshot(results) == before


def test_a_failing_method_does_not_stop_the_other_runs(monkeypatch, capsys, results):
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", f"benchmark.testing:NaNEmbeddings,{RIDGE}", *TINY,
                        "--seeds", "0,1", "--results", str(results))
    assert_one_line_error(code, err, "2 of 4 runs failed")
    assert sorted(p.name.split("-")[0] for p in results.rglob("*.json")) == ["seed0", "seed1"]


def test_an_unknown_hyper_parameter_in_a_grid_file(monkeypatch, capsys, tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(f"[[methods]]\nname = '{RIDGE}'\nparams = {{ ridge = 1.0, rige = 2.0 }}\n"
                    "[[datasets]]\nname = 'wikipedia'\nsynthetic = true\n")
    code, err = zsbench(monkeypatch, capsys, "run", "--config", str(grid), "--results", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "methods[0] params", "no hyper-parameter 'rige'")
    assert not (tmp_path / "runs").exists()


# --- the grid, checked whole before any run ------------------------------------------------------------------

@pytest.mark.parametrize("seeds, fragment", [("-1", "seed -1 is negative"), ("0,0", "repeats seed 0"),
                                             ("", "--seeds is empty"), ("0,x", "comma-separated non-negative")])
def test_seeds_must_be_non_negative_unique_and_given(monkeypatch, capsys, tmp_path, seeds, fragment):
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", RIDGE, *TINY, f"--seeds={seeds}",
                        "--results", str(tmp_path / "runs"))
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("param, fragment", [
    ("cfsa.epochs=five", "cfsa.epochs takes int (default 40), got 'five'; e.g. --param cfsa.epochs=40"),
    ("cfsa.epochs=2.5", "cfsa.epochs takes int"),
    ("cfsa.synthesis=1", "cfsa.synthesis takes bool (default true)"),
    ("cfsa.alignment=3", "cfsa.alignment takes str"),
    ("cfsa.epoch=3", "cfsa has no hyper-parameter 'epoch'"),
])
def test_a_param_is_checked_against_its_fields_type_and_named(monkeypatch, capsys, tmp_path, param, fragment):
    code, err = zsbench(monkeypatch, capsys, "run", "--methods", "cfsa", *TINY, "--param", param,
                        "--results", str(tmp_path / "runs"))
    assert_one_line_error(code, err, f"--param {param}", fragment)


def test_a_param_of_the_right_type_is_taken_as_given():
    from benchmark.registry import coerce_param

    # hand-checked: an int for a float field stays an int (the run's identity is what it was before)
    assert [coerce_param("cfsa", "lr", 1, "x"), coerce_param("dadn", "max_steps_per_epoch", "none", "x"),
            coerce_param("cfsa", "alignment", "mmd", "x")] == [1, None, "mmd"]


def test_every_missing_dataset_is_listed_at_once_with_its_prepare_command(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ZSBENCH_DATA", str(tmp_path / "no-data"))
    paper = Path(__file__).resolve().parents[1] / "configs" / "paper.toml"
    code, err = zsbench(monkeypatch, capsys, "run", "--config", str(paper), "--results", str(tmp_path / "runs"))
    assert code == 2 and err.startswith("error: 6 of the grid's 6 datasets cannot be loaded; no run started")
    for name in ("wikipedia", "pascal-sentences", "nus-wide", "xmedianet", "sketchy", "tu-berlin"):
        assert f"zsbench datasets prepare {name} --from PATH" in err
    assert len(err.strip().splitlines()) == 7 and not (tmp_path / "runs").exists()
