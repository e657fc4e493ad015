"""The three evaluation scenarios: zero-shot (unseen classes), standard (seen classes' test items) and
generalized (both), checked against index sets written down by hand on tiny datasets of each family; no
seen-class test item reaches ``fit``; the harmonic mean; a zero-shot run keeps the identity it always had."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.contract import ZSBenchError
from benchmark.core.data import HELDOUT_SHARE, Split, ZSDataset
from benchmark.core.protocol import build_train_view, evaluate, scenario_items
from benchmark.core.spec import config_key
from benchmark.core.store import ResultStore
from benchmark.execution.grid import load_grid, parse_scenarios
from benchmark.execution.runner import make_spec, run_one
from benchmark.metrics import harmonic_mean, role_metrics
from benchmark.registry import available_methods
from tests.conftest import make_tiny_dataset, run_method

CLASSES = ("u0", "u1", "s0", "s1")  # the first two unseen


def _dataset(labels: dict[str, list[int]], parts: dict[str, list[int]] | None, paired: bool,
             tasks: tuple, protocol: str, sha: str = "a" * 64) -> ZSDataset:
    """Features whose first column is the row index, so a train view's rows can be named."""
    features = {m: np.column_stack([np.arange(len(y)), np.ones(len(y))]).astype(np.float32) for m, y in labels.items()}
    split = Split(dataset="hand", name="hand", seen=CLASSES[2:], unseen=CLASSES[:2], holdout_fraction=0.0,
                  holdout_seed=0, sha256=sha, path="<memory>")
    return ZSDataset(name="hand", source="synthetic", modalities=tuple(labels), features=features,
                     labels={m: np.asarray(y) for m, y in labels.items()}, class_names=CLASSES,
                     class_embeddings=np.eye(4, dtype=np.float32), split=split, tasks=tasks,
                     eval_protocol=protocol, paired=paired,
                     parts=None if parts is None else {m: np.asarray(p, dtype=np.int8) for m, p in parts.items()})


def _train_rows(ds: ZSDataset) -> dict[str, list[int]]:
    view = build_train_view(ds)
    return {m: sorted(int(r) for part in (view.features, view.holdout_features) for r in part[m][:, 0])
            for m in ds.modalities}


# --- image-text: the data's own train/test parts ----------------------------------------------------------

#            row: 0  1  2  3  4  5  6  7  8  9 10 11
IT_LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
IT_PARTS = [0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0]  # 1: test part


def image_text(**kw) -> ZSDataset:
    return _dataset({"image": IT_LABELS, "text": IT_LABELS}, {"image": IT_PARTS, "text": IT_PARTS}, True,
                    (("image", "text"), ("text", "image")), "test->train", **kw)


@pytest.mark.parametrize(("scenario", "query", "gallery", "train"), [
    # zero-shot (DADN's protocol): unseen test items against unseen train items; trains on seen train items
    ("zero-shot", [2, 4, 5], [0, 1, 3], [6, 7, 9, 11]),
    # standard: the seen classes' test items against each other
    ("standard", [8, 10], [8, 10], [6, 7, 9, 11]),
    # generalized: seen and unseen test items, as query set and gallery alike
    ("generalized", [2, 4, 5, 8, 10], [2, 4, 5, 8, 10], [6, 7, 9, 11]),
])
def test_image_text_scenarios_use_the_datas_test_part(scenario, query, gallery, train):
    ds = image_text().in_scenario(scenario)
    for m in ds.modalities:
        assert scenario_items(ds, m, "query").tolist() == query
        assert scenario_items(ds, m, "gallery").tolist() == gallery
    assert _train_rows(ds) == {"image": train, "text": train}
    classes = {CLASSES[IT_LABELS[i]] for i in query}
    assert classes == {"zero-shot": {"u0", "u1"}, "standard": {"s0", "s1"}, "generalized": set(CLASSES)}[scenario]


# --- sketch: a frozen held-out share of each seen class's items -------------------------------------------

SK_LABELS = {"sketch": [0] * 3 + [1] * 2 + [2] * 10 + [3] * 3,   # rows 5-14 class s0, 15-17 s1
             "image": [0] * 2 + [1] * 2 + [2] * 2 + [3] * 1}      # rows 4-5 s0, 6 s1 (one item: none held out)


def sketch(**kw) -> ZSDataset:
    return _dataset(SK_LABELS, None, False, (("sketch", "image"),), "all", **kw)


def test_the_held_out_share_takes_a_fifth_of_each_seen_class_and_never_all_of_it():
    ds = sketch()
    held = {m: ds.seen_test_items(m).tolist() for m in ds.modalities}
    # by hand: 10 items -> 2, 3 -> round(0.6) = 1, 2 -> at least 1, 1 -> none (a class keeps a training item)
    assert HELDOUT_SHARE == 0.2
    assert sum(5 <= i <= 14 for i in held["sketch"]) == 2 and sum(15 <= i <= 17 for i in held["sketch"]) == 1
    assert len(held["sketch"]) == 3
    assert sum(i in (4, 5) for i in held["image"]) == 1 and 6 not in held["image"] and len(held["image"]) == 1
    # frozen: this split's draw, written down once (a change to the draw changes every held-out record)
    assert held == {"sketch": [7, 11, 17], "image": [5]}
    again = sketch()
    assert {m: again.seen_test_items(m).tolist() for m in ds.modalities} == held
    other = sketch(sha="b" * 64)  # another split draws anew
    assert {m: other.seen_test_items(m).tolist() for m in ds.modalities} != held
    record = ds.heldout_record()
    assert record["items"] == {"sketch": 3, "image": 1} and len(record["sha256"]) == 64


@pytest.mark.parametrize("scenario", ["zero-shot", "standard", "generalized"])
def test_sketch_scenarios_query_and_gallery_sets(scenario):
    ds = sketch().in_scenario(scenario)
    held = {"sketch": [7, 11, 17], "image": [5]}
    unseen = {"sketch": [0, 1, 2, 3, 4], "image": [0, 1, 2, 3]}
    seen_all = {"sketch": list(range(5, 18)), "image": [4, 5, 6]}
    for m in ds.modalities:
        expected = {"zero-shot": unseen[m], "standard": held[m], "generalized": sorted(unseen[m] + held[m])}[scenario]
        assert scenario_items(ds, m, "query").tolist() == expected
        assert scenario_items(ds, m, "gallery").tolist() == expected
        trained = _train_rows(ds)[m]
        # zero-shot trains on every seen item, as it always did; the other two never on a held-out one
        assert trained == (seen_all[m] if scenario == "zero-shot" else sorted(set(seen_all[m]) - set(held[m])))


def test_paired_data_without_parts_hold_out_the_same_rows_of_every_modality():
    """Emoji: sketch, image and text rows are one item; the held-out share keeps the pairs."""
    labels = [0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3]
    ds = _dataset({"sketch": labels, "image": labels, "text": labels}, None, True,
                  (("sketch", "image"), ("image", "text")), "all").in_scenario("generalized")
    held = [ds.seen_test_items(m).tolist() for m in ds.modalities]
    assert held[0] == held[1] == held[2] and len(held[0]) == 2  # one of s0's five, one of s1's six
    assert sum(4 <= i <= 8 for i in held[0]) == 1 and sum(9 <= i <= 14 for i in held[0]) == 1
    rows = _train_rows(ds)
    assert rows["sketch"] == rows["image"] == rows["text"] == sorted(set(range(4, 15)) - set(held[0]))
    assert scenario_items(ds, "text", "query").tolist() == [0, 1, 2, 3, *held[0]]


# --- no seen-class test item reaches fit, for any registered method ----------------------------------------

class _Stop(Exception):
    pass


def _rows(features: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.asarray(features, dtype=np.float32)}


@pytest.mark.parametrize("name", list(available_methods()))
@pytest.mark.parametrize("scenario", ["standard", "generalized"])
def test_no_seen_class_test_item_reaches_fit_of_any_registered_method(name, scenario, tmp_path, monkeypatch):
    """The runner builds each method's train views (per modality group); a spy ``fit`` stops the run there and
    compares the rows it got, train and early-stopping hold-out alike, with the seen classes' test items."""
    for paired in (False, True):
        ds = make_tiny_dataset(paired=paired, extra_per_class=0 if paired else 2).in_scenario(scenario)
        cls, _ = available_methods()[name]
        views = []

        def spy(self, train, seed, views=views):
            views.append(train)
            raise _Stop

        monkeypatch.setattr(cls, "fit", spy)
        with pytest.raises(_Stop):
            run_method(name, ds, 0, ResultStore(tmp_path), params=dict(cls.quick_params))
        for view in views:
            for m in view.modalities:
                test_rows = ds.seen_test_items(m)
                if paired:  # by hand: make_tiny_dataset marks every 4th item as a test item
                    expected = np.flatnonzero((np.arange(ds.labels[m].size) % 4 == 0)
                                              & np.isin(ds.labels[m], ds.seen_classes))
                    assert test_rows.tolist() == expected.tolist()
                held = _rows(ds.features[m][test_rows])
                assert held and not held & _rows(view.features[m]), f"{name}: {m} test items in training"
                assert not held & _rows(view.holdout_features[m]), f"{name}: {m} test items in the hold-out"
                assert view.holdout_labels[m].size > 0  # the early-stopping hold-out is still there, apart


@pytest.mark.parametrize("paired", [False, True])
def test_the_selection_view_of_a_scenario_holds_no_test_stage_item(paired):
    """Tuning for a scenario neither trains nor scores on a seen-class test item of the test stage."""
    ds = make_tiny_dataset(paired=paired, extra_per_class=0 if paired else 2).in_scenario("generalized")
    view = ds.selection_view()
    assert view.scenario == "generalized" and view.stage == "validation"
    for m in ds.modalities:
        assert not _rows(ds.features[m][ds.seen_test_items(m)]) & _rows(view.features[m])
        assert view.features[m].shape[0] == np.isin(ds.labels[m], ds.seen_classes).sum() - ds.seen_test_items(m).size
        seen_role = view.seen_test_items(m)  # the validation problem's own held-out share of its training classes
        assert seen_role.size and np.isin(view.labels[m][seen_role], view.seen_classes).all()
        query = scenario_items(view, m, "query")
        assert set(view.labels[m][query]) == set(view.seen_classes) | set(view.unseen_classes)


# --- metrics ---------------------------------------------------------------------------------------------

def test_harmonic_mean_of_seen_and_unseen_parts_by_hand():
    per_query = {"mAP@all": np.array([1.0, 0.5, 0.2, np.nan, 0.4]), "P@100": np.array([0.3, 0.1, 0.0, np.nan, 0.0])}
    n_rel = np.array([3, 2, 1, 0, 4])
    seen = np.array([True, True, False, False, False])
    roles = role_metrics(per_query, n_rel, seen)
    # seen: (1 + 0.5) / 2 = 0.75; unseen: (0.2 + 0.4) / 2 = 0.3 (the query without relevant items left out)
    assert roles["seen"]["mAP@all"] == pytest.approx(0.75) and roles["unseen"]["mAP@all"] == pytest.approx(0.3)
    assert roles["harmonic"]["mAP@all"] == pytest.approx(2 * 0.75 * 0.3 / 1.05)  # 0.428571...
    assert roles["harmonic"]["P@100"] == 0.0  # unseen part 0: the harmonic mean is 0, whatever the seen part
    assert harmonic_mean(0.0, 0.0) == 0.0 and np.isnan(harmonic_mean(float("nan"), 0.5))


def test_generalized_scores_split_by_query_class_and_match_sklearn():
    from sklearn.metrics import average_precision_score

    from benchmark.testing import RidgeProjection

    ds = make_tiny_dataset(paired=False, extra_per_class=2).in_scenario("generalized")
    method = RidgeProjection(proj_dim=8).fit(build_train_view(ds), seed=0)
    metrics, details = evaluate(method, ds, ks=(5,))
    q, g = scenario_items(ds, "sketch", "query"), scenario_items(ds, "image", "gallery")
    Zq, Zg = method.embed("sketch", ds.features["sketch"][q]), method.embed("image", ds.features["image"][g])
    yq, yg = ds.labels["sketch"][q], ds.labels["image"][g]
    scores = np.asarray(method.similarity(Zq, Zg), dtype=np.float64)
    aps = np.array([average_precision_score(yg == yq[i], scores[i]) for i in range(yq.size)])
    seen = np.isin(yq, ds.seen_classes)
    roles = details["roles"]["sketch->image"]
    assert metrics["sketch->image"]["mAP@all"] == pytest.approx(aps.mean(), rel=1e-5)
    assert roles["seen"]["mAP@all"] == pytest.approx(aps[seen].mean(), rel=1e-5)
    assert roles["unseen"]["mAP@all"] == pytest.approx(aps[~seen].mean(), rel=1e-5)
    s, u = aps[seen].mean(), aps[~seen].mean()
    assert roles["harmonic"]["mAP@all"] == pytest.approx(2 * s * u / (s + u), rel=1e-5)


# --- identity, records, grids -----------------------------------------------------------------------------

ZERO_SHOT_IDENTITY = (
    '{"config": {"dim": 16}, "data": {"features": "tiny", "semantics": "random"}, "dataset": "tiny", '
    '"eval_protocol": "all", "method": "random", "seed": 3, "selection": {"protocol": "defaults"}, '
    '"source": "synthetic", "split": "tiny", "split_sha256": '
    '"0000000000000000000000000000000000000000000000000000000000000000", "stage": "test", "threads": 1}')


def test_a_zero_shot_identity_is_what_it_was_before_scenarios():
    """The literal identity (and record name) the code before scenarios gave this run."""
    ds = make_tiny_dataset()
    identity = make_spec("random", 3, "tiny").identity(ds)
    assert json.dumps(identity, sort_keys=True) == ZERO_SHOT_IDENTITY
    assert config_key(identity) == "d8f94ddfef553adf"
    explicit = make_spec("random", 3, "tiny", scenario="zero-shot").identity(ds.in_scenario("zero-shot"))
    assert explicit == identity
    others = {s: make_spec("random", 3, "tiny", scenario=s).identity(ds) for s in ("standard", "generalized")}
    assert {s: i["scenario"] for s, i in others.items()} == {"standard": "standard", "generalized": "generalized"}
    assert all(i["heldout_sha256"] == ds.heldout_record()["sha256"] for i in others.values())
    assert len({config_key(i) for i in (identity, *others.values())}) == 3


def test_records_say_their_scenario_and_a_wrong_view_is_refused(tmp_path):
    ds = make_tiny_dataset(paired=True)
    store = ResultStore(tmp_path)
    zero = run_method("random", ds, 0, store).record
    general = run_method("random", ds.in_scenario("generalized"), 0, store).record
    assert zero.scenario == "zero-shot" and zero.heldout is None and zero.metrics_by_role is None
    assert general.scenario == "generalized" and general.heldout["items"] == {"image": 12, "text": 12}
    assert set(general.metrics_by_role) == {"image->text", "text->image"}
    assert set(general.metrics_by_role["image->text"]) == {"seen", "unseen", "harmonic"}
    loaded = store.load(Path(run_method("random", ds, 0, store).path))
    assert loaded.scenario == "zero-shot"
    spec = make_spec("random", 0, "tiny", scenario="standard")
    with pytest.raises(ZSBenchError, match="standard scenario"):
        run_one(spec, ds, store)


def test_scenario_lists_and_all_expand_in_order(tmp_path):
    assert parse_scenarios("all") == ["zero-shot", "generalized", "standard"]
    assert parse_scenarios(["standard", "zero-shot"]) == ["zero-shot", "standard"]
    with pytest.raises(ZSBenchError, match="scenario must be one of"):
        parse_scenarios("gzsl")
    grid = tmp_path / "grid.toml"
    grid.write_text('scenario = ["generalized", "standard"]\n[[methods]]\nname = "random"\n'
                    '[[datasets]]\nname = "wikipedia"\nsynthetic = true\n')
    assert load_grid(grid).scenarios == ["generalized", "standard"]


def test_run_scenario_all_writes_three_records_per_method_and_seed(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--methods", "random", "--dataset", "wikipedia", "--synthetic",
                                      "--scale", "0.05", "--seeds", "0,1", "--scenario", "all", "--results",
                                      str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.stdout)
    assert sorted((o["seed"], o["scenario"]) for o in outcomes) == [
        (seed, s) for seed in (0, 1) for s in sorted(("zero-shot", "generalized", "standard"))]
    records = [json.loads(Path(o["record"]).read_text()) for o in outcomes]
    assert len({o["record"] for o in outcomes}) == 6
    assert all(("metrics_by_role" in r) == (r["scenario"] == "generalized") for r in records)


# --- the report ---------------------------------------------------------------------------------------------

def test_records_of_different_scenarios_never_share_a_report_table_row(tmp_path):
    from benchmark.report.build import build_report

    ds = make_tiny_dataset(paired=True)
    store = ResultStore(tmp_path / "runs")
    seeds = {"zero-shot": (0, 1), "generalized": (0, 1, 2), "standard": (0,)}
    for scenario, scenario_seeds in seeds.items():
        for seed in scenario_seeds:
            run_method("random", ds.in_scenario(scenario), seed, store)
    result = build_report(tmp_path / "runs", tmp_path / "report", plots=False, sensitivity=False, statistics=False)
    tables = [t for t in result.comparison if not t.key.endswith("-roles")]
    assert len(tables) == 6  # three scenarios x two tasks
    for table in tables:
        (row,) = [row for section in table.sections for row in section.rows]
        # the row pools the seeds of its own scenario only (2, 3 and 1 seeds), never those of another
        assert row.seeds == str(len(seeds[table.meta["scenario"]])), (table.key, row.seeds)
    assert sorted(t.meta["scenario"] for t in tables) == sorted(["zero-shot", "generalized", "standard"] * 2)
    roles = [t for t in result.comparison if t.key.endswith("-roles")]
    assert [t.meta["scenario"] for t in roles] == ["generalized", "generalized"]
    assert roles[0].columns[:3] == ["mAP@all S", "mAP@all U", "mAP@all H"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Comparison tables: generalized zero-shot" in html and "Comparison tables: standard retrieval" in html


# --- tuning in a scenario -----------------------------------------------------------------------------------

def test_tuning_for_a_scenario_never_touches_a_test_item_and_keeps_its_own_study(tmp_path, monkeypatch):
    from benchmark.core.data import DatasetRequest
    from benchmark.datasets.requests import load_request
    from benchmark.execution.tuning import tune_all, tuned_choice
    from benchmark.testing import RidgeProjection

    request = DatasetRequest("wikipedia", synthetic=True, scale=0.05)
    ds = load_request(request).in_scenario("generalized")
    fitted: list[dict[str, set[bytes]]] = []
    original = RidgeProjection.fit

    def spy(self, train, seed):
        fitted.append({m: _rows(train.features[m]) | _rows(train.holdout_features[m]) for m in train.modalities})
        return original(self, train, seed)

    monkeypatch.setattr(RidgeProjection, "fit", spy)
    result = tune_all(["benchmark.testing:RidgeProjection"], request, 2, [0], tmp_path, scenario="generalized")[0]
    assert result.trials == 2 and result.storage.name.endswith(".generalized.sqlite") and len(fitted) == 2
    for rows in fitted:
        for m in ds.modalities:
            test_items = np.union1d(ds.seen_test_items(m), np.flatnonzero(np.isin(ds.labels[m], ds.unseen_classes)))
            assert not rows[m] & _rows(ds.features[m][test_items])
    trials = [record for _, record in ResultStore(tmp_path / "trials").records()]
    assert trials and all(r.scenario == "generalized" and r.stage == "validation" for r in trials)
    assert all(r.metrics_by_role for r in trials)
    params, selection = tuned_choice(tmp_path, "benchmark.testing:RidgeProjection", request, scenario="generalized")
    assert selection["scenario"] == "generalized" and params == result.best_params
    with pytest.raises(ZSBenchError, match="no tuning study"):  # the zero-shot study is another one
        tuned_choice(tmp_path, "benchmark.testing:RidgeProjection", request)


def test_a_generalized_runs_stored_embeddings_rescore_to_its_record(tmp_path):
    """The sidecar keeps one set per modality under the scenario's name; export and re-scoring read it."""
    from benchmark.metrics import retrieval_metrics
    from benchmark.report.records import run_from_record
    from benchmark.report.sidecars import cosine_scores, load_sidecar, task_arrays

    ds = make_tiny_dataset(paired=True).in_scenario("generalized")
    outcome = run_method("benchmark.testing:RidgeProjection", ds, 0, ResultStore(tmp_path))
    run = run_from_record(outcome.path, outcome.record)
    for task, values in outcome.record.metrics.items():
        Zq, yq, Zg, yg = task_arrays(load_sidecar(run), task, run.group.eval_protocol, run.group.scenario)
        assert yq.size == yg.size == ds.heldout_record()["items"]["image"] + 6  # 12 seen test + 6 unseen test items
        assert retrieval_metrics(cosine_scores(Zq, Zg), yq, yg)["mAP@all"] == pytest.approx(values["mAP@all"], abs=1e-5)


def test_the_seen_unseen_table_has_bootstrap_intervals_from_the_seen_column(tmp_path):
    import pandas as pd

    from benchmark.report.records import group_runs, load_runs
    from benchmark.report.scenarios import role_table

    ds = make_tiny_dataset(paired=False, extra_per_class=2).in_scenario("generalized")  # classes 0, 1 unseen
    store = ResultStore(tmp_path)
    for seed in (0, 1):
        outcome = run_method("benchmark.testing:RidgeProjection", ds, seed, store)
        frame = pd.read_parquet(outcome.path.with_name(outcome.record.queries_file))
        assert frame["seen"].tolist() == (frame["class_id"] >= 2).tolist()  # by hand: classes 2-5 are seen
        seen_rows = frame[frame["seen"] & (frame["n_relevant"] > 0)]
        assert seen_rows["mAP@all"].mean() == pytest.approx(outcome.record.metrics_by_role["sketch->image"]["seen"]["mAP@all"])
    ((key, runs),) = group_runs(load_runs(tmp_path)).items()
    table = role_table(key, runs, "sketch->image", n_resamples=200)
    (row,) = table.sections[0].rows
    s, u, h = row.cells[:3]
    assert row.seeds == "2" and s.has_interval and u.has_interval and not h.has_interval and h.std is not None
    assert s.low <= s.mean <= s.high and u.low <= u.mean <= u.high
    assert h.mean == pytest.approx(np.mean([2 * a * b / (a + b) for a, b in (
        (r.record.metrics_by_role["sketch->image"]["seen"]["mAP@all"],
         r.record.metrics_by_role["sketch->image"]["unseen"]["mAP@all"]) for r in runs)]))
