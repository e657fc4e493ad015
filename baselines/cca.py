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

Deviations: (1) the papers do not state their regulariser or dimension; ours are ``reg=0.1`` and
``n_components=64`` (capped by the rank). (2) Unpaired data (sketch -> image) has no pairs: same-class
samples are paired deterministically from the run seed (:func:`baselines.pairing.cross_modal_pairs`);
this is our choice, the CCA papers only ran paired data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines.pairing import standardized_pairs
from benchmark.contract import Method, TrainView, ZSBenchError, register_method


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


@register_method("cca")
@dataclass
class CCA(Method):
    name = "cca"
    max_modalities = 2
    n_components: int = 64
    reg: float = 0.1

    def fit(self, train: TrainView, seed: int) -> CCA:
        a, b, Xa, Xb, _, self.scalers_ = standardized_pairs(train, seed, self.name)
        self.means_ = {a: Xa.mean(axis=0), b: Xb.mean(axis=0)}
        Wa, Wb, corr = fit_cca(Xa - self.means_[a], Xb - self.means_[b], self.n_components, self.reg)
        self.projections_ = {a: Wa, b: Wb}
        self.correlations_ = corr
        self.log_epoch(0, mean_canonical_correlation=float(corr.mean()) if corr.size else 0.0)
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        Z = (self.scalers_[modality](X) - self.means_[modality]) @ self.projections_[modality]
        return Z.astype(np.float32)
