"""The hexane bond-breaking study (Jung et al., Digital Discovery 2024) with GFN2-xTB (tblite) as oracle.

Strategies, each scored after every refit by paired pulls on the reference seeds (``hexane_eval``):
* ``baseline-md`` / ``baseline-smd``: the paper's Fig. 2 models, fitted to ``initial.n_md`` frames of
  500 K MD, or to the whole reference pull of the first seed.
* ``jung``: the paper's loop on any backend: an ensemble (``members``, 80/20 splits, ``random`` or
  ``inherited``), a pull with the best member, the μ + 3σ threshold over its first 1000 steps,
  similarity screening, 2 augmented copies per accepted configuration, ``labels_per_iteration`` new
  labels per iteration, from the 500 K MD data.
* ``hal``: HAL-SMD, new: the pull on a committee with the bias −τσ (adaptive τ) stops when max f_i >
  ``f_tol`` or when σ > ``sigma_tol`` (eV), σ being the committee spread of the energy relative to
  the pull's start state (the uncertainty of the work curve itself, hence of E_a); that configuration
  is labelled, the model refitted, and the pull goes on from there with the new model. After the bond
  has broken a pull labels at most ``post_break`` configurations (E_a is decided before the break).
  The committee is the linear-ACE posterior (refit: rows added to the normal equations, ≈1 s) or an
  NN ensemble (refit: every member retrained from its current weights for
  ``refit_epochs`` on its own split). Starts from ``n_initial`` MD frames; ends after ``n_stable``
  consecutive pulls without a trigger on every chain or at ``max_oracle_calls``. With ``chains``
  (e.g. [2, 4, 6]) one learner pulls each chain in turn, seed after seed, with one model: the start
  states of other chains are the oracle's, as for the study's chain, and their pulls are scaled to
  the chain's length (``stretch_for``). With ``velocities`` (Å/ps) each chain is pulled at each loading rate
  in turn.
Everything lands in the run directory: ``data.db`` (labels with provenance), ``models/``,
``log.jsonl`` (a ``score`` event per refit: the learning curve), ``reference/`` and the report.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from hal.ace.basis import ACEBasis
from hal.backends.ace import ACEBackend
from hal.backends.base import Backend, MemberCalculator
from hal.calculators import HALCalculator
from hal.config import ConfigError, Field, at_least, between, non_negative, positive
from hal.dynamics import smd
from hal.dynamics.hal import AdaptiveTau
from hal.fit import assemble, fit, fit_normal_equations
from hal.fit.design import Weights, config_rows, reference_energies
from hal.fit_config import check_basis
from hal.loop.executors import make_executor
from hal.loop.learner import read_events
from hal.loop.oracle import Oracle
from hal.loop.select import Splits, augment, screen, uq_threshold
from hal.loop.store import Store
from hal.model import LinearACE
from hal.protocols.hexane_eval import Score, score
from hal.protocols.hexane_reference import (
    PullSettings,
    md_dataset,
    oracle_calculator,
    reference_frames,
    reference_pulls,
    start_state,
)
from hal.protocols.hexane_report import transfer_cases, write_report

STRATEGY = {
    "name": Field(str, required=True),
    "kind": Field(str, required=True, choices=("baseline-md", "baseline-smd", "jung", "hal")),
    "backend": Field(str, "ace", choices=("ace", "torchani", "schnet")),
    "epochs": Field(int, 300, check=at_least(1)),
    "refit_epochs": Field(int, 20, check=at_least(1)),
    # NN: a fit (first or refit) stops after this many epochs without a better validation loss (a plateau)
    "patience": Field(int, 50, check=at_least(1)),
    "dtype": Field(str, "float32", choices=("float32", "float64")),  # NN weights (SPEC: float32 allowed)
    "members": Field(int, 3, check=at_least(1)),
    "split": Field(str, "inherited", choices=("inherited", "random")),
    "iterations": Field(int, 10, check=non_negative),  # jung: 0 scores the fit to the initial frames alone
    "labels_per_iteration": Field(int, 150, check=at_least(1)),
    "uq_first_steps": Field(int, 1000, check=at_least(1)),
    "n_initial": Field(int, 40, check=at_least(1)),
    "max_oracle_calls": Field(int, 400, check=non_negative),
    "n_stable": Field(int, 2, check=at_least(1)),
    # HAL-SMD: the chains (numbers of carbons) pulled in turn by one learner; empty: the study's chain
    "chains": Field(list, [], item=int, check=at_least(2)),
    # HAL-SMD: loading rates (Å/ps) each chain is pulled at in turn; empty: the study's
    "velocities": Field(list, [], item=float, check=positive),
    # HAL-SMD: at most this many labels per pull, then the next case (spreads the budget); 0: no cap
    "max_labels_per_pull": Field(int, 0, check=non_negative),
    "f_tol": Field(float, 0.0, check=non_negative),  # max f_i trigger; 0: off
    # ε of f_i (eV/Å); ≫ |F| makes the trigger one on absolute force uncertainty
    "eps": Field(float, 0.2, check=positive),
    # eV, trigger on σ of E − E(start) (the work curve's uncertainty); 0: off
    "sigma_tol": Field(float, 0.005, check=non_negative),
    "post_break": Field(int, 0, check=non_negative),  # labels per pull after the bond has broken, at most
    "tau_rel": Field(float, 0.1, check=non_negative),
    "n_hist": Field(int, 100, check=at_least(1)),
    "check_every": Field(int, 5, check=at_least(1)),
    "committee_size": Field(int, 32, check=at_least(2)),
    "score_every": Field(int, 25, check=at_least(1)),
    # another draw of the same setting (initial frames, committee samples, fits, pull noise); 0: the study's
    "seed": Field(int, 0, check=non_negative),
}

SCHEMA = {
    "protocol": Field(str, "hexane_smd", choices=("hexane_smd",)),
    "run_dir": Field(str, "runs/hexane_smd"),
    "seed": Field(int, 0),
    "workers": Field(int, 2, check=at_least(1)),
    "scheduler": Field(str),
    "seeds": Field(list, [0, 1, 2], item=int, check=non_negative),
    "n_carbon": Field(int, 6, check=at_least(2)),
    "pull": {
        "k": Field(float, 10.0, check=positive),
        "velocity": Field(float, 1.0, check=positive),
        "stretch": Field(float, 3.5, check=positive),
        "timestep_fs": Field(float, 0.5, check=positive),
        "temperature_K": Field(float, 10.0, check=positive),
        "prepare_steps": Field(int, 2000, check=non_negative),
        "frame_every": Field(int, 10, check=at_least(1)),
    },
    "initial": {
        "n_md": Field(int, 2000, check=at_least(1)),
        "temperature_K": Field(float, 500.0, check=positive),
        "every": Field(int, 10, check=at_least(1)),
    },
    "basis": {
        "order": Field(int, 4, check=between(1, 4)),
        "max_degree": Field(list, [15, 11, 9, 6], item=int, check=at_least(1)),
        "r_cut": Field(float, 5.0, check=positive),
    },
    # every linear-ACE fit of the study; E_a is an energy difference, so energies weigh more than the
    # general default (30): with 30 the work curve of a HAL-SMD model drifts by ~0.06 eV, with 1000 by ~0.01
    "fit": {"energy_weight": Field(float, 1000.0, check=non_negative)},
    "oracle": {"timeout_s": Field(float, check=positive)},  # none: tblite (OpenMP) can hang in a forked child
    # the quasi-static pull of a score is ~185 minimisations: tens of minutes for an NN model on a CPU
    "quasi_static_backends": Field(list, ["ace", "torchani", "schnet"], item=str),
    # ... and for every strategy's final model whatever its backend (its work curve and peak force)
    "quasi_static_final": Field(bool, True),
    "strategies": [STRATEGY],
    "transfer": {
        "models": Field(list, ["hal-smd"], item=str),  # strategies whose final models pull every case
        "chains": Field(list, [], item=int, check=at_least(2)),
        "velocities": Field(list, [], item=float, check=positive),
        # HAL-SMD: at most this many labels per pull, then the next case (spreads the budget); 0: no cap
        "max_labels_per_pull": Field(int, 0, check=non_negative),
        "seeds": Field(list, [0], item=int),
    },
}


def check(config: dict) -> None:
    """Checks beyond the schema: names unique, at least one seed, sensible budgets."""
    names = [s["name"] for s in config["strategies"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"strategies: names must be unique, got {names}")
    if not config["seeds"]:
        raise ConfigError("seeds: at least one reference seed is needed")
    for k, s in enumerate(config["strategies"]):
        if (s["kind"] == "jung" or s["backend"] != "ace") and s["members"] < 2:
            raise ConfigError(f"strategies[{k}].members: an ensemble needs at least 2 members")
    check_basis(config["basis"])


class Study:
    """One run directory of the study: reference data, the store, the log, scoring."""

    def __init__(self, config: dict, run_dir: Path, executor=None, progress: bool = True) -> None:
        self.config, self.dir, self.executor, self.progress = config, Path(run_dir), executor, progress
        (self.dir / "models").mkdir(parents=True, exist_ok=True)
        self.settings = PullSettings(**config["pull"])
        self.n = config["n_carbon"]
        self.seeds = list(config["seeds"])
        self.store = Store(self.dir / "data.db")
        self.oracle = Oracle(oracle_calculator, timeout_s=config["oracle"].get("timeout_s"))
        b = config["basis"]
        self.basis = ACEBasis(["C", "H"], order=b["order"], max_degree=b["max_degree"], r_cut=b["r_cut"])
        self.references = reference_pulls(self.dir, self.n, self.seeds, self.settings, executor)
        self.test = [
            f for s in self.seeds[1:] or self.seeds for f in reference_frames(self.dir, self.n, s, self.settings)[::5]
        ]
        i = self.config["initial"]
        self.md = md_dataset(self.dir, i["n_md"], self.n, i["temperature_K"], i["every"])
        self.e0 = reference_energies(self.md, self.basis.elements)
        self.weights = Weights(energy=config["fit"]["energy_weight"])

    def log(self, event: str, **fields) -> None:
        with open(self.dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"time": time.time(), "event": event, **fields}, default=float) + "\n")

    def events(self, event: str, strategy: str | None = None) -> list[dict]:
        return [e for e in read_events(self.dir) if e["event"] == event and strategy in (None, e.get("strategy"))]

    def quasi_static(self, strategy: dict, final: bool) -> bool:
        """Whether a score of this strategy's model (its ``final`` one or not) runs the quasi-static pull."""
        every = strategy["backend"] in self.config["quasi_static_backends"]
        return every or (final and self.config["quasi_static_final"])

    def score(self, make_calculator, strategy: dict, iteration: int, oracle_calls: int, t0: float,
              final: bool = False, **extra: float) -> Score:  # fmt: skip
        """Score a strategy's model and log it (the learning curve's point) with ``extra`` fields (e.g.
        ``fit_s``); the quasi-static pull as ``quasi_static`` says."""
        name = strategy["name"]
        sc = score(make_calculator, self.dir, self.seeds, self.settings, self.n, self.test,
                   quasi_static=self.quasi_static(strategy, final), executor=self.executor)  # fmt: skip
        (self.dir / "scores").mkdir(exist_ok=True)
        np.savez(self.dir / "scores" / f"{name}-{oracle_calls:05d}.npz", seeds=self.seeds,
                 curves=np.array(sc.curves), snapshots=sc.snapshots)  # fmt: skip
        self.log("score", strategy=name, iteration=iteration, oracle_calls=oracle_calls,
                 wall_s=time.perf_counter() - t0, **sc.row(), **extra)  # fmt: skip
        return sc

    def label(self, configs: Sequence[Atoms], strategy: str, iteration: int, source: str) -> list[Atoms]:
        """Label with the oracle (in parallel), store with provenance; returns the labelled ones."""
        uids = [f"{strategy}-it{iteration:03d}-{k:03d}" for k in range(len(configs))]
        todo = [(u, a) for u, a in zip(uids, configs) if not self.store.has(u)]
        if self.executor is None:
            results = [self.oracle(a) for _, a in todo]
        else:
            results = list(self.executor.map(self.oracle, [a for _, a in todo]))
        for (uid, _), result in zip(todo, results):
            self.store.add(result, uid, iteration=iteration, source=source, strategy=strategy)
        return self.store.labelled(strategy=strategy, iteration=iteration)


# ---------------------------------------------------------------------------------------- strategies
def run_baseline(study: Study, strategy: dict) -> list[dict]:
    """Fig. 2 of the paper: one model on 500 K MD frames, or on the first seed's reference pull."""
    name = strategy["name"]
    if study.events("score", name):
        return study.events("score", name)
    t0 = time.perf_counter()
    if strategy["kind"] == "baseline-md":
        data = study.md
    else:
        data = reference_frames(study.dir, study.n, study.seeds[0], study.settings)
    model = fit(data, study.basis, weights=study.weights, e0=study.e0, committee_size=0, progress=False)
    model.save(study.dir / "models" / f"{name}.npz")
    study.score(model.calculator, strategy, 0, len(data), t0)
    return study.events("score", name)


def make_backend(study: Study, strategy: dict) -> Backend:
    """The strategy's backend; NN ones train on CPU unless CUDA is there, checkpointing in the run dir."""
    if strategy["backend"] == "ace":
        return ACEBackend(study.basis, e0=study.e0, weights=study.weights)
    import torch

    if strategy["backend"] == "torchani":
        from hal.backends.torchani import TorchANIBackend as NNBackend
    else:
        from hal.backends.schnet import SchNetBackend as NNBackend
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # training threads: the oracle's workers idle while a model trains
    return NNBackend(("C", "H"), epochs=strategy["epochs"], patience=strategy["patience"], device=device,
                     progress=study.progress, dtype=getattr(torch, strategy["dtype"]), threads=study.config["workers"],
                     checkpoint_dir=study.dir / "checkpoints" / strategy["name"])  # fmt: skip


def strategy_seed(study: Study, strategy: dict) -> int:
    """The seed of a strategy's random draws: the study's, offset by the strategy's own ``seed``."""
    return study.config["seed"] + 100_000 * strategy["seed"]


def run_jung(study: Study, strategy: dict) -> list[dict]:
    """The AL loop of Jung et al. on any backend (see the module docstring)."""
    name, sel = strategy["name"], strategy
    backend = make_backend(study, strategy)
    seed = strategy_seed(study, strategy)
    splits = Splits(sel["members"], 0.2, seed=seed)
    t0 = time.perf_counter()
    best = None
    for it in range(sel["iterations"] + 1):
        data = list(study.md) + study.store.labelled(strategy=name)
        if sel["split"] == "inherited":
            splits.inherit(len(data), it, best)
        else:
            splits.random(len(data), it)
        path = study.dir / "models" / f"{name}-iter_{it:03d}.{_suffix(sel)}"
        t_fit = time.perf_counter()
        if path.exists():  # fitted before a restart
            ensemble, t_fit = backend.load(path), np.nan
        else:
            with threadpool_limits(2):
                ensemble = backend.fit(data, splits.train, seed=seed + it)
            t_fit = time.perf_counter() - t_fit
            ensemble.save(path)
        best = ensemble.best
        if it not in {e["iteration"] for e in study.events("score", name)}:
            study.score(partial(MemberCalculator, ensemble, best), sel, it, len(data), t0,
                        final=it == sel["iterations"], fit_s=t_fit)  # fmt: skip
        if it == sel["iterations"]:
            break
        if study.store.count(strategy=name, iteration=it):
            continue  # labelled before a restart
        res = _sampling_pull(study, MemberCalculator(ensemble, best), study.seeds[it % len(study.seeds)])
        threshold = uq_threshold(res.sigma, sel["uq_first_steps"])
        rng = np.random.default_rng([seed, it])
        picked = select_configurations(res, threshold, sel["labels_per_iteration"], rng)
        study.label(picked, name, it, source="jung")
        study.log("iteration", strategy=name, iteration=it, threshold=threshold, labelled=len(picked))
    return study.events("score", name)


def _sampling_pull(study: Study, calculator, seed: int) -> smd.SMDResult:
    start = start_state(study.dir, study.n, seed, study.settings)
    with threadpool_limits(1):
        return smd.run(start, calculator, seed=seed, record_positions=True, on_error="stop",
                       **study.settings.kwargs(start))  # fmt: skip


def select_configurations(res: smd.SMDResult, threshold: float, n_labels: int, rng: np.random.Generator,
                          copies: int = 2) -> list[Atoms]:  # fmt: skip
    """The paper's selection on one pull: σ above ``threshold``, screening, at most
    n_labels/(1 + copies) picks (evenly spread over the accepted ones), each with ``copies``
    augmented copies."""
    accepted = screen(res.sigma, res.distance, res.energy, threshold, res.break_step)
    n_pick = n_labels // (1 + copies)
    if len(accepted) > n_pick:
        accepted = accepted[np.round(np.linspace(0, len(accepted) - 1, n_pick)).astype(int)]
    out = []
    for i in accepted:
        atoms = Atoms(res.atoms.numbers, positions=res.positions[i])
        out += [atoms, *augment(atoms, copies, 0.05, rng)]
    return out


def _suffix(strategy: dict) -> str:
    return "npz" if strategy["backend"] == "ace" else "pt"


HAL_VALIDATION = 0.2  # the fraction of an NN member's HAL-SMD frames it validates on


class HALModel:
    """HAL-SMD's committee and its refit after each label: rows added to the normal equations of the
    linear-ACE posterior, or a warm-started retraining of every NN member on its own split grown by
    the new label (one label: always in the training part)."""

    def __init__(self, study: Study, strategy: dict, data: list[Atoms]) -> None:
        self.study, self.strategy, self.data = study, strategy, list(data)
        self.seed = strategy_seed(study, strategy)
        if strategy["backend"] == "ace":
            self.ne = assemble(study.basis, self.data, study.e0, study.weights, n_workers=1, progress=False)
        else:
            self.backend = make_backend(study, strategy)
            self.splits = Splits(strategy["members"], HAL_VALIDATION, seed=self.seed)
        self.committee, self.fit_s = None, []
        self._fit()

    def _fit(self) -> None:
        t0, n, sel = time.perf_counter(), len(self.data), self.strategy
        if sel["backend"] == "ace":
            self.committee = fit_normal_equations(self.ne, self.study.basis, self.study.e0,
                                                  committee_size=sel["committee_size"], seed=self.seed + n)  # fmt: skip
        else:
            self.splits.inherit(n, n)  # each member keeps its own split (diversity, hence σ); labels train
            self.backend.epochs = sel["epochs"] if self.committee is None else sel["refit_epochs"]
            with threadpool_limits(2):
                self.committee = self.backend.fit(self.data, self.splits.train, seed=self.seed + n,
                                                  init=self.committee)  # fmt: skip
        self.fit_s.append(time.perf_counter() - t0)

    def add(self, atoms: Atoms) -> None:
        """A new label: refit."""
        self.data.append(atoms)
        if self.strategy["backend"] == "ace":
            self.ne.add_rows(*config_rows(self.study.basis, atoms, self.study.e0, self.study.weights))
        self._fit()

    def predictor(self):
        """The model that is scored: the posterior mean (ACE) or the best member (NN, as Jung et al.)."""
        if self.strategy["backend"] == "ace":
            return self.committee.calculator
        return partial(MemberCalculator, self.committee, self.committee.best)

    def save(self, tag: str) -> Path:
        return self.committee.save(
            self.study.dir / "models" / f"{self.strategy['name']}-{tag}.{_suffix(self.strategy)}"
        )


def hal_initial_frames(study: Study, strategy: dict) -> list[Atoms]:
    """HAL-SMD's starting set: ``n_initial`` of the study's MD frames, drawn with the strategy's seed."""
    rng = np.random.default_rng(strategy_seed(study, strategy))
    pick = np.sort(rng.choice(len(study.md), size=min(strategy["n_initial"], len(study.md)), replace=False))
    return [study.md[i] for i in pick]


def run_hal_smd(study: Study, strategy: dict) -> list[dict]:
    """HAL-SMD (see the module docstring); resumes from the store after a kill."""
    name, sel = strategy["name"], strategy
    initial = hal_initial_frames(study, sel)
    labels = study.store.labelled(strategy=name)
    calls = len(initial) + study.store.count(strategy=name)  # failed oracle calls count too
    pulls = study.events("pull", name)
    stable = pulls[-1]["stable"] if pulls else 0
    cases = [(n, v) for n in sel["chains"] or [study.n] for v in sel["velocities"] or [None]]
    finished = stable >= sel["n_stable"] * len(cases) or calls >= sel["max_oracle_calls"]
    final = study.dir / "models" / f"{name}-final.{_suffix(sel)}"
    if finished and final.exists() and _scored_final(study, sel, calls):
        return study.events("score", name)  # a rerun: an NN refit from scratch would replace the scored model
    t0 = time.perf_counter()
    model = HALModel(study, sel, initial + labels)

    def record(final: bool = False) -> None:  # a learning-curve point; fit_s: mean time of the refits since the last
        study.score(model.predictor(), sel, len(labels), calls, t0, final=final,
                    fit_s=float(np.mean(model.fit_s[-sel["score_every"] :])))  # fmt: skip

    scored = {e["oracle_calls"] for e in study.events("score", name)}
    if calls not in scored:
        record()
    pull_no = pulls[-1]["pull"] + 1 if pulls else 0
    bar = tqdm(total=sel["max_oracle_calls"], initial=calls, desc=f"{name}: oracle calls", disable=not study.progress)
    while stable < sel["n_stable"] * len(cases) and calls < sel["max_oracle_calls"]:
        (n, v), seed_k = pull_plan(pull_no, cases, study.seeds)
        settings = chain_settings(study, n, v)
        start = state = start_state(study.dir, n, seed_k, settings)
        kwargs = settings.kwargs(state)
        triggers = 0
        trigger = Trigger(sel, start)
        while calls < sel["max_oracle_calls"]:
            calc = HALCalculator(model.committee, tau=0.0, eps=sel["eps"], force_uncertainty=False,
                                 reference=start if sel["sigma_tol"] > 0 else None)  # fmt: skip
            noise = seed_k + 1000 * pull_no + 10**7 * sel["seed"]
            with threadpool_limits(1):
                res = smd.run(state, calc, seed=noise, stop=trigger.new_segment(), on_error="stop", **kwargs)
            blown = res.error is not None or trigger.blown
            if res.stopped_at is None and not blown:
                break
            triggers += 1
            # the model blew the chain apart (non-finite or failing): label the last sane step instead
            picked = Atoms(start.numbers, positions=trigger.last_sane if trigger.last_sane is not None
                           else start.positions) if blown else res.atoms  # fmt: skip
            uid = f"{name}-{calls:04d}"
            result = study.oracle(picked)
            sigma = res.sigma[-1] if res.sigma is not None and np.isfinite(res.sigma[-1]) else -1.0
            study.store.add(result, uid, iteration=len(labels), source="hal-smd", strategy=name, pull=pull_no,
                            chain=n, velocity=settings.velocity, d0=float(res.d0[-1]), sigma=float(sigma),
                            blown=blown)  # fmt: skip
            calls += 1
            bar.update(1)
            if result.ok:
                labels.append(result.atoms)
                model.add(result.atoms)
                if len(labels) % sel["score_every"] == 0:
                    model.save(f"{len(labels):04d}")
                    record()
            if blown or not result.ok:
                break  # nothing sane to go on from: the next pull starts afresh
            if triggers == sel["max_labels_per_pull"]:
                break  # this case has had its share: the next one
            state = res.atoms  # go on from the trigger (momenta kept) with the refitted model
            kwargs = {**kwargs, "d0_start": float(res.d0[-1])}
        stable = stable + 1 if triggers == 0 else 0
        study.log("pull", strategy=name, pull=pull_no, chain=n, velocity=settings.velocity, seed=seed_k,
                  triggers=triggers, stable=stable, calls=calls)  # fmt: skip
        pull_no += 1
    bar.close()
    model.save("final")
    if not _scored_final(study, sel, calls):
        record(final=True)
    return study.events("score", name)


def _scored_final(study: Study, strategy: dict, calls: int) -> bool:
    """Whether a HAL-SMD strategy's last score is of its model after ``calls`` oracle calls, with the quasi-static
    pull when its final score needs one."""
    scores = study.events("score", strategy["name"])
    if not scores or scores[-1]["oracle_calls"] != calls:
        return False
    return not (np.isnan(scores[-1]["delta_ea_quasi_static"]) and study.quasi_static(strategy, True))


def pull_plan(pull_no: int, cases: Sequence, seeds: Sequence[int]) -> tuple:
    """(case, seed) of HAL-SMD's pull number ``pull_no``: every case (a chain, or a chain and a loading rate) in
    turn on a seed, then the next seed."""
    return cases[pull_no % len(cases)], seeds[(pull_no // len(cases)) % len(seeds)]


def chain_settings(study: Study, n_carbon: int, velocity: float | None = None) -> PullSettings:
    """The study's pull settings for a chain of ``n_carbon`` carbons (at ``velocity``, Å/ps, if given)."""
    return case_settings(study.settings, study.n, n_carbon, velocity)


def case_settings(settings: PullSettings, study_n: int, n_carbon: int, velocity: float | None = None) -> PullSettings:
    """Pull settings of a study's chain (``study_n`` carbons) adapted to a chain of ``n_carbon`` (stretch scaled)
    at ``velocity`` (Å/ps, if given)."""
    settings = settings if velocity is None else dataclasses.replace(settings, velocity=velocity)
    return settings if n_carbon == study_n else dataclasses.replace(settings, stretch=stretch_for(n_carbon, settings))


class Trigger:
    """HAL-SMD's stop callbacks for one pull: adaptive τ every step (burn-in of ``n_hist`` steps after
    each restart); stop when σ > ``sigma_tol`` or, every ``check_every`` steps, max f_i > ``f_tol``;
    after the first broken bond (``smd.broken_bond``) at most ``post_break`` stops in the pull. A step
    with non-finite positions, energy or forces stops it as ``blown``; ``last_sane`` keeps the
    positions of the step before (Å)."""

    def __init__(self, sel: dict, start: Atoms) -> None:
        self.sel = sel
        self.bonds = smd.bond_limits(start)
        self.broken = self.blown = False
        self.post_break = 0
        self.last_sane: np.ndarray | None = None

    def new_segment(self):
        """The callback for one ``smd.run`` segment (until a stop or the end of the pull)."""
        sel = self.sel
        tau = AdaptiveTau(sel["tau_rel"], sel["n_hist"])
        every = sel["check_every"] if sel["f_tol"] > 0 else 0

        def stop(step: int, atoms: Atoms, calc: smd.SteeredCalculator) -> bool:
            hal = calc.base
            r = hal.results
            if not (np.isfinite(r["energy"]) and np.isfinite(atoms.positions).all() and np.isfinite(r["forces"]).all()):
                self.blown = True
                return True
            self.last_sane = atoms.positions.copy()
            hal.tau = tau.update(step, r["mean_forces"], r["bias_forces"])
            hal.force_uncertainty = every > 0 and (step + 1) % every == 0  # f_i (all member forces) next step
            if step < sel["n_hist"]:
                return False
            fire = 0 < sel["sigma_tol"] < r["sigma"]
            fire |= "force_uncertainty" in r and np.max(r["force_uncertainty"]) > sel["f_tol"]
            if not fire:
                return False
            self.broken = self.broken or smd.broken_bond(atoms, *self.bonds) is not None
            if self.broken:
                if self.post_break >= sel["post_break"]:
                    return False
                self.post_break += 1
            return True

        return stop


def stretch_for(n_carbon: int, settings: PullSettings) -> float:
    """Stretch (Å) for a chain of n carbons: the configured one scaled by the number of C–C bonds
    (hexane has 5), plus 1 Å for the spring's own extension."""
    return settings.stretch * max(n_carbon - 1, 1) / 5 + (1.0 if n_carbon != 6 else 0.0)


def run_transfer(study: Study) -> list[dict]:
    """The final model of each of ``transfer.models`` pulling other chains and at other loading rates,
    each case against its own oracle reference (same seeds, paired). A case is logged once per set of seeds:
    more seeds later (a case near a goal) add a row, and the tables report the row with the most."""
    t = study.config["transfer"]
    cases = [(n, study.settings.velocity) for n in t["chains"]] + [(study.n, v) for v in t["velocities"]]
    if not cases:
        return []
    # a case is done for these seeds; earlier logs lack "seeds": they pulled seeds 0 … n−1
    done = {(e["strategy"], e["chain"], e["velocity"], tuple(e.get("seeds", range(len(e["ea_model"])))))
            for e in study.events("transfer")}  # fmt: skip
    todo = [(name, n, v) for name in t["models"] for n, v in cases if (name, n, v, tuple(t["seeds"])) not in done]
    models = {name: _final_model(study, name) for name in {name for name, _, _ in todo}}
    for name, n, v in tqdm(todo, desc="transferability", disable=not study.progress):
        settings = chain_settings(study, n, v)
        t0 = time.perf_counter()
        reference_pulls(study.dir, n, t["seeds"], settings, study.executor)
        sc = score(LinearACE.load(models[name]).calculator, study.dir, t["seeds"], settings, n,
                   quasi_static=False, executor=study.executor)  # fmt: skip
        study.log("transfer", strategy=name, model=models[name].name, chain=n, velocity=v, seeds=list(t["seeds"]),
                  wall_s=time.perf_counter() - t0, **sc.row())  # fmt: skip
    return transfer_cases(study.dir)


def _final_model(study: Study, name: str) -> Path:
    """A strategy's final linear-ACE model (else its latest)."""
    folder = study.dir / "models"
    models = sorted(folder.glob(f"{name}-final.npz")) or sorted(folder.glob(f"{name}*.npz"))
    if not models:
        raise ConfigError(f"transfer.models: no model of strategy {name!r} in {folder}")
    return models[-1]


RUNNERS = {"baseline-md": run_baseline, "baseline-smd": run_baseline, "jung": run_jung, "hal": run_hal_smd}


def run(config: dict, run_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) every strategy of the config in ``run_dir``; returns the final score per strategy."""
    check(config)
    summary = {}
    with make_executor(config["workers"], config.get("scheduler")) as executor:
        study = Study(config, Path(run_dir), executor, progress)
        for strategy in config["strategies"]:
            out = RUNNERS[strategy["kind"]](study, strategy)
            summary[strategy["name"]] = {k: out[-1][k] for k in ("oracle_calls", "delta_ea", "spread_ea",
                                                              "delta_ea_quasi_static", "force_mae")}  # fmt: skip
        for e in run_transfer(study):
            summary[f"transfer {e['strategy']} C{e['chain']} {e['velocity']:g} Å/ps"] = {"delta_ea": e["delta_ea"]}
    return summary


def report(run_dir: str | Path, config: dict) -> Path:
    """Plots and ``report.md`` of a study run directory (``hal report DIR``)."""
    return write_report(Path(run_dir), config)
