"""The data types every part of the harness shares: splits, the whole dataset, a request for one.

This module imports nothing of the harness but the contract's error types, so every layer may import it
(``benchmark.datasets.requests`` loads a request).

A :class:`Split` is the frozen zero-shot split (seen / unseen class names). It carries a second, frozen
and hashed split of its own, :class:`ValidationSplit`: a fixed part of the *seen* classes that plays the
unseen role while a configuration is chosen (``ZSDataset.selection_view``). Test (unseen) classes never
take part in a choice: the selection view drops them, samples and names alike.

A dataset is scored in one of three *scenarios* (:data:`SCENARIOS`): ``zero-shot`` (unseen classes only, the
default), ``standard`` (the seen classes' held-out test items) and ``generalized`` (both together). The seen
classes' test items are the test part where the data has train/test parts (the image-text datasets), else a
frozen share of each seen class's items (:meth:`ZSDataset.seen_test_items`), drawn with a seed derived from the
split's sha256; in the standard and generalized scenarios training never sees them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from benchmark.contract import ZSBenchError

SOURCES = ("real", "embedded", "synthetic")
PART_IDS = {"train": 0, "test": 1}
#: What a run is scored on: the test (unseen) classes, or the validation classes of model selection.
STAGES = ("test", "validation")
#: Share of the seen classes held out as validation classes (at least ``MIN_VALIDATION_CLASSES``).
VALIDATION_SHARE = 0.2
MIN_VALIDATION_CLASSES = 2
#: The evaluation scenarios; ``zero-shot`` is the default, and its records keep the identity they had before
#: scenarios existed.
SCENARIOS = ("zero-shot", "generalized", "standard")
DEFAULT_SCENARIO = "zero-shot"
#: Share of each seen class's items held out as its test items on data without train/test parts (at least
#: one item of a class with two or more, never all of them). Changing it changes every held-out draw: the
#: records name it (``heldout``), and it is part of a standard or generalized run's identity.
HELDOUT_SHARE = 0.2
#: At most this many class-disjoint validation folds per split; fold 0 is the split's validation classes.
MAX_FOLDS = 5


@dataclass(frozen=True)
class ValidationSplit:
    """The validation classes of one split: seen classes that act as unseen during model selection."""

    classes: tuple[str, ...]
    sha256: str
    path: str
    source: str = ""

    def record(self) -> dict[str, Any]:
        return {"n_classes": len(self.classes), "sha256": self.sha256, "file": self.path.rsplit("/", 1)[-1]}


@dataclass(frozen=True)
class Split:
    """A frozen zero-shot split. ``holdout_*`` draw the seen-class *sample* hold-out (for early stopping)."""

    dataset: str
    name: str
    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    holdout_fraction: float
    holdout_seed: int
    sha256: str
    path: str
    source: str = ""
    validation: ValidationSplit | None = None
    #: Validation folds 1..K-1 (fold 0 is ``validation``): class-disjoint, the same size, seen classes only.
    folds: tuple[ValidationSplit, ...] = ()

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "n_seen": len(self.seen),
                               "n_unseen": len(self.unseen)}
        if self.validation is not None:
            out["validation"] = self.validation.record()
        return out


def draw_validation_classes(seen: tuple[str, ...], key: str, share: float = VALIDATION_SHARE,
                            minimum: int = MIN_VALIDATION_CLASSES) -> tuple[str, ...]:
    """A fixed draw of about ``share`` of the seen classes (at least ``minimum``, leaving at least two to train
    on), seeded by ``key`` (the split's identity), in the seen list's order."""
    if len(seen) < minimum + 2:
        raise ZSBenchError(f"split {key!r} has {len(seen)} seen classes; model selection needs at least "
                           f"{minimum + 2} (2 to train on, {minimum} to validate on)")
    count = min(len(seen) - 2, max(minimum, int(round(share * len(seen)))))
    seed = int.from_bytes(hashlib.sha256(f"validation/{key}".encode()).digest()[:8], "little")
    chosen = set(np.random.default_rng(seed).choice(len(seen), size=count, replace=False).tolist())
    return tuple(name for i, name in enumerate(seen) if i in chosen)


def fold_count(n_seen: int, per_fold: int) -> int:
    """How many class-disjoint folds of ``per_fold`` classes the seen classes hold (at most ``MAX_FOLDS``)."""
    return max(1, min(MAX_FOLDS, n_seen // max(1, per_fold)))


def draw_folds(seen: tuple[str, ...], fold0: tuple[str, ...], key: str) -> tuple[tuple[str, ...], ...]:
    """Validation folds 1..K-1 beside ``fold0``: a seeded draw (keyed by the split's identity ``key``) of the
    other seen classes into folds of ``len(fold0)`` classes, disjoint from each other and from fold 0, each in
    the seen list's order. Every fold leaves all other seen classes to train on."""
    per = len(fold0)
    rest = [name for name in seen if name not in set(fold0)]
    seed = int.from_bytes(hashlib.sha256(f"folds/{key}".encode()).digest()[:8], "little")
    order = np.random.default_rng(seed).permutation(len(rest))
    folds = []
    for i in range(fold_count(len(seen), per) - 1):
        chosen = set(order[i * per:(i + 1) * per].tolist())
        folds.append(tuple(name for j, name in enumerate(rest) if j in chosen))
    return tuple(folds)


def derived_folds(split: Split, fold0: ValidationSplit) -> tuple[ValidationSplit, ...]:
    """Folds 1..K-1 of a split without a folds file (a dataset of your own): the same seeded draw, keyed by
    the split's sha256; records name them ``derived``."""
    out = []
    for i, classes in enumerate(draw_folds(split.seen, fold0.classes, split.sha256 or split.name), start=1):
        digest = hashlib.sha256(json.dumps([i, list(classes)]).encode()).hexdigest()
        out.append(ValidationSplit(classes, digest, "derived", f"fold {i}, seeded draw keyed by the split's sha256"))
    return tuple(out)


def derived_validation(split: Split) -> ValidationSplit:
    """The validation classes of a split that has no validation file (a dataset of your own): the same seeded
    draw, keyed by the split's sha256; the record names it ``derived``."""
    classes = draw_validation_classes(split.seen, split.sha256 or split.name)
    digest = hashlib.sha256(json.dumps(list(classes)).encode()).hexdigest()
    return ValidationSplit(classes, digest, "derived", f"seeded draw keyed by the split's sha256 {split.sha256[:12]}")


@dataclass
class ZSDataset:
    """A dataset with every class. ``parts[m]`` (optional) marks each item train (0) or test (1).

    ``stage`` is ``test`` for a dataset as loaded, ``validation`` for its :meth:`selection_view`.
    """

    name: str
    source: str
    modalities: tuple[str, ...]
    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    class_names: tuple[str, ...]
    class_embeddings: np.ndarray
    split: Split
    tasks: tuple[tuple[str, str], ...]
    eval_protocol: str = "all"
    paired: bool = False
    parts: dict[str, np.ndarray] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    stage: str = "test"
    #: What the dataset is scored on (one of :data:`SCENARIOS`); see :meth:`in_scenario`.
    scenario: str = DEFAULT_SCENARIO

    def __post_init__(self) -> None:
        self.validate()
        index = {n: i for i, n in enumerate(self.class_names)}
        self.seen_classes = np.array(sorted(index[n] for n in self.split.seen), dtype=np.int64)
        self.unseen_classes = np.array(sorted(index[n] for n in self.split.unseen), dtype=np.int64)

    def validate(self) -> None:
        """Shapes, dtypes, finite values, labels in range, a split that partitions the classes."""
        where = f"dataset {self.name!r}"
        if self.source not in SOURCES:
            raise ZSBenchError(f"{where}: source must be one of {SOURCES}, got {self.source!r}")
        if self.stage not in STAGES:
            raise ZSBenchError(f"{where}: stage must be one of {STAGES}, got {self.stage!r}")
        if self.scenario not in SCENARIOS:
            raise ZSBenchError(f"{where}: scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        n_classes = len(self.class_names)
        if len(set(self.class_names)) != n_classes:
            raise ZSBenchError(f"{where}: duplicate class names in the class list")
        emb = np.asarray(self.class_embeddings)
        if emb.ndim != 2 or emb.shape[0] != n_classes:
            raise ZSBenchError(f"{where}: class embeddings have shape {emb.shape}, expected ({n_classes}, d)")
        if not np.isfinite(emb).all():
            raise ZSBenchError(f"{where}: class embeddings contain NaN or inf")
        for m in self.modalities:
            self._validate_modality(m, n_classes, where)
        if self.paired:
            sizes = {self.labels[m].size for m in self.modalities}
            same = all(np.array_equal(self.labels[self.modalities[0]], self.labels[m]) for m in self.modalities)
            if len(sizes) != 1 or not same:
                raise ZSBenchError(f"{where}: paired modalities must have the same items in the same order")
        names = set(self.class_names)
        unknown = [n for n in self.split.seen + self.split.unseen if n not in names]
        if unknown:
            raise ZSBenchError(f"{where}: split {self.split.name!r} names unknown classes {unknown[:5]}")
        if set(self.split.seen) & set(self.split.unseen):
            raise ZSBenchError(f"{where}: split {self.split.name!r} has classes that are both seen and unseen")
        if self.split.validation is not None:
            outside = [n for n in self.split.validation.classes if n not in set(self.split.seen)]
            if outside:
                raise ZSBenchError(f"{where}: validation classes {outside[:5]} of split {self.split.name!r} are not "
                                   f"seen classes; restore {self.split.validation.path}")
        for q, g in self.tasks:
            if q not in self.modalities or g not in self.modalities:
                raise ZSBenchError(f"{where}: task {q}->{g} names a modality the dataset lacks")

    def _validate_modality(self, m: str, n_classes: int, where: str) -> None:
        if m not in self.features or m not in self.labels:
            raise ZSBenchError(f"{where}: modality {m!r} has no features or labels")
        X, y = self.features[m], self.labels[m]
        if X.ndim != 2:
            raise ZSBenchError(f"{where}: {m} features must be 2-d (items x dims), got shape {X.shape}")
        if X.dtype != np.float32:
            raise ZSBenchError(f"{where}: {m} features must be float32, got {X.dtype} (re-run prepare)")
        if y.shape != (X.shape[0],):
            raise ZSBenchError(f"{where}: {m} has {X.shape[0]} feature rows but {y.shape[0]} labels; they must match")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ZSBenchError(f"{where}: {m} labels must lie in 0..{n_classes - 1}, found {y.min()}..{y.max()}")
        empty = np.flatnonzero(np.bincount(y, minlength=n_classes) == 0)
        if empty.size:  # an empty unseen class would silently drop out of the scores
            raise ZSBenchError(
                f"{where}: class {self.class_names[empty[0]]!r} has no {m} items ({empty.size} empty class(es)); "
                f"add its items or drop it from the class list and split"
            )
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ZSBenchError(
                f"{where}: {m} features have {rows.size} row(s) with NaN or inf (first rows {rows[:5].tolist()}); "
                f"fix or drop them and re-run prepare"
            )
        if self.parts is not None and self.parts[m].shape != y.shape:
            raise ZSBenchError(f"{where}: {m} part markers do not match its {y.size} items")

    def restrict(self, modalities: tuple[str, ...]) -> ZSDataset:
        """The same dataset with only ``modalities`` and the tasks between them (no copy of the arrays)."""
        keep = tuple(m for m in self.modalities if m in modalities)
        return replace(self, modalities=keep, features={m: self.features[m] for m in keep},
                       labels={m: self.labels[m] for m in keep},
                       tasks=tuple(t for t in self.tasks if t[0] in keep and t[1] in keep),
                       parts=None if self.parts is None else {m: self.parts[m] for m in keep})

    def validation_folds(self) -> tuple[ValidationSplit, ...]:
        """Every validation fold of the split: fold 0 (its validation classes), then folds 1..K-1."""
        fold0 = self.split.validation or derived_validation(self.split)
        return (fold0, *(self.split.folds or derived_folds(self.split, fold0)))

    def selection_view(self, fold: int = 0) -> ZSDataset:
        """The model-selection problem: the seen classes only, with the validation classes (of validation fold
        ``fold``; fold 0 is the split's validation file) as the unseen ones.

        Test-class samples *and* names are dropped (class ids are renumbered over the seen classes), so
        nothing a configuration is chosen on depends on a test class. Tasks, parts and the evaluation
        protocol are the test's, so validation is scored exactly like the test. In the standard and generalized
        scenarios the seen classes' test items are dropped first (see :meth:`_without_seen_test_items`) and the
        validation problem is scored on all its items (``all``).
        """
        if self.stage != "test":
            raise ZSBenchError(f"dataset {self.name!r} is already the selection view")
        base = self if self.scenario == DEFAULT_SCENARIO else self._without_seen_test_items()
        return base._selection_problem(fold)

    def _selection_problem(self, fold: int) -> ZSDataset:
        """:meth:`selection_view` of this dataset as it is."""
        folds = self.validation_folds()
        if not 0 <= fold < len(folds):
            raise ZSBenchError(f"split {self.split.name!r} of {self.name!r} has {len(folds)} validation folds "
                               f"(0..{len(folds) - 1}); --fold {fold} does not exist")
        validation = folds[fold]
        keep = self.seen_classes  # sorted ids of the seen classes
        new_id = np.full(len(self.class_names), -1, dtype=np.int64)
        new_id[keep] = np.arange(keep.size)
        features, labels = {}, {}
        parts = None if self.parts is None else {}
        for m in self.modalities:  # paired modalities share their labels, so their rows (and pairs) agree
            rows = np.flatnonzero(np.isin(self.labels[m], keep))
            features[m] = self.features[m][rows]
            labels[m] = new_id[self.labels[m][rows]]
            if parts is not None:
                parts[m] = self.parts[m][rows]
        val = set(validation.classes)
        seen_names = tuple(self.class_names[i] for i in keep)
        name = f"{self.split.name}/validation" + (f"-fold{fold}" if fold else "")  # fold 0 keeps its old name
        split = replace(self.split, name=name, sha256=validation.sha256,
                        seen=tuple(n for n in seen_names if n not in val),
                        unseen=tuple(n for n in seen_names if n in val), path=validation.path, validation=None,
                        folds=())
        return replace(self, features=features, labels=labels, class_names=seen_names,
                       class_embeddings=np.asarray(self.class_embeddings)[keep], split=split, parts=parts,
                       stage="validation")

    def in_scenario(self, scenario: str) -> ZSDataset:
        """The same dataset scored in ``scenario`` (no copy of the arrays)."""
        return self if scenario == self.scenario else replace(self, scenario=scenario)

    def _without_seen_test_items(self) -> ZSDataset:
        """The dataset less the seen classes' test items, without parts (for the selection view of the standard
        and generalized scenarios): model selection then neither trains nor scores on a test item, and the
        validation problem draws its own held-out share from what is left (keyed by the validation split)."""
        features, labels = {}, {}
        for m in self.modalities:  # paired data hold the same rows out of every modality, so pairs stay
            rows = np.setdiff1d(np.arange(self.labels[m].size), self.seen_test_items(m))
            features[m], labels[m] = self.features[m][rows], self.labels[m][rows]
        return replace(self, features=features, labels=labels, parts=None, eval_protocol="all")

    def seen_test_items(self, modality: str) -> np.ndarray:
        """Sorted indices of the seen classes' test items of ``modality``: what the seen role of the standard and
        generalized scenarios is scored on, and what training never sees in them.

        With train/test parts: the seen classes' test part. Without: per seen class, ``HELDOUT_SHARE`` of its
        items (rounded, at least one of two or more, never all), a permutation seeded by the split's sha256 and
        the class name (paired data: one draw for all modalities, so pairs stay together). The same split and
        items give the same draw on every machine and for every method.
        """
        if self.parts is not None:
            return self.items(modality, self.seen_classes, "test")
        labels = self.labels[modality]
        order = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[order], self.seen_classes, side="left")
        ends = np.searchsorted(labels[order], self.seen_classes, side="right")
        key = "paired" if self.paired else modality
        chosen = []
        for c, start, end in zip(self.seen_classes, starts, ends, strict=True):
            idx = order[start:end]  # the class's items in dataset order
            n_out = min(idx.size - 1, max(1, int(round(HELDOUT_SHARE * idx.size)))) if idx.size >= 2 else 0
            seed = int.from_bytes(hashlib.sha256(
                f"heldout/{self.split.sha256}/{key}/{self.class_names[c]}".encode()).digest()[:8], "little")
            chosen.append(idx[np.random.default_rng(seed).permutation(idx.size)[:n_out]])
        return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)

    def heldout_record(self) -> dict[str, Any]:
        """How the seen classes' test items were drawn, with a sha256 of their indices (the record's ``heldout``)."""
        items = {m: self.seen_test_items(m) for m in self.modalities}
        digest = hashlib.sha256(json.dumps({m: v.tolist() for m, v in items.items()}, sort_keys=True).encode())
        rule = "test part" if self.parts is not None else f"share {HELDOUT_SHARE} of each seen class, seeded by the split"
        return {"rule": rule, "sha256": digest.hexdigest(), "items": {m: int(v.size) for m, v in items.items()}}

    def modality_groups(self, max_modalities: int | None) -> list[tuple[str, ...]]:
        """The modality sets one fit must cover: all of them, or each task's pair when a method takes fewer."""
        if max_modalities is None or len(self.modalities) <= max_modalities:
            return [self.modalities]
        groups: list[tuple[str, ...]] = []
        for q, g in self.tasks:
            group = tuple(m for m in self.modalities if m in (q, g))
            if group not in groups:
                groups.append(group)
        return groups

    def items(self, modality: str, classes: np.ndarray, part: str | None = None) -> np.ndarray:
        """Indices of the items of ``modality`` whose class is in ``classes`` (and in ``part``, if given)."""
        mask = np.isin(self.labels[modality], classes)
        if part is not None and self.parts is not None:
            mask &= self.parts[modality] == PART_IDS[part]
        return np.flatnonzero(mask)

    def record(self) -> dict[str, Any]:
        counts = {m: int(self.labels[m].size) for m in self.modalities}
        return {"name": self.name, "source": self.source, "n_classes": len(self.class_names), "items": counts,
                "eval_protocol": self.eval_protocol, **self.provenance}


@dataclass(frozen=True)
class DatasetRequest:
    """How to get one dataset: a registered name (real, embedded, or ``synthetic`` stand-in) or a folder."""

    name: str
    synthetic: bool = False
    split: str | None = None
    scale: float | None = None
    data_seed: int = 0
    semantics: str | None = None
    synthetic_version: int | None = None  # stand-in generator version; None: the current default
