"""A :class:`~benchmark.core.data.DatasetRequest` turned into data: loaded, or described without loading.

:func:`describe_request` spells out what a request means (its default split and scale, its source) from the
registry alone, so that a grid's provenance and a time estimate need no data; :func:`load_request` loads it.
"""

from __future__ import annotations

from typing import Any

from benchmark.core.data import DatasetRequest, ZSDataset


def load_request(request: DatasetRequest) -> ZSDataset:
    """The dataset ``request`` names (real, embedded, a synthetic stand-in, or a prepared folder)."""
    from benchmark.datasets import load_dataset

    return load_dataset(request.name, synthetic=request.synthetic, split=request.split, scale=request.scale,
                        data_seed=request.data_seed, semantics=request.semantics,
                        synthetic_version=request.synthetic_version)


def describe_request(request: DatasetRequest) -> dict[str, Any]:
    """The request with every default spelled out (kept in each record's ``grid``), and its ``source``."""
    from benchmark.datasets.specs import SPECS
    from benchmark.datasets.synthetic import DEFAULT_VERSION, default_scale

    spec = SPECS.get(request.name)  # None: a prepared folder of the user's own
    scale = request.scale
    if request.synthetic and scale is None:
        scale = default_scale(spec)
    entry = {"name": request.name, "synthetic": request.synthetic,
             "split": request.split or (spec.default_split if spec else None), "scale": scale,
             "data_seed": request.data_seed, "semantics": request.semantics or "glove"}
    if request.synthetic:
        entry["synthetic_version"] = request.synthetic_version or DEFAULT_VERSION
    source = "synthetic" if request.synthetic else (spec.source if spec is not None else "real")
    return {**entry, "source": source}
