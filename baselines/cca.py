"""``cca``: regularised linear canonical correlation analysis (Hotelling 1936), the classical CMR baseline.

Paper: H. Hotelling, "Relations between two sets of variates", Biometrika 1936; as a cross-modal
retrieval baseline in Rasiwasia et al. (ACM MM 2010) and in every ZS-CMR table since (DADN, ACMR, JFSE).

Implemented: on seen-class training pairs, both modalities are z-scored, ridge-regularised covariances
C_aa + r I and C_bb + r I (r relative to the unit per-dimension variance after z-scoring) are whitened,
and the SVD of the whitened cross-covariance gives the canonical directions, in closed form. Because
features often have more dimensions than there are samples (4096-d image features, ~1000 pairs), the
whitening is done in the span of the samples through a thin SVD of each data matrix, which is exact for
the ridge problem (directions outside the span never correlate with anything). An item's embedding is its
centred, z-scored feature projected on the first ``n_components`` canonical directions; retrieval uses
cosine similarity, the harness's default.

Zero-shot use, as the papers ran it: CCA has no class embeddings, so it learns on seen-class pairs only
and projects unseen-class items with what it learned.

Cost: the thin SVD holds the n x d data matrix and its left vectors in float64, which is cheap on small
data (emoji: ~1,000 pairs) and far too big on large data (TU-Berlin's ~180k sketch-image pairs of 4096-d
features: ~6 GB each). Past ``SPAN_ROUTE_MAX_ENTRIES`` the same ridge CCA is solved from the d x d
covariances instead (eigendecompositions whiten, an SVD of the whitened cross-covariance gives the
directions), accumulated in chunks; pairs repeat rows on unpaired data, so each covariance is a weighted
sum over the distinct rows (a sparse pair-count matrix), never over the repeated pairs. Both routes solve
the same problem exactly; a test checks they agree. The default budget is the data itself: one pass.

Deviations: (1) the papers do not state their regulariser or dimension; ours are ``reg=0.1`` and
``n_components=64`` (capped by the rank). (2) Unpaired data (sketch -> image) has no pairs: same-class
samples are paired deterministically from the run seed (:func:`baselines.pairing.cross_modal_pairs`);
this is our choice, the CCA papers only ran paired data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from baselines.pairing import StandardizedPairs, standardized_pairs
from benchmark.contract import LogUniform, Method, TrainView, ZSBenchError, register_method

#: The SVD route is used while the larger paired data matrix has at most this many entries (128 MB in float64).
SPAN_ROUTE_MAX_ENTRIES = 2**24
#: Rows per chunk when covariances are accumulated.
CHUNK_ROWS = 8192


def _span_whitener(X: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD pieces of centred ``X`` (n x d): right vectors V (d x k), singular values s, left vectors U.

    With C = X'X / (n-1) + reg I, C^{-1/2} V = V diag((s^2/(n-1) + reg)^{-1/2}).
    """
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    keep = s > s.max(initial=0.0) * 1e-10
    return Vt[keep].T, s[keep], U[:, keep]


def fit_cca(Xa: np.ndarray, Xb: np.ndarray, n_components: int, reg: float):
    """Regularised CCA of row-paired, centred ``Xa`` and ``Xb``.

    Returns (Wa, Wb, correlations): projections (d_a x k), (d_b x k) and the k canonical correlations.
    """
    n = Xa.shape[0]
    if n < 2:
        raise ZSBenchError("cca: needs at least two training pairs")
    Va, sa, Ua = _span_whitener(Xa.astype(np.float64), reg)
    Vb, sb, Ub = _span_whitener(Xb.astype(np.float64), reg)
    da = 1.0 / np.sqrt(sa**2 / (n - 1) + reg)
    db = 1.0 / np.sqrt(sb**2 / (n - 1) + reg)
    # Whitened cross-covariance, written in the two sample spans: C_aa^{-1/2} C_ab C_bb^{-1/2} = Va M Vb'.
    core = (da * sa)[:, None] * (Ua.T @ Ub) * (sb * db)[None, :] / (n - 1)
    P, corr, Qt = np.linalg.svd(core, full_matrices=False)
    k = int(min(n_components, corr.size))
    Wa = Va @ (da[:, None] * P[:, :k])
    Wb = Vb @ (db[:, None] * Qt[:k].T)
    return Wa.astype(np.float32), Wb.astype(np.float32), corr[:k]


def _inverse_sqrt(C: np.ndarray) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eigh(C)
    return (eigvecs / np.sqrt(eigvals)) @ eigvecs.T


def fit_cca_from_moments(Caa: np.ndarray, Cbb: np.ndarray, Cab: np.ndarray, n: int, n_components: int,
                         reg: float):
    """Regularised CCA from centred scatter matrices (sums over the n pairs, not yet divided by n - 1).

    Returns (Wa, Wb, correlations), as :func:`fit_cca`.
    """
    if n < 2:
        raise ZSBenchError("cca: needs at least two training pairs")
    Ka = _inverse_sqrt(Caa / (n - 1) + reg * np.eye(Caa.shape[0]))
    Kb = _inverse_sqrt(Cbb / (n - 1) + reg * np.eye(Cbb.shape[0]))
    P, corr, Qt = np.linalg.svd(Ka @ (Cab / (n - 1)) @ Kb, full_matrices=False)
    k = int(min(n_components, corr.size))
    return (Ka @ P[:, :k]).astype(np.float32), (Kb @ Qt[:k].T).astype(np.float32), corr[:k]


def _chunks(rows: np.ndarray):
    for start in range(0, rows.size, CHUNK_ROWS):
        yield rows[start:start + CHUNK_ROWS]


def _z(pairs: StandardizedPairs, modality: str, rows: np.ndarray) -> np.ndarray:
    """Rows of a modality's training features, z-scored as every fit sees them, in float64."""
    return pairs.scalers[modality](pairs.raw[modality][rows]).astype(np.float64)


def pair_moments(pairs: StandardizedPairs):
    """Means over the pairs and the centred scatter matrices (Caa, Cbb, Cab) of the z-scored paired features,
    in float64 chunks, without materialising the pairs: with w_u the number of pairs that row u is in,
    Caa = sum_u w_u (x_u - ma)(x_u - ma)'; with the sparse pair-count matrix P (rows of a x rows of b),
    sum over pairs of xa xb' is Xa' P Xb, aggregated onto the side with fewer distinct rows."""
    n = len(pairs)
    weights, means, scatters = {}, {}, {}
    for m in (pairs.a, pairs.b):
        weights[m] = np.bincount(pairs.index[m], minlength=len(pairs.raw[m])).astype(np.float64)
        used = np.flatnonzero(weights[m])
        means[m] = sum(weights[m][rows] @ _z(pairs, m, rows) for rows in _chunks(used)) / n
        scatters[m] = np.zeros((pairs.raw[m].shape[1],) * 2)
        for rows in _chunks(used):
            Z = _z(pairs, m, rows) - means[m]
            scatters[m] += Z.T @ (weights[m][rows, None] * Z)
    # Aggregate onto side s (fewer distinct rows); t is the other side.
    s, t = (pairs.a, pairs.b) if len(pairs.raw[pairs.a]) <= len(pairs.raw[pairs.b]) else (pairs.b, pairs.a)
    counts = scipy.sparse.csr_matrix((np.ones(n), (pairs.index[s], pairs.index[t])),
                                     shape=(len(pairs.raw[s]), len(pairs.raw[t])))
    scaler_t = pairs.scalers[t]
    cross = np.zeros((pairs.raw[s].shape[1], pairs.raw[t].shape[1]))
    for rows in _chunks(np.flatnonzero(weights[s])):
        # Row u's partners, z-scored and centred, summed: (P_u X_t - w_u mu_t) / sigma_t - w_u m_t.
        partner_sum = np.asarray(counts[rows] @ pairs.raw[t], dtype=np.float64)
        partners = ((partner_sum - weights[s][rows, None] * scaler_t.mean) / scaler_t.std
                    - weights[s][rows, None] * means[t])
        cross += (_z(pairs, s, rows) - means[s]).T @ partners
    Cab = cross if s == pairs.a else cross.T
    return means[pairs.a], means[pairs.b], scatters[pairs.a], scatters[pairs.b], Cab


@register_method("cca")
@dataclass
class CCA(Method):
    name = "cca"
    #: The main training loss the convergence rule reads: none (closed form).
    convergence_loss = ()
    max_modalities = 2
    quick_params = {"n_components": 4}
    search_space = {"reg": LogUniform(1e-3, 10.0)}
    n_components: int = 64
    reg: float = 0.1

    def fit(self, train: TrainView, seed: int) -> CCA:
        self.begin_fit(seed)
        pairs = standardized_pairs(train, seed, self.name)
        a, b, self.scalers_ = pairs.a, pairs.b, pairs.scalers
        self.set_total_steps(1)
        if len(pairs) * max(train.dim(a), train.dim(b)) <= SPAN_ROUTE_MAX_ENTRIES:
            Xa, Xb = pairs.rows(a), pairs.rows(b)
            self.means_ = {a: Xa.mean(axis=0), b: Xb.mean(axis=0)}
            Wa, Wb, corr = fit_cca(Xa - self.means_[a], Xb - self.means_[b], self.n_components, self.reg)
        else:
            ma, mb, Caa, Cbb, Cab = pair_moments(pairs)
            self.means_ = {a: ma.astype(np.float32), b: mb.astype(np.float32)}
            Wa, Wb, corr = fit_cca_from_moments(Caa, Cbb, Cab, len(pairs), self.n_components, self.reg)
        self.projections_ = {a: Wa, b: Wb}
        self.correlations_ = corr
        self.advance()
        self.log_epoch(0, mean_canonical_correlation=float(corr.mean()) if corr.size else 0.0)
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        Z = (self.scalers_[modality](X) - self.means_[modality]) @ self.projections_[modality]
        return Z.astype(np.float32)
