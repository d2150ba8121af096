"""The HAL learning loop: fit → HAL trajectories → label what they stop on → refit, resumable.

A run directory holds ``data.db`` (every oracle result with provenance), ``models/iter_NNN.npz``,
``trajectories/`` and ``log.jsonl`` (one JSON event per line). Iteration k fits on the data of
iterations < k, and every walker's trajectory has a seed fixed by (seed, k, walker): re-running an
interrupted iteration replays the same trajectories, and results whose uid (``itK-wW``) is already
stored are not labelled again. So a killed run resumes where it stopped, losing nothing and
labelling nothing twice, except the one oracle call that was in flight at the kill.
The loop ends when every walker runs ``n_stable`` steps without triggering, or when
``max_oracle_calls`` HAL labels have been made. Walkers and oracle calls run on any
``concurrent.futures.Executor`` (processes locally; ``dask.distributed.Client.get_executor()`` on
a cluster); without one, in this process.

A protocol may run several stages (e.g. solid, then liquid) one after the other in the same run
directory: each is a ``Learner`` with its own ``LearnerSettings.stage``; iteration numbers run on
across stages, and a stage whose ``end`` event is in the log is not run again on resume.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from concurrent.futures import Executor, as_completed
from pathlib import Path

import numpy as np
from ase import Atoms
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from hal.ace.basis import ACEBasis
from hal.ace.kernels import default_threads
from hal.dynamics.hal import HALRun, run_hal
from hal.fit import fit
from hal.fit.design import read_labels
from hal.loop.oracle import Oracle, OracleResult
from hal.loop.store import Store


def read_events(run_dir: str | Path) -> list[dict]:
    """The events of a run directory's ``log.jsonl``; a line cut short by a kill is skipped."""
    path = Path(run_dir) / "log.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _walk(job) -> HALRun:
    """One walker's HAL trajectory (module level: executors pickle it). BLAS and the ACE kernels run
    single-threaded: walkers run side by side, and the trajectory then does not depend on where it runs."""
    start, model, steps, seed, trajectory, hal_kwargs = job
    with threadpool_limits(1), default_threads(1):
        return run_hal(start, model, steps=steps, seed=seed, trajectory=trajectory, **hal_kwargs)


@dataclasses.dataclass
class LearnerSettings:
    """Loop settings; ``hal`` and ``fit`` are passed on to ``run_hal`` and ``hal.fit``."""

    n_stable: int = 1000
    max_oracle_calls: int = 100
    seed: int = 0
    stage: str = "hal"
    stage_index: int = 0
    progress: bool = False
    hal: dict = dataclasses.field(default_factory=dict)
    fit: dict = dataclasses.field(default_factory=dict)


def _as_labelled(atoms: Atoms) -> Atoms:
    """A copy with its labels in info/arrays (from there or from an attached calculator, as read from
    an extxyz file); ValueError without an energy label."""
    lab = read_labels(atoms)
    if lab.energy is None:
        raise ValueError("no energy label")
    results = getattr(atoms.calc, "results", {}) or {}
    out = atoms.copy()
    out.calc = None
    out.info["energy"] = lab.energy
    if lab.forces is not None:
        out.arrays["forces"] = lab.forces
    stress = atoms.info.get("stress", results.get("stress"))
    if stress is not None and atoms.pbc.any():
        out.info["stress"] = np.asarray(stress, dtype=float)
    return out


class Learner:
    """Hyperactive learning from initial data and walker start structures (see module docstring)."""

    def __init__(
        self,
        run_dir: str | Path,
        basis: ACEBasis,
        oracle: Oracle,
        starts: Sequence[Atoms],
        initial: Sequence[Atoms],
        settings: LearnerSettings | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.dir = Path(run_dir)
        (self.dir / "models").mkdir(parents=True, exist_ok=True)
        (self.dir / "trajectories").mkdir(exist_ok=True)
        self.basis, self.oracle = basis, oracle
        self.starts, self.initial = list(starts), list(initial)
        self.settings = settings or LearnerSettings()
        self.executor = executor
        self.store = Store(self.dir / "data.db")

    def log(self, event: str, **fields) -> None:
        with open(self.dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"time": time.time(), "event": event, **fields}) + "\n")

    def _label_initial(self) -> None:
        todo = [(k, atoms) for k, atoms in enumerate(self.initial) if not self.store.has(f"init-{k}")]
        bar = tqdm(todo, desc="initial data", unit="cfg", disable=not self.settings.progress or not todo, leave=False)
        for k, atoms in bar:
            uid = f"init-{k}"
            try:
                result = OracleResult(_as_labelled(atoms), "ok", 0.0)
            except ValueError:  # unlabelled (or forces without an energy): ask the oracle
                result = self.oracle(atoms)
            self.store.add(result, uid, iteration=-1, source="initial")

    def events(self, event: str | None = None) -> list[dict]:
        """The log's events (of one kind)."""
        return [e for e in read_events(self.dir) if event is None or e.get("event") == event]

    def _first_iteration(self) -> int:
        """Resume this stage at its last fitted or labelled iteration; a new stage starts after every
        earlier stage's iterations, those without labels (the stable one) included: two stages never
        share an iteration number, a model file or a trajectory name."""
        stage = self.settings.stage
        fits = self.events("fit")
        own = [r.iteration for r in self.store.db.select(source="hal", stage=stage)]
        own += [e["iteration"] for e in fits if e.get("stage") == stage]
        if own:
            return max(own)
        seen = [r.iteration for r in self.store.db.select(source="hal")] + [e["iteration"] for e in fits]
        return max(seen) + 1 if seen else 0

    def run(self) -> dict:
        """Run (or resume) the loop; returns a summary."""
        s = self.settings
        done = [e for e in self.events("end") if e.get("stage") == s.stage]
        if done:
            return {k: v for k, v in done[-1].items() if k not in ("time", "event")}
        self._label_initial()
        k = self._first_iteration()
        self.log("start", stage=s.stage, iteration=k, stored=len(self.store))
        bar = tqdm(total=s.max_oracle_calls, initial=self._calls(), desc=f"{s.stage}: oracle calls", unit="call",
                   disable=not s.progress)  # fmt: skip
        try:
            return self._loop(k, bar)
        finally:
            bar.close()

    def _calls(self) -> int:
        return self.store.count(source="hal", stage=self.settings.stage)

    def _loop(self, k: int, bar: tqdm) -> dict:
        s = self.settings
        while True:
            # sorted by uid: the fit must not depend on the order in which parallel labels arrived
            data = sorted((a for a in self.store.labelled() if a.info["iteration"] < k), key=lambda a: a.info["uid"])
            model = fit(data, self.basis, seed=s.seed + k, progress=False, **s.fit)
            model.save(self.dir / "models" / f"iter_{k:03d}.npz")
            self.log("fit", stage=s.stage, iteration=k, n_data=len(data))
            if self._calls() >= s.max_oracle_calls:  # the budget is spent: the last model has every label
                return self._finish("budget", k)
            traj = self.dir / "trajectories"
            hal_kwargs = {"progress": s.progress and self.executor is None, **s.hal}
            name = f"{s.stage}-it{k:03d}-w{{:02d}}"
            seeds = [(s.seed, s.stage_index, k, w) for w in range(len(self.starts))]
            jobs = [(start, model, s.n_stable, seeds[w], traj / f"{name.format(w)}.xyz", hal_kwargs)
                    for w, start in enumerate(self.starts)]  # fmt: skip
            runs = self._map(_walk, jobs)
            stable = True
            todo = []
            for w, run in enumerate(runs):
                uid = f"it{k:03d}-w{w:02d}"
                np.savez(traj / f"{name.format(w)}.npz", **run.trace)
                self.log("walker", stage=s.stage, iteration=k, walker=w, reason=run.reason, steps=run.steps)
                if run.reason == "max_steps":
                    continue
                stable = False
                if not self.store.has(uid) and self._calls() + len(todo) < s.max_oracle_calls:
                    todo.append((uid, w, run))
            # label in parallel; every result is stored the moment it arrives
            for (uid, w, run), result in self._map_unordered(self.oracle, [r.atoms for _, _, r in todo], todo):
                self.store.add(result, uid, iteration=k, walker=w, source="hal", stage=s.stage, reason=run.reason,
                               tau=float(run.trace["tau"][-1]), sigma=float(run.trace["sigma"][-1]),
                               criterion=float(run.trace["criterion"][-1]), steps=int(run.steps))  # fmt: skip
                self.log("label", stage=s.stage, uid=uid, status=result.status, oracle_time=result.wall_time)
                bar.update(1)
            if stable:
                return self._finish("stable", k)
            k += 1

    def _map(self, fn, items: list) -> list:
        """fn over items, in order: on the executor when there is one."""
        if self.executor is None:
            return [fn(x) for x in items]
        return [f.result() for f in [self.executor.submit(fn, x) for x in items]]

    def _map_unordered(self, fn, items: list, tags: list):
        """(tag, fn(item)) pairs as they complete (in order without an executor)."""
        if self.executor is None:
            for tag, x in zip(tags, items):
                yield tag, fn(x)
            return
        futures = {self.executor.submit(fn, x): tag for tag, x in zip(tags, items)}
        for f in as_completed(futures):
            yield futures[f], f.result()

    def _finish(self, reason: str, k: int) -> dict:
        stage = self.settings.stage
        labels = self._calls()
        summary = {"stage": stage, "reason": reason, "iterations": k, "labels": labels,
                   "failures": labels - self.store.count(source="hal", stage=stage, status="ok")}  # fmt: skip
        self.log("end", **summary)
        return summary
