"""Preparing a raw release: files -> registry classes (or a dataset of your own) -> features -> a prepared folder.

Images are streamed through the feature extractor (batched, cached per file, so an interrupted run resumes);
texts go through the chosen text encoder, a fitted one (tfidf-svd) learning from the seen-class training texts
only. A registered dataset keeps the registry's classes, split, tasks and protocol; a dataset of your own (a
name the registry does not know) takes its classes from the folders and gets a split file of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.core.data import Split
from benchmark.datasets.prepared import ModalityData, check_prepared, write_prepared
from benchmark.datasets.raw import RAW_READERS, RawItem, RawLayout

#: Share of a dataset of your own's classes drawn as unseen when --unseen is not given.
OWN_UNSEEN_SHARE = 0.25


@dataclass
class RawOptions:
    """The ``prepare`` options that only raw releases use."""

    text_encoder: str | None = None  # default: clip with a clip backbone, else glove
    split: str | None = None  # registered dataset: the split whose seen classes a fitted text encoder learns from
    limit_per_class: int | None = None
    skip_broken: bool = False
    variants: tuple[str, ...] = ()  # Sketchy augmentation folders besides tx_000000000000 ('all')
    unseen: str | None = None  # your own dataset: unseen class names (comma-separated) or a file of them
    tasks: str | None = None  # your own dataset: 'query->gallery,...' (default: every ordered pair)
    paired: bool = False  # your own dataset: rows pair across modalities by class and file name


@dataclass
class _Target:
    """What the prepared folder must hold: the registry's definition, or one derived for your own data."""

    name: str
    class_names: tuple[str, ...]
    modalities: tuple[str, ...]
    tasks: tuple[tuple[str, str], ...]
    paired: bool
    eval_protocol: str
    split: Split
    spec: Any = None  # the DatasetSpec of a registered dataset
    class_of: Callable[[str | int, str], int] | None = None


def prepare_raw(name: str, source: Path, fmt: str, out: Path | None, semantics: str | None, extractor,
                progress: Callable[[str, int, int], None] | None, options: RawOptions) -> dict[str, Any]:
    from benchmark.datasets import data_root
    from benchmark.datasets.features import FeatureExtractor
    from benchmark.datasets.specs import SPECS

    layout = RAW_READERS[fmt](source, variants=options.variants)
    folder = Path(out) if out is not None else data_root() / name
    target = _registered(name, layout, source, options) if name in SPECS else _own(name, layout, options, folder)
    rows = {m: _rows(layout.modalities[m].items, target, source) for m in target.modalities}
    _limit(rows, options.limit_per_class, target.paired)
    if target.paired:
        _align(rows, source)
    _check_every_class(rows, target, source)  # before a long extraction, and again after broken files are dropped
    extractor = extractor or FeatureExtractor()
    features: dict[str, np.ndarray] = {}
    described: dict[str, str] = {}
    skipped: list[str] = []
    for m in target.modalities:  # images first: a broken image drops its row (and its pair) before texts
        if layout.modalities[m].kind == "image":
            features[m], broken = _extract(extractor, m, rows[m], progress, options.skip_broken)
            skipped += [f"{rows[m][i][2].source}" for i in broken]
            described[m] = extractor.backbone.describe()
            _drop(rows, features, m, broken, target.paired)
            if broken:
                _check_every_class(rows, target, source)
    for m in target.modalities:
        if layout.modalities[m].kind == "text":
            features[m], described[m] = _encode(m, rows[m], target, options, extractor, progress)
    modalities = {}
    for m in target.modalities:
        ids = np.asarray([r[0] for r in rows[m]], dtype=np.int64)
        parts = None if rows[m][0][1] is None else np.asarray([r[1] for r in rows[m]], dtype=np.int8)
        paths = [_relative(r[2].source, source) for r in rows[m]]
        modalities[m] = ModalityData(features[m], ids, parts, paths)
    emb, semantics_info = _class_embeddings(target, semantics)
    dedup = {m: 0 for m in target.modalities} if not target.paired else {}
    if "photos_in_both_sets" in layout.notes:
        dedup["image"] = int(layout.notes.pop("photos_in_both_sets"))
    converter = {"format": fmt, "from": str(source), "label_base": layout.label_base,
                 "text_encoder": _text_encoder(options, extractor) if any(
                     layout.modalities[m].kind == "text" for m in target.modalities) else None,
                 "limit_per_class": options.limit_per_class, "skipped_broken": skipped, **layout.notes,
                 "feature_cache": {"hits": extractor.hits, "computed": extractor.computed}}
    write_prepared(folder, name=target.name, source="real", modalities=modalities, class_names=target.class_names,
                   class_embeddings=emb, tasks=target.tasks, paired=target.paired, eval_protocol=target.eval_protocol,
                   semantics=semantics_info, features_info="; ".join(f"{m}: {described[m]}" for m in target.modalities),
                   split_file=None if target.spec is not None else folder / "split.json",
                   extra={"converter": converter, "dedup": dedup})
    summary = check_prepared(folder, target.spec)
    summary.update({"folder": str(folder), "format": fmt, "dedup": dedup, "skipped_broken": skipped,
                    "registered": target.spec is not None})
    return summary


# --- what to build --------------------------------------------------------------------------------------------

def _registered(name: str, layout: RawLayout, source: Path, options: RawOptions) -> _Target:
    from benchmark.datasets.specs import get_spec

    spec = get_spec(name)
    if set(layout.modalities) != set(spec.modalities):
        raise ZSBenchError(f"{source} holds modalities {sorted(layout.modalities)}, {name} needs "
                           f"{sorted(spec.modalities)}; rename the modality folders or pick the right --format")
    has_parts = all(files.items[0].part is not None for files in layout.modalities.values())
    if spec.eval_protocol == "test->train" and not has_parts:
        raise ZSBenchError(f"{name} is scored test->train and needs train and test parts: give each modality "
                           f"train/ and test/ folders (<modality>/<train|test>/<class>/<file>)")
    index = spec.name_index
    names = spec.class_names

    def class_of(ref, where: str) -> int:
        if isinstance(ref, int):
            base = layout.label_base or 0
            if not base <= ref < len(names) + base:
                raise ZSBenchError(f"{where}: class id {ref} is outside {base}..{len(names) - 1 + base}")
            return ref - base
        try:
            return index.id_of(ref)
        except ZSBenchError as err:
            raise ZSBenchError(f"{where}: {err}") from None

    return _Target(name, names, tuple(spec.modalities), spec.tasks, spec.paired, spec.eval_protocol,
                   spec.split(options.split), spec, class_of)


def _own(name: str, layout: RawLayout, options: RawOptions, folder: Path) -> _Target:
    from benchmark.datasets.names import normalize_class_name
    from benchmark.datasets.splits import load_split, write_split_file

    if not name or "/" in name or name.startswith("."):
        raise ZSBenchError(f"dataset name {name!r} must be a plain name (it names the output folder)")
    spelling: dict[str, str] = {}  # normalised key -> the first spelling met (modalities, then folders, sorted)
    for files in layout.modalities.values():
        for item in files.items:
            if not isinstance(item.class_ref, str):
                raise ZSBenchError(f"{item.source}: a dataset of your own needs class names, not ids")
            spelling.setdefault(normalize_class_name(item.class_ref), item.class_ref)
    keys = sorted(spelling)
    class_names = tuple(spelling[k] for k in keys)
    position = {k: i for i, k in enumerate(keys)}
    unseen = _own_unseen(options.unseen, class_names, name)
    modalities = tuple(layout.modalities)
    tasks = _own_tasks(options.tasks, modalities)
    has_parts = layout.modalities[modalities[0]].items[0].part is not None
    folder.mkdir(parents=True, exist_ok=True)
    split_path = folder / "split.json"
    write_split_file(split_path, name, "own", [c for c in class_names if c not in unseen], list(unseen),
                     f"zsbench datasets prepare (unseen: {'given' if options.unseen else 'seeded draw'})")
    return _Target(name, class_names, modalities, tasks, options.paired, "test->train" if has_parts else "all",
                   load_split(split_path, None), None,
                   lambda ref, where: position[normalize_class_name(ref)])


def _own_unseen(given: str | None, class_names: tuple[str, ...], name: str) -> tuple[str, ...]:
    from benchmark.core.data import MIN_VALIDATION_CLASSES
    from benchmark.datasets.names import ClassNameIndex

    if len(class_names) < MIN_VALIDATION_CLASSES + 3:
        raise ZSBenchError(f"{name}: {len(class_names)} classes; a zero-shot split with validation classes needs at "
                           f"least {MIN_VALIDATION_CLASSES + 3} (add class folders)")
    if given:
        path = Path(given)
        wanted = path.read_text().splitlines() if path.is_file() else given.split(",")
        index = ClassNameIndex(class_names, dataset=name)
        chosen = {index.id_of(w.strip()) for w in wanted if w.strip()}
        if not chosen or len(class_names) - len(chosen) < MIN_VALIDATION_CLASSES + 2:
            raise ZSBenchError(f"--unseen names {len(chosen)} of {len(class_names)} classes; leave at least "
                               f"{MIN_VALIDATION_CLASSES + 2} seen and name at least one unseen")
        return tuple(class_names[i] for i in sorted(chosen))
    count = min(len(class_names) - MIN_VALIDATION_CLASSES - 2, max(1, round(OWN_UNSEEN_SHARE * len(class_names))))
    seed = int.from_bytes(hashlib.sha256("\n".join(class_names).encode()).digest()[:8], "little")
    chosen = np.random.default_rng(seed).choice(len(class_names), size=count, replace=False)
    return tuple(class_names[i] for i in sorted(chosen))


def _own_tasks(given: str | None, modalities: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not given:
        return tuple((q, g) for q in modalities for g in modalities if q != g)
    tasks = []
    for part in given.split(","):
        q, sep, g = part.strip().partition("->")
        if not sep or q not in modalities or g not in modalities or q == g:
            raise ZSBenchError(f"--tasks {given!r}: {part.strip()!r} is not 'query->gallery' over the modalities "
                               f"{', '.join(modalities)}")
        tasks.append((q, g))
    return tuple(tasks)


# --- rows -----------------------------------------------------------------------------------------------------

Row = tuple  # (class id, part, RawItem)


def _rows(items: list[RawItem], target: _Target, source: Path) -> list[Row]:
    ids: dict[tuple[str, str | int], int] = {}
    rows = []
    for item in items:
        folder = str(item.source.parent)
        key = (folder, item.class_ref)
        if key not in ids:
            ids[key] = target.class_of(item.class_ref, folder)
        rows.append((ids[key], item.part, item))
    return rows


def _limit(rows: dict[str, list[Row]], limit: int | None, paired: bool) -> None:
    """The first ``limit`` items of each class (in file-name order); of a paired set, the first pairs."""
    if limit is None:
        return
    if limit < 1:
        raise ZSBenchError(f"--limit-per-class must be at least 1, got {limit}")
    if paired:
        first = next(iter(rows))
        kept: dict[int, list] = {}
        for cid, part, item in sorted(rows[first], key=lambda r: (r[0], r[2].key)):
            kept.setdefault(cid, [])
            if len(kept[cid]) < limit:
                kept[cid].append((part, item.key))
        keep = {(cid, *k) for cid, ks in kept.items() for k in ks}
        for m in rows:
            rows[m] = [r for r in rows[m] if (r[0], r[1], r[2].key) in keep]
        return
    for m, current in rows.items():
        counts: dict[int, int] = {}
        kept_rows = []
        for row in current:
            counts[row[0]] = counts.get(row[0], 0) + 1
            if counts[row[0]] <= limit:
                kept_rows.append(row)
        rows[m] = kept_rows


def _align(rows: dict[str, list[Row]], source: Path) -> None:
    """Order every modality's rows by (part, class, key) and check each row has its partner everywhere."""
    keyed = {m: {(r[1] or 0, r[0], r[2].key): r for r in rs} for m, rs in rows.items()}
    modalities = list(rows)
    for m in modalities:
        for other in modalities:
            missing = keyed[m].keys() - keyed[other].keys()
            if missing:
                item = keyed[m][min(missing)][2]
                raise ZSBenchError(f"{item.source} has no {other} partner (pairs match by class and name "
                                   f"{item.key!r}); add it or remove the file")
    order = sorted(keyed[modalities[0]])
    for m in modalities:
        rows[m] = [keyed[m][k] for k in order]


def _drop(rows: dict[str, list[Row]], features: dict[str, np.ndarray], m: str, broken: list[int],
          paired: bool) -> None:
    if not broken:
        return
    keep = np.setdiff1d(np.arange(len(rows[m])), broken)
    for other in (rows if paired else [m]):
        rows[other] = [rows[other][i] for i in keep]
        if other in features:
            features[other] = features[other][keep]


def _check_every_class(rows: dict[str, list[Row]], target: _Target, source: Path) -> None:
    for m, rs in rows.items():
        present = np.bincount([r[0] for r in rs], minlength=len(target.class_names)) if rs else \
            np.zeros(len(target.class_names), int)
        empty = np.flatnonzero(present == 0)
        if empty.size:
            raise ZSBenchError(f"{source}: class {target.class_names[empty[0]]!r} has no {m} items ({empty.size} "
                               f"class(es) without); every class of {target.name} needs its {m} folder with files")


# --- features -------------------------------------------------------------------------------------------------

def _extract(extractor, m: str, rows: list[Row], progress, skip_broken: bool) -> tuple[np.ndarray, list[int]]:
    from benchmark.datasets.features import file_reader

    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if progress:
            progress(m, done[0], len(rows))

    return extractor.extract([file_reader(r[2].source) for r in rows], progress=step, skip_broken=skip_broken)


def _text_encoder(options: RawOptions, extractor) -> str:
    if options.text_encoder:
        return options.text_encoder
    return "clip" if extractor is not None and extractor.backbone.is_clip else "glove"


def _encode(m: str, rows: list[Row], target: _Target, options: RawOptions, extractor, progress):
    from benchmark.datasets.text_encoders import encode_texts

    seen = {target.class_of(n, f"split {target.split.name}") for n in target.split.seen}
    fit_rows = np.asarray([r[0] in seen and (r[1] in (None, 0)) for r in rows])
    note = (f" (seen classes of split {target.split.name}, sha256 {target.split.sha256[:12]}..."
            f"{'; train part' if rows and rows[0][1] is not None else ''})")
    features, info = encode_texts([r[2].text for r in rows], _text_encoder(options, extractor),
                                  sources=[str(r[2].source) for r in rows], fit_rows=fit_rows, fit_note=note,
                                  backbone=extractor.backbone, device=extractor.device)
    if progress:
        progress(m, len(rows), len(rows))
    return features, info


def _class_embeddings(target: _Target, semantics: str | None):
    from benchmark.datasets.semantics import class_embeddings

    default = "glove" if target.spec is None or target.spec.class_names_public else "random"
    emb, info = class_embeddings(target.class_names, semantics or default, dataset=target.name)
    return emb, info["source"]


def _relative(path: Path, source: Path) -> str:
    try:
        return str(path.relative_to(source))
    except ValueError:
        return str(path)
