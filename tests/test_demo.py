"""The Quick-start demo runs end to end and its least-squares fit reproduces EMT."""

from __future__ import annotations

from hal import LinearACE
from hal.demo import main


def test_demo_quick_fits_emt(tmp_path):
    table = main(["--quick", "--out", str(tmp_path)])
    assert table["test"]["F_rmse"] < 0.05  # eV/Å; EMT forces here span ±3 eV/Å
    assert table["test"]["E_rmse"] < 10.0  # meV/atom
    assert (tmp_path / "parity_forces.png").stat().st_size > 1000
    model = LinearACE.load(tmp_path / "model.npz")
    assert set(model.e0) == {"Cu", "Al"}
