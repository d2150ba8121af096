"""hal: hyperactive learning of machine-learned interatomic potentials.

Linear ACE basis (numba), Bayesian fits with posterior committees, uncertainty and the HAL-biased
calculator. Public names: ``hal.ACEBasis``, ``hal.fit``, ``hal.LinearACE``, ``hal.ACECalculator``,
``hal.CommitteeCalculator``, ``hal.HALCalculator``, ``hal.smd.run``.
"""

from hal import smd  # public: hal.smd.run
from hal.ace.basis import ACEBasis, BasisValues, FastResult
from hal.calculators import ACECalculator, CommitteeCalculator, HALCalculator
from hal.fit import fit
from hal.model import LinearACE

__version__ = "0.1.0"
__all__ = [
    "ACEBasis", "ACECalculator", "BasisValues", "CommitteeCalculator", "FastResult", "HALCalculator",
    "LinearACE", "__version__", "fit", "smd",
]  # fmt: skip
