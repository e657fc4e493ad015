"""Reading the ``.npz`` embedding sidecars of run records, and re-scoring them.

A sidecar holds the unseen-class common-space embeddings of a run, keyed ``<modality>/<part>/embeddings``
and ``<modality>/<part>/labels`` with part ``all`` (protocol "all"), or ``test`` and ``train`` (protocol
"test->train": queries from test, gallery from train). The report re-scores them with cosine similarity:
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
    arrays: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # modality -> part -> (embeddings, labels)

    def get(self, modality: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self.arrays[modality][part]
        except KeyError:
            raise ZSBenchError(f"embedding sidecar {self.path} has no {modality}/{part} embeddings; "
                               f"rerun the record with `zsbench run --force`") from None

    def plot_part(self, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """Unseen-class *test* items of a modality (all items when the dataset has no test part)."""
        parts = self.arrays.get(modality, {})
        return self.get(modality, "test" if "test" in parts else "all")

    @property
    def modalities(self) -> list[str]:
        return sorted(self.arrays)


def load_sidecar(run: Run) -> Sidecar | None:
    path = run.embeddings_path
    if path is None:
        return None
    try:
        with np.load(path) as data:
            files = {name: data[name] for name in data.files}
    except (OSError, ValueError) as err:
        raise ZSBenchError(f"embedding sidecar {path} is unreadable ({err}); rerun its record with --force") from None
    arrays: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for name, value in files.items():
        parts = name.split("/")
        if len(parts) == 3 and parts[2] == "embeddings":
            labels = files.get(f"{parts[0]}/{parts[1]}/labels")
            if labels is None:
                raise ZSBenchError(f"embedding sidecar {path}: {name} has no labels array")
            arrays.setdefault(parts[0], {})[parts[1]] = (np.asarray(value, dtype=np.float32), labels.astype(np.int64))
    return Sidecar(path, arrays)


def cosine_scores(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine similarity in float64, so re-scored ties are the embeddings' own (zero vectors score 0)."""
    return cosine_similarity(queries, gallery, dtype=np.float64)


def task_arrays(sidecar: Sidecar, task: str, eval_protocol: str):
    """(query embeddings, query labels, gallery embeddings, gallery labels) for a task like ``image->text``.

    None when the two modalities' embeddings differ in width.
    """
    if eval_protocol not in QUERY_GALLERY_PARTS:
        raise ZSBenchError(f"sidecar {sidecar.path}: unknown evaluation protocol {eval_protocol!r}")
    q_part, g_part = QUERY_GALLERY_PARTS[eval_protocol]
    q_mod, g_mod = task.split("->")
    Zq, yq = sidecar.get(q_mod, q_part)
    Zg, yg = sidecar.get(g_mod, g_part)
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
