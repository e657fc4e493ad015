"""Frozen zero-shot split files: versioned JSON in the repo, each checked against a sha256 in the registry.

A split file lists the seen and unseen class names and how the seen-class sample hold-out is drawn (its
JSON keys ``validation_fraction`` / ``validation_seed`` predate the validation classes and are kept so the
frozen files keep their hashes). Beside each split lies ``<split>.validation.json``: the split's
*validation classes*, a fixed part of its seen classes for model selection, with the split's own sha256
inside, hashed in the registry too. Loading a file whose sha256 differs from the registry's is an error:
a silently edited split would make numbers incomparable. ``python -m benchmark.datasets.splits`` prints
every file's hash (for maintainers who add a split on purpose).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from benchmark.contract import ZSBenchError
from benchmark.core.data import Split, ValidationSplit, draw_folds, draw_validation_classes

SPLITS_DIR = Path(__file__).parent / "splits"
VALIDATION_SUFFIX = ".validation.json"
FOLDS_SUFFIX = ".folds.json"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hash_mismatch(what: str, path: Path, digest: str, expected: str, manifest: Path | None) -> ZSBenchError:
    """The error for an edited split file: registry splits come back from git; a prepared folder's split is
    fixed by its own ``manifest.json`` (not in git), so the advice says that."""
    if manifest is None:
        return ZSBenchError(f"{what} {path} has sha256 {digest[:12]}..., the registry expects {expected[:12]}...; "
                            f"restore it with `git checkout -- {path.name}` (a changed split needs a new split name)")
    return ZSBenchError(f"{what} {path} has sha256 {digest[:12]}..., its folder's {manifest.name} records "
                        f"{expected[:12]}...; put the prepared file back, or for a new split rename it and set the "
                        f"manifest's split sha256 to {digest}")


def _checked_digest(what: str, path: Path, expected_sha256: str | None, manifest: Path | None) -> str:
    """The sha256 of the frozen file ``path``; a missing file or another hash than ``expected_sha256`` (None:
    not checked) is a one-line error."""
    if not path.is_file():
        raise ZSBenchError(f"{what} {path} does not exist; reinstall zsbench or restore it from git")
    digest = file_sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise hash_mismatch(what, path, digest, expected_sha256, manifest)
    return digest


def load_split(path: Path, expected_sha256: str | None, manifest: Path | None = None) -> Split:
    """Read a split file; ``expected_sha256`` None skips the check. ``manifest``: the prepared folder's
    manifest that holds the expected hash (None: the registry)."""
    path = Path(path)
    digest = _checked_digest("split file", path, expected_sha256, manifest)
    try:
        data = json.loads(path.read_text())
        return Split(
            dataset=data["dataset"],
            name=data["name"],
            seen=tuple(data["seen"]),
            unseen=tuple(data["unseen"]),
            holdout_fraction=float(data.get("validation_fraction", 0.1)),
            holdout_seed=int(data.get("validation_seed", 0)),
            sha256=digest,
            path=str(path),
            source=data.get("source", ""),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ZSBenchError(f"split file {path} is malformed ({err}); it needs dataset, name, seen, unseen") from None


def write_split_file(path: Path, dataset: str, name: str, seen, unseen, source: str,
                     validation_fraction: float = 0.1, validation_seed: int = 0) -> str:
    """Write a split file in the canonical layout and return its sha256."""
    payload = {
        "dataset": dataset,
        "name": name,
        "version": 1,
        "source": source,
        "validation_fraction": validation_fraction,
        "validation_seed": validation_seed,
        "seen": list(seen),
        "unseen": list(unseen),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return file_sha256(path)


def validation_path(split_path: Path) -> Path:
    split_path = Path(split_path)
    return split_path.with_name(split_path.name.removesuffix(".json") + VALIDATION_SUFFIX)


def load_validation(split: Split, path: Path, expected_sha256: str | None, manifest: Path | None = None) -> Split:
    """``split`` with its validation classes read from ``path`` (checked against ``expected_sha256``, against
    the split's own sha256 it names, and against the seen classes)."""
    path = Path(path)
    digest = _checked_digest("validation split file", path, expected_sha256, manifest)
    try:
        data = json.loads(path.read_text())
        classes, of_split = tuple(data["validation"]), data["split_sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise ZSBenchError(f"validation split file {path} is malformed ({err}); it needs split_sha256 and "
                           f"validation") from None
    if of_split != split.sha256:
        raise ZSBenchError(f"validation split file {path} belongs to a split with sha256 {of_split[:12]}..., not to "
                           f"{split.path} ({split.sha256[:12]}...); restore both from git")
    outside = sorted(set(classes) - set(split.seen))
    if outside or len(classes) < 1:
        raise ZSBenchError(f"validation split file {path} names classes that are not seen classes of "
                           f"{split.name!r}: {outside[:5]}; restore it from git")
    return replace(split, validation=ValidationSplit(classes, digest, str(path), data.get("source", "")))


def write_validation_file(split_path: Path) -> str:
    """Write the validation classes of the split file at ``split_path`` (a seeded draw of its seen classes,
    keyed by dataset and split name) beside it; returns the new file's sha256."""
    split = load_split(split_path, None)
    classes = draw_validation_classes(split.seen, f"{split.dataset}/{split.name}")
    payload = {
        "dataset": split.dataset,
        "split": split.name,
        "split_sha256": split.sha256,
        "version": 1,
        "source": f"seeded draw of {len(classes)} of the {len(split.seen)} seen classes (zsbench draw_validation_classes)",
        "validation": list(classes),
    }
    path = validation_path(split_path)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return file_sha256(path)


def folds_path(split_path: Path) -> Path:
    split_path = Path(split_path)
    return split_path.with_name(split_path.name.removesuffix(".json") + FOLDS_SUFFIX)


def fold_sha256(file_digest: str, fold: int) -> str:
    """The sha256 that names validation fold ``fold`` of a folds file (its records' split hash)."""
    return hashlib.sha256(f"{file_digest}/fold{fold}".encode()).hexdigest()


def load_folds(split: Split, path: Path, expected_sha256: str | None, manifest: Path | None = None) -> Split:
    """``split`` (with its validation classes loaded) with validation folds 1..K-1 read from ``path``, checked
    against ``expected_sha256``, against the split and validation files it names, and for disjointness."""
    path = Path(path)
    digest = _checked_digest("validation folds file", path, expected_sha256, manifest)
    try:
        data = json.loads(path.read_text())
        folds, of_split, of_validation = [tuple(f) for f in data["folds"]], data["split_sha256"], data["validation_sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise ZSBenchError(f"validation folds file {path} is malformed ({err}); it needs split_sha256, "
                           f"validation_sha256 and folds") from None
    validation = split.validation
    if of_split != split.sha256 or validation is None or of_validation != validation.sha256:
        raise ZSBenchError(f"validation folds file {path} belongs to other split or validation files than "
                           f"{split.path}; restore all three from git")
    every = [c for fold in (validation.classes, *folds) for c in fold]
    if len(every) != len(set(every)) or not set(every) <= set(split.seen):
        raise ZSBenchError(f"validation folds file {path}: folds overlap or name classes that are not seen "
                           f"classes of {split.name!r}; restore it from git")
    return replace(split, folds=tuple(ValidationSplit(fold, fold_sha256(digest, i), str(path), f"fold {i}")
                                      for i, fold in enumerate(folds, start=1)))


def write_folds_file(split_path: Path) -> str:
    """Write validation folds 1..K-1 of the split at ``split_path`` (a seeded draw beside its validation
    classes, keyed by dataset and split name) beside it; returns the new file's sha256."""
    split = load_validation(load_split(split_path, None), validation_path(split_path), None)
    folds = draw_folds(split.seen, split.validation.classes, f"{split.dataset}/{split.name}")
    payload = {
        "dataset": split.dataset, "split": split.name, "split_sha256": split.sha256,
        "validation_sha256": split.validation.sha256, "version": 1,
        "source": f"seeded draw of {len(folds)} more folds of {len(split.validation.classes)} classes from the "
                  f"seen classes outside fold 0 (zsbench draw_folds); fold 0 is {validation_path(split_path).name}",
        "folds": [list(fold) for fold in folds],
    }
    path = folds_path(split_path)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return file_sha256(path)


if __name__ == "__main__":
    for split_file in sorted(SPLITS_DIR.glob("*/*.json")):
        print(f"{split_file.parent.name}/{split_file.name}  {file_sha256(split_file)}")
