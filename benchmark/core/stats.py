"""Statistics over per-query results: bootstrap intervals, paired randomization tests, Holm, effect sizes.

The unit of every statistic here is the query (a run keeps each query's AP in its per-query sidecar);
seeds are a second source of variance (Bouthillier et al., MLSys 2021), so intervals resample both.

- :func:`bootstrap_ci`: two-level bootstrap of a mean over seeds x queries. Each resample draws seeds
  with replacement, then queries with replacement; the statistic is the mean of the drawn cells. The query
  draw is one per resample, shared by the drawn seeds, because every seed of a run answers the *same*
  queries (seeds and queries are crossed, not nested): drawing queries anew inside each seed would treat
  the copies of one query as independent and shrink the interval by up to the square root of the number
  of seeds. So with identical seeds the interval is the query bootstrap's, and with seeds that differ only
  by a constant it is the seed bootstrap's; both limits are tested against ``scipy.stats.bootstrap(...,
  method="percentile")``. Interval: percentiles of the resampled statistic.
- :func:`paired_difference_ci`: the same for a difference of two methods, with the query draw shared by
  both methods (the query is the paired unit) and seeds drawn for each method on its own (a seed of one
  method has nothing to do with the same seed number of another).
- :func:`randomization_test`: Fisher's paired randomization test over queries on the per-query values of
  two methods (each averaged over its seeds): under the null the sign of each query's difference is a coin
  flip. Exact (every sign pattern) when there are at most ``n_resamples`` patterns, else Monte Carlo with the
  +1 correction of Phipson & Smyth (2010). Preferred in IR over sign and Wilcoxon tests (Smucker, Allan and
  Carterette, CIKM 2007).
- :func:`holm`: Holm-Bonferroni adjusted p-values (Holm, 1979).
- :func:`effect_sizes`: mean difference, paired Cohen's d (d_z: mean difference over the standard
  deviation of the differences) and win / tie / loss counts over queries.

Everything is seeded (``seed`` gives a ``numpy.random.Generator``) and vectorised; resamples are processed
in chunks so that memory stays bounded whatever the number of queries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from benchmark.contract import ZSBenchError

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
ALPHA = 0.05
#: Two per-query values closer than this count as a tie (AP values are sums of fractions; exact ties are common).
TIE_TOLERANCE = 1e-9
_CHUNK_ELEMENTS = 2_000_000  # resampled values held at once


@dataclass(frozen=True)
class Interval:
    estimate: float  # the statistic on the data themselves
    low: float
    high: float
    confidence: float = CONFIDENCE

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class TestResult:
    statistic: float  # mean over queries of (a - b)
    p_value: float
    n_queries: int
    exact: bool  # every sign pattern enumerated


@dataclass(frozen=True)
class EffectSize:
    mean_difference: float
    cohens_dz: float  # +-inf when every query differs by the same non-zero amount, NaN when all differences are 0
    wins: int
    ties: int
    losses: int


def as_matrix(values, what: str = "values") -> np.ndarray:
    """A float64 seeds x queries matrix (a 1-d array is one seed); NaN-free, at least one query."""
    X = np.asarray(values, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ZSBenchError(f"{what}: expected a non-empty seeds x queries matrix, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ZSBenchError(f"{what}: NaN or inf values; leave out queries without relevant items first")
    return X


def _chunks(n_resamples: int, per_resample: int):
    size = max(1, _CHUNK_ELEMENTS // max(1, per_resample))
    for start in range(0, n_resamples, size):
        yield min(size, n_resamples - start)


def _percentile_interval(estimate: float, resampled: np.ndarray, confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.percentile(resampled, [100 * tail, 100 * (1 - tail)])
    return Interval(float(estimate), float(low), float(high), confidence)


def _check_level(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ZSBenchError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ZSBenchError(f"n_resamples must be >= 1, got {n_resamples}")


def _seed_weights(n_seeds: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` x ``n_seeds`` weights of a seed draw with replacement (how often each seed was drawn / n_seeds)."""
    seeds = rng.integers(0, n_seeds, size=(n, n_seeds))
    weights = np.zeros((n, n_seeds))
    np.add.at(weights, (np.arange(n)[:, None], seeds), 1.0 / n_seeds)
    return weights


def _query_means(per_query: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row means of ``per_query`` (resamples x queries) over one query draw with replacement per row."""
    n, n_queries = per_query.shape
    draws = rng.integers(0, n_queries, size=(n, n_queries), dtype=np.int32)
    return np.take_along_axis(per_query, draws, axis=1).mean(axis=1)


def bootstrap_ci(values, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """Percentile interval of the mean of ``values`` (seeds x queries) under the two-level bootstrap."""
    X = as_matrix(values)
    _check_level(confidence, n_resamples)
    rng = np.random.default_rng(seed)
    # per resample: the mean over drawn seeds of each query (seed weights @ X), then the mean over drawn queries
    resampled = np.concatenate([_query_means(_seed_weights(X.shape[0], n, rng) @ X, rng)
                                for n in _chunks(n_resamples, X.size + 2 * X.shape[1])])
    return _percentile_interval(X.mean(), resampled, confidence)


def paired_difference_ci(a, b, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                         seed: int = 0) -> Interval:
    """Percentile interval of mean(a) - mean(b); ``a`` and ``b`` are seeds x queries on the same queries.

    Per resample, each method's seeds are drawn on their own (seeds of two methods are not paired); the
    query draw is shared by the two methods, so the query stays the paired unit.
    """
    A, B = as_matrix(a, "a"), as_matrix(b, "b")
    if A.shape[1] != B.shape[1]:
        raise ZSBenchError(f"paired comparison needs the same queries: {A.shape[1]} against {B.shape[1]}")
    _check_level(confidence, n_resamples)
    rng = np.random.default_rng(seed)
    resampled = []
    for n in _chunks(n_resamples, A.size + B.size + 3 * A.shape[1]):
        # the difference of the seed-averaged methods per query, then one shared query draw
        differences = _seed_weights(A.shape[0], n, rng) @ A - _seed_weights(B.shape[0], n, rng) @ B
        resampled.append(_query_means(differences, rng))
    return _percentile_interval(A.mean() - B.mean(), np.concatenate(resampled), confidence)


def seed_mean(values) -> np.ndarray:
    """Per-query values averaged over seeds (the unit of the paired test)."""
    return as_matrix(values).mean(axis=0)


def randomization_test(a, b, n_resamples: int = N_RESAMPLES, seed: int = 0) -> TestResult:
    """Two-sided paired randomization test of mean(a - b) = 0 over queries.

    ``a`` and ``b``: per-query values (1-d), or seeds x queries matrices that are averaged over seeds first.
    The p-value is the share of sign patterns whose |mean difference| reaches the observed one (ties
    within 1e-12 count as reaching it, so an all-zero difference gives p = 1).
    """
    d = seed_mean(a) - seed_mean(b) if np.ndim(a) > 1 or np.ndim(b) > 1 else (
        as_matrix(a, "a")[0] - as_matrix(b, "b")[0])
    if d.ndim != 1:
        raise ZSBenchError("randomization_test: a and b must hold the same queries")
    _check_level(0.5, n_resamples)
    n = d.size
    observed = abs(d.mean())
    threshold = observed - 1e-12 * max(1.0, observed)
    if n <= 20 and 2 ** n <= n_resamples:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        extreme = np.abs(signs @ d / n) >= threshold
        return TestResult(float(d.mean()), float(extreme.mean()), n, True)
    rng = np.random.default_rng(seed)
    count = 0
    for size in _chunks(n_resamples, n):
        # random signs from random bits (one bit per sign): s = 1 - 2 * bit, so signs @ d = sum(d) - 2 * bits @ d
        bits = np.unpackbits(rng.integers(0, 256, size=(size, -(-n // 8)), dtype=np.uint8), axis=1, count=n)
        flipped = d.sum() - 2.0 * (bits @ d)
        count += int((np.abs(flipped / n) >= threshold).sum())
    return TestResult(float(d.mean()), (count + 1) / (n_resamples + 1), n, False)


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order (reject where adjusted p < alpha)."""
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return p
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ZSBenchError(f"holm: p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return adjusted


def effect_sizes(a, b, tie_tolerance: float = TIE_TOLERANCE) -> EffectSize:
    """Effect of ``a`` over ``b`` on per-query values (averaged over seeds when given seeds x queries)."""
    d = seed_mean(a) - seed_mean(b)
    mean = float(d.mean())
    spread = float(d.std(ddof=1)) if d.size > 1 else 0.0
    if spread > 1e-12 * max(1.0, abs(mean)):
        dz = mean / spread
    else:  # every query differs by the same amount (up to rounding): an infinite effect, or none
        dz = float("nan") if abs(mean) <= 1e-12 else float(np.copysign(np.inf, mean))
    return EffectSize(mean, float(dz), int((d > tie_tolerance).sum()), int((np.abs(d) <= tie_tolerance).sum()),
                      int((d < -tie_tolerance).sum()))


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of method ``a`` against method ``b`` on one task and metric."""

    a: str
    b: str
    difference: Interval
    test: TestResult
    effect: EffectSize
    p_holm: float = float("nan")

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p_holm < alpha


def compare(a_name: str, a, b_name: str, b, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
            seed: int = 0) -> Comparison:
    """Difference interval, randomization test and effect sizes of ``a`` against ``b`` (seeds x queries each).

    ``p_holm`` is the unadjusted p-value until :func:`adjust` corrects a family of comparisons.
    """
    test = randomization_test(a, b, n_resamples, seed)
    return Comparison(a_name, b_name, paired_difference_ci(a, b, n_resamples, confidence, seed), test,
                      effect_sizes(a, b), test.p_value)


def adjust(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons with Holm-adjusted p-values over the whole family."""
    adjusted = holm([c.test.p_value for c in comparisons])
    return [Comparison(c.a, c.b, c.difference, c.test, c.effect, float(p)) for c, p in zip(comparisons, adjusted,
                                                                                         strict=True)]
