"""Numba kernels of the ACE basis: the full basis (for fitting) and the folded fast path (for MD).

Both walk a half-open neighbour list sorted by centre atom and, within it, by neighbour species
(``first[i]:first[i+1]``, neighbour ``jnb``, vector ``D = r_j - r_i + shift`` in Å). Per centre
atom the radials and harmonics of all its neighbours are stored transposed (function × neighbour),
so that ``A[z, n, lm] = Σ_j R_n(r_ij) Y_lm(r̂_ij)`` and its pull-back are contiguous loops over
neighbours. The monomial DAG (each node = its parent node × one A entry, nodes sorted by order)
of the centre's species gives the site energy. Gradients are dE/dr_p for the pair vector r_p;
virial = -Σ_p sym(dE/dr_p ⊗ r_p), Voigt (xx, yy, zz, yz, xz, xy).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np
from numba import njit, prange

from hal.ace.radial import ace_radial, pair_radial
from hal.ace.ylm import real_ylm

# K > 2 gradient columns (a committee's members) run "wide": adjoint buffers padded to a multiple of
# WIDTH columns (whole vectors in the DAG walk: 33 columns padded to 36 ran 15 % faster than 33),
# and the pull-back to the neighbours is one small matrix product per block of neighbours (BLAS).
# Blocks keep m·n·k ≤ BLAS_SERIAL_MNK, below which OpenBLAS runs a product on the calling thread
# (its own threads would oversubscribe ours).
WIDTH = 4
BLAS_SERIAL_MNK = 262144


@njit(cache=True)
def wide(K):
    """Columns of the adjoint buffers for K gradient columns (K itself for K ≤ 2)."""
    return K if K <= 2 else -(-K // WIDTH) * WIDTH


@njit(cache=True, fastmath=True, inline="always")
def _add_virial(V, g0, g1, g2, d0, d1, d2, scale):
    V[0] += scale * g0 * d0
    V[1] += scale * g1 * d1
    V[2] += scale * g2 * d2
    V[3] += scale * 0.5 * (g1 * d2 + g2 * d1)
    V[4] += scale * 0.5 * (g0 * d2 + g2 * d0)
    V[5] += scale * 0.5 * (g0 * d1 + g1 * d0)


@njit(cache=True)
def _maxnb(first):
    """Largest neighbour count (at least 1)."""
    m = 1
    for i in range(first.shape[0] - 1):
        m = max(m, first[i + 1] - first[i])
    return m


@njit(cache=True)
def _buffers(maxnb, rad, maxblock, K, npair):
    """Per-atom work buffers for up to maxnb neighbours (neighbour index last in the transposed ones)."""
    nmax, lmax = rad[0], rad[1]
    ns = rad[3].shape[0]
    nA = ns * rad[11]
    nlm = (lmax + 1) * (lmax + 1)
    Kw = wide(K)
    nJ = 3 * maxnb if K > 2 else 1
    return (
        np.zeros((5, lmax + 1, lmax + 1)),  # 0 ywork
        np.zeros(nmax),  # 1 rtmp
        np.zeros(nmax),  # 2 drtmp
        np.zeros((nmax, maxnb)),  # 3 RbT
        np.zeros((nlm, maxnb)),  # 4 YbT
        np.zeros((3, nlm, maxnb)),  # 5 dYbT
        np.zeros((3, maxnb)),  # 6 DT
        np.zeros(maxnb),  # 7 rinv
        np.zeros(ns + 1, dtype=np.int64),  # 8 seg: neighbours of species z are seg[z]:seg[z+1]
        np.zeros((maxnb, nmax)),  # 9 Rb  (neighbour-major copy of RbT)
        np.zeros((maxnb, nmax)),  # 10 dRb
        np.zeros(nA),  # 11 A
        np.zeros((nA, Kw)),  # 12 adjA (padding columns stay zero)
        np.zeros(maxblock),  # 13 AA
        np.zeros((maxblock, Kw)),  # 14 adj
        np.zeros((3, maxnb)),  # 15 grad (one adjoint column, all neighbours)
        np.zeros((maxnb, max(npair, 1))),  # 16 Pb: pair basis values per neighbour (NaN: outside)
        np.zeros((maxnb, max(npair, 1))),  # 17 dPb: their r-derivatives
        np.zeros((nJ, rad[11] if K > 2 else 1)),  # 18 J: dA/dr of a block of neighbours (wide path)
        np.zeros((nJ, Kw if K > 2 else 1)),  # 19 G: their gradients, J @ adjA
        np.zeros((3, maxnb if K == 2 else 1)),  # 20 grad2: the second adjoint column (K = 2)
        np.zeros((max(K, 1), maxnb)),  # 21 pg: pair-potential dE_c/dr / r per neighbour
        np.zeros(K if K > 2 else 1),  # 22 gq: one neighbour's pair dE_c/dr (wide path)
    )


@njit(cache=True, fastmath=True)
def _features(i, species, first, jnb, D, rad, buf):
    """Radials, harmonics and geometry of the neighbours of atom i, then its atomic basis A.

    Pairs outside (r_in, r_cut) get zero radials. Returns the number of neighbours.
    """
    nmax, lmax, p, r0, rin, rcut, xin, xcut, anorms, nl, aoff, astride, ynorm = rad
    ywork, rtmp, drtmp, RbT, YbT, dYbT, DT, rinv, seg, Rb, dRb, A = buf[:12]
    s = species[i]
    f0 = first[i]
    nq = first[i + 1] - f0
    ns = seg.shape[0] - 1
    nlm = (lmax + 1) * (lmax + 1)
    seg[:] = 0
    for q in range(nq):
        seg[species[jnb[f0 + q]] + 1] += 1
    for z in range(ns):
        seg[z + 1] += seg[z]
    for q in range(nq):
        d = D[f0 + q]
        z = species[jnb[f0 + q]]
        r = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        DT[0, q] = d[0]
        DT[1, q] = d[1]
        DT[2, q] = d[2]
        rinv[q] = 1.0 / r
        if ace_radial(r, r0[s, z], p, rin[s, z], rcut[s, z], xin[s, z], xcut[s, z], nmax, anorms, rtmp, drtmp):
            for n in range(nmax):
                RbT[n, q] = rtmp[n]
                Rb[q, n] = rtmp[n]
                dRb[q, n] = drtmp[n]
            real_ylm(d, lmax, ynorm, ywork, YbT[:, q], dYbT[:, :, q].T)
        else:
            for n in range(nmax):
                RbT[n, q] = 0.0
                Rb[q, n] = 0.0
                dRb[q, n] = 0.0
            for lm in range(nlm):
                YbT[lm, q] = 0.0
                dYbT[0, lm, q] = 0.0
                dYbT[1, lm, q] = 0.0
                dYbT[2, lm, q] = 0.0
    _atomic_basis(lmax, nl, aoff, astride, seg, RbT, YbT, A)
    return nq


@njit(cache=True, fastmath=True)
def _atomic_basis(lmax, nl, aoff, astride, seg, RbT, YbT, A):
    """A[z, l, m, n] = Σ_{q of species z} R_n(q) Y_lm(q): contiguous dots over neighbours."""
    ns = seg.shape[0] - 1
    for z in range(ns):
        q0 = seg[z]
        q1 = seg[z + 1]
        for l in range(lmax + 1):
            nn = nl[l]
            for m in range(2 * l + 1):
                lm = l * l + m
                base = z * astride + aoff[l] + m * nn
                for n in range(nn):
                    acc = 0.0
                    for q in range(q0, q1):
                        acc += RbT[n, q] * YbT[lm, q]
                    A[base + n] = acc


@njit(cache=True, fastmath=True)
def _monomials(n0, nb, parent, aidx, A, AA):
    """Forward pass: AA[kk] = AA[parent] * A[aidx] over the nodes n0 … n0+nb of one species."""
    for kk in range(nb):
        k = n0 + kk
        pa = parent[k]
        v = A[aidx[k]]
        if pa >= 0:
            v *= AA[pa - n0]
        AA[kk] = v


@njit(cache=True, fastmath=True)
def _energy_and_adjoint(i, n0, nb, parent, aidx, A, AA, ctil, Eat, adj, adjA):
    """Site energies Σ_k c̃_k AA_k of atom i and the adjoint ∂E/∂A (K ≤ 2 columns; K = 1 is scalar)."""
    K = ctil.shape[1]
    adjA[:, :] = 0.0
    if K == 1:  # contiguous 1-D views: no column stride in the hot loop
        c1 = ctil.reshape(ctil.shape[0])
        a1 = adj.reshape(adj.shape[0])
        A1 = adjA.reshape(adjA.shape[0])
        e = 0.0
        for kk in range(nb):
            c = c1[n0 + kk]
            e += c * AA[kk]
            a1[kk] = c
        Eat[0, i] += e
        for kk in range(nb - 1, -1, -1):
            k = n0 + kk
            pa = parent[k]
            a = aidx[k]
            w = a1[kk]
            if pa >= 0:
                A1[a] += w * AA[pa - n0]
                a1[pa - n0] += w * A[a]
            else:
                A1[a] += w
        return
    if K == 2:  # two columns (HAL: c̄ and the σ direction) share every load of the DAG walk
        e0 = 0.0
        e1 = 0.0
        if Eat.shape[0] == 2:
            for kk in range(nb):
                a0 = ctil[n0 + kk, 0]
                a1 = ctil[n0 + kk, 1]
                e0 += a0 * AA[kk]
                e1 += a1 * AA[kk]
                adj[kk, 0] = a0
                adj[kk, 1] = a1
            Eat[1, i] += e1
        else:  # Eat (1, N): the first column's site energies only (HAL needs no σ-direction ones)
            for kk in range(nb):
                a0 = ctil[n0 + kk, 0]
                e0 += a0 * AA[kk]
                adj[kk, 0] = a0
                adj[kk, 1] = ctil[n0 + kk, 1]
        Eat[0, i] += e0
        fa = adj.reshape(2 * adj.shape[0])  # flat views: the pairs' stride 2 is a literal (5 % faster)
        fA = adjA.reshape(2 * adjA.shape[0])
        for kk in range(nb - 1, -1, -1):
            k = n0 + kk
            pa = parent[k]
            a = aidx[k]
            w0 = fa[2 * kk]
            w1 = fa[2 * kk + 1]
            if pa >= 0:
                x = AA[pa - n0]
                y = A[a]
                fA[2 * a] += w0 * x
                fA[2 * a + 1] += w1 * x
                p2 = 2 * (pa - n0)
                fa[p2] += w0 * y
                fa[p2 + 1] += w1 * y
            else:
                fA[2 * a] += w0
                fA[2 * a + 1] += w1
        return


@njit(cache=True, fastmath=True, inline="always")
def _energy_and_adjoint_wide(i, n0, nb, parent, aidx, slot, A, AA, ctil, Eat, adj, adjA):
    """``_energy_and_adjoint`` for K > 2 columns (a committee's members): site energies of the first
    Eat.shape[0] columns only (members need none). A leaf node's adjoint is its coefficient row, read
    from ctil in the walk; parent nodes accumulate theirs in adj (row ``slot``, padded to a multiple
    of WIDTH columns, see ``wide``): a quarter of the rows an adjoint per node would write and
    stream (a 33-column hexane evaluation 0.91× as long, same results to the bit). Inlined into the
    loop that made the buffers: called with them as arguments, the same walk took 1.4× as long."""
    K = ctil.shape[1]
    adjA[:, :] = 0.0
    kw = adj.shape[1]
    ne = Eat.shape[0]
    few = ne <= 2  # one or two site-energy columns: a register sum each (one array element, stored and
    for c in range(ne if few else 0):  # reloaded per node, made a 10-cycle chain per node: 50 µs of a
        e = 0.0  #                        33-column hexane pass)
        for kk in range(nb):
            e += ctil[n0 + kk, c] * AA[kk]
        Eat[c, i] += e
    es = np.zeros(0 if few else ne)
    for kk in range(nb):  # row by row: ctil is read once, contiguously (many columns' sums: the chain
        k = n0 + kk  #       spread over them)
        v = AA[kk]
        for c in range(es.shape[0]):
            es[c] += ctil[k, c] * v
        sl = slot[k]
        if sl >= 0:
            for c in range(K):
                adj[sl, c] = ctil[k, c]
    for c in range(es.shape[0]):
        Eat[c, i] += es[c]
    for kk in range(nb - 1, -1, -1):  # all columns of a row in one loop, 2-D indexing (no row views)
        k = n0 + kk
        pa = parent[k]
        a = aidx[k]
        sl = slot[k]
        if pa >= 0:
            p = slot[pa]
            w = AA[pa - n0]
            av = A[a]
            if sl >= 0:
                for c in range(kw):
                    x = adj[sl, c]
                    adjA[a, c] += x * w
                    adj[p, c] += x * av
            else:
                for c in range(K):
                    x = ctil[k, c]
                    adjA[a, c] += x * w
                    adj[p, c] += x * av
        elif sl >= 0:
            for c in range(kw):
                adjA[a, c] += adj[sl, c]
        else:
            for c in range(K):
                adjA[a, c] += ctil[k, c]


@njit(cache=True, fastmath=True)
def _pullback_one(lmax, nl, aoff, astride, seg, Rb, dRb, YbT, dYbT, DT, rinv, adjA1, grad):
    """grad[:, q] = dE/dr_q for all neighbours q from a single adjoint column (1-D)."""
    ns = seg.shape[0] - 1
    for z in range(ns):
        for q in range(seg[z], seg[z + 1]):
            t = 0.0
            gx = 0.0
            gy = 0.0
            gz = 0.0
            for l in range(lmax + 1):
                nn = nl[l]
                for m in range(2 * l + 1):
                    lm = l * l + m
                    base = z * astride + aoff[l] + m * nn
                    s1 = 0.0
                    s2 = 0.0
                    for n in range(nn):
                        w = adjA1[base + n]
                        s1 += w * dRb[q, n]
                        s2 += w * Rb[q, n]
                    t += s1 * YbT[lm, q]
                    gx += s2 * dYbT[0, lm, q]
                    gy += s2 * dYbT[1, lm, q]
                    gz += s2 * dYbT[2, lm, q]
            t *= rinv[q]
            grad[0, q] = t * DT[0, q] + gx
            grad[1, q] = t * DT[1, q] + gy
            grad[2, q] = t * DT[2, q] + gz


@njit(cache=True, fastmath=True)
def _pullback_two(lmax, nl, aoff, astride, seg, Rb, dRb, YbT, dYbT, DT, rinv, adjA, grad, grad2):
    """``_pullback_one`` for the two columns of adjA at once (grad: column 0, grad2: column 1)."""
    ns = seg.shape[0] - 1
    for z in range(ns):
        for q in range(seg[z], seg[z + 1]):
            t0 = 0.0
            t1 = 0.0
            gx0 = 0.0
            gy0 = 0.0
            gz0 = 0.0
            gx1 = 0.0
            gy1 = 0.0
            gz1 = 0.0
            for l in range(lmax + 1):
                nn = nl[l]
                for m in range(2 * l + 1):
                    lm = l * l + m
                    base = z * astride + aoff[l] + m * nn
                    s10 = 0.0
                    s20 = 0.0
                    s11 = 0.0
                    s21 = 0.0
                    for n in range(nn):
                        w0 = adjA[base + n, 0]
                        w1 = adjA[base + n, 1]
                        dr = dRb[q, n]
                        rr = Rb[q, n]
                        s10 += w0 * dr
                        s20 += w0 * rr
                        s11 += w1 * dr
                        s21 += w1 * rr
                    y = YbT[lm, q]
                    dy0, dy1, dy2 = dYbT[0, lm, q], dYbT[1, lm, q], dYbT[2, lm, q]
                    t0 += s10 * y
                    t1 += s11 * y
                    gx0 += s20 * dy0
                    gy0 += s20 * dy1
                    gz0 += s20 * dy2
                    gx1 += s21 * dy0
                    gy1 += s21 * dy1
                    gz1 += s21 * dy2
            t0 *= rinv[q]
            t1 *= rinv[q]
            grad[0, q] = t0 * DT[0, q] + gx0
            grad[1, q] = t0 * DT[1, q] + gy0
            grad[2, q] = t0 * DT[2, q] + gz0
            grad2[0, q] = t1 * DT[0, q] + gx1
            grad2[1, q] = t1 * DT[1, q] + gy1
            grad2[2, q] = t1 * DT[2, q] + gz1


@njit(cache=True, fastmath=True)
def _jacobian(q0, q1, lmax, nl, aoff, Rb, dRb, YbT, dYbT, DT, rinv, J):
    """J[3(q−q0)+x, (l, m, n)] = ∂A_{lmn}/∂(r_q)_x for neighbours q0 … q1−1 of one species:
    R_n'(r) Y_lm r_x/r + R_n ∂_x Y_lm (the row block of those neighbours' A entries)."""
    for q in range(q0, q1):
        r = 3 * (q - q0)
        ri = rinv[q]
        for l in range(lmax + 1):
            nn = nl[l]
            for m in range(2 * l + 1):
                lm = l * l + m
                b = aoff[l] + m * nn
                y = YbT[lm, q] * ri
                for x in range(3):
                    t = DT[x, q] * y
                    e = dYbT[x, lm, q]
                    for n in range(nn):
                        J[r + x, b + n] = dRb[q, n] * t + Rb[q, n] * e


@njit(cache=True, fastmath=True)
def _pullback_wide(i, f0, K, jnb, lmax, nl, aoff, astride, seg, Rb, dRb, YbT, dYbT, DT, rinv, adjA, J, G, pg, F, V):
    """Forces and virials of K > 2 adjoint columns: per species and block of neighbours, the
    gradients G = J @ adjA (one BLAS product, serial by its size) plus the pair terms pg, scattered
    to i and j."""
    block = max(1, BLAS_SERIAL_MNK // (3 * adjA.shape[1] * astride))
    for z in range(seg.shape[0] - 1):
        cols = adjA[z * astride : (z + 1) * astride]
        for q0 in range(seg[z], seg[z + 1], block):
            q1 = min(q0 + block, seg[z + 1])
            _jacobian(q0, q1, lmax, nl, aoff, Rb, dRb, YbT, dYbT, DT, rinv, J)
            m = 3 * (q1 - q0)
            np.dot(J[:m], cols, G[:m])
            for q in range(q0, q1):
                r = 3 * (q - q0)
                j = jnb[f0 + q]
                d0, d1, d2 = DT[0, q], DT[1, q], DT[2, q]
                for c in range(K):
                    g = pg[c, q]
                    _scatter(F, V, c, i, j, G[r, c] + g * d0, G[r + 1, c] + g * d1, G[r + 2, c] + g * d2, DT, q)


@njit(cache=True, fastmath=True, inline="always")
def _pair_terms(i, s, q, z, rad, pair, buf, P, dP):
    """Pair basis values P_n and dP_n/dr of neighbour q of atom i; False outside the pair cutoff."""
    npair, pp_, pr0, prcut, pxin, pxcut, core, pnorms, _ = pair
    r = 1.0 / buf[7][q]
    return npair > 0 and pair_radial(r, pr0, pp_, rad[4][s, z], prcut, pxin, pxcut, core, npair, pnorms, P, dP)


@njit(cache=True, fastmath=True, inline="always")
def _scatter(F, V, c, i, j, g0, g1, g2, DT, q):
    """Add the pair gradient dE_c/dr_q to the forces of i (+) and j (-) and to the virial."""
    F[c, i, 0] += g0
    F[c, i, 1] += g1
    F[c, i, 2] += g2
    F[c, j, 0] -= g0
    F[c, j, 1] -= g1
    F[c, j, 2] -= g2
    if V.shape[1]:  # V (K, 0): no virial (a non-periodic structure)
        _add_virial(V[c], g0, g1, g2, DT[0, q], DT[1, q], DT[2, q], -1.0)


def _maxblock(node_start):
    return max(1, int(np.diff(node_start).max(initial=0)))


@njit(cache=True, fastmath=True, inline="always")
def _atom_forward(i, species, first, jnb, D, rad, dag, pair, buf, P, dP, AAsum, Ep):
    """Atom i: neighbour features, A, pair-basis energies (into Ep) and monomials (into AAsum)."""
    node_start, parent, aidx, _ = dag  # slot: the backward walk's
    npair, pcol = pair[0], pair[8]
    s = species[i]
    f0 = first[i]
    nq = _features(i, species, first, jnb, D, rad, buf)
    Pb, dPb = buf[16], buf[17]
    for q in range(nq):  # pair basis, half per ordered pair; values kept for the gradients
        z = species[jnb[f0 + q]]
        if _pair_terms(i, s, q, z, rad, pair, buf, P, dP):
            c0 = pcol[s, z]
            for n in range(npair):
                Ep[c0 + n] += 0.5 * P[n]
                Pb[q, n] = P[n]
                dPb[q, n] = dP[n]
        else:
            Pb[q, 0] = np.nan
    n0 = node_start[s]
    nb = node_start[s + 1] - n0
    A, AA = buf[11], buf[13]
    _monomials(n0, nb, parent, aidx, A, AA)
    for kk in range(nb):
        AAsum[n0 + kk] += AA[kk]
    return nq


@njit(cache=True, fastmath=True, inline="always")
def _atom_gradients(i, nq, species, first, jnb, rad, dag, pair, buf, ctil, pcoef, Eat, F, V):
    """Atom i after ``_atom_forward``: site energies, forces and virials of the K gradient columns."""
    node_start, parent, aidx, slot = dag
    npair = pair[0]
    lmax, nl, aoff, astride = rad[1], rad[9], rad[10], rad[11]
    DT, rinv, seg, Rb, dRb, A, adjA, AA, adj, grad = buf[6:16]
    YbT, dYbT = buf[4], buf[5]
    grad2 = buf[20]
    K = ctil.shape[1]
    s = species[i]
    f0 = first[i]
    Pb, dPb, pg = buf[16], buf[17], buf[21]
    for q in range(nq):  # pair potential of the K columns: energies, and dE/dr / r (added to the ACE gradients)
        if npair == 0 or np.isnan(Pb[q, 0]):
            for c in range(K):
                pg[c, q] = 0.0
            continue
        z = species[jnb[f0 + q]]
        if K > 2:  # columns innermost, contiguous in pcoef (72 → 34 µs of a 33-column hexane pass)
            gq = buf[22]
            gq[:] = 0.0
            for n in range(npair):
                d = dPb[q, n]
                for c in range(K):
                    gq[c] += pcoef[s, z, n, c] * d
            for c in range(K):
                pg[c, q] = gq[c] * rinv[q]
            for c in range(Eat.shape[0]):
                e = 0.0
                for n in range(npair):
                    e += pcoef[s, z, n, c] * Pb[q, n]
                Eat[c, i] += e
            continue
        for c in range(K):
            e = 0.0
            g = 0.0
            for n in range(npair):
                e += pcoef[s, z, n, c] * Pb[q, n]
                g += pcoef[s, z, n, c] * dPb[q, n]
            if c < Eat.shape[0]:
                Eat[c, i] += e
            pg[c, q] = g * rinv[q]
    n0 = node_start[s]
    nb = node_start[s + 1] - n0
    if nb == 0:  # no ACE functions on this species: the pair terms alone
        for q in range(nq):
            for c in range(K):
                g = pg[c, q]
                _scatter(F, V, c, i, jnb[f0 + q], g * DT[0, q], g * DT[1, q], g * DT[2, q], DT, q)
        return
    if K > 2:
        _energy_and_adjoint_wide(i, n0, nb, parent, aidx, slot, A, AA, ctil, Eat, adj, adjA)
    else:
        _energy_and_adjoint(i, n0, nb, parent, aidx, A, AA, ctil, Eat, adj, adjA)
    if K == 1:
        _pullback_one(lmax, nl, aoff, astride, seg, Rb, dRb, YbT, dYbT, DT, rinv, adjA.reshape(adjA.shape[0]), grad)
        for q in range(nq):
            g = pg[0, q]
            _scatter(F, V, 0, i, jnb[f0 + q], grad[0, q] + g * DT[0, q], grad[1, q] + g * DT[1, q],
                     grad[2, q] + g * DT[2, q], DT, q)  # fmt: skip
        return
    if K == 2:
        _pullback_two(lmax, nl, aoff, astride, seg, Rb, dRb, YbT, dYbT, DT, rinv, adjA, grad, grad2)
        for q in range(nq):
            j = jnb[f0 + q]
            g = pg[0, q]
            _scatter(F, V, 0, i, j, grad[0, q] + g * DT[0, q], grad[1, q] + g * DT[1, q], grad[2, q] + g * DT[2, q],
                     DT, q)  # fmt: skip
            g = pg[1, q]
            _scatter(F, V, 1, i, j, grad2[0, q] + g * DT[0, q], grad2[1, q] + g * DT[1, q],
                     grad2[2, q] + g * DT[2, q], DT, q)  # fmt: skip
        return
    _pullback_wide(i, f0, K, jnb, lmax, nl, aoff, astride, seg, Rb, dRb, YbT, dYbT, DT, rinv, adjA, buf[18], buf[19],
                   pg, F, V)  # fmt: skip


@njit(cache=True)
def _bounds(N, nt):
    """Atoms of thread t: bounds[t]:bounds[t+1] (contiguous, equal shares)."""
    b = np.empty(nt + 1, dtype=np.int64)
    for t in range(nt + 1):
        b[t] = (N * t) // nt
    return b


@njit(cache=True, fastmath=True)
def _folded_range(lo, hi, species, first, jnb, D, rad, dag, pair, maxblock, ctil, pcoef, Eat, F, V, AAsum, Ep):
    """``eval_folded`` for atoms lo … hi−1 (its own work buffers)."""
    npair = pair[0]
    K = ctil.shape[1]
    maxnb = _maxnb(first)
    buf = _buffers(maxnb, rad, maxblock, K, npair)
    P = np.zeros(max(npair, 1))
    dP = np.zeros(max(npair, 1))
    for i in range(lo, hi):
        nq = _atom_forward(i, species, first, jnb, D, rad, dag, pair, buf, P, dP, AAsum, Ep)
        if K > 0:
            _atom_gradients(i, nq, species, first, jnb, rad, dag, pair, buf, ctil, pcoef, Eat, F, V)


@njit(cache=True)
def eval_folded(species, first, jnb, D, rad, dag, pair, maxblock, ctil, pcoef, Eat, F, V, AAsum, Ep):
    """Fast path for K gradient vectors at once (K may be 0: energies only), one pass per atom.

    rad, dag, pair: the basis constants (see ``ACEBasis``); ctil (n_nodes, K) folded coefficients;
    pcoef (ns, ns, npair, K) pair coefficients, halved for the double-counted full list. Outputs
    (accumulated): Eat (K, N) site energies (K ≥ 2: Eat (k, N) gives those of the first k columns
    only), F (K, N, 3) forces, V (K, 6) virials (V (K, 0): none, the work skipped); AAsum (n_nodes)
    Σ_i AA_i and Ep (n_pair columns) the pair basis energies, from which any coefficient vector's
    energy is one dot product.
    """
    N = species.shape[0]
    _folded_range(0, N, species, first, jnb, D, rad, dag, pair, maxblock, ctil, pcoef, Eat, F, V, AAsum, Ep)


@njit(cache=True, parallel=True)
def eval_folded_threads(nt, species, first, jnb, D, rad, dag, pair, maxblock, ctil, pcoef, Eat, F, V, AAsum, Ep):
    """``eval_folded`` on nt threads, each over a contiguous share of the atoms with its own force,
    virial and sum buffers, added in thread order (deterministic for a fixed nt)."""
    bounds = _bounds(species.shape[0], nt)
    Ft = np.zeros((nt,) + F.shape)
    Vt = np.zeros((nt,) + V.shape)
    At = np.zeros((nt,) + AAsum.shape)
    Et = np.zeros((nt,) + Ep.shape)
    for t in prange(nt):
        _folded_range(bounds[t], bounds[t + 1], species, first, jnb, D, rad, dag, pair, maxblock, ctil, pcoef,
                      Eat, Ft[t], Vt[t], At[t], Et[t])  # fmt: skip
    for t in range(nt):
        F += Ft[t]
        V += Vt[t]
        AAsum += At[t]
        Ep += Et[t]


@njit(cache=True)
def store_buffers(N, maxnb, rad, maxblock, npair):
    """Per-atom copies of the buffers that ``_atom_forward`` fills, for the two-phase evaluation."""
    b = _buffers(maxnb, rad, maxblock, 0, npair)
    return (
        np.zeros((N,) + b[3].shape), np.zeros((N,) + b[4].shape), np.zeros((N,) + b[5].shape),
        np.zeros((N,) + b[6].shape), np.zeros((N,) + b[7].shape), np.zeros((N,) + b[8].shape, dtype=np.int64),
        np.zeros((N,) + b[9].shape), np.zeros((N,) + b[10].shape), np.zeros((N,) + b[11].shape),
        np.zeros((N,) + b[13].shape), np.zeros((N,) + b[16].shape), np.zeros((N,) + b[17].shape),
    )  # fmt: skip


@njit(cache=True, inline="always")
def _atom_view(store, b, i):
    """The buffers of atom i: its stored forward pass, and the scratch ``b`` of the running thread."""
    return (b[0], b[1], b[2], store[0][i], store[1][i], store[2][i], store[3][i], store[4][i], store[5][i],
            store[6][i], store[7][i], store[8][i], b[12], store[9][i], b[14], b[15], store[10][i],
            store[11][i], b[18], b[19], b[20], b[21], b[22])  # fmt: skip


@njit(cache=True, fastmath=True)
def _forward_range(lo, hi, species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep):
    npair = pair[0]
    b = _buffers(1, rad, maxblock, 0, npair)  # scratch: ywork, rtmp, drtmp
    P = np.zeros(max(npair, 1))
    dP = np.zeros(max(npair, 1))
    for i in range(lo, hi):
        _atom_forward(i, species, first, jnb, D, rad, dag, pair, _atom_view(store, b, i), P, dP, AAsum, Ep)


@njit(cache=True, fastmath=True)
def _gradients_range(lo, hi, species, first, jnb, rad, dag, pair, maxblock, store, ctil, pcoef, Eat, F, V):
    K = ctil.shape[1]
    maxnb = _maxnb(first)
    b = _buffers(maxnb, rad, maxblock, K, pair[0])  # scratch: adjA, adj, grad, J, G, grad2
    for i in range(lo, hi):
        nq = first[i + 1] - first[i]
        _atom_gradients(i, nq, species, first, jnb, rad, dag, pair, _atom_view(store, b, i), ctil, pcoef, Eat, F, V)


@njit(cache=True)
def forward_all(species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep):
    """Phase 1 of the two-phase evaluation: every atom's forward pass, kept in ``store``."""
    _forward_range(0, species.shape[0], species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep)


@njit(cache=True, parallel=True)
def forward_all_threads(nt, species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep):
    """``forward_all`` on nt threads (see ``eval_folded_threads``)."""
    bounds = _bounds(species.shape[0], nt)
    At = np.zeros((nt,) + AAsum.shape)
    Et = np.zeros((nt,) + Ep.shape)
    for t in prange(nt):
        _forward_range(bounds[t], bounds[t + 1], species, first, jnb, D, rad, dag, pair, maxblock, store, At[t], Et[t])
    for t in range(nt):
        AAsum += At[t]
        Ep += Et[t]


@njit(cache=True)
def gradients_all(species, first, jnb, rad, dag, pair, maxblock, store, ctil, pcoef, Eat, F, V):
    """Phase 2: gradients of K columns chosen after phase 1 (e.g. from the committee energies)."""
    _gradients_range(0, species.shape[0], species, first, jnb, rad, dag, pair, maxblock, store, ctil, pcoef, Eat, F, V)


@njit(cache=True, parallel=True)
def gradients_all_threads(nt, species, first, jnb, rad, dag, pair, maxblock, store, ctil, pcoef, Eat, F, V):
    """``gradients_all`` on nt threads (see ``eval_folded_threads``)."""
    bounds = _bounds(species.shape[0], nt)
    Ft = np.zeros((nt,) + F.shape)
    Vt = np.zeros((nt,) + V.shape)
    for t in prange(nt):
        _gradients_range(bounds[t], bounds[t + 1], species, first, jnb, rad, dag, pair, maxblock, store, ctil, pcoef,
                         Eat, Ft[t], Vt[t])  # fmt: skip
    for t in range(nt):
        F += Ft[t]
        V += Vt[t]


@njit(cache=True)
def function_sums(coupling, AAsum):
    """B_f = (C · Σ_i AA_i)_f: the ACE basis functions summed over atoms, from the node sums
    (coupling: the CSR arrays indptr, indices, data of C, n_functions × n_nodes)."""
    indptr, indices, data = coupling
    B = np.zeros(indptr.shape[0] - 1)
    for f in range(B.shape[0]):
        acc = 0.0
        for t in range(indptr[f], indptr[f + 1]):
            acc += data[t] * AAsum[indices[t]]
        B[f] = acc
    return B


@njit(cache=True)
def spread_direction(AAsum, Ep, coupling, mean, shift, dev, ctil, pcoef, E):
    """Between the phases of HAL's evaluation: E (K+1) the energies of the mean model (E[0]) and
    of the members (eV, E0 not included) from the basis sums B = C·Σ_i AA_i and the pair sums, and
    column 1 of ctil / pcoef set to the fold of Σ_k w_k dev_k, w_k = d_k/(Kσ), d_k = E_k − shift_k −
    E_0, σ = √(Σ d²/K): the coefficients whose gradient is ∇σ (zero when σ = 0). mean = (c̄ on the
    ACE functions (n_functions,), its pair coefficients (n_pair,)); dev = the members' deviations
    c^k − c̄: ACE part (n_functions, K), pair coefficients as energy rows (n_pair, K) and as
    gradient rows (ns·ns·npair, K). On the functions, not on the 2–3× more nodes, the deviation
    matrix read twice here is that much smaller; the fold back (Cᵀ) is a sparse scatter."""
    B = function_sums(coupling, AAsum)
    E0 = np.dot(B, mean[0]) + np.dot(Ep, mean[1])
    d = np.dot(B, dev[0]) + np.dot(Ep, dev[1])
    K = d.shape[0]
    E[0] = E0
    ss = 0.0
    for k in range(K):
        E[k + 1] = E0 + d[k]
        d[k] -= shift[k]
        ss += d[k] * d[k]
    if ss > 0.0:
        d *= 1.0 / (K * np.sqrt(ss / K))
    else:
        d[:] = 0.0
    u = np.dot(dev[0], d)
    indptr, indices, data = coupling
    ctil[:, 1] = 0.0
    for f in range(u.shape[0]):
        for t in range(indptr[f], indptr[f + 1]):
            ctil[indices[t], 1] += data[t] * u[f]
    pc = np.dot(dev[2], d)
    ns, npair = pcoef.shape[0], pcoef.shape[2]
    for a in range(ns):
        for b in range(ns):
            for n in range(npair):
                pcoef[a, b, n, 1] = pc[(a * ns + b) * npair + n]


@njit(cache=True)
def bias_all(species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep, coupling, mean, shift, dev, ctil,
             pcoef, E, Eat, F, V):  # fmt: skip
    """HAL's evaluation in one call: the stored forward pass, ``spread_direction``, then the
    gradients of the two columns c̄ and σ's direction."""
    forward_all(species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep)
    spread_direction(AAsum, Ep, coupling, mean, shift, dev, ctil, pcoef, E)
    gradients_all(species, first, jnb, rad, dag, pair, maxblock, store, ctil, pcoef, Eat, F, V)


@njit(cache=True)
def bias_all_threads(nt, species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep, coupling, mean, shift,
                     dev, ctil, pcoef, E, Eat, F, V):  # fmt: skip
    """``bias_all`` with both phases on nt threads."""
    forward_all_threads(nt, species, first, jnb, D, rad, dag, pair, maxblock, store, AAsum, Ep)
    spread_direction(AAsum, Ep, coupling, mean, shift, dev, ctil, pcoef, E)
    gradients_all_threads(nt, species, first, jnb, rad, dag, pair, maxblock, store, ctil, pcoef, Eat, F, V)


@njit(cache=True, fastmath=True)
def eval_full(species, first, jnb, D, rad, dag, pair, maxblock, amap, AAsum, dAA, vAA, Ep, dEp, Vp):
    """All monomials and pair functions with their gradients (for the design matrix).

    amap = (a_z, a_n, a_lm): species, radial and harmonic index of each A entry. Outputs
    (accumulated): AAsum (n_nodes) Σ_i AA_ik; dAA (n_nodes, N, 3) gradients dΣAA/dr_j; vAA
    (n_nodes, 6) virials; Ep, dEp (n_pcols, N, 3), Vp the same for the pair functions, whose columns
    start at pcol[s, z] (symmetric in s, z).
    """
    node_start, parent, aidx, _ = dag
    a_z, a_n, a_lm = amap
    npair, pcol = pair[0], pair[8]
    N = species.shape[0]
    buf = _buffers(_maxnb(first), rad, maxblock, 0, pair[0])
    YbT, dYbT, DT, rinv, _, Rb, dRb, A, _, AA = buf[4:14]
    dAp = np.zeros((maxblock, 3))
    P = np.zeros(max(npair, 1))
    dP = np.zeros(max(npair, 1))
    for i in range(N):
        s = species[i]
        f0 = first[i]
        nq = _features(i, species, first, jnb, D, rad, buf)
        for q in range(nq):
            j = jnb[f0 + q]
            z = species[j]
            if not _pair_terms(i, s, q, z, rad, pair, buf, P, dP):
                continue
            c0 = pcol[s, z]
            for n in range(npair):
                Ep[c0 + n] += 0.5 * P[n]
                g = 0.5 * dP[n] * rinv[q]
                _scatter(dEp, Vp, c0 + n, j, i, g * DT[0, q], g * DT[1, q], g * DT[2, q], DT, q)
        n0 = node_start[s]
        nb = node_start[s + 1] - n0
        if nb == 0:
            continue
        _monomials(n0, nb, parent, aidx, A, AA)
        for kk in range(nb):
            AAsum[n0 + kk] += AA[kk]
        # forward-mode derivative of every monomial along each neighbour vector
        for q in range(nq):
            j = jnb[f0 + q]
            z = species[j]
            d0, d1, d2 = DT[0, q], DT[1, q], DT[2, q]
            for kk in range(nb):
                k = n0 + kk
                pa = parent[k]
                a = aidx[k]
                g0 = 0.0
                g1 = 0.0
                g2 = 0.0
                if pa >= 0:
                    av = A[a]
                    g0 = dAp[pa - n0, 0] * av
                    g1 = dAp[pa - n0, 1] * av
                    g2 = dAp[pa - n0, 2] * av
                if a_z[a] == z:
                    n = a_n[a]
                    lm = a_lm[a]
                    w = 1.0 if pa < 0 else AA[pa - n0]
                    t = dRb[q, n] * YbT[lm, q] * rinv[q]
                    Rn = Rb[q, n]
                    g0 += w * (t * d0 + Rn * dYbT[0, lm, q])
                    g1 += w * (t * d1 + Rn * dYbT[1, lm, q])
                    g2 += w * (t * d2 + Rn * dYbT[2, lm, q])
                dAp[kk, 0] = g0
                dAp[kk, 1] = g1
                dAp[kk, 2] = g2
                _scatter(dAA, vAA, k, j, i, g0, g1, g2, DT, q)


_threads: int | None = None


def set_threads(n: int | None) -> int | None:
    """Set the process-wide default thread count of the evaluators (None: numba's, i.e.
    NUMBA_NUM_THREADS or every core); returns the previous setting. Walkers and pool workers use
    1: their parallelism is the pool's."""
    global _threads
    if n is not None and int(n) < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    old, _threads = _threads, None if n is None else int(n)
    return old


def get_threads() -> int | None:
    """The process-wide default thread count set by ``set_threads`` (None: numba's)."""
    return _threads


@contextlib.contextmanager
def default_threads(n: int | None) -> Iterator[None]:
    """``set_threads(n)`` for the duration of a block."""
    old = set_threads(n)
    try:
        yield
    finally:
        set_threads(old)


def threads_for(n_atoms: int, threads: int | None = None) -> int:
    """Threads for one evaluation of n_atoms: ``threads`` or the default, at most numba's pool and
    one per atom. When more than one, numba's count for this calling thread is set to it."""
    nt = threads if threads is not None else _threads
    if nt == 1:  # walkers, pool workers, benchmarks: nothing to ask numba
        return 1
    import numba

    nt = nt if nt is not None else numba.get_num_threads()
    nt = max(1, min(int(nt), numba.config.NUMBA_NUM_THREADS, n_atoms))
    if nt > 1:
        numba.set_num_threads(nt)
    return nt


_announced = False
_checked: set = set()


def compile_notice(*dispatchers) -> None:
    """Say once per process (stderr) that the kernels are being compiled when numba has no valid cache
    of one about to run: its first call then takes ≈ 20 s with nothing else to show for it."""
    global _announced
    for d in dispatchers:
        if _announced or d in _checked:
            continue
        _checked.add(d)
        try:
            cached = bool(d._cache._cache_file._load_index())  # numba's index: {} when stale or absent
        except Exception:  # noqa: BLE001 (a numba without this layout: say nothing rather than fail)
            continue
        if not cached:
            _announced = True
            print("hal: compiling the ACE kernels (once, ≈ 20 s; numba caches them for later runs)",
                  file=sys.stderr, flush=True)  # fmt: skip
