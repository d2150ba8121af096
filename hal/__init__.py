"""hal: hyperactive learning of machine-learned interatomic potentials.

Linear ACE basis (numba), models and ASE calculators. Import names: ``hal.ACEBasis``,
``hal.LinearACE``, ``hal.ACECalculator``.
"""

from hal.ace.basis import ACEBasis, BasisValues, FastResult
from hal.calculators import ACECalculator
from hal.model import LinearACE

__version__ = "0.1.0"
__all__ = ["ACEBasis", "ACECalculator", "BasisValues", "FastResult", "LinearACE", "__version__"]
