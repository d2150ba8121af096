"""Steered MD, public name ``hal.smd``: ``hal.smd.run(atoms, calculator, ...)`` (see
``hal.dynamics.smd``)."""

from hal.dynamics.smd import (
    SMDResult,
    Spring,
    SteeredCalculator,
    bond_limits,
    bonds,
    broken_bond,
    prepare,
    run,
    terminal_carbons,
)

__all__ = ["SMDResult", "Spring", "SteeredCalculator", "bond_limits", "bonds", "broken_bond", "prepare", "run",
           "terminal_carbons"]  # fmt: skip
