"""``zsbench datasets prepare``: a public layout -> the registry's classes -> dedup -> a prepared folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.datasets.converters import READERS, RawData, all_formats, detect_format
from benchmark.datasets.prepare_raw import RawOptions
from benchmark.datasets.prepared import ModalityData, check_prepared, write_prepared
from benchmark.datasets.specs import DatasetSpec, get_spec


def class_ids(refs: list, spec: DatasetSpec, where: str, label_base: int | None = None,
              class_list: list[str] | None = None) -> tuple[np.ndarray, int | None]:
    """Map per-item class references (names or integer ids) to the registry's class ids.

    Integer ids index ``class_list`` when given (names in label order), else the registry's class order;
    ``label_base`` None detects 0- or 1-based ids (0 present -> 0-based; max == number of classes -> 1-based).
    """
    index = spec.name_index
    n_classes = len(spec.class_names)
    if refs and all(isinstance(r, str) for r in refs):
        cache: dict[str, int] = {}
        out = np.empty(len(refs), dtype=np.int64)
        for i, name in enumerate(refs):
            if name not in cache:
                try:
                    cache[name] = index.id_of(name)
                except ZSBenchError as err:
                    raise ZSBenchError(f"{where}: {err}") from None
            out[i] = cache[name]
        return out, None
    ids = np.asarray(refs, dtype=np.int64)
    n_names = len(class_list) if class_list is not None else n_classes
    if label_base is None:
        label_base = 0 if ids.min() == 0 else (1 if ids.max() == n_names else 0)
    ids = ids - label_base
    if ids.min() < 0 or ids.max() >= n_names:
        raise ZSBenchError(f"{where}: labels span {ids.min() + label_base}..{ids.max() + label_base} but {spec.name} "
                           f"has {n_names} classes ({label_base}-based); pass --label-base or --classes FILE")
    if class_list is not None:
        lookup = np.asarray([index.id_of(n) for n in class_list], dtype=np.int64)
        ids = lookup[ids]
    return ids, label_base


def deduplicate(features: np.ndarray, labels: np.ndarray, paths: list[str] | None):
    """Drop repeated items (same source path, or the same feature row and label when there are no paths)."""
    if paths is not None:
        keys = [p.replace("\\", "/").strip() for p in paths]
    else:
        keys = [(int(y), row.tobytes()) for row, y in zip(features, labels, strict=True)]
    first: dict[Any, int] = {}
    keep = [first.setdefault(k, i) == i for i, k in enumerate(keys)]
    keep_idx = np.flatnonzero(keep)
    removed = len(keys) - keep_idx.size
    return keep_idx, removed


def prepare_dataset(name: str, source: Path, out: Path | None = None, fmt: str | None = None,
                    semantics: str | None = None, label_base: int | None = None, classes_file: Path | None = None,
                    extractor=None, progress: Callable[[str, int, int], None] | None = None,
                    raw: RawOptions | None = None) -> dict[str, Any]:
    """Convert ``source`` (a folder in one public layout) into a prepared folder; returns the check summary.

    A raw release (``sketchy-raw``, ``tu-berlin-raw``, ``wikipedia-raw``, ``pascal-sentences-raw``, ``folders``)
    takes its own options in ``raw``; with a name the registry does not know it becomes a dataset of your own.
    """
    from benchmark.datasets import data_root
    from benchmark.datasets.raw import RAW_READERS
    from benchmark.datasets.semantics import class_embeddings
    from benchmark.datasets.specs import SPECS

    source = Path(source)
    if name in SPECS and SPECS[name].source != "real":
        raise ZSBenchError(f"{name} is {SPECS[name].source}: it is built, not prepared from files")
    if not source.is_dir():
        raise ZSBenchError(f"--from {source}: no such folder")
    if fmt is not None and fmt not in all_formats():
        raise ZSBenchError(f"unknown format {fmt!r}; choose one of {', '.join(all_formats())}")
    fmt = fmt or detect_format(source)
    if fmt in RAW_READERS:
        from benchmark.datasets.prepare_raw import prepare_raw

        return prepare_raw(name, source, fmt, out, semantics, extractor, progress, raw or RawOptions())
    spec = get_spec(name)
    data: RawData = READERS[fmt](source, extractor=extractor, progress=progress)
    if set(data.modalities) != set(spec.modalities):
        raise ZSBenchError(f"{source} ({fmt}) gives modalities {sorted(data.modalities)}, {spec.name} needs "
                           f"{sorted(spec.modalities)}")
    class_list = None
    if classes_file is not None:
        class_list = [line.strip() for line in Path(classes_file).read_text().splitlines() if line.strip()]
    all_refs = sum((data.modalities[m].classes for m in spec.modalities), [])
    _, base = class_ids(all_refs, spec, str(source), label_base, class_list)
    modalities: dict[str, ModalityData] = {}
    dedup: dict[str, int] = {}
    for m in spec.modalities:
        r = data.modalities[m]
        y, _ = class_ids(r.classes, spec, f"{source} ({m})", base, class_list)
        X, parts, paths = r.features, r.parts, r.paths
        if not spec.paired:  # a paired set keeps every row: dropping one would break its pairs
            keep, removed = deduplicate(X, y, paths)
            dedup[m] = removed
            X, y = X[keep], y[keep]
            parts = None if parts is None else parts[keep]
            paths = None if paths is None else [paths[i] for i in keep]
        modalities[m] = ModalityData(X, y, parts, paths)
    if semantics is None and data.class_embeddings is not None:
        emb = data.class_embeddings
        if emb.shape[0] != len(spec.class_names):
            raise ZSBenchError(f"{source}: {emb.shape[0]} class vectors for {len(spec.class_names)} classes")
        if class_list is not None:  # rows follow the label order: put them in the registry's order
            order = np.argsort([spec.name_index.id_of(n) for n in class_list])
            emb = emb[order]
        semantics_info = data.semantics_info
    else:
        emb, info = class_embeddings(spec.class_names, semantics or ("glove" if spec.class_names_public else "random"),
                                     dataset=spec.name)
        semantics_info = info["source"]
    folder = Path(out) if out is not None else data_root() / spec.name
    write_prepared(folder, name=spec.name, source="real", modalities=modalities, class_names=spec.class_names,
                   class_embeddings=emb, tasks=spec.tasks, paired=spec.paired, eval_protocol=spec.eval_protocol,
                   semantics=semantics_info, features_info=data.features_info,
                   extra={"converter": {"format": fmt, "from": str(source), "label_base": base, **data.notes},
                          "dedup": dedup})
    summary = check_prepared(folder, spec)
    summary.update({"folder": str(folder), "format": fmt, "dedup": dedup})
    return summary
