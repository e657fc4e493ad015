"""Datasets: declarative specs, frozen splits, semantics, synthetic stand-ins and loaders."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.contract import ZSBenchError
from benchmark.protocol import ZSDataset

#: Where prepared real datasets live: $ZSBENCH_DATA, else ./data.
DATA_ENV = "ZSBENCH_DATA"


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV, "data"))


def load_dataset(name: str, synthetic: bool = False, split: str | None = None, scale: float | None = None,
                 data_seed: int = 0) -> ZSDataset:
    """A registered dataset (real from its prepared folder, or its synthetic stand-in)."""
    from benchmark.datasets.specs import get_spec

    if synthetic:
        from benchmark.datasets.synthetic import make_synthetic

        return make_synthetic(name, split=split, scale=scale, data_seed=data_seed)
    spec = get_spec(name)
    folder = data_root() / name
    if not (folder / "manifest.json").is_file():
        raise ZSBenchError(
            f"no prepared {spec.name} data in {folder}/ (no manifest.json); get the raw data ({spec.homepage}), "
            f"run `zsbench datasets prepare {spec.name} --from PATH`, or add --synthetic for the stand-in"
        )
    raise ZSBenchError(f"reading prepared folders is not available in this version; use --synthetic ({folder})")
