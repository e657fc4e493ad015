"""Converters from the field's public formats to the prepared format (``zsbench datasets prepare``).

Readers, one per public layout, return the items of each modality with their class references (names, or
integer ids in the dataset's class order); :func:`prepare_dataset` maps them onto the registry's classes
once (through the name index, so spellings and TU-Berlin's folder typos resolve), removes duplicate gallery
items, attaches class semantics and writes the folder. Formats:

- ``sake-lists``: SAKE-style ``relative/path.ext <int label>`` lists (``*sketch*``/``png_ready`` lists are
  sketches, ``*photo*``/``*image*`` lists are images) with ``cname_cid.txt`` / ``cname_cid_zero.txt`` and the
  raw images; features are extracted.
- ``cvae-npy``: CVAE/IIAE ``<prefix>features.npy`` (N x D) with ``<prefix>paths.npy``; the class is the path's
  parent folder.
- ``dscmr-mat``: DSCMR ``train_img.mat``, ``train_txt.mat``, ``train_img_lab.mat``, ``test_*`` (one key per file,
  named as the file), optional ``val_*`` (joins the test part).
- ``acmr-pkl``: ACMR/JFSE ``{train,test}_img_feats.pkl``, ``{train,test}_txt_vecs.pkl``, ``{train,test}_labels.pkl``.
- ``dadn-txt``: DADN whitespace ``{img,txt}_{train,test}_fea.txt``, ``{img,txt}_{train,test}_list.txt`` (label in
  column 2) and ``cate_fea.txt`` (one class vector per line, used as the class embeddings).
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import ZSBenchError


@dataclass
class RawModality:
    features: np.ndarray
    classes: list  # per item: a class name (str) or an integer id
    parts: np.ndarray | None = None
    paths: list[str] | None = None


@dataclass
class RawData:
    modalities: dict[str, RawModality]
    features_info: str
    class_embeddings: np.ndarray | None = None
    semantics_info: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _need(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise ZSBenchError(f"missing file {path}; the format expects it (see `zsbench datasets info`)")
    return path


def _as_features(array, where: str) -> np.ndarray:
    X = np.asarray(array)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ZSBenchError(f"{where}: features have shape {X.shape}; expected a 2-d items x dims matrix")
    if not np.issubdtype(X.dtype, np.number):
        raise ZSBenchError(f"{where}: features are not numeric (dtype {X.dtype})")
    X = X.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise ZSBenchError(f"{where}: {bad.size} feature row(s) hold NaN or inf (first rows {bad[:5].tolist()})")
    return X


def _as_labels(array, n_rows: int, where: str) -> np.ndarray:
    y = np.asarray(array)
    if y.ndim == 2 and min(y.shape) > 1:  # one-hot rows
        if y.shape[0] != n_rows:
            y = y.T
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if y.shape[0] != n_rows:
        raise ZSBenchError(f"{where}: {y.shape[0]} labels for {n_rows} feature rows; they must match")
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.equal(np.mod(y, 1), 0)):
        raise ZSBenchError(f"{where}: labels must be integers")
    return y.astype(np.int64)


# --- readers -------------------------------------------------------------------------------------------------

def read_dscmr_mat(folder: Path, **_) -> RawData:
    from scipy.io import loadmat

    def load(key: str, required: bool = True):
        path = folder / f"{key}.mat"
        if not path.is_file():
            if required:
                _need(folder, f"{key}.mat")
            return None
        try:
            mat = loadmat(path)
        except Exception as err:  # scipy raises several kinds for a bad file
            raise ZSBenchError(f"{path} is not a readable .mat file ({err})") from None
        if key not in mat:
            raise ZSBenchError(f"{path} has no variable {key!r} (found {[k for k in mat if not k.startswith('__')]})")
        return mat[key]

    img, txt, labels, parts = [], [], [], []
    for part_id, part in ((0, "train"), (1, "val"), (1, "test")):
        X = load(f"{part}_img", required=part != "val")
        if X is None:
            continue
        X = _as_features(X, f"{folder}/{part}_img.mat")
        T = _as_features(load(f"{part}_txt"), f"{folder}/{part}_txt.mat")
        if T.shape[0] != X.shape[0]:
            raise ZSBenchError(f"{folder}: {part}_img has {X.shape[0]} rows but {part}_txt {T.shape[0]}; "
                               f"pairs must match")
        y = _as_labels(load(f"{part}_img_lab"), X.shape[0], f"{folder}/{part}_img_lab.mat")
        img.append(X)
        txt.append(T)
        labels.append(y)
        parts.append(np.full(X.shape[0], part_id, dtype=np.int8))
    return _paired(img, txt, labels, parts, "DSCMR .mat features")


def _paired(img, txt, labels, parts, info: str, **extra) -> RawData:
    y = np.concatenate(labels)
    p = np.concatenate(parts)
    return RawData({"image": RawModality(np.concatenate(img), list(y), p),
                    "text": RawModality(np.concatenate(txt), list(y), p.copy())}, info, **extra)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles arrays, lists and numbers only: a .pkl from the web must not run code."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("__builtin__", "list"),
               ("_codecs", "encode")}  # protocol-2 pickles store array bytes through _codecs.encode

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def _load_pickle(path: Path):
    try:
        with open(path, "rb") as handle:
            return _NumpyOnlyUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ZSBenchError(f"{path} is not a pickle of arrays ({err})") from None


def read_acmr_pkl(folder: Path, **_) -> RawData:
    img, txt, labels, parts = [], [], [], []
    for part_id, part in ((0, "train"), (1, "test")):
        X = _as_features(_load_pickle(_need(folder, f"{part}_img_feats.pkl")), f"{folder}/{part}_img_feats.pkl")
        T = _as_features(_load_pickle(_need(folder, f"{part}_txt_vecs.pkl")), f"{folder}/{part}_txt_vecs.pkl")
        if T.shape[0] != X.shape[0]:
            raise ZSBenchError(f"{folder}: {part}_img_feats has {X.shape[0]} rows, {part}_txt_vecs {T.shape[0]}")
        y = _as_labels(_load_pickle(_need(folder, f"{part}_labels.pkl")), X.shape[0], f"{folder}/{part}_labels.pkl")
        img.append(X)
        txt.append(T)
        labels.append(y)
        parts.append(np.full(X.shape[0], part_id, dtype=np.int8))
    return _paired(img, txt, labels, parts, "ACMR/JFSE .pkl features")


def _loadtxt(path: Path) -> np.ndarray:
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ZSBenchError(f"{path} is not a whitespace matrix of numbers ({err})") from None


def _list_labels(path: Path) -> np.ndarray:
    labels = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) < 2 or not cols[1].lstrip("-").isdigit():
            raise ZSBenchError(f"{path}:{line_no}: expected '<item> <label> ...', got {line[:60]!r}")
        labels.append(int(cols[1]))
    return np.asarray(labels, dtype=np.int64)


def read_dadn_txt(folder: Path, **_) -> RawData:
    img, txt, labels, parts = [], [], [], []
    for part_id, part in ((0, "train"), (1, "test")):
        X = _as_features(_loadtxt(_need(folder, f"img_{part}_fea.txt")), f"{folder}/img_{part}_fea.txt")
        T = _as_features(_loadtxt(_need(folder, f"txt_{part}_fea.txt")), f"{folder}/txt_{part}_fea.txt")
        img_list, txt_list = _need(folder, f"img_{part}_list.txt"), _need(folder, f"txt_{part}_list.txt")
        y_img = _as_labels(_list_labels(img_list), X.shape[0], str(img_list))
        y_txt = _as_labels(_list_labels(txt_list), T.shape[0], str(txt_list))
        if not np.array_equal(y_img, y_txt):
            raise ZSBenchError(f"{folder}: img_{part}_list and txt_{part}_list disagree; DADN pairs rows by position")
        img.append(X)
        txt.append(T)
        labels.append(y_img)
        parts.append(np.full(X.shape[0], part_id, dtype=np.int8))
    cate = _as_features(_loadtxt(_need(folder, "cate_fea.txt")), f"{folder}/cate_fea.txt")
    digest = hashlib.sha256((folder / "cate_fea.txt").read_bytes()).hexdigest()[:12]
    return _paired(img, txt, labels, parts, "DADN .txt features", class_embeddings=cate,
                   semantics_info=f"cate_fea.txt (DADN class vectors, sha256 {digest}...)")


def _modality_of(name: str) -> str | None:
    low = name.lower()
    if "sketch" in low or "png_ready" in low:
        return "sketch"
    if "photo" in low or "image" in low:
        return "image"
    return None


def read_cvae_npy(folder: Path, **_) -> RawData:
    found: dict[str, list[RawModality]] = {}
    feature_files = sorted(folder.glob("*features.npy"))
    if not feature_files:
        _need(folder, "<prefix>_features.npy")
    for feat_path in feature_files:
        stem = feat_path.name[: -len("features.npy")]
        base = stem[:-4] if stem.endswith("vgg_") else stem
        modality = _modality_of(stem)
        candidates = [folder / f"{base}paths.npy", folder / f"{stem}paths.npy"]
        path_file = next((p for p in candidates if p.is_file()), None)
        if modality is None or path_file is None:
            if modality is not None:
                _need(folder, f"{base}paths.npy")
            continue  # e.g. a model-feature file beside the CNN features
        X = _as_features(np.load(feat_path, allow_pickle=False), str(feat_path))
        paths = [p.decode() if isinstance(p, bytes) else str(p) for p in np.load(path_file, allow_pickle=True)]
        if len(paths) != X.shape[0]:
            raise ZSBenchError(f"{path_file}: {len(paths)} paths for {X.shape[0]} rows of {feat_path.name}")
        classes = [Path(p.replace("\\", "/")).parent.name for p in paths]
        found.setdefault(modality, []).append(RawModality(X, classes, None, paths))
    if set(found) != {"sketch", "image"}:
        raise ZSBenchError(f"{folder}: need sketch and image *features.npy files with *paths.npy beside them; "
                           f"found {sorted(found) or 'none'}")
    merged = {m: RawModality(np.concatenate([r.features for r in rs]), sum((r.classes for r in rs), []), None,
                             sum((r.paths for r in rs), [])) for m, rs in found.items()}
    return RawData(merged, "CVAE/IIAE .npy features")


def _resolve_image(root: Path, list_dir: Path, rel: str) -> Path | None:
    for base in (root, list_dir, *list_dir.parents[:3]):
        candidate = base / rel
        if candidate.is_file():
            return candidate
    return None


def read_sake_lists(folder: Path, extractor=None, progress: Callable[[str, int, int], None] | None = None,
                    **_) -> RawData:
    from benchmark.datasets.features import FeatureExtractor, file_reader

    lists = [p for p in sorted(folder.rglob("*.txt")) if "filelist" in p.name and _modality_of(p.name)]
    if not lists:
        raise ZSBenchError(f"{folder}: no SAKE-style *filelist*.txt lists (e.g. all_photo_filelist_train.txt) found")
    items: dict[str, tuple[list[Path], list, list[str]]] = {}
    for list_path in lists:
        cname_file = list_path.parent / ("cname_cid_zero.txt" if "zero" in list_path.name else "cname_cid.txt")
        id_to_name = {}
        if cname_file.is_file():
            for line in cname_file.read_text().splitlines():
                if line.strip():
                    name, cid = line.rsplit(maxsplit=1)
                    id_to_name[int(cid)] = name
        files, classes, rels = items.setdefault(_modality_of(list_path.name), ([], [], []))
        missing = []
        for line_no, line in enumerate(list_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            rel, _, label = line.rpartition(" ")
            if not rel or not label.strip().lstrip("-").isdigit():
                raise ZSBenchError(f"{list_path}:{line_no}: expected 'relative/path.ext <int label>', "
                                   f"got {line[:60]!r}")
            resolved = _resolve_image(folder, list_path.parent, rel.strip())
            if resolved is None:
                missing.append(rel)
                continue
            files.append(resolved)
            rels.append(rel.strip())
            classes.append(id_to_name.get(int(label), Path(rel.strip()).parent.name))
        if missing:
            raise ZSBenchError(f"{list_path}: {len(missing)} listed image(s) not found under {folder}, e.g. "
                               f"{missing[0]}; pass the folder the paths are relative to with --from")
    extractor = extractor or FeatureExtractor()
    modalities = {}
    for m, (files, classes, rels) in items.items():
        unique = list(dict.fromkeys(files))  # the same file listed twice is extracted once
        done = [0]

        def step(n, m=m, unique=unique, done=done):
            done[0] += n
            if progress:
                progress(m, done[0], len(unique))

        feats = extractor([file_reader(p) for p in unique], progress=step)
        row = {p: i for i, p in enumerate(unique)}
        modalities[m] = RawModality(feats[[row[p] for p in files]], classes, None, rels)
    return RawData(modalities, f"{extractor.backbone.describe()}, extracted from the listed images",
                   notes={"feature_cache": {"hits": extractor.hits, "computed": extractor.computed}})


READERS: dict[str, Callable[..., RawData]] = {
    "sake-lists": read_sake_lists, "cvae-npy": read_cvae_npy, "dscmr-mat": read_dscmr_mat,
    "acmr-pkl": read_acmr_pkl, "dadn-txt": read_dadn_txt,
}


def all_formats() -> tuple[str, ...]:
    from benchmark.datasets.raw import RAW_READERS

    return (*READERS, *RAW_READERS)


def detect_format(folder: Path) -> str:
    """The public layout ``folder`` is in: a feature-file format, a raw release, or SAKE lists."""
    from benchmark.datasets.raw import detect_raw_format

    if (folder / "train_img.mat").is_file():
        return "dscmr-mat"
    if (folder / "train_img_feats.pkl").is_file():
        return "acmr-pkl"
    if (folder / "cate_fea.txt").is_file() or (folder / "img_train_fea.txt").is_file():
        return "dadn-txt"
    if any(folder.glob("*features.npy")):
        return "cvae-npy"
    raw = detect_raw_format(folder)
    if raw is not None:
        return raw
    if any("filelist" in p.name for p in folder.rglob("*.txt")):
        return "sake-lists"
    raise ZSBenchError(f"{folder}: cannot tell its format; pass --format ({', '.join(all_formats())})")
