"""Bad inputs fail with one clear line: missing file, wrong shape, NaN, unknown class, tampered split."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.contract import ZSBenchError
from benchmark.datasets import load_dataset
from benchmark.datasets.prepare import prepare_dataset
from benchmark.datasets.prepared import ModalityData, check_prepared, load_prepared, write_prepared
from benchmark.datasets.specs import get_spec
from benchmark.datasets.splits import write_split_file


def _raises(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ZSBenchError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_missing_file_names_the_file(dscmr_folder):
    (dscmr_folder / "test_txt.mat").unlink()
    message = _raises("missing file", prepare_dataset, "wikipedia", dscmr_folder)
    assert "test_txt.mat" in message


def test_wrong_shape_is_an_error(acmr_folder):
    with open(acmr_folder / "train_img_feats.pkl", "wb") as handle:
        pickle.dump(np.zeros((3, 4, 5), dtype=np.float32), handle, protocol=2)
    _raises(r"shape \(3, 4, 5\)", prepare_dataset, "wikipedia", acmr_folder)


def test_label_count_mismatch_is_an_error(acmr_folder):
    with open(acmr_folder / "test_labels.pkl", "wb") as handle:
        pickle.dump([1, 2, 3], handle, protocol=2)
    _raises("3 labels for", prepare_dataset, "wikipedia", acmr_folder)


def test_nan_features_are_an_error(dadn_folder):
    rows = (dadn_folder / "img_train_fea.txt").read_text().splitlines()
    rows[2] = " ".join(["nan"] * len(rows[2].split()))
    (dadn_folder / "img_train_fea.txt").write_text("\n".join(rows) + "\n")
    _raises(r"NaN or inf \(first rows \[2\]\)", prepare_dataset, "pascal-sentences", dadn_folder)


def test_unknown_class_name_is_an_error(cvae_folder):
    paths = np.load(cvae_folder / "sketch_paths.npy")
    paths[0] = b"sketch/tx_000000000000/unicorn/n1-1.png"
    np.save(cvae_folder / "sketch_paths.npy", paths)
    message = _raises("unknown class name 'unicorn'", prepare_dataset, "sketchy", cvae_folder)
    assert "sketch" in message


def test_prepared_folder_with_nan_fails_check(cvae_folder):
    prepare_dataset("sketchy", cvae_folder)
    from benchmark.datasets import data_root

    folder = data_root() / "sketchy"
    X = np.load(folder / "image" / "features.npy")
    X[4, 0] = np.nan
    np.save(folder / "image" / "features.npy", X)
    _raises(r"NaN or inf \(first rows \[4\]\)", check_prepared, folder, get_spec("sketchy"))


def test_prepared_folder_with_wrong_shape_fails_check(cvae_folder):
    prepare_dataset("sketchy", cvae_folder)
    from benchmark.datasets import data_root

    folder = data_root() / "sketchy"
    np.save(folder / "sketch" / "labels.npy", np.zeros(5, dtype=np.int64))
    _raises("feature rows but 5 labels", check_prepared, folder, get_spec("sketchy"))


def test_missing_prepared_data_names_folder_prepare_and_synthetic():
    message = _raises("no prepared tu-berlin data", load_dataset, "tu-berlin")
    assert "zsbench datasets prepare tu-berlin --from PATH" in message and "--synthetic" in message


def test_cli_prints_one_line_error(dscmr_folder):
    (dscmr_folder / "train_img.mat").unlink()
    result = CliRunner().invoke(cli, ["datasets", "prepare", "wikipedia", "--from", str(dscmr_folder),
                                      "--format", "dscmr-mat"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ZSBenchError) and "train_img.mat" in str(result.exception)


def _own_folder(tmp_path):
    """A hand-built prepared folder for a dataset of one's own (the documented layout)."""
    rng = np.random.default_rng(0)
    classes = ["cat", "dog", "horse", "sheep", "cow", "bird"]
    y = np.repeat(np.arange(6), 5)
    split = write_split_file(tmp_path / "split-src.json", "farm", "mine", classes[:4], classes[4:], "hand-made")
    assert len(split) == 64
    return write_prepared(
        tmp_path / "farm", name="farm", source="real",
        modalities={m: ModalityData(rng.standard_normal((30, 8)).astype(np.float32), y) for m in ("photo", "drawing")},
        class_names=classes, class_embeddings=rng.standard_normal((6, 5)).astype(np.float32),
        tasks=[("drawing", "photo")], paired=False, eval_protocol="all", semantics="hand-made",
        features_info="random", split_file=tmp_path / "split-src.json")


def test_own_folder_runs_with_dataset_path(tmp_path):
    folder = _own_folder(tmp_path)
    results = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["run", "--methods", "random", "--dataset", str(folder), "--results",
                                      str(results)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads(next(results.rglob("*.json")).read_text())
    assert record["split"]["name"] == "mine" and record["metrics"]["drawing->photo"]["mAP@all"] > 0


def test_tampered_split_file_is_an_error(tmp_path):
    folder = _own_folder(tmp_path)
    data = json.loads((folder / "split.json").read_text())
    data["unseen"].append(data["seen"].pop())
    (folder / "split.json").write_text(json.dumps(data))
    message = _raises("has sha256 .*, its folder's manifest.json records", load_prepared, folder)
    # Its own folder is not in git: the advice names the manifest and the new hash, not git checkout.
    assert "git checkout" not in message and "set the manifest's split sha256 to" in message


def test_nan_features_of_ones_own_folder_stop_the_grid_once_before_any_run(tmp_path):
    """One data error, reported once for the whole grid (2 methods x 3 seeds), not once per run."""
    folder = _own_folder(tmp_path)
    X = np.load(folder / "photo" / "features.npy")
    X[3, 1] = np.nan
    np.save(folder / "photo" / "features.npy", X)
    results = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["run", "--methods", "random,cca", "--dataset", str(folder), "--seeds", "0,1,2",
                                      "--results", str(results)])
    message = str(result.exception)
    assert isinstance(result.exception, ZSBenchError) and "no run started" in message
    assert message.count("NaN or inf") == 1 and "rerun to retry" not in message
    assert not list(results.rglob("*.json"))


def test_tampered_registry_split_is_an_error(tmp_path, monkeypatch):
    from benchmark.datasets import specs, splits

    copy = tmp_path / "splits"
    shutil.copytree(splits.SPLITS_DIR, copy)
    path = copy / "emoji" / "emoji-v1.json"
    path.write_text(path.read_text().replace('"sound"', '"sounds"'))
    monkeypatch.setattr(specs, "SPLITS_DIR", copy)
    _raises("restore it", get_spec("emoji").split)


def test_corrupt_image_names_the_file(sake_folder, small_extractor):
    broken = next(sake_folder.rglob("*.jpg"))
    broken.write_bytes(b"not an image")
    _raises(f"{broken.name}: cannot decode image", prepare_dataset, "tu-berlin", sake_folder,
            extractor=small_extractor)
