"""Class-disjoint validation: every frozen split's validation classes are seen classes, never test classes,
and the selection view a configuration is chosen on holds no test-class sample or name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.contract import ZSBenchError
from benchmark.core.data import derived_validation, draw_validation_classes
from benchmark.core.protocol import build_train_view, evaluate
from benchmark.datasets.specs import SPECS
from benchmark.datasets.splits import load_split, load_validation, validation_path
from benchmark.registry import build_method
from tests.conftest import make_tiny_dataset

FROZEN = [(name, split) for name, spec in SPECS.items() for split in spec.splits]


@pytest.mark.parametrize(("dataset", "split_name"), FROZEN)
def test_validation_classes_are_seen_classes_and_never_test_classes(dataset, split_name):
    split = SPECS[dataset].split(split_name)
    validation = split.validation
    assert validation is not None and validation.sha256 == SPECS[dataset].splits[split_name].validation_sha256
    assert set(validation.classes) <= set(split.seen)
    assert not set(validation.classes) & set(split.unseen)
    n = len(validation.classes)
    assert n >= 2 and len(split.seen) - n >= 2
    assert abs(n - 0.2 * len(split.seen)) <= 1 or n == 2


def test_a_changed_validation_file_is_refused(tmp_path):
    spec = SPECS["wikipedia"]
    ref = spec.splits["dadn"]
    source = Path(load_split.__globals__["SPLITS_DIR"]) / "wikipedia"
    split = load_split(source / ref.file, ref.sha256)
    edited = tmp_path / "dadn.validation.json"
    data = json.loads(validation_path(source / ref.file).read_text())
    data["validation"] = data["validation"][:1]
    edited.write_text(json.dumps(data))
    with pytest.raises(ZSBenchError, match="dadn.validation.json has sha256 .* restore it"):
        load_validation(split, edited, ref.validation_sha256)
    data = json.loads(validation_path(source / ref.file).read_text())
    data["validation"] = [split.unseen[0]]
    edited.write_text(json.dumps(data))
    with pytest.raises(ZSBenchError, match="not seen classes"):
        load_validation(split, edited, None)


def test_the_draw_is_fixed_and_needs_enough_seen_classes():
    seen = tuple(f"c{i}" for i in range(30))
    # Pinned: a numpy or code change that moved these would silently move users' validation classes.
    assert draw_validation_classes(seen, "k") == ("c2", "c5", "c9", "c15", "c22", "c27")
    assert draw_validation_classes(seen[:6], "k") == ("c1", "c3")  # the minimum of 2, leaving 4 to train on
    assert draw_validation_classes(tuple("abcdefghij"), "0" * 64) == ("b", "c")
    with pytest.raises(ZSBenchError, match="needs at least 4"):
        draw_validation_classes(seen[:3], "k")


@pytest.mark.parametrize("paired", [False, True])
def test_selection_view_drops_every_test_class_and_keeps_the_protocol(paired):
    ds = make_tiny_dataset(paired=paired, n_classes=8, n_unseen=2)
    view = ds.selection_view()
    test_names = set(ds.split.unseen)
    assert view.stage == "validation" and not test_names & set(view.class_names)
    assert set(view.split.unseen) == set(derived_validation(ds.split).classes)
    assert set(view.split.seen) | set(view.split.unseen) == set(ds.split.seen)
    assert view.tasks == ds.tasks and view.eval_protocol == ds.eval_protocol
    for m in ds.modalities:
        # every remaining item is a seen-class item of the full dataset, with its features unchanged
        kept = np.isin(ds.labels[m], ds.seen_classes)
        np.testing.assert_array_equal(view.features[m], ds.features[m][kept])
        names = np.array(ds.class_names)[ds.labels[m][kept]]
        np.testing.assert_array_equal(np.array(view.class_names)[view.labels[m]], names)
    train = build_train_view(view)
    for m in train.modalities:
        assert not np.isin(train.labels[m], view.unseen_classes).any()
    if paired:
        np.testing.assert_array_equal(view.labels["image"], view.labels["text"])
        np.testing.assert_array_equal(view.parts["image"], ds.parts["image"][np.isin(ds.labels["image"],
                                                                                        ds.seen_classes)])
    with pytest.raises(ZSBenchError, match="already the selection view"):
        view.selection_view()


def test_validation_is_scored_like_the_test():
    ds = make_tiny_dataset(n_classes=8, n_unseen=2)
    view = ds.selection_view()
    _, method = build_method("semantic-regression", {"hidden": 16, "epochs": 2})
    method.fit(build_train_view(view), seed=0)
    metrics, details = evaluate(method, view, ks=(5,))
    assert set(metrics) == {"sketch->image"}
    n_val_items = int(np.isin(view.labels["sketch"], view.unseen_classes).sum())
    assert details["tasks"]["sketch->image"]["n_queries"] == n_val_items


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    root = Path(__file__).resolve().parents[1]
    modules = []
    for package in ("benchmark", "baselines", "cfsa"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    # A clean interpreter loads the third-party libraries once, then forks one child per module: each child
    # starts with none of this project's modules loaded, so an import that works only after another fails.
    script = ("import os, sys, importlib\n"
              "import numpy, scipy, sklearn, sklearn.metrics, torch, click, rich, pandas, pyarrow.parquet, matplotlib.pyplot, optuna, PIL.Image, openTSNE  # noqa\n"
              "bad = []\n"
              "for m in sys.argv[1:]:\n"
              "    pid = os.fork()\n"
              "    if pid == 0:\n"
              "        try:\n"
              "            importlib.import_module(m)\n"
              "        except BaseException as err:\n"
              "            print(f'{m}: {type(err).__name__}: {err}', flush=True)\n"
              "            os._exit(1)\n"
              "        os._exit(0)\n"
              "    if os.waitpid(pid, 0)[1]: bad.append(m)\n"
              "sys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stdout
