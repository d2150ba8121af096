"""Export the main job's HAL-SMD model and a relaxed hexane for LAMMPS (``pair_style pace``).

    bash scripts/demo.sh                          # the main job writes runs/hexane_smd/models/
    .venv/bin/python examples/lammps/prepare.py   # [MODEL.npz [DIR]]: hexane.yace + hexane.data here
    cd examples/lammps && lmp -in hexane_nvt.in   # any LAMMPS built with the ML-PACE package

The data file lists the atom types in the model's element order (1 = C, 2 = H), as ``pair_coeff``
names them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ase.io import write

from hal import LinearACE
from hal.structures import linear_alkane

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "runs" / "hexane_smd" / "models" / "hal-smd-final.npz"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE
    if not path.exists():
        sys.exit(f"{path}: no model; run the main job first (bash scripts/demo.sh) or name a model file")
    model = LinearACE.load(path)
    yace = model.to_yace(out / "hexane.yace")
    atoms = linear_alkane(6)
    atoms.center(vacuum=15.0)  # LAMMPS needs a box; 'boundary f f f' in the input keeps it non-periodic
    write(out / "hexane.data", atoms, format="lammps-data", specorder=list(model.basis.elements), masses=True)
    print(f"{yace} ({yace.stat().st_size / 1e6:.2f} MB) and {out / 'hexane.data'} written; "
          f"pair_coeff * * hexane.yace {' '.join(model.basis.elements)}")  # fmt: skip


if __name__ == "__main__":
    main()
