"""Shared fixtures: tiny in-memory datasets that train in seconds, and small files generated in exactly the
public layouts the converters read (names, keys, dtypes)."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from benchmark.core.data import Split
from benchmark.core.protocol import ZSDataset
from benchmark.datasets.specs import get_spec

#: Set by .ci/run: CI installs every optional extra, so a test skipped for a missing one is a failure there.
REQUIRE_EXTRAS_ENV = "ZSBENCH_REQUIRE_EXTRAS"
#: Every skip for a missing optional package says how to install it, in these words.
_EXTRA_HINT = re.compile(r"pip install 'zsbench\[(\w+)\]'")


def missing_extra(reason: str) -> str | None:
    """The extra a skip reason says is missing (``pip install 'zsbench[ray]'`` -> ``ray``), else None."""
    found = _EXTRA_HINT.search(reason)
    return found[1] if found else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ZSBENCH_REQUIRE_EXTRAS=1 a skip for a missing optional package fails the test: CI installs the
    extras, so such a skip there means a test it counts on did not run. Other skips (no CUDA device) stand."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get(REQUIRE_EXTRAS_ENV) != "1" or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    extra = missing_extra(reason)
    if extra is not None:
        report.outcome = "failed"
        report.longrepr = (f"{REQUIRE_EXTRAS_ENV}=1 and this test was skipped for a missing extra [{extra}]: "
                           f"{reason}")


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own $ZSBENCH_DATA; the feature cache is shared within the session (content-hashed)."""
    monkeypatch.setenv("ZSBENCH_DATA", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("ZSBENCH_CACHE", str(_session_cache(tmp_path_factory)))


_CACHE: list[Path] = []


def _session_cache(factory) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("cache"))
    return _CACHE[0]


def _class_features(labels: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Features that carry the class (a class centre + noise), so a fitted method has something to learn."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((labels.max() + 1, dim))
    return (centres[labels] + 0.5 * rng.standard_normal((labels.size, dim))).astype(np.float64)


def image_text_arrays(name: str, per_class: int = 4, seed: int = 0):
    """(train, test) parts of an image-text set, each (img float64, txt float64, 0-based labels)."""
    n = len(get_spec(name).class_names)
    parts = []
    for part_seed, count in ((seed, per_class), (seed + 1, max(2, per_class // 2))):
        y = np.repeat(np.arange(n), count)
        parts.append((_class_features(y, 24, part_seed), _class_features(y, 12, part_seed + 10), y))
    return parts


@pytest.fixture
def dscmr_folder(tmp_path) -> Path:
    """DSCMR layout: one variable per .mat, named as the file; labels an (N, 1) column, 1-based ids."""
    from scipy.io import savemat

    folder = tmp_path / "pascal"
    folder.mkdir()
    for part, (img, txt, y) in zip(("train", "test"), image_text_arrays("wikipedia"), strict=True):
        savemat(folder / f"{part}_img.mat", {f"{part}_img": img})
        savemat(folder / f"{part}_txt.mat", {f"{part}_txt": txt})
        savemat(folder / f"{part}_img_lab.mat", {f"{part}_img_lab": (y + 1).reshape(-1, 1).astype(np.uint8)})
    return folder


@pytest.fixture
def acmr_folder(tmp_path) -> Path:
    """ACMR/JFSE layout: python-2-era pickles of float arrays and plain int label lists (1-based, as Wikipedia's)."""
    folder = tmp_path / "wikipedia_dataset"
    folder.mkdir()
    for part, (img, txt, y) in zip(("train", "test"), image_text_arrays("wikipedia"), strict=True):
        for fname, obj in ((f"{part}_img_feats.pkl", img.astype(np.float32)), (f"{part}_txt_vecs.pkl", txt),
                           (f"{part}_labels.pkl", [int(v) + 1 for v in y])):
            with open(folder / fname, "wb") as handle:
                pickle.dump(obj, handle, protocol=2)
    return folder


@pytest.fixture
def dadn_folder(tmp_path) -> Path:
    """DADN layout: whitespace feature rows, `<item> <label>` lists, cate_fea.txt with one class vector a line."""
    folder = tmp_path / "dadn"
    folder.mkdir()
    n = len(get_spec("pascal-sentences").class_names)
    for part, (img, txt, y) in zip(("train", "test"), image_text_arrays("pascal-sentences"), strict=True):
        np.savetxt(folder / f"img_{part}_fea.txt", img, fmt="%.6f")
        np.savetxt(folder / f"txt_{part}_fea.txt", txt, fmt="%.6f")
        for mod in ("img", "txt"):
            rows = "".join(f"{mod}_{part}_{i}.jpg {c}\n" for i, c in enumerate(y))
            (folder / f"{mod}_{part}_list.txt").write_text(rows)
    np.savetxt(folder / "cate_fea.txt", np.random.default_rng(3).standard_normal((n, 300)), fmt="%.6f")
    return folder


SKETCHY_CLASSES = get_spec("sketchy").class_names  # every class has items, as in the real data


@pytest.fixture
def cvae_folder(tmp_path) -> Path:
    """CVAE/IIAE layout: `<prefix>features.npy` (N x D float32) with `<prefix>paths.npy` (bytes paths)."""
    folder = tmp_path / "ZSSBIR_data"
    folder.mkdir()
    names = np.array(SKETCHY_CLASSES)
    y = np.arange(len(SKETCHY_CLASSES))
    sketch_paths = [f"sketch/tx_000000000000/{c}/n{i:05d}-1.png".encode() for i, c in enumerate(names)]
    image_paths = [f"photo/tx_000000000000/{c}/n{i:05d}.jpg".encode() for i, c in enumerate(names)]
    image_paths.append(image_paths[0])  # the same photo listed twice, as in the field's gallery lists
    img = _class_features(np.append(y, y[0]), 32, 1).astype(np.float32)
    img[-1] = img[0]
    np.save(folder / "sketch_vgg_features.npy", _class_features(y, 32, 0).astype(np.float32))
    np.save(folder / "sketch_paths.npy", np.array(sketch_paths))
    np.save(folder / "image_ext_vgg_features.npy", img)
    np.save(folder / "image_ext_paths.npy", np.array(image_paths))
    return folder


def _tu_berlin_image_folders() -> dict[str, str]:
    """Canonical class -> the photo folder name the extended TU-Berlin set uses (typos and squashed names)."""
    from benchmark.datasets.specs import CLASSES_DIR

    rows = (CLASSES_DIR / "tu-berlin-typos.txt").read_text().splitlines()
    return {canonical: folder for folder, canonical in (row.split("\t") for row in rows if row.strip())}


@pytest.fixture
def sake_folder(tmp_path) -> Path:
    """SAKE layout: raw images under class folders (sketches under the canonical names, photos under TU-Berlin's
    typo folders) and `path label` lists; one sketch and one photo per class, one photo listed twice."""
    from PIL import Image, ImageDraw

    root = tmp_path / "dataset"
    lists = root / "TUBerlin" / "zeroshot"
    lists.mkdir(parents=True)
    rng = np.random.default_rng(0)
    photo_folders = _tu_berlin_image_folders()
    lines = {"png_ready_filelist_train.txt": [], "ImageResized_ready_filelist_train.txt": []}
    for label, class_name in enumerate(get_spec("tu-berlin").class_names):
        for kind, list_name, ext, folder_name in (
                ("png", "png_ready_filelist_train.txt", "png", class_name),
                ("ImageResized", "ImageResized_ready_filelist_train.txt", "jpg",
                 photo_folders.get(class_name, class_name))):
            rel = f"TUBerlin/{kind}/{folder_name}/0.{ext}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            image = Image.new("RGB", (40, 40), "white")
            draw = ImageDraw.Draw(image)
            box = rng.integers(2, 38, 4)
            draw.ellipse([min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]) + 1,
                          max(box[1], box[3]) + 1], outline=(label % 256, 0, 0), width=2)
            image.save(root / rel)
            lines[list_name].append(f"{rel} {label}")
    lines["ImageResized_ready_filelist_train.txt"].append(lines["ImageResized_ready_filelist_train.txt"][0])
    for name, rows in lines.items():
        (lists / name).write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def small_extractor(tmp_path_factory):
    from benchmark.datasets.features import FeatureExtractor, make_backbone

    return FeatureExtractor(make_backbone("efficientnet-lite0", 64), cache_dir=_session_cache(tmp_path_factory))




def make_tiny_dataset(paired: bool = False, n_classes: int = 6, n_unseen: int = 2, per_class: int = 12,
                      dims=(24, 16), seed: int = 0, name: str = "tiny", embedding_dim: int = 8,
                      extra_per_class: int = 0, holdout_fraction: float = 0.2) -> ZSDataset:
    """Class prototypes in an ``embedding_dim``-d semantic space, mapped linearly (plus noise) into each modality.

    The first ``n_unseen`` classes are unseen. Paired: modalities image and text, row i of both is one item,
    every 4th item a test item, tasks in both directions. Unpaired: sketch and image, and the image modality
    has ``extra_per_class`` more items per class than the sketch one (unequal sizes, as in real sketch data).
    """
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_classes, embedding_dim)).astype(np.float32)
    class_names = tuple(f"class{i}" for i in range(n_classes))
    modalities = ("image", "text") if paired else ("sketch", "image")
    labels = np.repeat(np.arange(n_classes), per_class)
    features, parts, modality_labels = {}, {}, {}
    shared = emb[labels] + 0.3 * rng.standard_normal((labels.size, embedding_dim)).astype(np.float32)
    for i, (m, d) in enumerate(zip(modalities, dims, strict=True)):
        y = labels if paired or i == 0 else np.repeat(np.arange(n_classes), per_class + extra_per_class)
        W = rng.standard_normal((embedding_dim, d)).astype(np.float32)
        latent = shared if paired else emb[y] + 0.3 * rng.standard_normal((y.size, embedding_dim)).astype(np.float32)
        features[m] = (latent @ W + 0.1 * rng.standard_normal((y.size, d))).astype(np.float32)
        parts[m] = (np.arange(y.size) % 4 == 0).astype(np.int8)  # every 4th item is a test item
        modality_labels[m] = y.copy()
    split = Split(dataset=name, name="tiny", seen=class_names[n_unseen:], unseen=class_names[:n_unseen],
                  holdout_fraction=holdout_fraction, holdout_seed=0, sha256="0" * 64, path="<memory>")
    tasks = (("image", "text"), ("text", "image")) if paired else (("sketch", "image"),)
    return ZSDataset(name=name, source="synthetic", modalities=modalities, features=features,
                     labels=modality_labels, class_names=class_names, class_embeddings=emb,
                     split=split, tasks=tasks, eval_protocol="test->train" if paired else "all", paired=paired,
                     parts=parts if paired else None, provenance={"semantics": "random", "features": "tiny"})


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_worker():
    """Every test process (one per core under pytest-xdist) computes on one torch thread: tiny networks gain
    nothing from threads, and several processes each with a pool per core oversubscribe the machine."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def tiny_sketch():
    return make_tiny_dataset(paired=False)


@pytest.fixture
def tiny_paired():
    return make_tiny_dataset(paired=True)


def run_method(method: str, ds: ZSDataset, seed: int, store, params: dict | None = None, force: bool = False,
               threads: int = 1, device: str = "cpu", selection: dict | None = None, budget: str = "cpu",
               oracle_every: int = 0, **kwargs):
    """Fit and record ``method`` on the in-memory ``ds`` (its stage's view) as the runner does for a grid."""
    from benchmark.execution.plan import make_spec
    from benchmark.execution.runner import run_one

    spec = make_spec(method, seed, ds.name, params, ds.stage, threads, device, selection, budget=budget,
                     oracle_every=oracle_every, scenario=ds.scenario)
    return run_one(spec, ds, store, force, **kwargs)
