"""The method contract: the only part of the harness that methods import (with :mod:`benchmark.torch_utils`).

A method is a dataclass whose fields are its hyper-parameters, with the paper's defaults (scikit-learn's
estimator shape). ``fit(train, seed)`` learns from a :class:`TrainView` and returns self; learned state
gets a trailing underscore; ``embed(modality, X)`` maps raw features of one modality into the common
space; ``similarity(Zq, Zg)`` scores queries against the gallery (cosine unless overridden).

A method never sees an unseen-class sample: the protocol builds the train view and checks it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Method",
    "NotFittedError",
    "LogUniform",
    "Uniform",
    "IntRange",
    "Choice",
    "TrainView",
    "ZSBenchError",
    "LeakageError",
    "TrainingDiverged",
    "cosine_similarity",
    "check_finite_loss",
    "register_method",
    "fit_context",
]


class ZSBenchError(Exception):
    """An error whose message is a complete, one-line explanation for the user (no traceback shown)."""


class LeakageError(ZSBenchError):
    """A train view would contain a sample of an unseen class."""


class TrainingDiverged(ZSBenchError):
    """A loss became NaN or infinite; the run is stopped and no record is written."""


class NotFittedError(ZSBenchError):
    """``embed`` was called before ``fit``."""


# --- search spaces: what ``zsbench tune`` may try for a hyper-parameter (declared beside it) ---------------

@dataclass(frozen=True)
class LogUniform:
    """A float drawn log-uniformly from [low, high] (learning rates, loss weights, temperatures)."""

    low: float
    high: float


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high] (dropout, momentum)."""

    low: float
    high: float


@dataclass(frozen=True)
class IntRange:
    """An integer from [low, high] in steps of ``step`` (log-uniform when ``log``: widths, epochs)."""

    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclass(frozen=True)
class Choice:
    """One of a few values (a loss kind, a schedule, a switch)."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class TrainView:
    """What a method may learn from: seen-class training samples, and every class's name and embedding.

    ``features[m]`` / ``labels[m]`` hold only seen-class samples of modality ``m``; labels are class ids
    indexing ``class_names`` and ``class_embeddings`` (all classes: unseen class *names* are allowed side
    information). ``holdout_*`` has the same shape: held-out seen-class *samples*, for early stopping (they
    belong to classes the method trains on, so they cannot measure transfer to new classes).
    When ``paired`` is true, row i of every modality is one item (image-text pairs), in both parts.
    """

    modalities: tuple[str, ...]
    features: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray]
    class_names: tuple[str, ...]
    class_embeddings: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    holdout_features: Mapping[str, np.ndarray]
    holdout_labels: Mapping[str, np.ndarray]
    paired: bool
    tasks: tuple[tuple[str, str], ...]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def embedding_dim(self) -> int:
        return int(self.class_embeddings.shape[1])

    def dim(self, modality: str) -> int:
        return int(self.features[modality].shape[1])


def cosine_similarity(zq: np.ndarray, zg: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Cosine similarity matrix (queries x gallery) in ``dtype``; zero vectors score 0."""
    zq = np.asarray(zq, dtype=dtype)
    zg = np.asarray(zg, dtype=dtype)
    zq = zq / np.maximum(np.linalg.norm(zq, axis=1, keepdims=True), 1e-12)
    zg = zg / np.maximum(np.linalg.norm(zg, axis=1, keepdims=True), 1e-12)
    return zq @ zg.T


def check_finite_loss(name: str, value: float, epoch: int, method: str) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"{method}: loss '{name}' became {value} at epoch {epoch}; no record written "
            f"(lower the learning rate or check the features for extreme values)"
        )


#: The device of the fits in progress in this thread: set by the runner (:func:`fit_context`), read by
#: :meth:`Method.begin_fit`; a method never holds it as a field, so it is neither a hyper-parameter nor state.
_FIT_DEVICE: ContextVar[str] = ContextVar("zsbench_fit_device", default="cpu")


@contextlib.contextmanager
def fit_context(device: str) -> Iterator[None]:
    """Fits inside run on ``device`` (an already resolved ``cpu``/``cuda[:N]``; see ``benchmark.core.env``)."""
    token = _FIT_DEVICE.set(device)
    try:
        yield
    finally:
        _FIT_DEVICE.reset(token)


@dataclass
class Method:
    """Base class of every method. Subclasses are dataclasses; every field is a hyper-parameter."""

    name: ClassVar[str] = "method"
    #: Hyper-parameter overrides for a seconds-long smoke configuration, used by the contract test suite
    #: (the way scikit-learn's checks shrink estimators); never used for reported runs.
    quick_params: ClassVar[dict[str, Any]] = {}
    #: The most modalities one fit can handle (None: any number). On a dataset with more (emoji: sketch,
    #: image, text), the runner fits the method once per modality pair of the dataset's tasks.
    max_modalities: ClassVar[int | None] = None
    #: What ``zsbench tune`` may try: hyper-parameter name -> LogUniform / Uniform / IntRange / Choice. Ranges
    #: stay within what a CPU run of the method can afford; every method gets the same number of trials.
    search_space: ClassVar[dict[str, Any]] = {}
    #: Named training budgets: hyper-parameter overrides per budget (``zsbench run --budget NAME``). The
    #: fields' defaults are the authors' released settings where a method states them (its ``paper`` budget,
    #: ``{}``); ``cpu`` holds what a CPU forces (a shorter length, a narrower width), each change stated in the
    #: method's docstring. A method offers only the budgets it declares.
    budgets: ClassVar[dict[str, dict[str, Any]]] = {"cpu": {}}
    #: The training-log entries whose sum is the main training loss that ``benchmark.core.convergence`` judges
    #: (exact keys, or prefixes ending in ``_``); ``()`` for a method without iterative training; None: not
    #: assessed.
    convergence_loss: ClassVar[tuple[str, ...] | None] = None
    #: The hyper-parameter that sets a fit's length in epochs (one ``log_epoch`` per epoch). ``zsbench tune``
    #: selects it instead of searching it: each trial trains to the budget's cap while the validation classes
    #: are scored every epoch, and the best epoch is the trial's length (``length_params``). None, or a name
    #: that is not a hyper-parameter (closed-form methods): no length to select.
    length_param: ClassVar[str | None] = "epochs"
    history_: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False, compare=False)

    def fit(self, train: TrainView, seed: int) -> Method:
        raise NotImplementedError

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def begin_fit(self, seed: int) -> np.random.Generator:
        """The common start of every ``fit``: a fresh history and progress count (a refit starts over, it does
        not append), every random generator seeded, ``device_`` the device of the :func:`fit_context` the fit runs
        in (the CPU outside one). Returns a numpy generator of the seed.
        """
        import torch

        from benchmark.torch_utils import seed_everything

        self.history_ = []
        self.progress_done_ = 0
        self.progress_total_ = None
        seed_everything(seed)
        self.device_ = torch.device(_FIT_DEVICE.get())
        self.fitted_ = True
        return np.random.default_rng(seed)

    def check_fitted(self) -> None:
        """Raise a clear error when ``embed`` comes before ``fit`` (call it first thing in ``embed``)."""
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{self.name}: embed() was called before fit(); fit the method on a train view first")

    # --- the progress protocol: a step counter with its total, shown by ``zsbench run`` ---------------------
    def set_total_steps(self, total: int) -> None:
        """Declare how many optimisation steps this fit will take (call once, before the first step)."""
        self.progress_total_ = int(total)
        self.progress_done_ = 0
        self._report_progress()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` finished optimisation steps."""
        self.progress_done_ = getattr(self, "progress_done_", 0) + int(steps)
        self._report_progress()

    def _report_progress(self) -> None:
        hook = getattr(self, "progress_hook_", None)  # set by the runner
        if hook is not None:
            hook(getattr(self, "progress_done_", 0), getattr(self, "progress_total_", None))

    def similarity(self, zq: np.ndarray, zg: np.ndarray) -> np.ndarray:
        return cosine_similarity(zq, zg)

    def validate_params(self) -> None:
        """Raise a one-line ZSBenchError when a hyper-parameter value cannot work (a width of 0, an unknown loss
        kind). ``zsbench tune`` calls it on both ends of every declared range before any trial."""

    def supports(self, train: TrainView) -> str | None:
        """None when this method can learn from ``train``; otherwise a one-line reason, and the runner skips
        the (method, dataset) pair with that reason instead of running it. Every method supports every
        dataset unless it overrides this (CCA needs paired items, say)."""
        return None

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters (constructor arguments) and their values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def length_params(self, epochs: int) -> dict[str, Any]:
        """The hyper-parameters that make a fit run exactly ``epochs`` epochs (a method whose length depends on
        more than ``length_param``, such as a minimum number of steps, overrides this)."""
        return {self.length_param: int(epochs)} if self.length_param else {}

    def log_epoch(self, epoch: int, **losses: float) -> None:
        """Record one epoch's losses (kept in the run record) and stop on a non-finite one."""
        for key, value in losses.items():
            check_finite_loss(key, float(value), epoch, self.name)
        entry = {"epoch": epoch, **{k: float(v) for k, v in losses.items()}}
        self.history_.append(entry)
        hook = getattr(self, "epoch_hook_", None)  # set by the runner: progress, and validation monitoring
        if hook is not None:
            extra = hook(epoch, entry)  # e.g. the validation-class mAP of this epoch's model, kept in the log
            if extra:
                entry.update(extra)


#: name -> (method class, hyper-parameter overrides). Filled by :func:`register_method` at import time.
METHOD_REGISTRY: dict[str, tuple[type[Method], dict[str, Any]]] = {}


def register_method(name: str, cls: type[Method] | None = None, **overrides: Any):
    """Register a method class under ``name``; ``overrides`` make a variant (an ablation, say).

    Usable as a decorator (``@register_method("dadn")``) or as a call for variants
    (``register_method("cfsa-no-cycle", CFSA, cycle_weight=0.0)``).
    """

    def add(method_cls: type[Method]) -> type[Method]:
        names = {f.name for f in dataclasses.fields(method_cls) if f.init}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"register_method({name!r}): {sorted(unknown)} are not hyper-parameters of {method_cls}")
        if name in METHOD_REGISTRY and METHOD_REGISTRY[name][0] is not method_cls:
            raise ValueError(f"method name {name!r} is registered twice")
        METHOD_REGISTRY[name] = (method_cls, dict(overrides))
        return method_cls

    return add if cls is None else add(cls)
