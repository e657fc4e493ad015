"""The prepared on-disk format: what every converter writes and the loader reads.

A prepared dataset is one folder::

    manifest.json            format, version, name, source, modalities (items, dim), tasks, paired,
                             eval_protocol, split, semantics and feature provenance, converter notes
    classes.txt              one class name per line; line i is class id i
    class_embeddings.npy     float32, (n_classes, d)
    split.json               only for a dataset of your own: the zero-shot split (its sha256 is in the manifest)
    <modality>/features.npy  float32, (n_items, dim), read memory-mapped
    <modality>/labels.npy    integer class ids, (n_items,)
    <modality>/parts.npy     optional int8, 0 = train part, 1 = test part (image-text sets)
    <modality>/paths.txt     optional, one source path per item (provenance, dedup)

``paired: true`` means row i of every modality is one pair (image-text sets). A registered dataset's folder
takes its split from the registry (``--split``); a folder of your own carries ``split.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.core.data import SOURCES, Split, ZSDataset
from benchmark.datasets.splits import file_sha256, folds_path, load_folds, load_split, load_validation, validation_path

FORMAT = "zsbench-prepared"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class ModalityData:
    """One modality's items: features (n, d), integer labels (n,), optional parts and source paths."""

    features: np.ndarray
    labels: np.ndarray
    parts: np.ndarray | None = None
    paths: list[str] | None = None


def _save(path: Path, array: np.ndarray) -> None:
    """Write beside, then rename: an array still memory-mapped from the old file keeps its old data instead of
    silently showing the new one (np.save truncates the file in place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    os.replace(tmp, path)


def write_prepared(folder: Path, *, name: str, source: str, modalities: dict[str, ModalityData],
                   class_names, class_embeddings: np.ndarray, tasks, paired: bool, eval_protocol: str,
                   semantics: str, features_info: str, split_file: Path | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write a prepared folder; the manifest is written last so a half-written folder never loads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    (folder / "classes.txt").write_text("".join(f"{n}\n" for n in class_names))
    _save(folder / "class_embeddings.npy", np.asarray(class_embeddings, dtype=np.float32))
    manifest_modalities = {}
    for m, data in modalities.items():
        sub = folder / m
        sub.mkdir(exist_ok=True)
        X = np.ascontiguousarray(data.features, dtype=np.float32)
        _save(sub / "features.npy", X)
        _save(sub / "labels.npy", np.asarray(data.labels, dtype=np.int64))
        for optional in ("parts.npy", "paths.txt"):
            (sub / optional).unlink(missing_ok=True)
        if data.parts is not None:
            _save(sub / "parts.npy", np.asarray(data.parts, dtype=np.int8))
        if data.paths is not None:
            (sub / "paths.txt").write_text("".join(f"{p}\n" for p in data.paths))
        manifest_modalities[m] = {"items": int(X.shape[0]), "dim": int(X.shape[1])}
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "name": name, "source": source,
        "modalities": manifest_modalities, "tasks": [list(t) for t in tasks], "paired": bool(paired),
        "eval_protocol": eval_protocol, "semantics": semantics, "features": features_info,
    }
    if split_file is not None:
        target = folder / "split.json"
        if Path(split_file).resolve() != target.resolve():
            target.write_bytes(Path(split_file).read_bytes())
        manifest["split"] = {"file": "split.json", "sha256": file_sha256(target)}
    manifest.update(extra or {})
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ZSBenchError(f"{folder} is not a prepared dataset: it has no {MANIFEST} (see docs/data.md)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise ZSBenchError(f"{path} is not valid JSON ({err}); re-run prepare") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise ZSBenchError(f"{path}: format {manifest.get('format')!r} v{manifest.get('version')} is not "
                           f"{FORMAT} v{FORMAT_VERSION}; re-run prepare")
    for key in ("name", "source", "modalities", "tasks"):
        if key not in manifest:
            raise ZSBenchError(f"{path} lacks the key {key!r}; re-run prepare")
    if manifest["source"] not in SOURCES:
        raise ZSBenchError(f"{path}: source must be one of {SOURCES}, got {manifest['source']!r}")
    return manifest


def _load_array(path: Path, mmap: bool = True) -> np.ndarray:
    if not path.is_file():
        raise ZSBenchError(f"missing file {path}; re-run prepare")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        raise ZSBenchError(f"{path} is not a plain .npy array ({err}); re-run prepare") from None


def _read_modality(folder: Path, m: str, declared: dict[str, int]) -> ModalityData:
    X = _load_array(folder / m / "features.npy")
    y = _load_array(folder / m / "labels.npy", mmap=False)
    where = f"{folder / m}"
    if X.ndim != 2:
        raise ZSBenchError(f"{where}/features.npy has shape {X.shape}; it must be 2-d (items x dims)")
    if X.dtype != np.float32:
        raise ZSBenchError(f"{where}/features.npy has dtype {X.dtype}; it must be float32")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ZSBenchError(f"{where}/labels.npy must be 1-d integers, got shape {y.shape} dtype {y.dtype}")
    if y.shape[0] != X.shape[0]:
        raise ZSBenchError(f"{where}: {X.shape[0]} feature rows but {y.shape[0]} labels; they must match")
    if (declared.get("items"), declared.get("dim")) != X.shape:
        raise ZSBenchError(f"{where}/features.npy has shape {X.shape}, the manifest says "
                           f"({declared.get('items')}, {declared.get('dim')}); re-run prepare")
    parts = None
    if (folder / m / "parts.npy").is_file():
        parts = _load_array(folder / m / "parts.npy", mmap=False)
        if parts.shape != y.shape or not np.isin(parts, (0, 1)).all():
            raise ZSBenchError(f"{where}/parts.npy must hold 0 (train) or 1 (test) for each of the {y.size} items")
    paths = None
    if (folder / m / "paths.txt").is_file():
        paths = (folder / m / "paths.txt").read_text().splitlines()
        if len(paths) != y.size:
            raise ZSBenchError(f"{where}/paths.txt has {len(paths)} lines for {y.size} items")
    return ModalityData(X, y.astype(np.int64), parts, paths)


def load_prepared(folder: Path, spec=None, split: str | None = None, semantics: str | None = None) -> ZSDataset:
    """A ZSDataset from a prepared folder. ``spec``: the registered dataset it must match (its split)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    class_names = tuple(_read_classes(folder))
    if spec is not None:
        _check_classes_match(folder, class_names, spec)
    split_obj = _resolve_split(folder, manifest, spec, split, class_names)
    modalities = tuple(manifest["modalities"])
    data = {m: _read_modality(folder, m, manifest["modalities"][m]) for m in modalities}
    embeddings = _load_array(folder / "class_embeddings.npy", mmap=False)
    semantics_info = manifest.get("semantics", "class_embeddings.npy")
    if semantics is not None:
        from benchmark.datasets.semantics import class_embeddings as embed_names

        embeddings, info = embed_names(class_names, semantics, dataset=manifest["name"])
        semantics_info = info["source"]
    if embeddings.dtype != np.float32:
        raise ZSBenchError(f"{folder}/class_embeddings.npy has dtype {embeddings.dtype}; it must be float32")
    has_parts = [m for m in modalities if data[m].parts is not None]
    if has_parts and len(has_parts) != len(modalities):
        raise ZSBenchError(f"{folder}: parts.npy exists for {has_parts} only; give it for every modality or none")
    # Only what defines the data goes into the record (and its identity hash): no paths, timings or cache counts.
    provenance: dict[str, Any] = {"semantics": semantics_info, "features": manifest.get("features", "?")}
    if "dedup" in manifest:
        provenance["dedup"] = manifest["dedup"]
    if "converter" in manifest:
        provenance["converter"] = {k: manifest["converter"].get(k) for k in ("format", "label_base")}
    if "build" in manifest:
        provenance["build"] = {k: manifest["build"].get(k) for k in ("version", "packages", "text_encoder", "items")}
    return ZSDataset(
        name=manifest["name"], source=manifest["source"], modalities=modalities,
        features={m: data[m].features for m in modalities}, labels={m: data[m].labels for m in modalities},
        class_names=class_names, class_embeddings=embeddings, split=split_obj,
        tasks=tuple(tuple(t) for t in manifest["tasks"]), eval_protocol=manifest.get("eval_protocol", "all"),
        paired=bool(manifest.get("paired", False)),
        parts={m: data[m].parts for m in modalities} if has_parts else None, provenance=provenance,
    )


def _read_classes(folder: Path) -> list[str]:
    path = folder / "classes.txt"
    if not path.is_file():
        raise ZSBenchError(f"missing file {path}; re-run prepare")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _check_classes_match(folder: Path, class_names, spec) -> None:
    index = spec.name_index
    ids = index.ids_of(class_names)
    if ids != list(range(len(spec.class_names))):
        raise ZSBenchError(f"{folder}/classes.txt does not list {spec.name}'s {len(spec.class_names)} classes in the "
                           f"registry's order; re-run `zsbench datasets prepare {spec.name}`")


def _resolve_split(folder: Path, manifest: dict, spec, split: str | None, class_names) -> Split:
    if spec is not None:
        split_obj = spec.split(split)
        # the registry's names may be spelled differently in classes.txt: map them through the name index
        index = spec.name_index
        rename = {spec.class_names[i]: class_names[i] for i in range(len(class_names))}
        def local(names) -> tuple[str, ...]:
            return tuple(rename[spec.class_names[index.id_of(n)]] for n in names)

        validation = split_obj.validation
        if validation is not None:
            validation = replace(validation, classes=local(validation.classes))
        return replace(split_obj, seen=local(split_obj.seen), unseen=local(split_obj.unseen), validation=validation)
    ref = manifest.get("split")
    if not ref:
        raise ZSBenchError(f"{folder}: a dataset of your own needs split.json and a manifest 'split' entry "
                           f"with its sha256 (see docs/data.md)")
    split_path = folder / ref.get("file", "split.json")
    split_obj = load_split(split_path, ref.get("sha256"), manifest=folder / MANIFEST)
    if split is not None and split != split_obj.name:
        raise ZSBenchError(f"{folder} has one split, {split_obj.name!r}; --split {split!r} does not exist there")
    # Validation classes: the folder's own file when it has one, else the seeded draw that the selection view
    # makes when it is first needed (recorded as derived).
    if validation_path(split_path).is_file():
        split_obj = load_validation(split_obj, validation_path(split_path), ref.get("validation_sha256"),
                                    manifest=folder / MANIFEST)
        if folds_path(split_path).is_file():  # validation folds 1..K-1; without the file, derived when needed
            split_obj = load_folds(split_obj, folds_path(split_path), ref.get("folds_sha256"),
                                   manifest=folder / MANIFEST)
    return split_obj


def check_prepared(folder: Path, spec=None, split: str | None = None) -> dict[str, Any]:
    """Validate a prepared folder (shapes, dtypes, finite values, labels in range, split hash); a summary."""
    ds = load_prepared(folder, spec, split)
    summary: dict[str, Any] = {"name": ds.name, "source": ds.source, "classes": len(ds.class_names),
                               "split": ds.split.record(), "semantics": ds.provenance.get("semantics"),
                               "modalities": {}}
    for m in ds.modalities:
        y = ds.labels[m]
        counts = np.bincount(y, minlength=len(ds.class_names))
        summary["modalities"][m] = {
            "items": int(y.size), "dim": int(ds.features[m].shape[1]),
            "seen_items": int(np.isin(y, ds.seen_classes).sum()),
            "unseen_items": int(np.isin(y, ds.unseen_classes).sum()),
            "empty_classes": [ds.class_names[i] for i in np.flatnonzero(counts == 0)][:10],
        }
    for q, g in ds.tasks:
        for m in (q, g):
            if summary["modalities"][m]["unseen_items"] == 0:
                raise ZSBenchError(f"{folder}: task {q}->{g} has no unseen-class {m} items; nothing to evaluate")
    return summary
