"""Dynamics on committees: HAL-biased Langevin runs with adaptive τ and stopping criteria."""

from hal.dynamics.hal import AdaptiveTau, HALRun, run_hal

__all__ = ["AdaptiveTau", "HALRun", "run_hal"]
