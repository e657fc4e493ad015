"""Datasets: declarative specs, frozen splits, semantics, synthetic stand-ins and loaders."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.contract import ZSBenchError
from benchmark.core.data import ZSDataset

#: Where prepared real datasets live: $ZSBENCH_DATA, else ./data.
DATA_ENV = "ZSBENCH_DATA"


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV, "data"))


def check_available(name: str, synthetic: bool = False, split: str | None = None) -> None:
    """Fail fast, before a grid starts, when a dataset cannot be loaded: an unknown name or split, or real data
    that has not been prepared. Nothing is loaded."""
    from benchmark.datasets.prepared import MANIFEST
    from benchmark.datasets.specs import SPECS, get_spec

    if name not in SPECS and Path(name).is_dir():
        if not (Path(name) / MANIFEST).is_file():
            raise ZSBenchError(f"{name} has no {MANIFEST}: it is not a prepared dataset folder (see docs/data.md)")
        return
    spec = get_spec(name)
    spec.split(split)
    if synthetic or spec.source == "embedded":
        return
    folder = data_root() / name
    if not (folder / MANIFEST).is_file():
        raise ZSBenchError(
            f"no prepared {spec.name} data in {folder}/ (no {MANIFEST}); get the raw data ({spec.homepage}), "
            f"run `zsbench datasets prepare {spec.name} --from PATH`, or add --synthetic for the stand-in"
        )


def load_dataset(name: str, synthetic: bool = False, split: str | None = None, scale: float | None = None,
                 data_seed: int = 0, semantics: str | None = None,
                 synthetic_version: int | None = None) -> ZSDataset:
    """A dataset: a registered name (real from $ZSBENCH_DATA/<name>/, embedded, or its synthetic stand-in) or
    the path of a prepared folder of your own. ``semantics`` replaces the class embeddings (glove, minilm, a file).
    ``synthetic_version`` picks the stand-in generator (None: the current default; 1 rebuilds old records' data).
    """
    from benchmark.datasets.prepared import load_prepared
    from benchmark.datasets.specs import SPECS, get_spec

    if name not in SPECS and Path(name).is_dir():
        if synthetic:
            raise ZSBenchError(f"--synthetic applies to registered datasets, not the folder {name}")
        return load_prepared(Path(name), None, split, semantics)
    spec = get_spec(name)
    if synthetic:
        from benchmark.datasets.synthetic import make_synthetic

        if semantics is not None:
            raise ZSBenchError("--semantics applies to real and embedded data; the synthetic stand-ins are built "
                               "from GloVe")
        return make_synthetic(name, split=split, scale=scale, data_seed=data_seed, version=synthetic_version)
    if synthetic_version is not None:
        raise ZSBenchError(f"synthetic_version applies to synthetic stand-ins only; add synthetic = true for {name}")
    if spec.source == "embedded":
        from benchmark.datasets.emoji import load_emoji

        return load_emoji(split=split, semantics=semantics)
    check_available(name, synthetic=False, split=split)
    return load_prepared(data_root() / name, spec, split, semantics)
