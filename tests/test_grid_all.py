"""The grid command's ``all`` expansion, skip reasons (Method.supports), failures that do not stop the grid,
and resuming."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.contract import METHOD_REGISTRY, Method, TrainView, ZSBenchError
from benchmark.datasets.requests import load_request
from benchmark.datasets.specs import SPECS
from benchmark.execution.grid import dataset_requests, expand_methods, grid_from_flags
from benchmark.execution.plan import run_grid_with
from benchmark.registry import available_methods

TINY_SCALE = 0.02  # pascal-sentences: 20 classes x 6 pairs


@dataclass
class NeedsThreeModalities(Method):
    name = "needs-three"

    def supports(self, train: TrainView) -> str | None:
        return None if len(train.modalities) >= 3 else "needs three modalities, this dataset has two"

    def fit(self, train, seed):
        raise AssertionError("an unsupported pair must never reach fit")


@dataclass
class Diverges(Method):
    name = "diverges"

    def fit(self, train, seed):
        self.begin_fit(seed)
        self.log_epoch(0, loss=float("nan"))
        return self


@pytest.fixture
def test_methods(monkeypatch):
    available_methods()  # discover the built-in methods first, so ours are added on top
    monkeypatch.setitem(METHOD_REGISTRY, "needs-three", (NeedsThreeModalities, {}))
    monkeypatch.setitem(METHOD_REGISTRY, "diverges", (Diverges, {}))


def test_all_methods_expands_to_every_registered_method_once():
    registered = list(available_methods())
    assert expand_methods(["all"]) == registered
    assert {"cvae", "sem-pcyc", "semantic-regression", "random"} <= set(registered)
    assert expand_methods(["random", "all"]) == ["random"] + [m for m in registered if m != "random"]
    assert expand_methods(["cvae", "cvae"]) == ["cvae"]


def test_all_datasets_and_all_splits():
    requests = dataset_requests(["all"], synthetic=True)
    assert [r.name for r in requests] == list(SPECS)
    assert all(r.split is None and r.synthetic for r in requests)
    sketchy = dataset_requests(["sketchy"], split="all")
    assert [r.split for r in sketchy] == list(SPECS["sketchy"].splits)
    every = dataset_requests(["all"], split="all")
    assert len(every) == sum(len(spec.splits) for spec in SPECS.values())
    with pytest.raises(ZSBenchError, match="has no split 'sake-25'"):
        dataset_requests(["sketchy", "tu-berlin"], split="sake-25")
    assert dataset_requests(["sketchy"], split="eccv-21")[0].split == "eccv-21"


def run_grid(methods, seeds, results):
    grid = grid_from_flags(methods, ["pascal-sentences"], seeds, synthetic=True, scale=TINY_SCALE)
    return run_grid_with(grid, results).results


def test_grid_skips_unsupported_with_reason_and_resumes(tmp_path, test_methods):
    first = run_grid(["random", "needs-three", "diverges"], [0, 1], tmp_path)
    status = {(o.method, o.seed): o for o in first}
    assert [status[("random", s)].status for s in (0, 1)] == ["done", "done"]
    assert status[("needs-three", 0)].status == "unsupported"
    assert "needs three modalities" in status[("needs-three", 0)].reason
    assert status[("diverges", 1)].status == "failed" and "nan" in status[("diverges", 1)].reason
    assert not list(tmp_path.rglob("needs-three/*.json")) and not list(tmp_path.rglob("diverges/*.json"))
    again = run_grid(["random", "needs-three"], [0, 1, 2], tmp_path)
    assert [(o.method, o.seed, o.status) for o in again] == [
        ("random", 0, "skipped"), ("random", 1, "skipped"), ("random", 2, "done"),
        ("needs-three", 0, "unsupported"), ("needs-three", 1, "unsupported"), ("needs-three", 2, "unsupported")]


def test_cli_run_prints_skip_reason(tmp_path, test_methods):
    result = CliRunner().invoke(cli, ["run", "--methods", "random,needs-three", "--dataset", "pascal-sentences",
                                      "--synthetic", "--scale", str(TINY_SCALE), "--results", str(tmp_path)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "unsupported" in result.output and "needs three modalities" in result.output
    assert "done" in result.output


def test_default_supports_everything():
    from benchmark.core.data import DatasetRequest as Request
    from benchmark.core.protocol import build_train_view

    view = build_train_view(load_request(Request("pascal-sentences", synthetic=True, scale=TINY_SCALE)))
    for name, (cls, overrides) in available_methods().items():
        assert cls(**overrides).supports(view) is None, name
    assert np.isin(view.labels["image"], view.seen_classes).all()
