"""The learning loop: oracle wrapper, provenance store and the resumable learner."""

from hal.loop.learner import Learner, LearnerSettings
from hal.loop.oracle import Oracle, OracleResult
from hal.loop.store import Store

__all__ = ["Learner", "LearnerSettings", "Oracle", "OracleResult", "Store"]
