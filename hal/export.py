"""PACE ``.yace`` export of a linear ACE model, for python-ace's ``PyACECalculator`` and LAMMPS
``pair_style pace``: the same energies, forces and stress to round-off.

What makes it exact (facts in the project's notes on the PACE format, checked against python-ace):
* every ACE radial ``N_n C_n^(9/2)(t) (1 − t²)²`` with t linear in x = ((1+r0)/(1+r))^p is PACE's
  ``ACE.jl.base`` radial: the envelope is s⁴ (x − x_cut)² (x − x_in)², and the Gegenbauer recurrence in
  t becomes ``P_n = (A_n x + B_n) P_{n−1} + C_n P_{n−2}`` in x; one recursion per ordered species pair;
* the pair basis ``N_n Leg_n(t) (1 + t)²`` is one such recursion shared by all pairs (``polypairpot``,
  envelope (x − x_cut)², no inner one), with its coefficients per pair, and the core below each pair's
  r_in is PACE's ``reppot`` ``e0 + B exp(−A (r/r_in − 1)) r_in/r`` (B and e0 from the value and slope
  of the fitted pair potential at r_in, see ``hal.ace.radial``);
* the linear model is the embedding F(ρ) = ρ (``FinnisSinclairShiftedScaled`` with [1, 1]);
* each folded monomial Π_t A^real is rewritten on PACE's complex harmonics (Condon–Shortley, Y00 = 1):
  A^real_{lμ} = Σ_m U_{μm} A_{lm} / √(4π), with U fitted against ``scipy.special.sph_harm_y``; the
  terms are gathered per (species, n, l) tuple with the m's of equal (z, n, l) positions sorted, so
  the imaginary parts and the Σm ≠ 0 terms of an invariant cancel to round-off and are dropped.

A model that cannot be written exactly (a non-integer transform exponent, a coefficient vector that is
not rotation invariant) raises ``ExportError`` before any file is written.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from hal.ace.basis import ACEBasis
from hal.ace.radial import _GEG_A, _GEG_B, _LEG_A, _LEG_B, ace_norms, pair_norms, pair_radial
from hal.ace.ylm import real_ylm, ylm_norms, ylm_work

# imaginary parts and non-invariant terms left after gathering, relative to a function's largest |c̃|
_IMAG_TOL = 1e-8
_DROP_TOL = 1e-13
_MAX_MS_COMBS = 32767  # PACE keeps num_ms_combs in a short int


class ExportError(ValueError):
    """The model cannot be written as an exact PACE file; the message says why."""


def real_to_complex(lmax: int) -> list[np.ndarray]:
    """U[l] (2l+1, 2l+1), rows μ = −l…l, columns m = −l…l: our real Y_lμ = Σ_m U[l][μ, m] Y_lm with
    the orthonormal complex harmonics of ``scipy.special.sph_harm_y`` (fitted on 200 directions)."""
    from scipy.special import sph_harm_y

    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    n = (lmax + 1) ** 2
    real = np.empty((len(v), n))
    Y, dY, norms, work = np.empty(n), np.empty((n, 3)), ylm_norms(lmax), ylm_work(lmax)
    for k, d in enumerate(v):
        real_ylm(d, lmax, norms, work, Y, dY)
        real[k] = Y
    theta, phi = np.arccos(np.clip(v[:, 2], -1, 1)), np.arctan2(v[:, 1], v[:, 0])
    out = []
    for l in range(lmax + 1):
        cplx = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)], axis=1)
        U = np.linalg.lstsq(cplx, real[:, l * l : (l + 1) ** 2].astype(complex), rcond=None)[0].T
        if np.abs(cplx @ U.T - real[:, l * l : (l + 1) ** 2]).max() > 1e-12:
            raise ExportError(f"real harmonics of l = {l} are not a unitary mix of the complex ones")
        U[np.abs(U) < 1e-12] = 0.0
        out.append(U)
    return out


def _recursion(norms: np.ndarray, a: np.ndarray, b: np.ndarray, envelope: float, s: float, x_lo: float):
    """PACE recursion coefficients (A, B, C) of P_n = N_n c_n(t) env with c_{k+1} = a_k t c_k − b_k c_{k−1},
    t = s (x − x_lo) − 1 and env = ``envelope`` × PACE's envelope polynomial in x."""
    n = len(norms)
    A, B, C = np.zeros(n), np.zeros(n), np.zeros(n)
    A[0] = norms[0] * envelope
    for k in range(n - 1):
        ratio = norms[k + 1] / norms[k]
        A[k + 1] = ratio * a[k] * s
        B[k + 1] = -ratio * a[k] * (s * x_lo + 1.0)
        if k > 0:
            C[k + 1] = -norms[k + 1] / norms[k - 1] * b[k]
    return A, B, C


def _integer(p: float, name: str) -> int:
    if float(p) != int(p):
        raise ExportError(f"{name} = {p}: PACE's ACE.jl.base radials take an integer transform exponent")
    return int(p)


def _bonds(basis: ACEBasis) -> dict:
    """Every ordered species pair's ACE radial recursion (one common maxn ≥ 2)."""
    p = _integer(basis.transform_p, "transform_p")
    maxn = max(basis.nmax, 2)
    norms = ace_norms(maxn)
    out = {}
    for a in range(len(basis.zs)):
        for b in range(len(basis.zs)):
            x_cut, x_in = float(basis._x_cut[a, b]), float(basis._x_in[a, b])
            s = 2.0 / (x_in - x_cut)
            A, B, C = _recursion(norms, _GEG_A, _GEG_B, s**4, s, x_cut)
            out[(a, b)] = dict(radbasename="ACE.jl.base", rcut=float(basis.r_cut[a, b]), r0=float(basis.r0[a, b]),
                               p=p, xl=min(x_cut, x_in), xr=max(x_cut, x_in), pl=2, pr=2, maxn=maxn,
                               recursion_coefficients=dict(A=A, B=B, C=C))  # fmt: skip
    return out


def _pair_potential(basis: ACEBasis, c: np.ndarray) -> tuple[dict, dict]:
    """``polypairpot`` (the shared pair recursion, coefficients per ordered pair) and ``reppot``."""
    p = _integer(basis.pair_transform_p, "pair_transform_p")
    nd = basis.pair_degree
    maxn = max(nd, 2)
    norms = pair_norms(maxn)
    x_cut, x_in = basis._px_cut, basis._px_in
    s = 2.0 / (x_in - x_cut)
    A, B, C = _recursion(norms, _LEG_A, _LEG_B, s**2, s, x_cut)
    a_core = basis.core_strength
    coefficients, reppot = {}, {}
    P, dP = np.zeros(nd), np.zeros(nd)
    for a in range(len(basis.zs)):
        for b in range(len(basis.zs)):
            lo = basis.n_ace + basis._pcol[a, b]
            cp = np.zeros(maxn)
            cp[:nd] = c[lo : lo + nd]
            coefficients[(a, b)] = cp
            ri = float(basis.r_in[a, b])
            pair_radial(ri, basis.pair_r0, basis.pair_transform_p, ri, basis.pair_r_cut, x_in, x_cut, a_core, nd,
                        basis._pnorms, P, dP)  # fmt: skip
            v, dv = float(cp[:nd] @ P), float(cp[:nd] @ dP)
            Bc = -dv * ri / (a_core + 1.0)
            reppot[(a, b)] = dict(ri=ri, e0=v - Bc, A=a_core, B=Bc)
    # the envelope (x − x_cut)² on the outer side only (the core takes over below each pair's r_in); the
    # inner bound, of exponent 0, is x(r = 0), never reached. x falls with r for p > 0 and rises for p < 0
    x_zero = float((1.0 + basis.pair_r0) ** p)
    ends = dict(xl=x_cut, xr=x_zero, pl=2, pr=0) if p > 0 else dict(xl=x_zero, xr=x_cut, pl=0, pr=2)
    poly = dict(rcut=basis.pair_r_cut, r0=basis.pair_r0, p=p, **ends, maxn=maxn,
                recursion_coefficients=dict(A=A, B=B, C=C), coefficients=coefficients)  # fmt: skip
    return poly, {"coefficients": reppot}


def _functions(basis: ACEBasis, c: np.ndarray) -> dict[int, list[dict]]:
    """The folded monomials of c on complex harmonics, gathered into PACE C-tilde functions per centre."""
    ctil = basis._CT @ c[: basis.n_ace]
    U = real_to_complex(basis.lmax)
    inv = 1.0 / math.sqrt(4.0 * math.pi)
    a_l = np.floor(np.sqrt(basis._a_lm)).astype(int)
    a_mu = basis._a_lm - a_l * a_l - a_l
    # per A entry: (z, n, l, [(m, u)]) with u the weight of A_lm (PACE's normalisation) in our real A_lμ
    entries = []
    for k in range(len(basis._a_z)):
        l, mu = int(a_l[k]), int(a_mu[k])
        terms = [(m, U[l][mu + l, m + l] * inv) for m in range(-l, l + 1) if U[l][mu + l, m + l] != 0]
        entries.append((int(basis._a_z[k]), int(basis._a_n[k]) + 1, l, terms))
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(complex))
    for node, coef in enumerate(ctil):
        if coef == 0.0:
            continue
        pos = sorted((entries[a] for a in basis._node_keys[node]), key=lambda e: e[:3])
        labels = tuple(e[:3] for e in pos)
        runs = [k for k in range(len(pos)) if k == 0 or labels[k] != labels[k - 1]] + [len(pos)]
        acc = groups[(int(basis._node_species[node]), labels)]
        combos = [((), complex(coef))]
        for e in pos:
            combos = [(ms + (m,), w * u) for ms, w in combos for m, u in e[3]]
        for ms, w in combos:
            # equal (z, n, l) positions commute: sort their m's so that equal monomials share one key
            key = tuple(m for r0, r1 in zip(runs[:-1], runs[1:]) for m in sorted(ms[r0:r1]))
            acc[key] += w
    out: dict[int, list[dict]] = {s: [] for s in range(len(basis.zs))}
    for (s, labels), acc in sorted(groups.items()):
        keys = sorted(acc)
        vals = np.array([acc[k] for k in keys])
        scale = np.abs(vals).max(initial=0.0)
        if scale == 0.0:
            continue
        if np.abs(vals.imag).max() > _IMAG_TOL * scale:
            raise ExportError(f"function {labels} of centre {basis.elements[s]} has complex C-tilde coefficients "
                              "(odd Σl, or a coefficient vector that is not rotation invariant)")  # fmt: skip
        keep = np.abs(vals.real) > _DROP_TOL * scale
        ms = [k for k, kept in zip(keys, keep) if kept]
        if any(sum(m) != 0 for m in ms):
            raise ExportError(f"function {labels} of centre {basis.elements[s]} is not rotation invariant")
        if len(ms) > _MAX_MS_COMBS:
            raise ExportError(f"function {labels} of centre {basis.elements[s]} has {len(ms)} m-combinations; "
                              f"PACE stores at most {_MAX_MS_COMBS} per function")  # fmt: skip
        out[s].append(dict(mu0=s, rank=len(labels), ndensity=1, num_ms_combs=len(ms),
                           mus=[z for z, _, _ in labels], ns=[n for _, n, _ in labels], ls=[l for _, _, l in labels],
                           ms_combs=[m for mc in ms for m in mc], ctildes=vals.real[keep]))  # fmt: skip
    return out


def _flow(v) -> str:
    """A scalar, list or small mapping in YAML flow style; floats as repr (the shortest string that
    reads back to the same double, so the file holds the coefficients exactly)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            raise ExportError(f"non-finite value {v} in the model")
        return repr(float(v))
    return str(v)


def _yaml(value: dict, indent: str = "") -> str:
    """Block mappings for nested dicts, a block sequence of flow mappings for lists of dicts, flow
    style for everything else (the layout python-ace writes and reads)."""
    lines = []
    for k, v in value.items():
        if isinstance(v, dict) and v:
            lines.append(f"{indent}{_flow(k)}:\n" + _yaml(v, indent + "  ").rstrip("\n"))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            lines.append(f"{indent}{_flow(k)}:")
            lines += [f"{indent}  - {_flow(x)}" for x in v]
        else:
            lines.append(f"{indent}{_flow(k)}: {_flow(v)}")
    return "\n".join(lines) + "\n"


def yace_dict(model, member: int | None = None) -> dict:
    """The .yace content of ``model`` (a ``LinearACE``), or of its committee member ``member``."""
    basis = model.basis
    if member is None:
        c = model.coefficients
    else:
        if model.committee is None:
            raise ExportError("this model has no committee: --member needs a model fitted with committee_size > 0")
        if not 0 <= member < len(model.committee):
            raise ExportError(f"member {member} is not in 0..{len(model.committee) - 1}")
        c = model.committee[member]
    ns = len(basis.zs)
    emb = dict(ndensity=1, FS_parameters=[1.0, 1.0], npoti="FinnisSinclairShiftedScaled",
               rho_core_cutoff=100000.0, drho_core_cutoff=1.0)  # fmt: skip
    d = dict(elements=list(basis.elements), E0=[model.e0[el] for el in basis.elements], lmax=int(basis.lmax),
             embeddings={s: emb for s in range(ns)}, bonds=_bonds(basis))  # fmt: skip
    if basis.pair_degree:
        d["polypairpot"], d["reppot"] = _pair_potential(basis, c)
    d["functions"] = _functions(basis, c)
    return d


def write_yace(model, path: str | os.PathLike, member: int | None = None) -> Path:
    """Write ``model`` (or committee ``member``) as a PACE .yace file, atomically; returns the path."""
    path = Path(path)
    text = _yaml(yace_dict(model, member))
    if not path.parent.is_dir():
        raise ExportError(f"{path.parent}: no such directory")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


__all__ = ["ExportError", "real_to_complex", "write_yace", "yace_dict"]
