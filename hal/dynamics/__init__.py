"""Dynamics on committees: HAL-biased Langevin runs with adaptive τ and stopping criteria."""

from hal.dynamics.hal import AdaptiveTau, HALRun, run_hal
from hal.dynamics.sampling import labelled, md_frames
from hal.dynamics.stability import StabilityResult, stability_test

__all__ = ["AdaptiveTau", "HALRun", "StabilityResult", "labelled", "md_frames", "run_hal", "stability_test"]
