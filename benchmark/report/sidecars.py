"""Reading the ``.npz`` embedding sidecars of run records, and re-scoring them.

A sidecar holds the unseen-class common-space embeddings of a run, keyed ``<fit>/<modality>/<part>/embeddings``
and ``<fit>/<modality>/<part>/labels`` with part ``all`` (protocol "all"), or ``test`` and ``train`` (protocol
"test->train": queries from test, gallery from train). ``<fit>`` names the modality group one model was
fitted on (``sketch+image``; a two-modality method on a three-modality dataset has one fit per task's pair,
each with its own common space). Older sidecars have no fit prefix (one fit of every modality); they are
read as the fit ``""``. The report re-scores them with cosine similarity:
a method's own ``similarity`` is not stored with the record, so for a method that overrides it the
re-scored numbers can differ from the recorded ones (the report says so where it re-scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError, cosine_similarity
from benchmark.report.records import Run

QUERY_GALLERY_PARTS = {"all": ("all", "all"), "test->train": ("test", "train")}


@dataclass
class Sidecar:
    path: Path
    # fit ("" for sidecars without fits) -> modality -> part -> (embeddings, labels)
    fits: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]

    def fit_for(self, modalities) -> str | None:
        """The fit whose common space holds all of ``modalities`` (the first such), or None."""
        for fit, arrays in self.fits.items():
            if all(m in arrays for m in modalities):
                return fit
        return None

    def get(self, modality: str, part: str, fit: str = "") -> tuple[np.ndarray, np.ndarray]:
        try:
            return self.fits[fit][modality][part]
        except KeyError:
            raise ZSBenchError(f"embedding sidecar {self.path} has no {fit + '/' if fit else ''}{modality}/{part} "
                               f"embeddings; rerun the record with `zsbench run --force`") from None

    def plot_part(self, modality: str, fit: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Unseen-class *test* items of a modality (all items when the dataset has no test part)."""
        parts = self.fits.get(fit, {}).get(modality, {})
        return self.get(modality, "test" if "test" in parts else "all", fit)

    def modalities(self, fit: str = "") -> list[str]:
        return sorted(self.fits.get(fit, {}))


def load_sidecar(run: Run) -> Sidecar | None:
    path = run.embeddings_path
    if path is None:
        return None
    try:
        with np.load(path) as data:
            files = {name: data[name] for name in data.files}
    except (OSError, ValueError) as err:
        raise ZSBenchError(f"embedding sidecar {path} is unreadable ({err}); rerun its record with --force") from None
    fits: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
    for name, value in files.items():
        parts = name.split("/")
        if parts[-1] != "embeddings" or len(parts) not in (3, 4):
            continue
        fit, modality, part = ([""] if len(parts) == 3 else []) + parts[:-1]
        labels = files.get("/".join(parts[:-1] + ["labels"]))
        if labels is None:
            raise ZSBenchError(f"embedding sidecar {path}: {name} has no labels array")
        fits.setdefault(fit, {}).setdefault(modality, {})[part] = (np.asarray(value, dtype=np.float32),
                                                                   labels.astype(np.int64))
    return Sidecar(path, fits)


def cosine_scores(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine similarity in float64, so re-scored ties are the embeddings' own (zero vectors score 0)."""
    return cosine_similarity(queries, gallery, dtype=np.float64)


def task_arrays(sidecar: Sidecar, task: str, eval_protocol: str, scenario: str = "zero-shot"):
    """(query embeddings, query labels, gallery embeddings, gallery labels) for a task like ``image->text``.

    None when no fit holds both modalities, or their embeddings differ in width. A standard or generalized run
    keeps one set per modality under its scenario's name (queries and gallery alike).
    """
    if scenario != "zero-shot":
        q_part = g_part = scenario
    elif eval_protocol not in QUERY_GALLERY_PARTS:
        raise ZSBenchError(f"sidecar {sidecar.path}: unknown evaluation protocol {eval_protocol!r}")
    else:
        q_part, g_part = QUERY_GALLERY_PARTS[eval_protocol]
    q_mod, g_mod = task.split("->")
    fit = sidecar.fit_for((q_mod, g_mod))
    if fit is None:
        return None  # the run kept no embeddings of this task's fit
    Zq, yq = sidecar.get(q_mod, q_part, fit)
    Zg, yg = sidecar.get(g_mod, g_part, fit)
    if Zq.shape[1] != Zg.shape[1]:
        return None  # no common space to compare by cosine (the method scores with its own similarity)
    return Zq, yq, Zg, yg


def class_names_for(dataset: str) -> dict[int, str]:
    """Label -> class name for a registered dataset, or {} (labels then show as numbers)."""
    try:
        from benchmark.datasets.specs import get_spec

        return dict(enumerate(get_spec(dataset).class_names))
    except Exception:  # an unknown or user dataset: fall back to numeric labels
        return {}
