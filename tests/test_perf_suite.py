"""The perf suite: the large-gallery memory measurement and the perf.md it writes."""

from __future__ import annotations

import pytest

from benchmark.metrics import retrieval_metrics
from benchmark.perf.suite import (
    Figure,
    PerfReport,
    gallery_dataset,
    machine_info,
    measure_gallery_in_subprocess,
    write_markdown,
)


def test_gallery_evaluation_matches_the_engine_on_the_whole_matrix():
    """Block-wise evaluation of the random gallery gives the one-shot engine's numbers."""
    ds = gallery_dataset(300, 900, dim=16, n_unseen=5)
    from benchmark.contract import cosine_similarity
    from benchmark.core.protocol import evaluate
    from benchmark.perf.suite import Precomputed

    q = ds.items("sketch", ds.unseen_classes)
    g = ds.items("image", ds.unseen_classes)
    whole = retrieval_metrics(cosine_similarity(ds.features["sketch"][q], ds.features["image"][g]),
                              ds.labels["sketch"][q], ds.labels["image"][g])
    blocked, _ = evaluate(Precomputed(), ds, block_bytes=4 * 900 * 7)  # 7 queries per block
    for name, value in whole.items():
        assert blocked["sketch->image"][name] == pytest.approx(value, rel=1e-12)


def test_measure_gallery_reports_a_peak_of_a_few_copies_of_a_small_matrix():
    # In a fresh process, as `zsbench perf memory` measures: in the test process, earlier tests have already
    # raised the high-water mark, and a sub-second evaluation can fall between two samples.
    result = measure_gallery_in_subprocess(400, 5000)
    matrix_mb = 4 * 400 * 5000 / 2**20  # one float32 score matrix: 7.6 MB, evaluated as one block
    # about 5 matrices' worth here (scores, sort keys, ranks); a per-query copy of the gallery would break this
    assert 0 < result["peak_extra_mb"] < 12 * matrix_mb
    assert result["n_queries"] == 400 and result["eval_s"] > 0


@pytest.mark.slow  # about 10 s
def test_a_gallery_larger_than_the_bound_is_evaluated_in_blocks_below_it():
    # 4000 x 50000 scores are 763 MB in float32: holding them at once breaks the bound (about 980 MB measured
    # with one block), while 256 MB blocks and the metric engine's working memory stay near 460 MB.
    result = measure_gallery_in_subprocess(4000, 50000)
    assert 4 * 4000 * 50000 / 2**20 > 640
    assert 0 < result["peak_extra_mb"] < 640, result


def test_perf_markdown_names_the_machine_versions_and_medians(tmp_path):
    report = PerfReport(machine_info(), {"numpy": "9.9"},
                        [Figure("grid", "s", [3.0, 1.0, 2.0]), Figure("training", "samples/s", [10, 30, 20],
                                                                      higher_is_better=True)])
    text = write_markdown(report, tmp_path / "perf.md").read_text()
    assert "- cpu: " in text and "- cores: " in text and "- numpy: 9.9" in text
    assert "| grid | 2 | s | 3, 1, 2 | lower is better |" in text
    assert "| training | 20 | samples/s | 10, 30, 20 | higher is better |" in text


def test_perf_steps_times_the_requested_steps_and_reports_the_steps_of_a_whole_fit():
    from benchmark.core.data import DatasetRequest
    from benchmark.core.protocol import build_train_view
    from benchmark.datasets.requests import load_request
    from benchmark.perf.steps import step_rate
    from benchmark.registry import build_method

    request = DatasetRequest("wikipedia", synthetic=True, scale=0.05)
    rate = step_rate("semantic-regression", request, steps=3)
    # independently: a whole fit, counting the steps it reports as done
    _, method = build_method("semantic-regression")
    seen = []
    method.progress_hook_ = lambda done, total: seen.append(done)
    method.fit(build_train_view(load_request(request)), 0)
    assert rate.steps_timed == 3 and rate.steps_per_fit == seen[-1] > 3
    assert rate.seconds_per_step > 0 and rate.fit_hours == rate.seconds_per_step * rate.steps_per_fit / 3600
