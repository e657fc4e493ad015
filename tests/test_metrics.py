"""The metric engine against sklearn, a brute-force expectation over tie orderings, and hand-worked cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmark.metrics import per_query_metrics, retrieval_metrics, retrieval_metrics_with_info

KS = (1, 2, 3, 5, 10)


def brute_force(scores_row: np.ndarray, relevant: np.ndarray, ks=KS) -> dict[str, float]:
    """Mean of mAP@k and P@k over every ordering consistent with the scores (ties in every order)."""
    n = scores_row.size
    totals: dict[str, float] = {}
    count = 0
    R = relevant.sum()
    for perm in itertools.permutations(range(n)):
        s = scores_row[list(perm)]
        if np.any(s[:-1] < s[1:]):
            continue
        count += 1
        r = relevant[list(perm)].astype(float)
        for k in ks:
            kk = min(k, n)
            precision = np.cumsum(r[:kk]) / np.arange(1, kk + 1)
            totals[f"mAP@{k}"] = totals.get(f"mAP@{k}", 0.0) + (precision * r[:kk]).sum() / min(k, R)
            totals[f"P@{k}"] = totals.get(f"P@{k}", 0.0) + r[:kk].sum() / k
    return {name: value / count for name, value in totals.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_map_all_matches_sklearn_with_heavy_ties(dtype):
    rng = np.random.default_rng(1)
    for _ in range(30):
        n_q, n_g, n_classes = 7, int(rng.integers(5, 60)), 4
        scores = rng.integers(0, 4, (n_q, n_g)).astype(dtype)  # four score levels: ties everywhere
        q_lab, g_lab = rng.integers(0, n_classes, n_q), rng.integers(0, n_classes, n_g)
        per_query, n_rel = per_query_metrics(scores, q_lab, g_lab, ks=(5,))
        for q in range(n_q):
            relevant = g_lab == q_lab[q]
            if not relevant.any():
                assert np.isnan(per_query["mAP@all"][q]) and n_rel[q] == 0
                continue
            assert per_query["mAP@all"][q] == pytest.approx(average_precision_score(relevant, scores[q]), abs=1e-12)


def test_float64_scores_that_differ_below_float32_precision_are_not_tied():
    scores = np.array([[0.5, 0.5 + 1e-12, 0.5 - 1e-12]])
    g_lab = np.array([0, 1, 1])
    per_query, _ = per_query_metrics(scores, np.array([1]), g_lab, ks=(1,))
    assert per_query["mAP@all"][0] == pytest.approx(average_precision_score(g_lab == 1, scores[0]))
    assert per_query["P@1"][0] == 1.0


def _check_against_every_tie_ordering(seed: int, rounds: int, max_gallery: int) -> int:
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(rounds):
        n_g = int(rng.integers(1, max_gallery + 1))
        scores = rng.integers(0, 3, (3, n_g)).astype(np.float32)
        q_lab, g_lab = rng.integers(0, 3, 3), rng.integers(0, 3, n_g)
        per_query, _ = per_query_metrics(scores, q_lab, g_lab, ks=KS)
        for q in range(3):
            relevant = g_lab == q_lab[q]
            if not relevant.any():
                continue
            expected = brute_force(scores[q], relevant)
            for name, value in expected.items():
                assert per_query[name][q] == pytest.approx(value, abs=1e-12), name
            checked += 1
    return checked


def test_top_k_metrics_equal_the_expectation_over_tie_orderings_small():
    """The default run's share of the oracle: galleries of at most 5 items (at most 120 orderings each)."""
    assert _check_against_every_tie_ordering(seed=5, rounds=25, max_gallery=5) > 20


@pytest.mark.slow
def test_top_k_metrics_equal_the_expectation_over_tie_orderings():
    assert _check_against_every_tie_ordering(seed=2, rounds=60, max_gallery=7) > 50


def test_result_does_not_depend_on_gallery_order():
    rng = np.random.default_rng(3)
    scores = np.round(rng.standard_normal((20, 300)), 1).astype(np.float32)
    q_lab, g_lab = rng.integers(0, 5, 20), np.sort(rng.integers(0, 5, 300))  # class-sorted gallery
    perm = rng.permutation(300)
    a = retrieval_metrics(scores, q_lab, g_lab, ks=(10, 50))
    b = retrieval_metrics(scores[:, perm], q_lab, g_lab[perm], ks=(10, 50))
    assert a == pytest.approx(b, abs=1e-12)


def test_hand_worked_example():
    # Ranking: R N R (tie: N R) ; relevant items 3 of 5.
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.6]], dtype=np.float32)
    g_lab = np.array([1, 0, 1, 0, 1])
    m = retrieval_metrics(scores, np.array([1]), g_lab, ks=(1, 3, 5))
    # sklearn AP: thresholds .9 (P=1, +1/3), .7 (P=2/3, +1/3), .6 (P=3/5, +1/3)
    assert m["mAP@all"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert m["P@1"] == 1.0 and m["mAP@1"] == 1.0
    assert m["P@3"] == pytest.approx(2 / 3)
    assert m["mAP@3"] == pytest.approx((1 + 2 / 3) / 3)
    # ranks 4-5 tied (N, R): rank 4 relevant w.p. 1/2 with precision 3/4, rank 5 w.p. 1/2 with precision 3/5
    assert m["mAP@5"] == pytest.approx((1 + 2 / 3 + 0.5 * 3 / 4 + 0.5 * 3 / 5) / 3)


def test_queries_without_relevant_items_are_left_out_and_counted():
    scores = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    metrics, info = retrieval_metrics_with_info(scores, np.array([0, 7]), np.array([0, 1]), ks=(1,))
    assert metrics["mAP@all"] == 1.0
    assert info == {"n_queries": 2, "n_gallery": 2, "queries_without_relevant": 1}


def test_macro_average_is_the_mean_of_class_means():
    # class 0: two queries with AP 1 and 0.5; class 1: one query with AP 1/2.
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.9, 0.0, 0.1]], dtype=np.float32)
    g_lab = np.array([0, 1, 1])
    q_lab = np.array([0, 0, 1])
    micro = retrieval_metrics(scores, q_lab, g_lab, ks=(1,), average="micro")["mAP@all"]
    macro = retrieval_metrics(scores, q_lab, g_lab, ks=(1,), average="macro")["mAP@all"]
    aps = [1.0, 0.5, (1 / 2 + 2 / 3) / 2]
    assert micro == pytest.approx(np.mean(aps))
    assert macro == pytest.approx(np.mean([(aps[0] + aps[1]) / 2, aps[2]]))


def test_chunking_and_threads_do_not_change_results():
    rng = np.random.default_rng(4)
    scores = np.round(rng.standard_normal((97, 500)), 2).astype(np.float32)
    q_lab, g_lab = rng.integers(0, 6, 97), rng.integers(0, 6, 500)
    whole, _ = per_query_metrics(scores, q_lab, g_lab, workers=1, memory_budget=2**30)
    chunked, _ = per_query_metrics(scores, q_lab, g_lab, workers=2, memory_budget=32 * 500 * 5)
    for name in whole:
        np.testing.assert_array_equal(whole[name], chunked[name])


def test_k_larger_than_gallery():
    m = retrieval_metrics(np.array([[0.5, 0.4]], dtype=np.float32), np.array([0]), np.array([0, 1]), ks=(10,))
    assert m["P@10"] == pytest.approx(0.1) and m["mAP@10"] == 1.0


@pytest.mark.parametrize(
    "scores, q_lab, g_lab, message",
    [
        (np.zeros((2, 3)), [0], [0, 1, 2], "does not match"),
        (np.array([[np.nan, 0.0]]), [0], [0, 1], "NaN"),
        (np.zeros(3), [0], [0, 1, 2], "2-d"),
        (np.zeros((1, 0)), [0], [], "empty"),
    ],
)
def test_bad_input_is_a_clear_error(scores, q_lab, g_lab, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(scores, np.array(q_lab), np.array(g_lab))


def test_average_must_be_known():
    with pytest.raises(ValueError, match="micro"):
        retrieval_metrics(np.zeros((1, 2)), np.array([0]), np.array([0, 1]), average="weighted")


def test_sort_keys_order_like_the_scores_and_tie_signed_zeros():
    from benchmark.metrics import _descending_keys

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.integers(-30, 30, 500),
                        [0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45]]).astype(np.float32)[None, :]
    keys = _descending_keys(x)[0]
    order = np.argsort(keys, kind="stable")
    assert np.all(np.diff(x[0][order]) <= 0)
    assert (keys[x[0] == 0] == keys[x[0] == 0][0]).all()


def _brute_r_precision(scores, q_lab, g_lab):
    """R-precision averaged over every ordering of tied scores, by enumerating the orderings (tiny inputs)."""
    import itertools

    out = []
    for q in range(scores.shape[0]):
        rel = g_lab == q_lab[q]
        r = int(rel.sum())
        values = []
        for perm in itertools.permutations(range(g_lab.size)):
            order = sorted(perm, key=lambda i: -scores[q, i])  # a stable sort keeps perm's order inside ties
            values.append(rel[order[:r]].sum() / r)
        out.append(np.mean(values))
    return np.array(out)


@pytest.mark.parametrize("seed", range(6))
def test_r_precision_matches_a_brute_force_over_tied_orders(seed):
    from benchmark.metrics import per_query_metrics

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(4, 7)).astype(np.float32)  # few distinct values: many ties
    q_lab = rng.integers(0, 2, size=4)
    g_lab = np.array([0, 1, 0, 1, 0, 1, 1])
    per_query, _ = per_query_metrics(scores, q_lab, g_lab)
    np.testing.assert_allclose(per_query["R-precision"], _brute_r_precision(scores, q_lab, g_lab), atol=1e-12)


def test_r_precision_of_a_perfect_ranking_is_one_where_p_at_k_is_capped():
    from benchmark.metrics import retrieval_metrics

    g_lab = np.repeat(np.arange(5), 20)  # R = 20 per class
    q_lab = np.arange(5)
    scores = (q_lab[:, None] == g_lab[None, :]).astype(np.float32)
    m = retrieval_metrics(scores, q_lab, g_lab, ks=(100,))
    assert m["R-precision"] == 1.0 and m["P@100"] == pytest.approx(0.2)  # hand: min(100, 20) / 100
