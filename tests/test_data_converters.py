"""Every converter round-trips: public layout -> prepare -> `datasets check` -> a run that writes records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.datasets import load_dataset
from benchmark.datasets.prepare import prepare_dataset
from benchmark.datasets.specs import get_spec


def _cli(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _round_trip(name: str, tmp_path: Path) -> dict:
    out = _cli("datasets", "check", name)
    assert "ok" in out
    results = tmp_path / "runs"
    _cli("run", "--methods", "random", "--dataset", name, "--results", str(results))
    records = sorted(results.rglob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    spec = get_spec(name)
    assert record["source"] == "real"
    assert record["split"]["sha256"] == spec.splits[spec.default_split].sha256
    assert set(record["metrics"]) == {f"{q}->{g}" for q, g in spec.tasks}
    return record


def test_dscmr_mat_round_trip(dscmr_folder, tmp_path):
    summary = prepare_dataset("wikipedia", dscmr_folder)
    assert summary["format"] == "dscmr-mat"
    ds = load_dataset("wikipedia")
    assert ds.paired and set(np.unique(ds.parts["image"])) == {0, 1}
    assert ds.labels["image"].min() == 0 and ds.labels["image"].max() == 9  # 1-based ids detected
    assert isinstance(ds.features["image"], np.memmap)
    record = _round_trip("wikipedia", tmp_path)
    assert record["dataset"]["semantics"].startswith("glove")
    assert record["dataset"]["converter"] == {"format": "dscmr-mat", "label_base": 1}


def test_acmr_pkl_round_trip(acmr_folder, tmp_path):
    summary = prepare_dataset("wikipedia", acmr_folder)
    assert summary["format"] == "acmr-pkl"
    assert summary["modalities"]["text"]["dim"] == 12
    _round_trip("wikipedia", tmp_path)


def test_dadn_txt_round_trip_uses_cate_fea(dadn_folder, tmp_path):
    prepare_dataset("pascal-sentences", dadn_folder)
    ds = load_dataset("pascal-sentences")
    expected = np.loadtxt(dadn_folder / "cate_fea.txt").astype(np.float32)
    np.testing.assert_allclose(ds.class_embeddings, expected, rtol=1e-6)
    assert ds.provenance["semantics"].startswith("cate_fea.txt")
    record = _round_trip("pascal-sentences", tmp_path)
    assert record["dataset"]["semantics"].startswith("cate_fea.txt")


def test_cvae_npy_round_trip_removes_duplicate_gallery_item(cvae_folder, tmp_path):
    summary = prepare_dataset("sketchy", cvae_folder)
    assert summary["dedup"] == {"sketch": 0, "image": 1}
    ds = load_dataset("sketchy")
    n_classes = len(get_spec("sketchy").class_names)
    assert ds.labels["image"].size == n_classes and ds.labels["sketch"].size == n_classes
    record = _round_trip("sketchy", tmp_path)
    assert record["dataset"]["dedup"] == {"sketch": 0, "image": 1}


@pytest.mark.slow
def test_sake_lists_extract_features_and_map_typo_folders(sake_folder, small_extractor, tmp_path):
    seen = []
    summary = prepare_dataset("tu-berlin", sake_folder, extractor=small_extractor,
                              progress=lambda m, done, total: seen.append((m, done, total)))
    assert summary["format"] == "sake-lists"
    assert summary["dedup"] == {"sketch": 0, "image": 1}
    ds = load_dataset("tu-berlin")
    spec = get_spec("tu-berlin")
    present = {spec.class_names[i] for i in np.unique(ds.labels["image"])}
    assert {"trombone", "space shuttle", "banana", "alarm clock"} <= present  # typo folders resolved
    assert ds.features["sketch"].shape[1] == 1280
    assert seen and seen[-1][1] == seen[-1][2]
    # a second prepare reads every feature from the content-hash cache
    before = small_extractor.computed
    prepare_dataset("tu-berlin", sake_folder, extractor=small_extractor)
    assert small_extractor.computed == before
    _round_trip("tu-berlin", tmp_path)


def test_cli_prepare_writes_into_the_data_root(acmr_folder):
    out = _cli("datasets", "prepare", "wikipedia", "--from", str(acmr_folder))
    assert "ok" in out
    assert (Path(os.environ["ZSBENCH_DATA"]) / "wikipedia" / "manifest.json").is_file()


@pytest.mark.parametrize("label_base", [0, 1])
def test_label_base_option_overrides_detection(dscmr_folder, label_base):
    if label_base == 0:  # 1-based ids 1..10 read as 0-based overflow the 10 classes: a clear error
        from benchmark.contract import ZSBenchError

        with pytest.raises(ZSBenchError, match="labels span 1..10"):
            prepare_dataset("wikipedia", dscmr_folder, label_base=0)
    else:
        assert prepare_dataset("wikipedia", dscmr_folder, label_base=1)["classes"] == 10
