"""Oracle: any ASE calculator, wrapped so that labelling survives failures and records its cost.

Exceptions (an SCF that does not converge raises in most ASE calculators), non-finite results and
calculations longer than ``timeout_s`` become a failed ``OracleResult`` (status "error", "non_finite" or
"timeout") instead of stopping the run. With a timeout the calculation runs in a forked child
process that is killed when the time is up. (A forked child of a process that already ran OpenMP code,
e.g. tblite, can hang until that timeout: run such oracles without one; their failures still raise.)
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

NOTES = ("electronic_temperature",)  # calculator results kept beside the labels (the store records them)
PROPERTIES = ("energy", "forces", "stress")


@dataclasses.dataclass
class OracleResult:
    """Labels of one structure, or why there are none. ``atoms`` carries info["energy"],
    arrays["forces"] and (periodic cells) info["stress"] when ``status == "ok"``."""

    atoms: Atoms
    status: str  # "ok", "error", "non_finite" or "timeout"
    wall_time: float  # s
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_one_thread: set[type] = set()


def _single_threaded(calc: Calculator) -> None:
    """In a pool worker (its evaluators set to one thread, see ``hal.loop.executors``), hold every thread pool
    loaded so far, the calculator's own included, at one thread for good: workers run side by side, and an
    OpenMP oracle spinning a second thread per worker on a 2-core machine (tblite) ran 3× slower. Once per
    calculator type and process, after the calculator is made (its libraries must be loaded to be seen)."""
    from threadpoolctl import threadpool_limits

    from hal.ace.kernels import get_threads

    if get_threads() == 1 and type(calc) not in _one_thread:
        threadpool_limits(1)  # not a context: the limit stays
        _one_thread.add(type(calc))


def _compute(factory: Callable[[], Calculator], atoms: Atoms, properties: Sequence[str]) -> dict:
    work = atoms.copy()
    work.calc = factory()
    _single_threaded(work.calc)
    out = {"energy": float(work.get_potential_energy())}
    if "forces" in properties:
        out["forces"] = np.array(work.get_forces())
    if "stress" in properties and work.pbc.all():
        out["stress"] = np.array(work.get_stress())
    for key in NOTES:  # what a calculator says about how it labelled (e.g. tblite retried hot)
        if key in work.calc.results:
            out[key] = work.calc.results[key]
    return out


def _child(conn, factory, atoms, properties) -> None:
    try:
        conn.send(("ok", _compute(factory, atoms, properties)))
    except Exception:  # noqa: BLE001 (reported to the parent, which records it)
        conn.send(("error", traceback.format_exc(limit=3)))
    finally:
        conn.close()


class Oracle:
    """Label structures with an ASE calculator made by ``factory`` (a fresh one per call).

    ``properties``: which labels to compute (stress only for fully periodic cells); ``timeout_s``:
    wall-time limit per structure (None: no limit, computed in this process).
    """

    def __init__(
        self,
        factory: Callable[[], Calculator],
        properties: Sequence[str] = PROPERTIES,
        timeout_s: float | None = None,
    ) -> None:
        self.factory = factory
        self.properties = tuple(properties)
        self.timeout_s = timeout_s

    def __call__(self, atoms: Atoms) -> OracleResult:
        t0 = time.perf_counter()
        labelled = atoms.copy()
        labelled.calc = None
        status, payload = self._run(atoms)
        wall = time.perf_counter() - t0
        if status != "ok":
            return OracleResult(labelled, status, wall, payload)
        values = [payload["energy"], *(np.ravel(v) for k, v in payload.items() if k in ("forces", "stress"))]
        if not all(np.all(np.isfinite(v)) for v in values):
            return OracleResult(labelled, "non_finite", wall, "non-finite energy, forces or stress")
        labelled.info["energy"] = payload["energy"]
        if "forces" in payload:
            labelled.arrays["forces"] = payload["forces"]
        if "stress" in payload:
            labelled.info["stress"] = payload["stress"]
        labelled.info.update({k: payload[k] for k in NOTES if k in payload})
        return OracleResult(labelled, "ok", wall)

    def _run(self, atoms: Atoms) -> tuple[str, object]:
        if self.timeout_s is None:
            try:
                return "ok", _compute(self.factory, atoms, self.properties)
            except Exception:  # noqa: BLE001 (any calculator failure is recorded, not raised)
                return "error", traceback.format_exc(limit=3)
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, self.factory, atoms, self.properties), daemon=True)
        proc.start()
        child.close()
        if parent.poll(self.timeout_s):
            try:
                status, payload = parent.recv()
            except EOFError:  # the child died without an answer (killed, out of memory, a crash)
                status, payload = "error", f"the labelling process died (exit code {proc.exitcode})"
            proc.join()
            return status, payload
        proc.kill()
        proc.join()
        return "timeout", f"no result within {self.timeout_s} s"
