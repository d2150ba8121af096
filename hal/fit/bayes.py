"""Bayesian linear regression on normal equations: BRR and ARD, posterior and committee samples.

Notation of the SPEC: prior c ~ N(0, α⁻¹) (isotropic for BRR, one α_k per coefficient for ARD),
noise precision λ; posterior Σ⁻¹ = diag(α) + λ ΨᵀΨ, mean c̄ = λ Σ Ψᵀy. Hyperparameters maximise the
evidence by MacKay's fixed-point updates with the weak Gamma hyperpriors of scikit-learn (shape
and rate 1e-6), so that BRR reproduces ``sklearn.linear_model.BayesianRidge(fit_intercept=False)``.
Both estimators work from ΨᵀΨ, Ψᵀy, yᵀy and the row count only (``NormalEquations``).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


class _Posterior:
    """Shared: the posterior square root and committee sampling."""

    coef_: np.ndarray
    lambda_: float

    def posterior_sqrt(self) -> np.ndarray:
        """L with Σ = L Lᵀ (M × r), from the eigendecomposition of the posterior precision."""
        raise NotImplementedError

    @property
    def sigma_(self) -> np.ndarray:
        """Posterior covariance Σ (M × M)."""
        L = self.posterior_sqrt()
        return L @ L.T

    def sample(self, n: int = 32, seed: int | None = 0) -> np.ndarray:
        """n coefficient vectors drawn from N(c̄, Σ), reproducible with ``seed`` (n × M)."""
        L = self.posterior_sqrt()
        z = np.random.default_rng(seed).standard_normal((L.shape[1], n))
        return self.coef_[None, :] + (L @ z).T


class BRR(_Posterior):
    """Bayesian ridge regression by evidence maximisation on the eigendecomposition of ΨᵀΨ.

    One eigendecomposition per fit (O(M³)); each evidence iteration is then O(M), and adding
    configurations only adds to ΨᵀΨ: refits never reassemble the design. Fitted attributes:
    ``coef_``, ``alpha_`` (prior precision), ``lambda_`` (noise precision), ``eigvals_``,
    ``eigvecs_``, ``log_evidence_``, ``n_iter_``.
    """

    def __init__(
        self,
        max_iter: int = 300,
        tol: float = 1e-3,
        hyper: float = 1e-6,
        alpha_init: float | None = None,
        lambda_init: float | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.hyper = hyper
        self.alpha_init = alpha_init
        self.lambda_init = lambda_init

    def fit(self, G: np.ndarray, b: np.ndarray, yy: float, n_rows: int, y_mean: float | None = None) -> BRR:
        """Fit from ΨᵀΨ (G), Ψᵀy (b), yᵀy and the number of rows. ``y_mean`` (if known) seeds λ
        as scikit-learn does, 1/var(y)."""
        s, V = linalg.eigh(G)
        bt = V.T @ b
        null = s <= max(s.max(), 0.0) * len(s) * np.finfo(float).eps  # numerically singular directions:
        s[null], bt[null] = 0.0, 0.0  # their Ψᵀy is round-off, which a small α would blow up into the coefficients
        h = self.hyper
        var_y = yy / n_rows - (y_mean or 0.0) ** 2
        lam = self.lambda_init or 1.0 / (var_y + np.finfo(float).eps)
        alpha = self.alpha_init or 1.0
        coef_old = None
        it = 0
        for it in range(1, self.max_iter + 1):  # noqa: B007 (n_iter_ below)
            mt = lam * bt / (alpha + lam * s)
            rss = max(yy - 2.0 * mt @ bt + (s * mt) @ mt, 0.0)
            gamma = float(np.sum(lam * s / (alpha + lam * s)))
            alpha = (gamma + 2 * h) / (mt @ mt + 2 * h)
            lam = (n_rows - gamma + 2 * h) / (rss + 2 * h)
            if coef_old is not None and np.sum(np.abs(coef_old - mt)) < self.tol:
                break
            coef_old = mt
        mt = lam * bt / (alpha + lam * s)
        rss = max(yy - 2.0 * mt @ bt + (s * mt) @ mt, 0.0)
        self.alpha_, self.lambda_, self.n_iter_ = float(alpha), float(lam), it
        self.eigvals_, self.eigvecs_ = s, V
        self.coef_ = V @ mt
        M = len(s)
        self.log_evidence_ = 0.5 * (
            M * np.log(alpha)
            + n_rows * np.log(lam)
            - lam * rss
            - alpha * mt @ mt
            - np.sum(np.log(alpha + lam * s))
            - n_rows * np.log(2 * np.pi)
        )
        return self

    def posterior_sqrt(self) -> np.ndarray:
        return self.eigvecs_ / np.sqrt(self.alpha_ + self.lambda_ * self.eigvals_)


class ARD(_Posterior):
    """Automatic relevance determination: one prior precision α_k per coefficient.

    Functions whose α_k exceeds ``threshold`` (α') are pruned; the posterior (mean and covariance)
    is that of the kept functions, with pruned coefficients exactly zero. Fitted attributes:
    ``coef_`` (M,), ``active_`` (bool mask), ``alpha_`` (M,), ``lambda_``, ``n_iter_``.
    """

    def __init__(self, threshold: float = 1e4, max_iter: int = 300, tol: float = 1e-3, hyper: float = 1e-6) -> None:
        self.threshold = threshold
        self.max_iter = max_iter
        self.tol = tol
        self.hyper = hyper

    @staticmethod
    def _solve(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigen-decomposition of a symmetric precision matrix, eigenvalues kept positive."""
        p, U = linalg.eigh(P)
        return np.clip(p, p.max() * 1e-15, None), U

    def fit(self, G: np.ndarray, b: np.ndarray, yy: float, n_rows: int, y_mean: float | None = None) -> ARD:
        M = len(b)
        h = self.hyper
        var_y = yy / n_rows - (y_mean or 0.0) ** 2
        lam = 1.0 / (var_y + np.finfo(float).eps)
        alpha = np.ones(M)
        active = np.ones(M, dtype=bool)
        coef = np.zeros(M)
        for it in range(1, self.max_iter + 1):
            idx = np.flatnonzero(active)
            p, U = self._solve(lam * G[np.ix_(idx, idx)] + np.diag(alpha[idx]))
            Sigma_diag = (U**2) @ (1.0 / p)
            m = lam * (U @ ((U.T @ b[idx]) / p))
            gamma = 1.0 - alpha[idx] * Sigma_diag
            alpha[idx] = (gamma + 2 * h) / (m**2 + 2 * h)
            rss = max(yy - 2.0 * m @ b[idx] + m @ G[np.ix_(idx, idx)] @ m, 0.0)
            lam = (n_rows - gamma.sum() + 2 * h) / (rss + 2 * h)
            new = np.zeros(M)
            new[idx] = m
            converged = np.sum(np.abs(new - coef)) < self.tol
            coef = new
            active = alpha < self.threshold
            if not active.any():
                active[np.argmin(alpha)] = True
            if converged and it > 1:
                break
        idx = np.flatnonzero(active)
        p, U = self._solve(lam * G[np.ix_(idx, idx)] + np.diag(alpha[idx]))
        coef = np.zeros(M)
        coef[idx] = lam * (U @ ((U.T @ b[idx]) / p))
        self.coef_, self.active_, self.alpha_, self.lambda_, self.n_iter_ = coef, active, alpha, float(lam), it
        self._prec_eig = (p, U)
        return self

    def posterior_sqrt(self) -> np.ndarray:
        p, U = self._prec_eig
        L = np.zeros((len(self.coef_), len(p)))
        L[self.active_] = U / np.sqrt(p)
        return L
