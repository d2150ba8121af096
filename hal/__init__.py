"""hal: hyperactive learning of machine-learned interatomic potentials.

Linear ACE basis (numba), Bayesian fits with posterior committees, uncertainty and the HAL-biased
calculator. Public names: ``hal.ACEBasis``, ``hal.fit``, ``hal.LinearACE``, ``hal.ACECalculator``,
``hal.CommitteeCalculator``, ``hal.HALCalculator``, ``hal.smd.run``. They are imported on first use,
so that ``import hal.cli`` (and ``hal --help``) does not load numba, scipy and the plotting stack.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
_PUBLIC = {
    "ACEBasis": "hal.ace.basis", "BasisValues": "hal.ace.basis", "FastResult": "hal.ace.basis",
    "ACECalculator": "hal.calculators", "CommitteeCalculator": "hal.calculators", "HALCalculator": "hal.calculators",
    "fit": "hal.fit", "LinearACE": "hal.model",
}  # fmt: skip
__all__ = sorted([*_PUBLIC, "__version__", "smd"])


def __getattr__(name: str):
    if name == "smd":  # public: hal.smd.run
        return importlib.import_module("hal.smd")
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
