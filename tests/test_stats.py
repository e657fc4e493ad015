"""benchmark.core.stats against scipy.stats (bootstrap, permutation_test) and hand-computed values."""

import numpy as np
import pytest
from scipy import stats as sps

from benchmark.contract import ZSBenchError
from benchmark.core.stats import (
    adjust,
    bootstrap_ci,
    compare,
    effect_sizes,
    holm,
    paired_difference_ci,
    randomization_test,
)

# fixed per-query AP vectors (12 queries) of two methods
A = np.array([0.91, 0.42, 0.35, 0.77, 0.12, 0.58, 0.66, 0.29, 0.81, 0.47, 0.53, 0.38])
B = np.array([0.85, 0.40, 0.41, 0.60, 0.15, 0.52, 0.61, 0.33, 0.70, 0.47, 0.44, 0.31])


def test_single_seed_bootstrap_matches_scipy_percentile_interval():
    rng = np.random.default_rng(3)
    values = rng.beta(2, 5, size=80)
    ours = bootstrap_ci(values, n_resamples=40_000, seed=1)
    ref = sps.bootstrap((values,), np.mean, n_resamples=40_000, method="percentile", random_state=2).confidence_interval
    assert ours.estimate == pytest.approx(values.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.004)
    assert ours.high == pytest.approx(ref.high, abs=0.004)


def test_two_level_bootstrap_reduces_to_scipy_on_each_level():
    rng = np.random.default_rng(4)
    queries = rng.beta(2, 5, size=60)
    # identical seeds: only the query level varies -> scipy's query bootstrap
    same = bootstrap_ci(np.tile(queries, (3, 1)), n_resamples=30_000, seed=0)
    ref = sps.bootstrap((queries,), np.mean, n_resamples=30_000, method="percentile", random_state=0)
    assert (same.low, same.high) == pytest.approx(tuple(ref.confidence_interval), abs=0.005)
    # constant rows: only the seed level varies -> scipy's bootstrap over the seed means
    seed_means = np.array([0.30, 0.34, 0.41, 0.36])
    flat = bootstrap_ci(np.repeat(seed_means[:, None], 25, axis=1), n_resamples=30_000, seed=0)
    ref = sps.bootstrap((seed_means,), np.mean, n_resamples=30_000, method="percentile", random_state=0)
    assert (flat.low, flat.high) == pytest.approx(tuple(ref.confidence_interval), abs=0.004)


def test_seed_variance_widens_the_interval_and_the_estimate_is_the_grand_mean():
    rng = np.random.default_rng(5)
    queries = rng.beta(2, 5, size=100)
    shifted = np.stack([queries + s for s in (-0.05, 0.0, 0.05)])
    narrow = bootstrap_ci(np.tile(queries, (3, 1)), n_resamples=5000)
    wide = bootstrap_ci(shifted, n_resamples=5000)
    assert wide.high - wide.low > 1.3 * (narrow.high - narrow.low)
    assert wide.estimate == pytest.approx(shifted.mean())
    assert bootstrap_ci(shifted, n_resamples=2000, seed=7) == bootstrap_ci(shifted, n_resamples=2000, seed=7)


def test_exact_randomization_test_equals_scipy_permutation_test():
    ours = randomization_test(A, B, n_resamples=10_000)
    assert ours.exact and ours.n_queries == 12
    ref = sps.permutation_test((A, B), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                               vectorized=True, n_resamples=np.inf, alternative="two-sided")
    assert ours.statistic == pytest.approx(np.mean(A - B))
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)


def test_monte_carlo_randomization_test_agrees_with_scipy():
    rng = np.random.default_rng(6)
    a = rng.beta(2, 5, size=200)
    b = np.clip(a - 0.02 + 0.1 * rng.standard_normal(200), 0, 1)
    ours = randomization_test(a, b, n_resamples=20_000, seed=3)
    assert not ours.exact
    ref = sps.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                               vectorized=True, n_resamples=20_000, random_state=0)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=0.01)


def test_seed_matrices_are_averaged_over_seeds_before_the_test():
    a = np.stack([A, A + 0.02])
    b = np.stack([B, B - 0.02, B])
    assert randomization_test(a, b).p_value == randomization_test(a.mean(0), b.mean(0)).p_value


def test_an_identical_pair_is_never_significant():
    rng = np.random.default_rng(8)
    for trial in range(5):
        values = rng.beta(2, 5, size=(3, 40 + 100 * trial))
        result = compare("x", values, "y", values.copy(), n_resamples=2000, seed=trial)
        assert result.test.p_value == 1.0
        assert result.difference.estimate == 0.0 and result.difference.low <= 0.0 <= result.difference.high
        assert not adjust([result])[0].significant()
        assert (result.effect.wins, result.effect.losses) == (0, 0)


def test_an_obvious_gap_is_always_significant():
    rng = np.random.default_rng(9)
    for trial in range(5):
        b = rng.beta(2, 5, size=(3, 60))
        a = np.clip(b + 0.25 + 0.02 * rng.standard_normal(b.shape), 0, 1)
        result = adjust([compare("a", a, "b", b, n_resamples=2000, seed=trial)] * 6)[0]
        assert result.significant() and result.p_holm < 0.01
        assert result.difference.low > 0.15 and result.effect.wins == 60


def test_difference_interval_is_paired_on_queries():
    # every seed of A is B's queries shifted by 0.1: with shared query draws every resample differs by 0.1
    rng = np.random.default_rng(10)
    b = np.tile(rng.beta(2, 5, size=30), (3, 1))
    interval = paired_difference_ci(b + 0.1, b, n_resamples=3000)
    assert interval.low == pytest.approx(0.1) and interval.high == pytest.approx(0.1)
    with pytest.raises(ZSBenchError, match="same queries"):
        paired_difference_ci(b[:, :10], b)


def test_holm_against_hand_computed_values():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> monotone .02 .03 .06 .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]).size == 0
    with pytest.raises(ZSBenchError, match="p-values"):
        holm([0.2, 1.5])


def test_effect_sizes_hand_computed():
    effect = effect_sizes([1.0, 0.5, 0.2, 0.3], [0.5, 0.5, 0.4, 0.1])
    # d = .5, 0, -.2, .2: mean .125, sample std sqrt(.2675/3)
    assert effect.mean_difference == pytest.approx(0.125)
    assert effect.cohens_dz == pytest.approx(0.125 / np.sqrt(0.2675 / 3))
    assert (effect.wins, effect.ties, effect.losses) == (2, 1, 1)
    assert np.isnan(effect_sizes([0.3, 0.3], [0.3, 0.3]).cohens_dz)


@pytest.mark.parametrize("bad", [[], [[0.1, np.nan]], np.zeros((2, 2, 2))])
def test_bad_input_is_one_clear_error(bad):
    with pytest.raises(ZSBenchError):
        bootstrap_ci(bad)
