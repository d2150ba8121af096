"""Steered MD, public name ``hal.smd``: ``hal.smd.run(atoms, calculator, ...)`` (see
``hal.dynamics.smd``)."""

from hal.dynamics.smd import SMDResult, Spring, SteeredCalculator, bonds, prepare, run, terminal_carbons

__all__ = ["SMDResult", "Spring", "SteeredCalculator", "bonds", "prepare", "run", "terminal_carbons"]
