"""The peers' metric conventions (benchmark/report/variants.py) on examples worked out by hand."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmark.metrics import retrieval_metrics
from benchmark.report.curves import interpolated_pr
from benchmark.report.variants import (
    ap_sklearn,
    ap_voc_interpolated,
    average,
    map_at_k_hits,
    map_at_k_over_k,
    precision_at_k,
    rank,
    rescore,
)

# One query, five gallery items ranked as given: relevant at ranks 2, 3 and 5 (R = 3).
# precision at each rank: 0, 1/2, 2/3, 2/4, 3/5; its right-to-left maximum: 2/3, 2/3, 2/3, 3/5, 3/5.
REL = np.array([[0, 1, 1, 0, 1]], dtype=bool)
R = np.array([3])
SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])


def test_sklearn_ap_hand_worked_and_against_sklearn():
    # non-interpolated: (1/2 + 2/3 + 3/5) / 3
    assert ap_sklearn(REL, SCORES)[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3)
    # ties form one threshold: scores .9 .8 .8 .5, relevant at the 2nd (tied) and 4th place.
    # at threshold .8: 1 hit of 3 items; at .5: 2 of 4. AP = (1/3 + 2/4) / 2
    rel = np.array([[0, 1, 0, 1]], dtype=bool)
    scores = np.array([[0.9, 0.8, 0.8, 0.5]])
    assert ap_sklearn(rel, scores)[0] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert ap_sklearn(rel, scores)[0] == pytest.approx(average_precision_score(rel[0], scores[0]))
    # the tie resolved either way gives the same value (order inside the block does not matter)
    assert ap_sklearn(np.array([[0, 0, 1, 1]], dtype=bool), scores)[0] == pytest.approx(ap_sklearn(rel, scores)[0])
    # a query without relevant items counts 0 (SEM-PCYC), not NaN
    assert ap_sklearn(np.zeros((1, 4), dtype=bool), scores)[0] == 0.0


def test_voc_interpolated_ap_hand_worked():
    # all-point interpolation: each hit takes the envelope: (2/3 + 2/3 + 3/5) / 3
    assert ap_voc_interpolated(REL, R)[0] == pytest.approx((2 / 3 + 2 / 3 + 3 / 5) / 3)
    # top 3: hits at ranks 2, 3; envelope inside the top 3 is 2/3 everywhere; denominator min(3, R=3) = 3
    assert ap_voc_interpolated(REL, R, k=3)[0] == pytest.approx((2 / 3 + 2 / 3) / 3)
    # top 2: one hit, envelope 1/2, denominator min(2, 3) = 2
    assert ap_voc_interpolated(REL, R, k=2)[0] == pytest.approx(0.5 / 2)
    # R = 0: skipped (NaN), and the average leaves it out
    assert np.isnan(ap_voc_interpolated(np.zeros((1, 5), dtype=bool), np.array([0]))[0])


def test_hits_in_top_k_map_hand_worked():
    # top 3 holds hits at ranks 2 and 3: (1/2 + 2/3) / 2 hits
    assert map_at_k_hits(REL, 3)[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a single hit at rank 2 of the top 2 scores its precision 1/2, whatever R is
    assert map_at_k_hits(REL, 2)[0] == pytest.approx(1 / 2)
    assert map_at_k_hits(REL, 1)[0] == 0.0  # no hit in the top 1


def test_precision_sum_over_k_hand_worked():
    # CVAE: (1/2 + 2/3) / k with k = 3
    assert map_at_k_over_k(REL, 3)[0] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert map_at_k_over_k(REL, 5)[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 5)


def test_precision_at_k_denominators():
    assert precision_at_k(REL, 4)[0] == pytest.approx(2 / 4)
    assert precision_at_k(REL, 4, R)[0] == pytest.approx(2 / 3)  # ZSE-SBIR: over min(4, R=3)


def test_average_per_query_and_per_class():
    values = np.array([1.0, 0.5, 0.0, np.nan])
    labels = np.array([0, 0, 1, 1])
    assert average(values, labels) == pytest.approx(0.5)  # NaN left out
    assert average(values, labels, per_class=True) == pytest.approx((0.75 + 0.0) / 2)


def test_rank_breaks_ties_away_from_storage_order():
    # every score tied, gallery stored class-sorted: an index-order tie-break would put all relevant first
    g = np.array([0] * 50 + [1] * 50)
    ranked_rel, _, n_rel = rank(np.zeros((1, 100)), np.array([0]), g)
    assert n_rel[0] == 50
    assert ranked_rel[0, :50].sum() < 40


def test_rescore_matches_the_engine_and_sklearn():
    rng = np.random.default_rng(1)
    q, g = rng.integers(0, 4, 30), rng.integers(0, 4, 250)
    scores = rng.standard_normal((30, 250)) + 0.8 * (q[:, None] == g[None, :])
    out = rescore(scores, q, g, ks=(10, 100))
    engine = retrieval_metrics(scores, q, g, ks=(10, 100))
    for name, value in engine.items():
        assert out["zsbench"][name] == pytest.approx(value)
    sk = np.mean([average_precision_score(g == q[i], scores[i]) for i in range(30)])
    assert out["sklearn-zero"]["mAP@all"] == pytest.approx(sk)
    assert np.isnan(out["precision-sum/k"]["mAP@all"])
    # chunked over queries gives the same numbers
    small = rescore(scores, q, g, ks=(10, 100), max_pairs=600)
    for convention, metrics in out.items():
        for name, value in metrics.items():
            assert small[convention][name] == pytest.approx(value, nan_ok=True)


def test_interpolated_pr_curve_hand_worked():
    grid = np.array([0.0, 1 / 3, 0.5, 1.0])
    # recall 0 and 1/3 -> envelope at the 1st hit (2/3); 0.5 -> 2nd hit (2/3); 1 -> 3rd hit (3/5)
    np.testing.assert_allclose(interpolated_pr(REL, R, grid)[0], [2 / 3, 2 / 3, 2 / 3, 3 / 5])
