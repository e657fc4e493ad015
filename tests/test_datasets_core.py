"""Dataset specs, frozen split files and their hashes, name normalisation, semantics, synthetic stand-ins."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.contract import ZSBenchError
from benchmark.datasets.names import ClassNameIndex, normalize_class_name
from benchmark.datasets.semantics import glove_embeddings, name_words
from benchmark.datasets.specs import SPECS, get_spec
from benchmark.datasets.splits import load_split
from benchmark.datasets.synthetic import make_synthetic


@pytest.mark.parametrize("dataset", list(SPECS))
def test_every_split_file_matches_its_registered_hash(dataset):
    spec = SPECS[dataset]
    for name in spec.splits:
        split = spec.split(name)
        assert hashlib.sha256(Path(split.path).read_bytes()).hexdigest() == spec.splits[name].sha256 == split.sha256
        assert set(split.seen).isdisjoint(split.unseen)
        assert set(split.seen) | set(split.unseen) == set(spec.class_names)


def test_published_split_sizes():
    assert len(get_spec("sketchy").split("sake-25").unseen) == 25
    assert len(get_spec("sketchy").split("eccv-21").unseen) == 21
    assert len(get_spec("tu-berlin").split("sake-30").unseen) == 30
    assert len(get_spec("xmedianet").split().unseen) == 100
    wiki = get_spec("wikipedia").split()
    assert wiki.unseen == ("art", "geography", "literature", "music", "sport")  # 1-based ids 1, 3, 5, 7, 9


def test_tampered_split_file_is_refused(tmp_path):
    spec = get_spec("tu-berlin")
    ref = spec.splits["sake-30"]
    original = spec.split("sake-30")
    copy = tmp_path / "sake-30.json"
    shutil.copy(original.path, copy)
    data = json.loads(copy.read_text())
    data["unseen"][0], data["seen"][0] = data["seen"][0], data["unseen"][0]
    copy.write_text(json.dumps(data))
    with pytest.raises(ZSBenchError, match="registry expects"):
        load_split(copy, ref.sha256)
    assert load_split(copy, None).sha256 == hashlib.sha256(copy.read_bytes()).hexdigest()


def test_unknown_split_name_lists_the_known_ones():
    with pytest.raises(ZSBenchError, match="sake-25, eccv-21, sem-pcyc-25"):
        get_spec("sketchy").split("nope")


def test_name_normalisation_and_typos():
    assert normalize_class_name("hot-air_balloon") == normalize_class_name("hot air balloon") == "hot_air_balloon"
    index = get_spec("tu-berlin").name_index
    assert index.id_of("Hot_Air_Balloon") == index.id_of("hot air balloon") == index.id_of("hotairballoon")
    assert get_spec("tu-berlin").class_names[index.id_of("spacesshuttle")] == "space shuttle"
    assert get_spec("tu-berlin").class_names[index.id_of("tromobone")] == "trombone"
    with pytest.raises(ZSBenchError, match="unknown class name 'unicorn'"):
        index.id_of("unicorn")
    with pytest.raises(ZSBenchError, match="normalise to the same key"):
        ClassNameIndex(["hot air", "hot-air"])


def test_glove_semantics_average_words_and_split_compounds():
    assert name_words("bear (animal)") == ["bear", "animal"]
    both = glove_embeddings(["ice cream"])
    parts = glove_embeddings(["ice", "cream"])
    np.testing.assert_allclose(both[0], parts.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(glove_embeddings(["tablelamp"]), glove_embeddings(["table lamp"]))
    with pytest.raises(ZSBenchError, match="no GloVe vector"):
        glove_embeddings(["qzxqzxq"], dataset="mine")


def test_synthetic_stand_in_keeps_the_real_classes_split_and_sizes():
    ds = make_synthetic("tu-berlin", scale=0.002)
    assert ds.source == "synthetic" and ds.class_names == get_spec("tu-berlin").class_names
    assert ds.split.name == "sake-30" and len(ds.unseen_classes) == 30
    assert ds.features["sketch"].shape[1] == 4096 and ds.features["image"].dtype == np.float32
    assert ds.provenance["semantics"].startswith("glove")
    again = make_synthetic("tu-berlin", scale=0.002)
    np.testing.assert_array_equal(ds.features["image"], again.features["image"])


def test_synthetic_image_text_is_paired_with_parts():
    ds = make_synthetic("wikipedia", scale=0.1)
    assert ds.paired and ds.features["text"].shape[1] == 300
    np.testing.assert_array_equal(ds.labels["image"], ds.labels["text"])
    assert set(np.unique(ds.parts["image"])) == {0, 1}
    assert make_synthetic("xmedianet", scale=0.01).provenance["semantics"].startswith("random")


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        make_synthetic("wikipedia", scale=2.0)
