"""Dimer curves: a repulsive core where the training data never reach.

Below the shortest bond in the data a linear ACE model is unconstrained down to each pair's inner cutoff
r_in, and its pair core continues below r_in with the slope it has there (``hal.ace.radial``). A fit to
molecular data alone can leave the energy falling towards r_in (an attractive hole: a PEG model's terminal
O–H collapsed to 0.2 Å in a melt). Dimers of every species pair from r_in to r0, labelled by the oracle,
pin that range down with their forces. Their forces are large (≈ 100 eV/Å at r_in), so they carry their
own ``f_max`` (none) and a small force weight, and their energies (which depend on E0, ill-determined from
molecules of one stoichiometry family) are not fitted. The same idea as ACEpotentials' repulsion restraint,
with the oracle's own dimer curve instead of an assumed one.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from hal.ace.basis import ACEBasis

DIMER_FORCE_WEIGHT = 0.1


def dimer_curves(
    basis: ACEBasis, points: int = 8, r_max: float = 1.0, force_weight: float = DIMER_FORCE_WEIGHT
) -> list[Atoms]:
    """Unlabelled dimers of every unordered species pair at ``points`` distances from r_in to
    ``r_max``·r0 (Å), each with ``config_type = "dimer"`` and its fit overrides in ``info``: forces at
    ``force_weight`` with no force cutoff, energy weight 0."""
    if points < 1:
        raise ValueError(f"points must be at least 1, got {points}")
    out = []
    zs = basis.zs
    for a in range(len(zs)):
        for b in range(a, len(zs)):
            r_in, r0 = float(basis.r_in[a, b]), float(basis.r0[a, b])
            if r_max * r0 <= r_in:
                raise ValueError(f"r_max·r0 = {r_max * r0:.3f} Å is not above r_in = {r_in:.3f} Å")
            for r in np.linspace(r_in, r_max * r0, points):
                d = Atoms(numbers=[zs[a], zs[b]], positions=[[0.0, 0.0, 0.0], [r, 0.0, 0.0]])
                d.info.update(config_type="dimer", energy_weight=0.0, force_weight=float(force_weight),
                              f_max=float("inf"))  # fmt: skip
                out.append(d)
    return out
