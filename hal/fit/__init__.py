"""Fitting linear ACE models: design assembly and Bayesian regression (``hal.fit``)."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence

import numpy as np
from ase import Atoms

from hal.ace.basis import ACEBasis
from hal.fit.bayes import ARD, BRR
from hal.fit.design import LabelKeys, NormalEquations, Weights, assemble, assemble_groups, reference_energies
from hal.model import LinearACE

__all__ = [
    "ARD", "BRR", "LabelKeys", "NormalEquations", "Weights", "assemble", "assemble_groups", "fit",
    "fit_normal_equations", "smoothness_scale",
]  # fmt: skip


def smoothness_scale(basis: ACEBasis, p: float = 2.0) -> np.ndarray:
    """Degree-dependent column factors Γ_b = 1 + Σ_t n_t^p + w_L Σ_t l_t^p (pair functions 1 + n^p).

    The prior c ~ N(0, (α Γ²)⁻¹) penalises rough, high-degree functions (ACE1's smoothness prior).
    """
    ace = [1.0 + sum(n**p for _, n, _ in labs) + basis.w_L * sum(l**p for _, _, l in labs) for labs in basis._fn_labels]
    pair = [1.0 + (n + 1) ** p for _ in basis._upairs for n in range(basis.pair_degree)]
    return np.array(ace + pair)


def solve(
    ne: NormalEquations,
    basis: ACEBasis,
    solver: str = "brr",
    smoothness: float | None = 2.0,
    ard_threshold: float = 1e4,
) -> tuple[BRR | ARD, np.ndarray]:
    """Bayesian solve of the normal equations; returns the fitted estimator (in scaled columns)
    and the column scale Γ (coefficients are ``estimator.coef_ / Γ``)."""
    scale = smoothness_scale(basis, smoothness) if smoothness else np.ones(basis.size)
    G = ne.G / np.outer(scale, scale)
    b = ne.b / scale
    if solver == "brr":
        est = BRR().fit(G, b, ne.yy, ne.n_rows)
    elif solver == "ard":
        est = ARD(threshold=ard_threshold).fit(G, b, ne.yy, ne.n_rows)
    else:
        raise ValueError(f"solver must be 'brr' or 'ard', got {solver!r}")
    return est, scale


def fit(
    configs: Sequence[Atoms],
    basis: ACEBasis,
    solver: str = "brr",
    weights: Weights | None = None,
    e0: Mapping[str, float] | None = None,
    committee_size: int = 32,
    seed: int | None = 0,
    smoothness: float | None = 2.0,
    ard_threshold: float = 1e4,
    keys: LabelKeys | None = None,
    n_workers: int | None = None,
    progress: bool = True,
) -> LinearACE:
    """Fit a committee-capable linear ACE model to labelled configurations.

    E0 per species: ``e0`` if given, else isolated-atom configurations in ``configs``, else a
    least-squares fit to the species counts. The model carries c̄, ``committee_size`` posterior
    samples (reproducible with ``seed``) and ``fit_info`` (α, λ, evidence, rows, solver).
    """
    weights = weights or Weights()
    keys = keys or LabelKeys()
    e0 = dict(e0) if e0 is not None else reference_energies(configs, basis.elements, keys)
    ne = assemble(basis, configs, e0, weights, keys, n_workers=n_workers, progress=progress)
    return fit_normal_equations(ne, basis, e0, solver, committee_size, seed, smoothness, ard_threshold,
                                info={"n_configs": len(configs), "weights": vars(weights)})  # fmt: skip


def fit_normal_equations(
    ne: NormalEquations,
    basis: ACEBasis,
    e0: Mapping[str, float],
    solver: str = "brr",
    committee_size: int = 32,
    seed: int | None = 0,
    smoothness: float | None = 2.0,
    ard_threshold: float = 1e4,
    info: dict | None = None,
) -> LinearACE:
    """``fit`` from assembled normal equations: cheap refits when rows are added one by one (HAL)."""
    est, scale = solve(ne, basis, solver, smoothness, ard_threshold)
    coef = est.coef_ / scale
    committee = est.sample(committee_size, seed) / scale if committee_size else None
    info = {
        "solver": solver,
        "alpha": np.asarray(est.alpha_).tolist(),
        "lambda": est.lambda_,
        "n_rows": ne.n_rows,
        "smoothness": smoothness,
        "n_iter": est.n_iter_,
        **(info or {}),
    }
    if solver == "brr":
        info["log_evidence"] = float(est.log_evidence_)
    else:
        info["n_active"] = int(est.active_.sum())
    return LinearACE(basis, coef, e0, committee=committee, fit_info=info)


class _CallableModule(types.ModuleType):
    """``hal.fit`` names both this package and its ``fit`` function; ``hal`` imports its public names
    lazily, so whichever of the two the import system leaves on ``hal``, ``hal.fit(...)`` fits."""

    def __call__(self, *args, **kwargs) -> LinearACE:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
