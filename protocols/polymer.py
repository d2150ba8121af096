"""Polymer protocol, part 1 (HAL paper II.C, Fig. 6): HAL against plain active learning on PEG(n) in vacuum.

Initial data: ``n_initial`` frames of 500 K oracle MD of all-trans H[OCH2CH2]nOH (``hal.structures.peg``).
Then one learner per strategy, each in its own folder ``tau_<τ_r>`` (τ_r = 0 is active learning: the same
loop, criterion and oracle budget per iteration, no bias): HAL-MD at ``temperature_K`` from the initial
frames, stopping on max f_i > ``f_tol`` or when a bond leaves its SPEC §7 window (``hal.bonds.BondGuard``),
labelling the stop, refitting. Every iteration's model is kept. Last, the MD stability test
(``hal.dynamics.stability``) of every saved model: the minimum over ``seeds`` of the steps before a bond
breaks, against the iteration and the cumulative exploratory MD steps → ``stability.jsonl``, and
``hal report`` draws Fig. 6. The rare-event part (PEG(4), the paper's Table III) is not built yet.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
from ase import Atoms

from hal.bonds import BondGuard, Topology
from hal.config import ConfigError, Field, at_least, between, non_negative, positive
from hal.dynamics.sampling import md_frames
from hal.fit_config import BASIS, check_basis
from hal.protocols import hal as general
from hal.structures import peg

# HAL walkers on a PEG chain (shared by the polymer protocols): max f_i > f_tol (the softmax criterion fires
# only after a blow-up on 17-31 atoms), or a bond out of its window, or hotter than max_temperature_K, stops one
WALKERS = {
    "temperature_K": Field(float, 500.0, check=positive),
    "timestep_fs": Field(float, 0.5, check=positive),
    "n_stable": Field(int, 2000, check=at_least(1)),
    "max_oracle_calls": Field(int, 40, check=non_negative),
    "f_tol": Field(float, 0.5, check=positive),
    "check_every": Field(int, 10, check=at_least(1)),
    "n_hist": Field(int, 100, check=at_least(1)),
    "max_temperature_K": Field(float, 2000.0, check=positive),
}


def walker_kwargs(h: dict, n: int, tau_rel: float) -> dict:
    """``run_hal`` keyword arguments of a walker on PEG(n) from a ``WALKERS`` table (τ_r = 0: active
    learning, the same loop without the bias)."""
    guard = BondGuard(Topology(peg(n)), h["max_temperature_K"])
    hal = {"temperature_K": h["temperature_K"], "timestep_fs": h["timestep_fs"], "f_tol": h["f_tol"],
           "check_every": h["check_every"], "n_hist": h["n_hist"], "guard": guard, "min_distance": 0.5}  # fmt: skip
    return {**hal, "tau": 0.0} if tau_rel == 0 else {**hal, "tau_rel": tau_rel}


SCHEMA = {
    "protocol": Field(str, "polymer", choices=("polymer",)),
    "run_dir": Field(str, "runs/polymer"),
    "seed": Field(int, 0),
    "workers": Field(int, 2, check=at_least(1)),
    "scheduler": Field(str),
    "system": {
        "n": Field(int, 2, check=at_least(1)),
        "n_initial": Field(int, 20, check=at_least(2)),
        "md_every": Field(int, 100, check=at_least(1)),
        "n_walkers": Field(int, 2, check=at_least(1)),
        "md_calculator": Field(str, "oracle", choices=("oracle", "tblite")),
    },
    "oracle": {"calculator": Field(str, "tblite"), "kwargs": Field(dict), "timeout_s": Field(float, check=positive)},
    "basis": {
        **BASIS,
        "r_cut": Field(float, 4.5, check=positive),
        "pair_r_cut": Field(float, 5.5, check=positive),
        "pair_degree": Field(int, 8, check=between(0, 20)),
    },  # fmt: skip
    "fit": {**general.FIT, "weights": Field(list, [15.0, 1.0, 0.0], item=float, check=non_negative)},
    "hal": {"tau_rel": Field(list, [0.0, 0.05, 0.1, 0.2], item=float, check=non_negative), **WALKERS},
    "stability": {
        "seeds": Field(int, 16, check=at_least(1)),
        "steps": Field(int, 10000, check=at_least(1)),
        "temperature_K": Field(float, 500.0, check=positive),
    },
}


def oracle_calculator(config: dict):
    """A fresh oracle: "tblite" (GFN2-xTB, the embedded default, ``hal.oracles.TBLiteRetry``) or an import path as
    in the general protocol."""
    o = config["oracle"]
    if o["calculator"] == "tblite":  # an SCF that fails at 300 K is retried at 3000 K (stretched frames)
        from hal.oracles import TBLiteRetry

        return TBLiteRetry(**dict(o.get("kwargs") or {}))
    return general.make_calculator(o["calculator"], dict(o.get("kwargs") or {}))


def md_calculators(config: dict) -> tuple:
    """(calculator that drives the initial MD, calculator that labels its frames): the oracle for both, or
    with ``system.md_calculator = "tblite"`` GFN2-xTB MD labelled by the oracle (an expensive oracle such as
    PySCF ωB97X labels frames it could never afford to run MD on; the paper's ANI-2x MD, ORCA labels)."""
    oracle = oracle_calculator(config)
    if config["system"]["md_calculator"] == "oracle" or config["oracle"]["calculator"] == "tblite":
        return oracle, None
    from hal.oracles import TBLiteRetry

    return TBLiteRetry(), oracle


def check(config: dict) -> None:
    check_basis(config["basis"])
    general.basis_of(config["basis"], ["C", "H", "O"])
    if config["oracle"]["calculator"] != "tblite":
        general.calculator_factory(config["oracle"]["calculator"])
    if config["system"]["n_walkers"] > config["system"]["n_initial"]:
        raise ConfigError("system: n_walkers must be <= n_initial")


def initial_data(config: dict, run_dir: Path) -> list[Atoms]:
    """The 500 K MD frames, labelled once and cached (``initial.xyz``)."""
    from ase.io import read, write

    path = run_dir / "initial.xyz"
    if not path.exists():
        s = config["system"]
        T = config["hal"]["temperature_K"]
        rng = np.random.default_rng(config["seed"])
        drive, label = md_calculators(config)
        frames = md_frames(peg(s["n"]), drive, s["n_initial"], T, rng, every=s["md_every"], burn_in=200,
                           timestep_fs=0.5, friction=0.01, config_type=f"md_{T:.0f}K", label_calc=label)  # fmt: skip
        write(run_dir / "initial.tmp.xyz", frames)
        (run_dir / "initial.tmp.xyz").replace(path)
    return read(path, ":")


def strategy_dir(run_dir: Path, tau_rel: float) -> Path:
    return run_dir / f"tau_{tau_rel:g}"


def run_strategy(config: dict, run_dir: Path, tau_rel: float, initial: list[Atoms], executor, progress: bool) -> dict:
    """One learner (τ_r = ``tau_rel``; 0: AL) to stability or its oracle budget."""
    import functools

    from hal.loop import Learner, LearnerSettings, Oracle

    h = config["hal"]
    hal = walker_kwargs(h, config["system"]["n"], tau_rel)
    settings = LearnerSettings(n_stable=h["n_stable"], max_oracle_calls=h["max_oracle_calls"], seed=config["seed"],
                               stage=f"tau_{tau_rel:g}", hal=hal, fit=general.fit_options(config),
                               progress=progress)  # fmt: skip
    oracle = Oracle(functools.partial(oracle_calculator, config), timeout_s=config["oracle"].get("timeout_s"))
    basis = general.basis_of(config["basis"], ["C", "H", "O"])
    starts = initial[: config["system"]["n_walkers"]]
    initial = general.with_dimers(config, basis, initial)
    return Learner(strategy_dir(run_dir, tau_rel), basis, oracle, starts, initial, settings, executor).run()


def exploration(folder: Path) -> list[dict]:
    """Per saved model (iteration k): cumulative exploratory MD steps and oracle calls behind it
    (the walkers of iterations < k)."""
    from hal.loop.learner import read_events

    events = read_events(folder)  # an iteration a kill interrupted is replayed: count each walker and label once
    steps = {(e["iteration"], e["walker"]): int(e["steps"]) for e in events if e["event"] == "walker"}
    calls = {e["uid"] for e in events if e["event"] == "label"}
    out = []
    for path in sorted((folder / "models").glob("iter_*.npz")):
        k = int(path.stem.split("_")[1])
        out.append({"iteration": k, "model": str(path), "md_steps": sum(v for (i, _), v in steps.items() if i < k),
                    "oracle_calls": sum(int(uid[2:5]) < k for uid in calls)})  # fmt: skip
    return out


def stability_of_models(config: dict, run_dir: Path, progress: bool) -> list[dict]:
    """The MD stability test of every saved model of every strategy, resumable (``stability.jsonl``)."""
    from hal.dynamics.stability import stability_test
    from hal.io import append_jsonl, read_jsonl, repaired_jsonl
    from hal.model import LinearACE

    path = run_dir / "stability.jsonl"
    done = {(r["tau_rel"], r["iteration"]) for r in repaired_jsonl(path)}
    st = config["stability"]
    mol = peg(config["system"]["n"])
    for tau_rel in config["hal"]["tau_rel"]:
        for row in exploration(strategy_dir(run_dir, tau_rel)):
            if (tau_rel, row["iteration"]) in done:
                continue
            model = LinearACE.load(row["model"])
            r = stability_test(model.calculator, mol, st["seeds"], st["steps"], st["temperature_K"],
                               config["hal"]["timestep_fs"], seed=config["seed"], progress=progress)  # fmt: skip
            rec = {"tau_rel": tau_rel, **row, "min_stable": r.min_stable, "all_stable": r.all_stable,
                   "first_broken": r.first_broken.tolist(),
                   "broken_bonds": [broken_bond(b, f < r.steps) for f, b in zip(r.first_broken, r.bonds)]}  # fmt: skip
            append_jsonl(path, rec)
    return read_jsonl(path)


def broken_bond(bond, broke: bool) -> str | None:
    """A seed's first broken bond as "C–H short 0.62" or "C–C long 2.09" (Å; below or above its window),
    "non-finite" for a seed whose positions blew up, None for one that stayed intact."""
    if bond is None:
        return "non-finite" if broke else None
    return f"{bond.pair} {bond.side} {bond.length:.2f}"


def what_broke(rows: list[dict], tau_rel: float) -> collections.Counter:
    """Over every stability test of a strategy: how often each bond left its window first in a seed, by
    pair and side ("O–H short"). A model that collapses (short) lacks repulsion; one that dissociates (long)
    binds too weakly. Rows from before the bonds were recorded are skipped."""
    rs = [r for r in rows if r["tau_rel"] == tau_rel]
    return collections.Counter(" ".join(b.split()[:2]) for r in rs for b in r.get("broken_bonds") or [] if b)


def first_stable(rows: list[dict], tau_rel: float) -> dict | None:
    """The first iteration of a strategy whose model keeps every seed intact for the whole test."""
    ok = sorted((r for r in rows if r["tau_rel"] == tau_rel and r["all_stable"]), key=lambda r: r["iteration"])
    return ok[0] if ok else None


def stable_from(rows: list[dict], tau_rel: float) -> int | None:
    """The first iteration from which every later model of a strategy is stable too (None when its last
    model is not): a robust count, where ``first_stable`` may be one lucky model."""
    rs = sorted((r for r in rows if r["tau_rel"] == tau_rel), key=lambda r: r["iteration"])
    start = None
    for r in rs:
        start = (r["iteration"] if start is None else start) if r["all_stable"] else None
    return start


def run(config: dict, run_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) every strategy, then the stability tests; returns per strategy the first stable
    iteration with its exploratory MD steps and oracle calls."""
    from hal.loop.executors import make_executor

    check(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    initial = initial_data(config, run_dir)
    with make_executor(config["workers"], config.get("scheduler")) as executor:
        runs = {t: run_strategy(config, run_dir, t, initial, executor, progress) for t in config["hal"]["tau_rel"]}
    rows = stability_of_models(config, run_dir, progress)
    out = {}
    for t, r in runs.items():
        first = first_stable(rows, t)
        found = {"first_stable_iteration": "none"}
        if first:
            found = {"first_stable_iteration": first["iteration"], "md_steps": first["md_steps"],
                     "oracle_calls": first["oracle_calls"]}  # fmt: skip
        out[f"tau_rel {t:g}"] = {"labels": r["labels"], "iterations": r["iterations"], "stopped": r["reason"], **found}
    return out


def report(run_dir: Path, config: dict) -> Path:
    """Fig. 6 (min stable MD steps against iteration and against cumulative exploratory MD steps) and
    report.md with the first stable model of each strategy and the iteration it stays stable from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hal.io import read_jsonl

    rows = read_jsonl(run_dir / "stability.jsonl")
    if not rows:
        raise FileNotFoundError(f"{run_dir}: no stability.jsonl yet")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    lines = [f"# Polymer run {run_dir}: HAL against AL on PEG({config['system']['n']})", "",
             "![Fig. 6](stability.png)", "",
             f"MD stability test: {config['stability']['seeds']} seeds × {config['stability']['steps']} steps at "
             f"{config['stability']['temperature_K']:g} K; stable = every bond in its window throughout.", "",
             "| strategy | first stable iteration | exploratory MD steps | oracle calls | stays stable from | "
             "first broken bonds over every test (seeds) |", "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for j, t in enumerate(config["hal"]["tau_rel"]):
        rs = sorted((r for r in rows if r["tau_rel"] == t), key=lambda r: r["iteration"])
        label = "AL (τ = 0)" if t == 0 else f"HAL τ_r = {t:g}"
        for ax, key in zip(axes, ("iteration", "md_steps")):
            ax.plot([max(r[key], 1) if key == "md_steps" else r[key] for r in rs], [r["min_stable"] for r in rs],
                    "o-", color=f"C{j}", label=label)  # fmt: skip
        first = first_stable(rows, t)
        keep = stable_from(rows, t)
        broke = ", ".join(f"{k} {n}" for k, n in what_broke(rows, t).most_common()) or "–"
        broke = broke if any("broken_bonds" in r for r in rs) else "not recorded"
        lines.append(f"| {label} | {first['iteration'] if first else 'none'} | {first['md_steps'] if first else '–'} | "
                     f"{first['oracle_calls'] if first else '–'} | {'–' if keep is None else keep} "
                     f"| {broke} |")  # fmt: skip
    axes[0].set(xlabel="iteration", ylabel="min stable MD steps (over seeds)")
    axes[1].set(xlabel="cumulative exploratory MD steps", xscale="log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run_dir / "stability.png", dpi=120)
    plt.close(fig)
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
