"""The PACE (python-ace) reference basis used by the benchmarks: linear embedding, SBessel radials."""

from __future__ import annotations


def pace_config(elements: list[str], nradmax: list[int], lmax: list[int], rcut: float = 5.0):
    """A BBasisConfiguration with a linear embedding (FinnisSinclairShiftedScaled, [1, 1])."""
    from pyace import create_multispecies_basis_config

    cfg = {
        "deltaSplineBins": 0.001,
        "elements": elements,
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
        "bonds": {
            "ALL": {
                "radbase": "SBessel",
                "radparameters": [5.25],
                "rcut": rcut,
                "dcut": 0.01,
                "NameOfCutoffFunction": "cos",
            }
        },  # fmt: skip
        "functions": {"ALL": {"nradmax_by_orders": nradmax, "lmax_by_orders": lmax}},
    }
    return create_multispecies_basis_config(cfg, func_coefs_initializer="random")


def pace_size(bconf) -> int:
    """Number of basis functions of a BBasisConfiguration."""
    return sum(len(block.funcspecs) for block in bconf.funcspecs_blocks)
