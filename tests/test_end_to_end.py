"""One pass through the commands a user types: ``zsbench run`` writes records and embedding sidecars, and
``report``, ``compare`` and ``export`` read exactly what it wrote. Every number they print is checked against
a value computed here from the saved embeddings alone (numpy cosine, scikit-learn's average precision), not
with the harness's own metric code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score

from benchmark.cli import cli

DATA = ["--dataset", "wikipedia", "--synthetic", "--scale", "0.05"]
TASKS = ("image->text", "text->image")


def _cosine(Zq: np.ndarray, Zg: np.ndarray) -> np.ndarray:
    Zq = Zq.astype(np.float64) / np.linalg.norm(Zq.astype(np.float64), axis=1, keepdims=True)
    Zg = Zg.astype(np.float64) / np.linalg.norm(Zg.astype(np.float64), axis=1, keepdims=True)
    return Zq @ Zg.T


def _task_arrays(npz_path: Path, task: str):
    """(query embeddings, query labels, gallery embeddings, gallery labels) of ``task`` read from the sidecar:
    Wikipedia's protocol (test->train) queries the test items of the unseen classes against their train items."""
    q, g = task.split("->")
    with np.load(npz_path) as z:
        (prefix,) = {key.split("/")[0] for key in z.files}
        return (z[f"{prefix}/{q}/test/embeddings"], z[f"{prefix}/{q}/test/labels"],
                z[f"{prefix}/{g}/train/embeddings"], z[f"{prefix}/{g}/train/labels"])


def _per_query_ap(npz_path: Path, task: str) -> np.ndarray:
    Zq, yq, Zg, yg = _task_arrays(npz_path, task)
    scores = _cosine(Zq, Zg)
    return np.array([average_precision_score(yg == yq[i], scores[i]) for i in range(yq.size)])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One `zsbench run` of a trained method (CCA at its quick parameters) and the random floor, seed 0."""
    root = tmp_path_factory.mktemp("e2e")
    results = root / "runs"
    outcome = CliRunner().invoke(cli, ["run", "--methods", "cca,random", *DATA, "--seeds", "0",
                                       "--param", "cca.n_components=4", "--results", str(results), "--json"])
    assert outcome.exit_code == 0, outcome.output
    records = {}
    for row in json.loads(outcome.stdout):
        assert row["status"] == "done", row
        path = Path(row["record"])
        records[json.loads(path.read_text())["method"]] = path
    assert set(records) == {"cca", "random"}
    return root, results, records


def test_the_runner_writes_records_whose_map_is_the_map_of_their_embeddings(workspace):
    _, _, records = workspace
    for path in records.values():
        record = json.loads(path.read_text())
        assert record["identity"]["eval_protocol"] == "test->train" and set(record["metrics"]) == set(TASKS)
        sidecar = path.parent / record["embeddings_file"]
        for task in TASKS:
            assert record["metrics"][task]["mAP@all"] == pytest.approx(_per_query_ap(sidecar, task).mean(), abs=1e-9)


def test_report_prints_the_map_computed_from_the_embeddings(workspace):
    root, results, records = workspace
    outcome = CliRunner().invoke(cli, ["report", "--results", str(results), "--out", str(root / "report"),
                                       "--no-plots", "--no-sensitivity"])
    assert outcome.exit_code == 0, outcome.output
    with open(root / "report" / "report.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["column"] == "mAP@all"]
    assert len(rows) == 4  # two methods, two tasks
    for row in rows:
        sidecar = records[row["method"]].with_suffix(".npz")
        expected = _per_query_ap(sidecar, row["task"]).mean()
        assert float(row["mean"]) == pytest.approx(expected, abs=5e-7)  # the CSV keeps six decimals
        assert row["n_seeds"] == "1" and row["source"] == "synthetic"
        # and the console table shows it at three decimals
        assert f"{expected:.3f}" in outcome.output


def test_compare_gives_the_paired_difference_of_per_query_aps(workspace):
    _, results, records = workspace
    outcome = CliRunner().invoke(cli, ["compare", "cca", "random", *DATA[:2], "--synthetic", "--results",
                                       str(results), "--json", "--resamples", "200"])
    assert outcome.exit_code == 0, outcome.output
    rows = {row["task"]: row for row in json.loads(outcome.stdout)}
    assert set(rows) == set(TASKS)
    for task, row in rows.items():
        a = _per_query_ap(records["cca"].with_suffix(".npz"), task)
        b = _per_query_ap(records["random"].with_suffix(".npz"), task)
        assert row["n_queries"] == a.size
        assert row["mean_a"] == pytest.approx(a.mean(), abs=1e-9) and row["mean_b"] == pytest.approx(b.mean(), abs=1e-9)
        assert row["difference"] == pytest.approx((a - b).mean(), abs=1e-9)
        assert (row["wins"], row["ties"], row["losses"]) == (int((a - b > 1e-9).sum()), int((abs(a - b) <= 1e-9).sum()),
                                                            int((b - a > 1e-9).sum()))
        assert row["ci_low"] <= row["difference"] <= row["ci_high"]


def test_export_ranks_every_query_by_brute_force_cosine(workspace):
    root, results, records = workspace
    out = root / "trec"
    outcome = CliRunner().invoke(cli, ["export", "--results", str(results), "--out", str(out), "--methods", "cca"])
    assert outcome.exit_code == 0, outcome.output
    folder = out / "wikipedia-synthetic" / "cca" / records["cca"].stem
    assert sorted(p.name for p in folder.iterdir()) == ["image2text.qrels", "image2text.run", "text2image.qrels",
                                                        "text2image.run"]
    Zq, yq, Zg, yg = _task_arrays(records["cca"].with_suffix(".npz"), "image->text")
    scores = _cosine(Zq, Zg)
    run: dict[int, list[tuple[int, int, float]]] = {}
    for line in (folder / "image2text.run").read_text().splitlines():
        qid, q0, doc, rank, score, _tag = line.split()
        assert q0 == "Q0"
        run.setdefault(int(qid[1:]), []).append((int(rank), int(doc[1:]), float(score)))
    assert sorted(run) == list(range(yq.size))
    for q in (0, yq.size - 1):
        ranking = [doc for _, doc, _ in sorted(run[q])]
        assert ranking == list(np.argsort(-scores[q], kind="stable")), f"query {q}"
        written = np.array([s for _, _, s in sorted(run[q])])
        np.testing.assert_allclose(written, np.sort(scores[q])[::-1], rtol=0, atol=1e-12)
    qrels = {(int(qid[1:]), int(doc[1:])) for qid, _, doc, rel in
             (line.split() for line in (folder / "image2text.qrels").read_text().splitlines()) if rel == "1"}
    assert qrels == {(i, j) for i in range(yq.size) for j in range(yg.size) if yq[i] == yg[j]}
