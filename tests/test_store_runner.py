"""Runner and store: records with provenance, atomic writes, resume, forced reruns that lose nothing."""

from __future__ import annotations

import json
import os

import pytest

from benchmark.contract import ZSBenchError
from benchmark.core.store import SCHEMA_VERSION, SIDECAR_SUFFIXES, ResultStore
from tests.conftest import run_method


def test_record_has_the_schema_fields(tmp_path, tiny_sketch):
    outcome = run_method("semantic-regression", tiny_sketch, 0, ResultStore(tmp_path), params={"epochs": 2, "hidden": 16})
    assert outcome.status == "done"
    record = json.loads(outcome.path.read_text())
    for key in ("schema_version", "method", "config", "dataset", "source", "split", "seed", "metrics", "timings",
                "peak_memory_mb", "versions", "git_commit", "started", "finished", "training_log"):
        assert key in record, key
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["source"] == "synthetic" and record["split"]["sha256"] == "0" * 64
    assert record["config"]["epochs"] == 2 and len(record["training_log"]) == 2
    assert set(record["metrics"]) == {"sketch->image"}
    assert set(record["metrics"]["sketch->image"]) == {"mAP@all", "mAP@100", "P@100", "mAP@200", "P@200", "R-precision"}
    assert (outcome.path.parent / record["embeddings_file"]).is_file()


def _record_files(path) -> dict[str, bytes]:
    """A record and its sidecars, by suffix, as bytes."""
    return {suffix: path.with_name(path.stem + suffix).read_bytes() for suffix in (".json", *SIDECAR_SUFFIXES)}


def test_rerun_skips_and_force_keeps_the_old_record_and_its_sidecars(tmp_path, tiny_sketch):
    store = ResultStore(tmp_path)
    first = run_method("random", tiny_sketch, 0, store)
    originals = [_record_files(first.path)]
    assert set(originals[0]) == {".json", ".npz", ".queries.parquet"}
    again = run_method("random", tiny_sketch, 0, store)
    assert again.status == "skipped" and again.path == first.path
    # Forced twice within the same second: each older record keeps its own files, none overwrites another.
    for _ in range(2):
        forced = run_method("random", tiny_sketch, 0, store, force=True)
        assert forced.status == "done" and forced.path == first.path
        originals.append(_record_files(forced.path))
    folder = first.path.parent / "superseded"
    kept = sorted(folder.glob("*.json"))
    assert len(kept) == 2, sorted(p.name for p in folder.iterdir())
    # Every superseded record has its own embeddings and per-query results beside it, as they were written (two
    # runs within one second can write identical bytes, hence a comparison of sorted lists).
    assert sorted(sorted(_record_files(path).items()) for path in kept) == sorted(sorted(o.items())
                                                                                 for o in originals[:2])
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.stem + s for p in kept for s in (".json",
                                                                                             *SIDECAR_SUFFIXES))
    assert len(list(store.records())) == 1 and _record_files(first.path) == originals[-1]


def test_different_configuration_gets_its_own_record(tmp_path, tiny_sketch):
    store = ResultStore(tmp_path)
    a = run_method("random", tiny_sketch, 0, store)
    b = run_method("random", tiny_sketch, 0, store, params={"dim": 8})
    c = run_method("random", tiny_sketch, 1, store)
    assert len({a.path, b.path, c.path}) == 3


def test_failed_write_leaves_no_partial_record(tmp_path, tiny_sketch, monkeypatch):
    store = ResultStore(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ZSBenchError, match="No space left on device"):
        run_method("random", tiny_sketch, 0, store)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.tmp"))


def test_a_method_that_fails_mid_training_writes_nothing(tmp_path, tiny_sketch):
    # A learning rate of 1e30 really drives Adam's weights, then the MSE loss, to NaN (no mock).
    with pytest.raises(ZSBenchError, match=r"semantic-regression: loss 'mse_\w+' became nan at epoch \d; no record"):
        run_method("semantic-regression", tiny_sketch, 0, ResultStore(tmp_path),
                   params={"epochs": 3, "hidden": 8, "lr": 1e30})
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_unreadable_record_is_reported_not_skipped(tmp_path, tiny_sketch):
    store = ResultStore(tmp_path)
    path = run_method("random", tiny_sketch, 0, store).path
    path.write_text("{ truncated")
    with pytest.raises(ZSBenchError, match="unreadable"):
        run_method("random", tiny_sketch, 0, store)


def test_claim_is_exclusive(tmp_path):
    store = ResultStore(tmp_path)
    path = tmp_path / "d" / "m" / "seed0-x.json"
    with store.claim(path) as first, store.claim(path) as second:
        assert first and not second


def test_results_folder_that_is_a_file_is_a_clear_error(tmp_path, tiny_sketch):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(ZSBenchError, match="cannot create results folder"):
        run_method("random", tiny_sketch, 0, ResultStore(blocker))


def test_two_modality_method_on_three_modalities_fits_once_per_task_pair(tmp_path, tiny_paired):
    import dataclasses

    import numpy as np

    from benchmark.core.protocol import ZSDataset

    rng = np.random.default_rng(0)
    fields = {f.name: getattr(tiny_paired, f.name) for f in dataclasses.fields(tiny_paired)}
    n = tiny_paired.labels["image"].size
    sketch = (tiny_paired.features["image"][:, :12] + 0.1 * rng.standard_normal((n, 12))).astype(np.float32)
    three = ZSDataset(**{**fields, "modalities": ("sketch", "image", "text"),
                         "features": {**tiny_paired.features, "sketch": sketch},
                         "labels": {**tiny_paired.labels, "sketch": tiny_paired.labels["image"]},
                         "parts": {**tiny_paired.parts, "sketch": tiny_paired.parts["image"]},
                         "tasks": (("sketch", "image"), ("image", "text"), ("text", "image"))})
    outcome = run_method("cca", three, 0, ResultStore(tmp_path))
    assert outcome.status == "done"
    record = outcome.record
    assert record.fits == ["sketch+image", "image+text"]
    assert list(record.metrics) == ["sketch->image", "image->text", "text->image"]
    with np.load(outcome.path.with_suffix(".npz")) as kept:  # every fit's embeddings, named by its fit
        assert {"sketch+image/image/train/embeddings", "image+text/image/test/embeddings"} <= set(kept.files)
    # the image+text part is the same fit as on the two-modality dataset itself
    alone = run_method("cca", tiny_paired, 0, ResultStore(tmp_path / "alone")).record
    assert record.metrics["image->text"] == alone.metrics["image->text"]
