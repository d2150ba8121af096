"""Store: every labelled (or failed) structure in an ASE SQLite database, with its provenance.

One row per oracle call, written in its own transaction the moment the result arrives, so a killed
run loses nothing that was labelled and leaves nothing (no lock file) that blocks its resumption.
Provenance (key-value pairs): ``uid`` (unique per requested structure: resuming skips uids already
present), ``status``, ``iteration``, ``walker``, ``source``, ``tau``, ``criterion``, ``oracle_time``
(s), plus anything the caller adds, and what the structure's ``info`` holds of ``config_type`` and the
fit's per-configuration overrides (``hal.fit.design.OVERRIDES``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from hal.fit.design import OVERRIDES
from hal.loop.oracle import NOTES, OracleResult

KEPT = (*NOTES, *OVERRIDES, "config_type")  # atoms.info keys the store keeps


class Store:
    """Labelled structures with provenance in an ASE database (``.db``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # no ASE lock file: SQLite locks by itself, and a lock file left by a killed run would make the
        # resumed run wait for it forever
        self.db = connect(str(self.path), append=True, use_lock_file=False)

    def add(self, result: OracleResult, uid: str, **provenance) -> int:
        """Write one oracle result (ok or failed); returns the row id."""
        atoms = result.atoms.copy()
        if result.ok:
            atoms.calc = SinglePointCalculator(
                atoms, energy=atoms.info["energy"], forces=atoms.arrays.get("forces"),
                stress=atoms.info.get("stress"),
            )  # fmt: skip
        atoms.info.pop("energy", None)  # labels live on the calculator, not twice
        atoms.info.pop("stress", None)
        atoms.arrays.pop("forces", None)
        kv = {k: v for k, v in provenance.items() if v is not None}
        kv.update({k: atoms.info[k] for k in KEPT if k in atoms.info})
        kv.update(uid=uid, status=result.status, oracle_time=float(result.wall_time))
        data = {"error": result.error} if result.error else {}
        return self.db.write(atoms, key_value_pairs=kv, data=data)

    def has(self, uid: str) -> bool:
        return self.db.count(uid=uid) > 0

    def __len__(self) -> int:
        return self.db.count()

    def count(self, **selection) -> int:
        return self.db.count(**selection)

    def labelled(self, **selection) -> list[Atoms]:
        """Successfully labelled structures (in insertion order), labels in info/arrays, provenance
        in ``info``."""
        out = []
        for row in self.db.select(status="ok", sort="id", **selection):
            atoms = row.toatoms()
            atoms.info.update(row.key_value_pairs)
            atoms.info["energy"] = row.energy
            atoms.arrays["forces"] = row.forces
            if row.get("stress") is not None:
                atoms.info["stress"] = row.stress
            atoms.calc = None
            out.append(atoms)
        return out
