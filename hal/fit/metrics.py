"""Train/test error tables: energies (meV/atom), forces (eV/Å, also per element), virials (meV/atom)
and stresses (GPa)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from ase import Atoms, units

from hal.fit.design import LabelKeys, is_isolated_atom, read_labels


def errors(
    model, configs: Sequence[Atoms], keys: LabelKeys | None = None, f_max: float | None = None
) -> dict[str, dict[str, float]]:
    """RMSE and MAE per config_type (and "all") of energies, force components, virials and stresses (and
    of the force components per element, as groups "element X"). With
    ``f_max`` (eV/Å) the table scores what the fit used: atoms whose label force exceeds it, and
    their configurations' energies and virials, are left out (see ``hal.fit.design``)."""
    keys = keys or LabelKeys()
    diffs: dict[str, dict[str, list]] = defaultdict(lambda: {"E": [], "F": [], "V": [], "S": []})
    for atoms in configs:
        if is_isolated_atom(atoms):
            continue
        lab = read_labels(atoms, keys)
        res = model.evaluate(atoms)
        n = len(atoms)
        ok = None
        if f_max is not None and lab.forces is not None:
            ok = np.linalg.norm(lab.forces, axis=1) <= f_max
            if not ok.all():
                lab.energy = lab.virial = None
        groups = ["all"] + ([str(atoms.info["config_type"])] if "config_type" in atoms.info else [])
        for group in groups:
            d = diffs[group]
            if lab.energy is not None:
                d["E"].append([(res.energies[0] - lab.energy) / n * 1000])
            if lab.forces is not None:
                d["F"].append((res.forces[0] - lab.forces)[ok if ok is not None else slice(None)].ravel())
            if lab.virial is not None and res.virial is not None:
                d["V"].append((res.virial[0] - lab.virial) / n * 1000)
                d["S"].append((res.virial[0] - lab.virial) / atoms.get_volume() / units.GPa)
        if lab.forces is not None:
            fitted = np.ones(n, dtype=bool) if ok is None else ok
            symbols = np.array(atoms.get_chemical_symbols())
            for el in np.unique(symbols):
                sel = fitted & (symbols == el)
                diffs[f"element {el}"]["F"].append((res.forces[0] - lab.forces)[sel].ravel())
    table = {}
    for group, d in diffs.items():
        row = {}
        for key, vals in d.items():
            if vals:
                v = np.concatenate([np.ravel(x) for x in vals])
                row[f"{key}_rmse"] = float(np.sqrt(np.mean(v**2)))
                row[f"{key}_mae"] = float(np.mean(np.abs(v)))
        table[group] = row
    return table


def format_table(tables: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of {set name: errors(...)}."""
    cols = [("E_rmse", "E RMSE meV/at"), ("E_mae", "E MAE meV/at"), ("F_rmse", "F RMSE eV/Å"),
            ("F_mae", "F MAE eV/Å"), ("V_rmse", "V RMSE meV/at"), ("V_mae", "V MAE meV/at"),
            ("S_rmse", "stress RMSE GPa")]  # fmt: skip
    lines = ["| set | config_type | " + " | ".join(c for _, c in cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for name, table in tables.items():
        for group in sorted(table, key=lambda g: (g != "all", g.startswith("element "), g)):
            row = table[group]
            vals = [f"{row[k]:.4f}" if k[0] in "FS" and k in row else f"{row[k]:.2f}" if k in row else "–"
                    for k, _ in cols]  # fmt: skip
            lines.append(f"| {name} | {group} | " + " | ".join(vals) + " |")
    return "\n".join(lines)
