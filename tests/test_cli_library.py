"""What the command modules print comes from library functions: each called here directly, without click."""

from __future__ import annotations

import os

import pytest

from benchmark.contract import ZSBenchError
from tests.test_report_output import _sidecar_run


def test_listing_has_every_registered_dataset_with_its_default_split_first():
    from benchmark.datasets.catalog import listing
    from benchmark.datasets.specs import SPECS

    rows = listing()
    assert [r["name"] for r in rows] == list(SPECS)
    for row in rows:
        assert row["splits"][0] == SPECS[row["name"]].default_split
        assert isinstance(row["prepared"], bool) and row["classes"] == len(SPECS[row["name"]].class_names)


def test_check_dataset_says_how_to_prepare_missing_real_data(tmp_path, monkeypatch):
    from benchmark.datasets.catalog import check_dataset

    monkeypatch.setenv("ZSBENCH_DATA", str(tmp_path))
    with pytest.raises(ZSBenchError, match="zsbench datasets prepare wikipedia --from PATH"):
        check_dataset("wikipedia")
    with pytest.raises(ZSBenchError, match="atlantis"):
        check_dataset("atlantis")


def test_build_embedded_reports_through_its_callbacks(monkeypatch, capsys):
    from benchmark.cli.progress import _build_embedded
    from benchmark.datasets import emoji
    from benchmark.datasets.catalog import build_embedded

    built = []

    def fake_ensure(semantics=None, progress=None, rebuild=False):
        for done in range(3):
            progress("sketch", done + 1, 3)
        built.append((semantics, rebuild))
        return emoji.cache_folder(emoji.text_encoder_for(semantics)), True

    monkeypatch.setattr(emoji, "is_built", lambda semantics=None: False)
    monkeypatch.setattr(emoji, "ensure_emoji", fake_ensure)
    events, steps = [], []
    folders = build_embedded(["emoji", "wikipedia"], False, "minilm", on_progress=lambda *a: steps.append(a),
                             on_event=events.append)
    assert built == [("minilm", False)] and folders == [emoji.cache_folder("minilm")]
    assert steps == [("sketch", 1, 3), ("sketch", 2, 3), ("sketch", 3, 3)]
    assert events[0].startswith("emoji: first use, building it in ") and events[1].startswith("emoji: built in ")
    assert build_embedded(["emoji"], True, None) == []  # the synthetic stand-in is never built
    _build_embedded(["emoji"], False, None)  # the command's wrapper: bars, then the two lines on stderr
    err = capsys.readouterr().err
    assert "emoji: first use, building it in" in err and "emoji: built in" in err


def test_describe_methods_names_each_class():
    from benchmark.registry import describe_methods

    rows = {r["name"]: r for r in describe_methods()}
    assert rows["cfsa"]["class"] == "cfsa.method:CFSA"
    assert set(rows["cfsa"]) == {"name", "class", "overrides", "quick_params", "search_space"}


def test_export_runs_filters_by_method_and_dataset(tmp_path):
    from benchmark.report.export import export_runs

    root = _sidecar_run(tmp_path, ("sketch+image", "image+text"))
    written, tied = export_runs(root, tmp_path / "out", methods=["cca"], dataset="emoji")
    assert written == 3 and tied >= 0
    assert len(list((tmp_path / "out").rglob("*.qrels"))) == 3
    with pytest.raises(ZSBenchError, match="nothing exported"):
        export_runs(root, tmp_path / "none", methods=["cfsa"])


def test_clean_after_interrupt_removes_unheld_locks_and_fresh_temps(tmp_path):
    from benchmark.core.store import ResultStore

    folder = tmp_path / "emoji-embedded" / "cca"
    folder.mkdir(parents=True)
    lock, temp, record = folder / "seed0-x.lock", folder / ".seed0-x.json.1.tmp", folder / "seed0-x.json"
    for path in (lock, temp, record):
        path.write_text("{}")
    os.utime(temp)  # fresh: the ordinary clean-up would keep it
    assert sorted(ResultStore(tmp_path).clean_after_interrupt()) == sorted([lock, temp])
    assert record.is_file()


def test_run_perf_train_checks_its_arguments():
    from benchmark.perf.train import run_perf_train

    with pytest.raises(ZSBenchError, match="times CFSA variants"):
        run_perf_train("cca")
    with pytest.raises(ZSBenchError, match="two or more positive sizes"):
        run_perf_train(dims="3")
    with pytest.raises(ZSBenchError, match="comma-separated integers"):
        run_perf_train(dims="a,b")
