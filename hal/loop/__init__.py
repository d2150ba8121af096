"""The learning loop's parts: the oracle wrapper and the provenance store (more to come)."""

from hal.loop.oracle import Oracle, OracleResult
from hal.loop.store import Store

__all__ = ["Oracle", "OracleResult", "Store"]
