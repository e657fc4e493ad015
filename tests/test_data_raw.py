"""Raw releases: tiny generated copies of each original layout -> prepare -> check -> a run, and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.contract import ZSBenchError
from benchmark.datasets import data_root, load_dataset
from benchmark.datasets.features import FeatureExtractor, make_backbone
from benchmark.datasets.prepare import RawOptions, prepare_dataset
from benchmark.datasets.specs import get_spec
from tests.raw_layouts import (
    drawing,
    make_folders,
    make_pascal_sentences_raw,
    make_sketchy_raw,
    make_tu_berlin_raw,
    make_wikipedia_raw,
)

SMALL = ("--image-size", "32")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _raises(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ZSBenchError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 500, message
    return message


@pytest.fixture
def extractor(tmp_path_factory):
    from tests.conftest import _session_cache

    return FeatureExtractor(make_backbone("efficientnet-lite0", 32), cache_dir=_session_cache(tmp_path_factory))


@pytest.fixture(scope="module")
def sketchy_layout(tmp_path_factory) -> Path:
    return make_sketchy_raw(tmp_path_factory.mktemp("sketchy-release"))


@pytest.fixture(scope="module")
def tu_berlin_layout(tmp_path_factory) -> Path:
    return make_tu_berlin_raw(tmp_path_factory.mktemp("tu-berlin-release"))


def _copy(layout: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(layout, tmp_path / layout.name))


def _manifest(name: str) -> dict:
    return json.loads((data_root() / name / "manifest.json").read_text())


# --- the acceptance: only the raw Sketchy folders, prepare, then run -------------------------------------

@pytest.mark.slow
def test_raw_sketchy_folders_prepare_then_run_without_any_list_file(sketchy_layout, tmp_path):
    assert not list(sketchy_layout.rglob("*.txt"))  # no list file anywhere
    out = _cli("datasets", "prepare", "sketchy", "--from", str(sketchy_layout), *SMALL)
    assert "sketchy-raw" in out and "ok" in out
    results = tmp_path / "runs"
    _cli("run", "--methods", "semantic-regression", "--dataset", "sketchy", "--results", str(results))
    record = json.loads(next(results.rglob("*.json")).read_text())
    spec = get_spec("sketchy")
    assert record["source"] == "real" and record["method"] == "semantic-regression"
    assert record["split"]["sha256"] == spec.splits[spec.default_split].sha256
    assert 0 < record["metrics"]["sketch->image"]["mAP@all"] <= 1
    assert record["dataset"]["converter"]["format"] == "sketchy-raw"
    ds = load_dataset("sketchy")
    n = len(spec.class_names)
    # every class: 2 sketches of tx_000000000000 (the augmentation folder ignored), 1 photo + 1 extended one
    # (the extended set's copy of the base photo kept once)
    assert np.array_equal(np.bincount(ds.labels["sketch"], minlength=n), np.full(n, 2))
    assert np.array_equal(np.bincount(ds.labels["image"], minlength=n), np.full(n, 2))
    assert _manifest("sketchy")["dedup"] == {"sketch": 0, "image": n}
    assert record["dataset"]["dedup"] == {"sketch": 0, "image": n}


def test_sketchy_rendered_prefix_variants_and_limit(tmp_path, extractor):
    root = make_sketchy_raw(tmp_path / "release", sketches=3, extended=0, rendered=True)
    summary = prepare_dataset("sketchy", root, extractor=extractor)
    assert summary["format"] == "sketchy-raw"
    assert summary["modalities"]["sketch"]["items"] == 3 * 125
    assert "not found" in _manifest("sketchy")["converter"]["extended_photos"]
    summary = prepare_dataset("sketchy", root, extractor=extractor,
                              raw=RawOptions(variants=("tx_000100000000",), limit_per_class=4))
    assert summary["modalities"]["sketch"]["items"] == 4 * 125  # 6 per class, first 4 kept
    assert _manifest("sketchy")["converter"]["sketchy_variants"] == ["tx_000000000000", "tx_000100000000"]
    _raises("no augmentation folder tx_000000000110", prepare_dataset, "sketchy", root, extractor=extractor,
            raw=RawOptions(variants=("tx_000000000110",)))


# --- TU-Berlin -------------------------------------------------------------------------------------------------

def test_tu_berlin_raw_maps_typo_folders_and_spaces(tu_berlin_layout, extractor):
    summary = prepare_dataset("tu-berlin", tu_berlin_layout, extractor=extractor)
    assert summary["format"] == "tu-berlin-raw"
    ds = load_dataset("tu-berlin")
    spec = get_spec("tu-berlin")
    assert ds.labels["sketch"].size == ds.labels["image"].size == 250
    photo_folders = {Path(p).parent.name for p in (data_root() / "tu-berlin" / "image" / "paths.txt").read_text().split()}
    assert {"tromobone", "spacesshuttle", "hotairballoon"} <= photo_folders  # typo and squashed folders read
    index = spec.name_index
    trombone = index.id_of("trombone")
    paths = (data_root() / "tu-berlin" / "image" / "paths.txt").read_text().splitlines()
    assert "tromobone" in paths[int(np.flatnonzero(ds.labels["image"] == trombone)[0])]
    assert summary["split"]["sha256"] == spec.splits[spec.default_split].sha256


def test_empty_class_folder_is_an_error_naming_it(tu_berlin_layout, tmp_path, extractor):
    root = _copy(tu_berlin_layout, tmp_path)
    folder = root / "png" / "alarm clock"
    for f in folder.iterdir():
        f.unlink()
    message = _raises("empty class folder", prepare_dataset, "tu-berlin", root, extractor=extractor)
    assert str(folder) in message and "delete the folder" in message


def test_missing_class_folder_and_unknown_class_are_errors(tu_berlin_layout, tmp_path, extractor):
    root = _copy(tu_berlin_layout, tmp_path)
    shutil.rmtree(root / "png" / "zebra")
    message = _raises("class 'zebra' has no sketch items", prepare_dataset, "tu-berlin", root, extractor=extractor)
    assert "needs its sketch folder" in message
    (root / "png" / "zebra").mkdir()
    shutil.copy(next((root / "png" / "ant").iterdir()), root / "png" / "zebra" / "1.png")
    (root / "png" / "unicorn").mkdir()
    shutil.copy(next((root / "png" / "ant").iterdir()), root / "png" / "unicorn" / "1.png")
    message = _raises("unknown class name 'unicorn'", prepare_dataset, "tu-berlin", root, extractor=extractor)
    assert str(root / "png" / "unicorn") in message


def test_broken_image_is_named_or_left_out(tu_berlin_layout, tmp_path, extractor):
    root = _copy(tu_berlin_layout, tmp_path)
    broken = next((root / "ImageResized" / "tromobone").iterdir())
    broken.write_bytes(b"not a jpeg")
    message = _raises("cannot decode image", prepare_dataset, "tu-berlin", root, extractor=extractor)
    assert str(broken) in message and "--skip-broken" in message
    (root / "ImageResized" / "tromobone" / "extra.JPEG").write_bytes(drawing(1, 16, True, fmt="JPEG"))
    summary = prepare_dataset("tu-berlin", root, extractor=extractor, raw=RawOptions(skip_broken=True))
    assert summary["modalities"]["image"]["items"] == 250  # 251 files, the broken one left out
    assert summary["skipped_broken"] == [str(broken)]
    assert _manifest("tu-berlin")["converter"]["skipped_broken"] == [str(broken)]


def test_extraction_resumes_after_an_interruption(tu_berlin_layout, tmp_path):
    def fresh():
        return FeatureExtractor(make_backbone("efficientnet-lite0", 32), cache_dir=tmp_path / "cache", batch_size=50)

    first = fresh()
    calls = []

    def interrupt(modality, done, total):
        calls.append(done)
        if done >= 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("tu-berlin", tu_berlin_layout, extractor=first, progress=interrupt)
    assert first.computed == 100
    second = fresh()
    prepare_dataset("tu-berlin", tu_berlin_layout, extractor=second)
    assert second.hits == 100 and second.computed == 400  # the 100 done before are not redone


def test_cuda_without_a_gpu_is_one_line_error(tu_berlin_layout):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    extractor = FeatureExtractor(make_backbone("efficientnet-lite0", 32), device="cuda", use_cache=False)
    _raises("sees no CUDA device; use --device cpu", prepare_dataset, "tu-berlin", tu_berlin_layout,
            extractor=extractor)


# --- Wikipedia -------------------------------------------------------------------------------------------------

def test_wikipedia_raw_parts_pairs_and_protocol(tmp_path, extractor):
    root = make_wikipedia_raw(tmp_path / "wikipedia_dataset", train=3, test=2)
    summary = prepare_dataset("wikipedia", root, extractor=extractor)
    assert summary["format"] == "wikipedia-raw"
    ds = load_dataset("wikipedia")
    assert ds.paired and np.array_equal(ds.labels["image"], ds.labels["text"])
    assert np.bincount(ds.parts["image"]).tolist() == [30, 20]
    assert np.array_equal(np.bincount(ds.labels["text"][ds.parts["text"] == 0]), np.full(10, 3))
    assert ds.features["text"].shape[1] == 50  # glove by default
    images = (data_root() / "wikipedia" / "image" / "paths.txt").read_text().splitlines()
    texts = (data_root() / "wikipedia" / "text" / "paths.txt").read_text().splitlines()
    lists = (root / "trainset_txt_img_cat.list").read_text().splitlines()
    pairs = {(f"texts/{t}.xml", i) for t, i, _ in (line.split("\t") for line in lists)}
    assert all((t, Path(i).stem) in pairs for t, i in zip(texts, images, strict=True) if "train" in t)
    assert "text: mean GloVe" in _manifest("wikipedia")["features"]
    _cli("run", "--methods", "random", "--dataset", "wikipedia", "--results", str(tmp_path / "runs"))


def test_tfidf_svd_learns_from_seen_class_training_texts_only(tmp_path, extractor):
    root = make_wikipedia_raw(tmp_path / "wikipedia_dataset", train=4, test=2)
    spec = get_spec("wikipedia")
    split = spec.split()
    unseen_ids = {spec.class_names.index(n) + 1 for n in split.unseen}
    seen_ids = {spec.class_names.index(n) + 1 for n in split.seen}

    def prepared() -> np.ndarray:  # a copy: the next prepare rewrites the memory-mapped file
        prepare_dataset("wikipedia", root, extractor=extractor, raw=RawOptions(text_encoder="tfidf-svd"))
        ds = load_dataset("wikipedia")
        return np.array(ds.features["text"]), ds

    def rewrite(list_name: str, category_ids: set[int], text: str) -> None:
        for line in (root / list_name).read_text().splitlines():
            text_id, _, category = line.split("\t")
            if int(category) in category_ids:
                (root / "texts" / f"{text_id}.xml").write_text(f"<document><text>{text}</text></document>")

    before, ds = prepared()
    fit_line = _manifest("wikipedia")["features"]
    assert f"fitted on {4 * len(split.seen)} seen-class training texts" in fit_line and "split dadn" in fit_line
    seen_train = (ds.parts["text"] == 0) & np.isin(ds.labels["text"], [i - 1 for i in seen_ids])
    rewrite("trainset_txt_img_cat.list", unseen_ids, "zebra quantum volcano harbour")
    rewrite("testset_txt_img_cat.list", unseen_ids | seen_ids, "zebra quantum volcano harbour")
    after, _ = prepared()
    assert not np.allclose(after[~seen_train], before[~seen_train], atol=1e-3)  # the rewritten texts moved
    np.testing.assert_allclose(after[seen_train], before[seen_train], atol=1e-5)  # the fit did not
    rewrite("trainset_txt_img_cat.list", {min(seen_ids)}, "zebra quantum volcano harbour piano")
    changed, _ = prepared()
    assert not np.allclose(changed[seen_train], after[seen_train], atol=1e-3)


def test_xml_without_text_element_is_one_line_error(tmp_path, extractor):
    root = make_wikipedia_raw(tmp_path / "wikipedia_dataset", train=2, test=1)
    xml = sorted((root / "texts").iterdir())[3]
    xml.write_text("<document><title>only a title</title></document>")
    message = _raises("has no text in a <text> element", prepare_dataset, "wikipedia", root, extractor=extractor)
    assert str(xml) in message and "restore the file" in message


def test_text_without_known_words_names_its_file(tmp_path, extractor):
    root = make_wikipedia_raw(tmp_path / "wikipedia_dataset", train=2, test=1)
    xml = sorted((root / "texts").iterdir())[0]
    xml.write_text("<document><text>\u2603 \u2713 \u2026</text></document>")
    message = _raises("has no word GloVe knows", prepare_dataset, "wikipedia", root, extractor=extractor)
    assert str(xml) in message and "tfidf-svd" in message


# --- Pascal Sentences ------------------------------------------------------------------------------------------

def test_pascal_sentences_raw_parts_and_dotless_sentence_files(tmp_path, extractor):
    root = make_pascal_sentences_raw(tmp_path / "pascal", per_class=5)
    summary = prepare_dataset("pascal-sentences", root, extractor=extractor)
    assert summary["format"] == "pascal-sentences-raw"
    ds = load_dataset("pascal-sentences")
    assert np.bincount(ds.parts["text"]).tolist() == [80, 20]  # 4 of 5 per class to train
    assert np.array_equal(np.bincount(ds.labels["image"]), np.full(20, 5))
    texts = (data_root() / "pascal-sentences" / "text" / "paths.txt").read_text().splitlines()
    assert any(t.endswith("txt") and not t.endswith(".txt") for t in texts)  # the mirror's dotless names


def test_pascal_broken_image_drops_its_pair(tmp_path, extractor):
    root = make_pascal_sentences_raw(tmp_path / "pascal", per_class=5)
    broken = sorted((root / "dataset" / "cat").iterdir())[0]
    broken.write_bytes(b"\x89PNG broken")
    summary = prepare_dataset("pascal-sentences", root, extractor=extractor, raw=RawOptions(skip_broken=True))
    assert summary["modalities"]["image"]["items"] == summary["modalities"]["text"]["items"] == 99
    texts = (data_root() / "pascal-sentences" / "text" / "paths.txt").read_text()
    assert broken.stem not in texts


def test_pascal_image_without_sentences_is_an_error(tmp_path, extractor):
    root = make_pascal_sentences_raw(tmp_path / "pascal", per_class=5, dotless=False)
    orphan = sorted((root / "sentence" / "dog").iterdir())[1]
    orphan.unlink()
    message = _raises("has no sentence file", prepare_dataset, "pascal-sentences", root, extractor=extractor)
    assert orphan.stem in message


# --- folders: a dataset of your own, and a registered one ------------------------------------------------------

OWN_CLASSES = ["cat", "dog", "horse", "sheep", "cow", "bird", "hot air balloon", "teddy_bear"]


def test_folders_own_dataset_normalises_class_folders_and_runs(tmp_path):
    root = make_folders(tmp_path / "mine", OWN_CLASSES, per_class=3)
    (root / "photo" / "hot air balloon").rename(root / "photo" / "Hot-Air_Balloon")  # one class, two spellings
    out_folder = tmp_path / "prepared-mine"
    out = _cli("datasets", "prepare", "farm", "--from", str(root), "--out", str(out_folder), *SMALL,
               "--unseen", "cow,teddy bear", "--tasks", "sketch->photo")
    assert "folders" in out and "zsbench run" in out
    manifest = json.loads((out_folder / "manifest.json").read_text())
    assert manifest["tasks"] == [["sketch", "photo"]] and manifest["eval_protocol"] == "all"
    from benchmark.datasets.names import normalize_class_name

    classes = (out_folder / "classes.txt").read_text().splitlines()
    assert sorted(map(normalize_class_name, classes)) == sorted(map(normalize_class_name, OWN_CLASSES))
    split = json.loads((out_folder / "split.json").read_text())
    assert sorted(split["unseen"]) == ["cow", "teddy_bear"]
    results = tmp_path / "runs"
    _cli("run", "--methods", "semantic-regression", "--dataset", str(out_folder), "--results", str(results))
    record = json.loads(next(results.rglob("*.json")).read_text())
    assert record["split"]["name"] == "own" and record["split"]["sha256"] == manifest["split"]["sha256"]
    assert set(record["metrics"]) == {"sketch->photo"}


def test_folders_own_dataset_with_texts_parts_and_default_split(tmp_path, extractor):
    classes = OWN_CLASSES[:6]
    root = make_folders(tmp_path / "mine", classes, modalities=(("image", "image"), ("text", "text")), per_class=4,
                        parts=True)
    summary = prepare_dataset("mine", root, out=tmp_path / "out", extractor=extractor,
                              raw=RawOptions(paired=True, text_encoder="tfidf-svd"))
    assert summary["registered"] is False
    ds = load_dataset(str(tmp_path / "out"))
    assert ds.paired and ds.eval_protocol == "test->train"
    assert np.bincount(ds.parts["image"]).tolist() == [18, 6]
    assert len(ds.split.unseen) == 2 and set(ds.split.unseen) | set(ds.split.seen) == set(classes)
    assert ds.tasks == (("image", "text"), ("text", "image"))
    again = prepare_dataset("mine", root, out=tmp_path / "out2", extractor=extractor, raw=RawOptions(paired=True))
    assert again["split"]["sha256"] == summary["split"]["sha256"]  # the seeded draw is the same every time


def test_folders_layout_for_a_registered_dataset(tmp_path, extractor):
    spec = get_spec("tu-berlin")
    root = make_folders(tmp_path / "tub", spec.class_names, modalities=(("sketch", "image"), ("image", "image")),
                        per_class=1)
    summary = prepare_dataset("tu-berlin", root, fmt="folders", extractor=extractor)
    assert summary["registered"] and summary["split"]["sha256"] == spec.splits[spec.default_split].sha256
    (root / "image").rename(root / "photo")
    message = _raises("holds modalities", prepare_dataset, "tu-berlin", root, fmt="folders", extractor=extractor)
    assert "tu-berlin needs ['image', 'sketch']" in message


def test_folders_errors_are_one_line(tmp_path, extractor):
    root = make_folders(tmp_path / "mine", OWN_CLASSES, per_class=2)
    (root / "photo" / "cat" / "note.txt").write_text("a cat")
    message = _raises("mixes images and .txt texts", prepare_dataset, "mine", root, extractor=extractor)
    assert str(root / "photo") in message
    (root / "photo" / "cat" / "note.txt").unlink()
    _raises("'sketch->drawing' is not 'query->gallery'", prepare_dataset, "mine", root, extractor=extractor,
            raw=RawOptions(tasks="sketch->drawing"))
    _raises("unknown class name 'unicorn'", prepare_dataset, "mine", root, extractor=extractor,
            raw=RawOptions(unseen="cat,unicorn"))
    few = make_folders(tmp_path / "few", OWN_CLASSES[:3], per_class=1)
    _raises("3 classes; a zero-shot split", prepare_dataset, "few", few, extractor=extractor)


def test_detection_picks_each_layout(tmp_path, sketchy_layout, tu_berlin_layout):
    from benchmark.datasets.converters import detect_format

    assert detect_format(sketchy_layout) == "sketchy-raw"
    assert detect_format(tu_berlin_layout) == "tu-berlin-raw"
    assert detect_format(make_wikipedia_raw(tmp_path / "w", 1, 1)) == "wikipedia-raw"
    assert detect_format(make_pascal_sentences_raw(tmp_path / "p", 1)) == "pascal-sentences-raw"
    assert detect_format(make_folders(tmp_path / "f", OWN_CLASSES[:2], per_class=1)) == "folders"


def test_threaded_decoding_gives_the_same_features(tu_berlin_layout):
    files = sorted((tu_berlin_layout / "ImageResized").rglob("*.JPEG"))[:24]
    items = [f.read_bytes() for f in files]
    serial = FeatureExtractor(make_backbone("efficientnet-lite0", 32), use_cache=False, batch_size=10)(items)
    threaded = FeatureExtractor(make_backbone("efficientnet-lite0", 32), use_cache=False, batch_size=10,
                                workers=3)(items)
    np.testing.assert_array_equal(serial, threaded)
    assert np.abs(serial[0] - serial[1]).max() > 0
