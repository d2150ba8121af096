"""Polymer protocol, part 3 (HAL paper II.C.3, Fig. 8): a model of isolated PEG chains predicts the density of the melt.

Data: labelled 500 K oracle MD frames of isolated H[OCH2CH2]nOH chains of every ``chains.n`` (cached per n,
``md_n<N>.xyz``), plus any labelled files in ``chains.include``, ``contacts.count`` pairs of short chains at
close contact and ``fit.dimers`` dimers per species pair (both labelled by the oracle). Then HAL in vacuum on
each ``hal.n`` chain in turn, one stage per chain length on one learner, until every walker stays stable (or
the stage's budget is spent). With ``boxes.max_oracle_calls`` > 0 (the paper had no such step: its oracle had
no periodic boundaries; tblite has), HAL goes on in small periodic melts under the compression's pressure,
labels with stress, in rounds until the model's own NPT run holds every box for ``boxes.test_steps`` (a box
that broke starts the next round's walker short of its break). Forces above ``fit.f_max`` (20 eV/Å, as the
paper) are left out of every fit, and counted. The final model's MD stability test on each chain, then a
periodic melt (``melt.n_chains`` chains of ``melt.n`` monomers, ``hal.structures.peg_melt``, built at a low
density), relaxed, compressed at ``melt.compress_bar`` and run NPT (``hal.dynamics.npt``: Berendsen, which
keeps a box far from equilibrium stable) at 1 bar and each temperature, the bond topology checked throughout.
The model is exported (``peg.yace``) with a LAMMPS input for the same run (``npt.in``, ``melt.data``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from ase import Atoms

from hal.bonds import BondGuard, Topology
from hal.config import ConfigError, Field, at_least, non_negative, positive
from hal.dynamics.sampling import md_frames
from hal.fit_config import check_basis
from hal.protocols import hal as general
from hal.protocols import polymer
from hal.protocols.polymer import WALKERS, oracle_calculator, walker_kwargs
from hal.structures import peg

EXPERIMENT_G_CM3 = 1.2  # PEG melt at 300 K (the paper's comparison)
BOX_RECORD, BOX_LOOKBACK = 100, 5  # box test: records every 100 steps; a restart 5 records short of the end
BURN_IN = 200  # oracle MD steps before the first frame of a chain

SCHEMA = {
    "protocol": Field(str, "polymer_bulk", choices=("polymer_bulk",)),
    "run_dir": Field(str, "runs/polymer_bulk"),
    "seed": Field(int, 0),
    "workers": Field(int, 2, check=at_least(1)),
    "scheduler": Field(str),
    "chains": {
        "n": Field(list, [2, 4, 8, 16, 32], item=int, check=at_least(1)),
        "md_frames": Field(list, [40, 40, 20, 8, 4], item=int, check=non_negative),
        "md_every": Field(int, 100, check=at_least(1)),
        "temperature_K": Field(float, 500.0, check=positive),
        "include": Field(list, [], item=str),
    },
    "contacts": {  # oracle-labelled pairs of PEG(n) in random orientations at close contact (hal.structures)
        "n": Field(int, 2, check=at_least(1)),
        "count": Field(int, 0, check=non_negative),
        "min_distance": Field(float, 0.8, check=positive),  # Å, the closest distance between the two molecules
        "max_distance": Field(float, 2.5, check=positive),
    },
    "oracle": polymer.SCHEMA["oracle"],
    "basis": polymer.SCHEMA["basis"],
    "fit": polymer.SCHEMA["fit"],
    "hal": {
        **WALKERS,
        "n": Field(list, [16, 32], item=int, check=at_least(1)),
        "n_walkers": Field(int, 2, check=at_least(1)),
        "tau_rel": Field(float, 0.1, check=non_negative),
        "max_oracle_calls": Field(int, 60, check=non_negative),  # per round
        "max_rounds": Field(int, 3, check=at_least(1)),  # HAL rounds per chain until the stability test holds
    },
    "boxes": {  # HAL on small periodic melts labelled by the oracle (tblite handles periodic cells); 0 calls: off
        **WALKERS,
        "temperature_K": Field(float, 300.0, check=positive),
        "n": Field(int, 4, check=at_least(1)),
        "n_chains": Field(int, 4, check=at_least(1)),
        "density": Field(float, 0.6, check=positive),  # g/cm³, as built (the barostat compresses)
        "pressure_bar": Field(float, 5000.0),
        "n_walkers": Field(int, 4, check=at_least(1)),
        "tau_rel": Field(float, 0.1, check=non_negative),
        "max_oracle_calls": Field(int, 0, check=non_negative),  # per round
        "max_rounds": Field(int, 3, check=at_least(1)),
        "virial_weight": Field(float, 1.0, check=non_negative),  # their stress labels, fitted
        "test_steps": Field(int, 0, check=non_negative),  # model NPT steps per box after each round; 0: no test
    },
    "stability": {
        "seeds": Field(int, 4, check=at_least(1)),
        "steps": Field(int, 5000, check=at_least(1)),
        "temperature_K": Field(float, 500.0, check=positive),
    },
    "melt": {
        "n": Field(int, 50, check=at_least(1)),
        "n_chains": Field(int, 2, check=at_least(1)),
        "start_density": Field(float, 0.3, check=positive),  # g/cm³
        "relax_steps": Field(int, 300, check=non_negative),  # FIRE at fixed cell
        "compress_bar": Field(float, 5000.0, check=positive),
        "compress_steps": Field(int, 20000, check=non_negative),
        "pressure_bar": Field(float, 1.0),
        "temperatures_K": Field(list, [300.0], item=float, check=positive),
        "steps": Field(int, 100000, check=at_least(1)),
        "equilibration_ps": Field(float, 10.0, check=non_negative),  # left out of the block average
        "timestep_fs": Field(float, 0.5, check=positive),
        "record_every": Field(int, 20, check=at_least(1)),
        "threads": Field(int, 2, check=at_least(1)),
    },
}


def check(config: dict) -> None:
    check_basis(config["basis"])
    general.basis_of(config["basis"], ["C", "H", "O"])
    if config["oracle"]["calculator"] != "tblite":
        general.calculator_factory(config["oracle"]["calculator"])
    c = config["chains"]
    if len(c["n"]) != len(c["md_frames"]):
        raise ConfigError(f"chains: n and md_frames need one entry each, got {len(c['n'])} and {len(c['md_frames'])}")
    missing = [n for n in config["hal"]["n"] if dict(zip(c["n"], c["md_frames"])).get(n, 0) < 1]
    if missing:
        raise ConfigError(f"hal.n: chains {missing} need MD frames in chains.n/md_frames (the walkers start there)")
    if config["hal"]["n_walkers"] > min(c["md_frames"][c["n"].index(n)] for n in config["hal"]["n"]):
        raise ConfigError("hal.n_walkers: more walkers than MD frames of a HAL chain")
    if config["contacts"]["min_distance"] > config["contacts"]["max_distance"]:
        raise ConfigError("contacts: min_distance is above max_distance")
    m = config["melt"]
    if m["equilibration_ps"] >= m["steps"] * m["timestep_fs"] / 1000:
        raise ConfigError("melt.equilibration_ps: longer than the NPT run; nothing would be averaged")


def resolve_paths(config: dict, base: Path) -> None:
    """Included data files taken relative to the config's folder."""
    c = config["chains"]
    c["include"] = [p if Path(p).is_absolute() else str(base / p) for p in c["include"]]


def _md_job(job: tuple) -> list[Atoms]:
    """Labelled 500 K MD frames of one chain (module level: executors pickle it)."""
    config, n, count, seed = job
    from threadpoolctl import threadpool_limits

    calc = oracle_calculator(config)  # before the limit: tblite's OpenMP pool is created with the calculator
    c = config["chains"]
    with threadpool_limits(1):
        return md_frames(peg(n), calc, count, c["temperature_K"], np.random.default_rng([seed, n]),
                         every=c["md_every"], burn_in=BURN_IN, timestep_fs=0.5, friction=0.01,
                         config_type=f"md_n{n}")  # fmt: skip


def chain_data(config: dict, run_dir: Path, executor) -> dict[int, list[Atoms]]:
    """The MD frames of every chain length, labelled once and cached (``md_n<N>.xyz``)."""
    from ase.io import read, write

    c = config["chains"]
    paths = {n: run_dir / f"md_n{n}.xyz" for n in c["n"]}
    todo = [(config, n, k, config["seed"]) for n, k in zip(c["n"], c["md_frames"]) if k and not paths[n].exists()]
    todo.sort(key=lambda j: -j[1])  # the longest chains first: they take longest
    results = executor.map(_md_job, todo) if executor is not None else map(_md_job, todo)
    for (_, n, _, _), frames in zip(todo, results):
        write(run_dir / f"md_n{n}.tmp.xyz", frames)
        (run_dir / f"md_n{n}.tmp.xyz").replace(paths[n])
    return {n: read(paths[n], ":") if paths[n].exists() else [] for n in c["n"]}


def included(config: dict) -> list[Atoms]:
    """The labelled configurations of ``chains.include`` (extxyz, ASE db, …)."""
    return [a for _, _, a in general._structures(config["chains"]["include"], "chains.include")]


def contacts(config: dict) -> list[Atoms]:
    """``contacts.count`` unlabelled pairs of PEG(``contacts.n``) at close contact: the non-bonded H···H and
    C···H a model of isolated chains never sees and a melt is full of (without them the ``--medium`` model
    bound two hydrogens at 0.7 Å by 3 eV where the oracle repels them by 3 eV)."""
    from hal.structures import molecule_contacts

    c = config["contacts"]
    return molecule_contacts(peg(c["n"]), c["count"], c["min_distance"], c["max_distance"], seed=config["seed"])


def run_hal(config: dict, run_dir: Path, data: dict[int, list[Atoms]], executor, progress: bool) -> list[dict]:
    """HAL on each ``hal.n`` chain in turn on one learner (shared store, iterations numbered on), in rounds
    until the MD stability test finds the chain stable: a round is a learner stage (``peg<N>``, then
    ``peg<N>-r<k>``) whose walkers run twice as long as the last's. Returns the last round of each chain."""
    from hal.loop import Learner, LearnerSettings, Oracle

    h = config["hal"]
    initial = [a for n in config["chains"]["n"] for a in data[n]] + included(config)
    oracle = Oracle(functools.partial(oracle_calculator, config), timeout_s=config["oracle"].get("timeout_s"))
    basis = general.basis_of(config["basis"], ["C", "H", "O"])
    initial = general.with_dimers(config, basis, initial) + contacts(config)  # appended: earlier runs resume
    out = []
    for index, n in enumerate(h["n"]):
        hal = walker_kwargs(h, n, h["tau_rel"])
        for k in range(h["max_rounds"]):
            settings = LearnerSettings(n_stable=h["n_stable"] * 2**k, max_oracle_calls=h["max_oracle_calls"],
                                       seed=config["seed"], stage=stage_name(n, k), stage_index=100 * index + k,
                                       hal=hal, fit=general.fit_options(config), progress=progress)  # fmt: skip
            summary = Learner(run_dir, basis, oracle, data[n][: h["n_walkers"]], initial, settings, executor).run()
            if stability_of(config, run_dir, final_model_path(run_dir), n, progress)["all_stable"]:
                break
        out.append({**summary, "rounds": k + 1})
    b = config["boxes"]
    if b["max_oracle_calls"]:
        starts = boxes(config)
        hal = {**walker_kwargs(b, b["n"], b["tau_rel"]), "pressure_GPa": b["pressure_bar"] * 1e-4,
               "guard": BondGuard(Topology(starts[0]), b["max_temperature_K"])}  # fmt: skip
        for k in range(b["max_rounds"]):
            settings = LearnerSettings(n_stable=b["n_stable"], max_oracle_calls=b["max_oracle_calls"],
                                       seed=config["seed"], stage=box_stage(k), stage_index=10_000 + k, hal=hal,
                                       fit=general.fit_options(config), progress=progress)  # fmt: skip
            summary = Learner(run_dir, basis, oracle, starts, initial, settings, executor).run()
            stable = summary["reason"] == "stable"
            if b["test_steps"]:  # the next round's walkers start short of where the model's own NPT broke each box
                row, starts = box_stability(config, run_dir, final_model_path(run_dir), executor)
                stable = row["all_stable"]
            if stable:
                break
        out.append({**summary, "rounds": k + 1})
    return out


def _box_test_job(job: tuple) -> tuple[int, Atoms]:
    """One box's model NPT run (relaxed first, as the melt): (steps its topology held, the intact box
    ``BOX_LOOKBACK`` records before its end)."""
    from ase.optimize import FIRE

    from hal.dynamics.npt import npt_run
    from hal.model import LinearACE

    model_path, box, steps, temperature_K, pressure_bar, timestep_fs, seed = job
    calc = LinearACE.load(model_path).calculator(threads=1)
    atoms, topology = box.copy(), Topology(box)
    atoms.calc = calc
    FIRE(atoms, logfile=None).run(fmax=0.5, steps=300)
    trace = npt_run(atoms, calc, steps, temperature_K, pressure_bar, timestep_fs, record_every=BOX_RECORD,
                    topology=topology, seed=seed, lookback=BOX_LOOKBACK)  # fmt: skip
    trace.intact.info.update(box.info)  # not the last record: the oracle often cannot converge it
    return (steps if trace.broken_step is None else trace.broken_step), trace.intact


def box_stability(config: dict, run_dir: Path, model: Path, executor) -> tuple[dict, list[Atoms]]:
    """The model's Berendsen NPT test on the start boxes (``boxes.test_steps`` steps at the boxes' temperature
    and pressure, from their bond topology as built), and each box short of its end. Cached by
    model: a row in ``stability.jsonl`` (system "boxes"), the boxes in ``box_test_<model>.xyz``."""
    from ase.io import read, write

    from hal.io import append_jsonl, repaired_jsonl

    b, path = config["boxes"], run_dir / f"box_test_{model.stem}.xyz"
    for row in repaired_jsonl(run_dir / "stability.jsonl"):
        if (row["model"], row.get("system")) == (model.name, "boxes") and path.exists():
            return row, read(path, ":")
    jobs = [(model, box, b["test_steps"], b["temperature_K"], b["pressure_bar"], b["timestep_fs"], config["seed"] + w)
            for w, box in enumerate(boxes(config))]  # fmt: skip
    held, ends = zip(*(executor.map if executor is not None else map)(_box_test_job, jobs))
    write(path, list(ends))
    row = {"model": model.name, "system": "boxes", "n": b["n"], "min_stable": int(min(held)),
           "all_stable": min(held) >= b["test_steps"], "steps": b["test_steps"], "seeds": len(jobs)}  # fmt: skip
    append_jsonl(run_dir / "stability.jsonl", row)
    return row, list(ends)


def boxes(config: dict) -> list[Atoms]:
    """The start boxes of HAL in the melt: ``boxes.n_walkers`` periodic melts of ``boxes.n_chains`` ×
    PEG(``boxes.n``) at ``boxes.density``, one seed each; their labels carry ``boxes.virial_weight``."""
    from hal.structures import peg_melt

    b = config["boxes"]
    out = []
    for w in range(b["n_walkers"]):
        box = peg_melt(b["n"], b["n_chains"], b["density"], seed=config["seed"] + w, min_distance=1.8)
        box.info.update(config_type="melt box", virial_weight=b["virial_weight"])
        out.append(box)
    return out


def box_stage(k: int) -> str:
    """The learner stage of round k of HAL in the small periodic melts."""
    return "boxes" if k == 0 else f"boxes-r{k}"


def stage_name(n: int, k: int) -> str:
    """The learner stage of round k of HAL on PEG(n)."""
    return f"peg{n}" if k == 0 else f"peg{n}-r{k}"


def final_model_path(run_dir: Path) -> Path:
    """The last stage's last model: fitted on every label."""
    models = sorted((run_dir / "models").glob("iter_*.npz"))
    if not models:
        raise FileNotFoundError(f"{run_dir}: no model yet")
    return models[-1]


def stability_of(config: dict, run_dir: Path, model: Path, n: int, progress: bool) -> dict:
    """The MD stability test of a model on isolated PEG(n) (cached by model and n in ``stability.jsonl``)."""
    from hal.dynamics.stability import stability_test
    from hal.io import append_jsonl, repaired_jsonl
    from hal.model import LinearACE

    path = run_dir / "stability.jsonl"
    for row in repaired_jsonl(path):
        if (row["model"], row["n"], row.get("system", "chain")) == (model.name, n, "chain"):
            return row
    st = config["stability"]
    r = stability_test(LinearACE.load(model).calculator, peg(n), st["seeds"], st["steps"], st["temperature_K"],
                       config["hal"]["timestep_fs"], seed=config["seed"], progress=progress)  # fmt: skip
    row = {"model": model.name, "n": n, "min_stable": r.min_stable, "all_stable": r.all_stable, "steps": st["steps"],
           "seeds": st["seeds"]}  # fmt: skip
    append_jsonl(path, row)
    return row


def stability(config: dict, run_dir: Path, progress: bool) -> list[dict]:
    """The final model's MD stability test on every chain length."""
    model = final_model_path(run_dir)
    return [stability_of(config, run_dir, model, n, progress) for n in config["chains"]["n"]]


def melt_start(config: dict, run_dir: Path, calc) -> tuple[Atoms, str]:
    """The melt: built at the start density, relaxed at fixed cell by the model, then compressed at
    ``compress_bar`` and the lowest temperature; and where its topology broke on the way ('' if it held).
    Cached: ``melt_built.xyz``, ``melt_start.xyz``, ``melt_start.json``; the compression's record in
    ``npt_compress.npz``."""
    import json

    from ase.io import read, write
    from ase.optimize import FIRE

    from hal.dynamics.npt import npt_run
    from hal.structures import peg_melt

    m, path, status = config["melt"], run_dir / "melt_start.xyz", run_dir / "melt_start.json"
    model = final_model_path(run_dir).name
    if path.exists() and status.exists() and json.loads(status.read_text()).get("model") == model:
        return read(path), json.loads(status.read_text())["broken"]
    atoms = peg_melt(m["n"], m["n_chains"], m["start_density"], seed=config["seed"])
    write(run_dir / "melt_built.xyz", atoms)
    topology = Topology(atoms)
    atoms.calc = calc
    FIRE(atoms, logfile=None).run(fmax=0.5, steps=m["relax_steps"])
    bad = topology.broken(atoms)
    broken = f"relaxation: {_bond(bad[0])}" if bad else ""
    if m["compress_steps"] and not broken:
        trace = npt_run(atoms, calc, m["compress_steps"], min(m["temperatures_K"]), m["compress_bar"], m["timestep_fs"],
                        record_every=m["record_every"], topology=topology, seed=config["seed"])  # fmt: skip
        np.savez(run_dir / "npt_compress.npz", **_arrays(trace))
        broken = f"compression: {_broken(trace)}" if trace.broken_step is not None else ""
    atoms.calc = None
    write(path, atoms)
    status.write_text(json.dumps({"broken": broken, "model": model}))
    return atoms, broken


def _arrays(trace) -> dict:
    return {"time_ps": trace.time_ps, "density": trace.density, "temperature": trace.temperature,
            "pressure": trace.pressure, "steps": trace.steps, "n_atoms": trace.n_atoms, "wall_s": trace.wall_s,
            "broken_step": -1 if trace.broken_step is None else trace.broken_step,
            "broken": _broken(trace)}  # fmt: skip


def _broken(trace) -> str:
    """Where the run's topology broke, in words ('' if it held)."""
    if trace.broken_step is None:
        return ""
    b, t = trace.broken, trace.time_ps[-1]
    return f"{_bond(b)} after {t:.3f} ps" if b else f"non-finite after {t:.3f} ps"


def _bond(b) -> str:
    """A broken bond in words: "C–O bond 12–13 at 2.61 Å"."""
    return f"{b.pair} bond {b.i}–{b.j} at {b.length:.2f} Å"


def density_runs(config: dict, run_dir: Path, progress: bool) -> list[dict]:
    """NPT at ``pressure_bar`` and each temperature from the compressed melt (one ``npt_<T>K.npz`` each,
    resumable per temperature); per run the block-averaged density of the equilibrated part."""
    from ase.io import read

    from hal.dynamics.npt import npt_run
    from hal.model import LinearACE

    m = config["melt"]
    model_path = final_model_path(run_dir)
    calc = LinearACE.load(model_path).calculator(threads=m["threads"])
    start, broken = melt_start(config, run_dir, calc)
    topology = Topology(read(run_dir / "melt_built.xyz"))
    if broken:  # no melt to run: say where it broke
        return [{"temperature_K": T, "density": np.nan, "stderr": np.nan, "drift": np.nan, "drift_stderr": np.nan,
                 "settled": False, "averaged_ps": 0.0, "length_ps": 0.0, "n_atoms": len(start),
                 "us_per_atom_step": np.nan, "wall_s": 0.0, "intact": False, "broken": broken, "model": model_path.name}
                for T in m["temperatures_K"]]  # fmt: skip
    out = []
    for T in m["temperatures_K"]:
        path = run_dir / f"npt_{T:g}K.npz"
        if not path.exists() or str(np.load(path).get("model")) != model_path.name:  # a new model runs anew
            atoms = start.copy()
            trace = npt_run(atoms, calc, m["steps"], T, m["pressure_bar"], m["timestep_fs"],
                            record_every=m["record_every"], topology=topology, seed=config["seed"],
                            progress=progress)  # fmt: skip
            np.savez(path, **_arrays(trace), model=model_path.name)
        out.append(density_record(path, T, m["equilibration_ps"]))
    return out


def density_record(path: Path, temperature_K: float, equilibration_ps: float) -> dict:
    """One NPT record (``npt_<T>K.npz``): the block-averaged density after ``equilibration_ps`` with its
    standard error, its drift across that window (``hal.dynamics.npt.drift``; "settled" when within
    twice the combined errors), length, atoms, cost and topology."""
    from hal.dynamics.npt import block_average, drift

    r = np.load(path)
    keep = r["time_ps"] >= equilibration_ps
    nan2 = (float("nan"), float("nan"))
    mean, err = block_average(r["density"][keep]) if keep.sum() >= 5 else nan2
    change, change_err = drift(r["time_ps"][keep], r["density"][keep]) if keep.sum() >= 5 else nan2
    return {"temperature_K": temperature_K, "density": mean, "stderr": err, "drift": change,
            "drift_stderr": change_err, "settled": bool(abs(change) <= 2 * np.hypot(change_err, err)),
            "averaged_ps": float(r["time_ps"][-1] - equilibration_ps), "length_ps": float(r["time_ps"][-1]),
            "n_atoms": int(r["n_atoms"]), "us_per_atom_step": float(r["wall_s"] / r["steps"] / r["n_atoms"] * 1e6),
            "wall_s": float(r["wall_s"]), "intact": int(r["broken_step"]) < 0, "broken": str(r["broken"]),
            "model": str(r["model"])}  # fmt: skip


LAMMPS_INPUT = """# NPT of the PEG melt with the model of `hal run polymer_bulk` (its report.md: the same run in hal).
# Needs a LAMMPS built with ML-PACE (CPU pair_style pace).
units           metal            # eV, Å, ps, bar
atom_style      atomic
boundary        p p p
read_data       melt.data        # the compressed melt; types in the model's element order ({elements})

pair_style      pace
pair_coeff      * * peg.yace {elements}

velocity        all create {T:g} {seed} mom yes rot yes dist gaussian
fix             npt all npt temp {T:g} {T:g} 0.1 iso {P:g} {P:g} 1.0
timestep        {dt:g}
variable        rho equal mass(all)/vol*1.66053907
thermo_style    custom step temp press vol v_rho
thermo          1000
run             {steps}          # 1 ns
"""


def export(config: dict, run_dir: Path) -> Path:
    """``peg.yace``, ``melt.data`` (the compressed melt) and ``npt.in``: the same NPT run in LAMMPS."""
    from ase.io import read, write

    from hal.model import LinearACE

    model = LinearACE.load(final_model_path(run_dir))
    model.to_yace(run_dir / "peg.yace")
    elements = list(model.basis.elements)
    write(run_dir / "melt.data", read(run_dir / "melt_start.xyz"), format="lammps-data", specorder=elements,
          masses=True)  # fmt: skip
    m = config["melt"]
    dt = m["timestep_fs"] / 1000
    text = LAMMPS_INPUT.format(elements=" ".join(elements), T=min(m["temperatures_K"]), P=m["pressure_bar"],
                               seed=4928459, dt=dt, steps=int(round(1000 / dt)))  # fmt: skip
    (run_dir / "npt.in").write_text(text)
    return run_dir / "npt.in"


def composition(config: dict, run_dir: Path) -> list[dict]:
    """The database by chain length and source: configurations, oracle calls behind them (MD: every step
    of the oracle's trajectory; HAL: one per label, failed ones too)."""
    from hal.loop.store import Store

    store, c = Store(run_dir / "data.db"), config["chains"]
    rows = []
    for n, k in zip(c["n"], c["md_frames"]):
        if k:
            calls = BURN_IN + k * c["md_every"]  # burn-in and frames: the oracle drives the MD
            rows.append({"n": n, "source": f"MD {c['temperature_K']:g} K", "configurations": k, "oracle_calls": calls})
    for n in config["hal"]["n"]:
        stages = [stage_name(n, k) for k in range(config["hal"]["max_rounds"])]
        rows.append({"n": n, "source": "HAL", "configurations": sum(store.count(source="hal", stage=st, status="ok")
                                                                    for st in stages),
                     "oracle_calls": sum(store.count(source="hal", stage=st) for st in stages)})  # fmt: skip
    stages = [box_stage(k) for k in range(config["boxes"]["max_rounds"])]
    calls = sum(store.count(source="hal", stage=st) for st in stages)
    if calls:
        b = config["boxes"]
        rows.append({"n": b["n"], "source": f"HAL in {b['n_chains']}-chain periodic melts",
                     "configurations": sum(store.count(source="hal", stage=st, status="ok") for st in stages),
                     "oracle_calls": calls})  # fmt: skip
    if c["include"]:
        rows.append({"n": "–", "source": "included", "configurations": len(included(config)), "oracle_calls": 0})
    pairs = store.count(source="initial", config_type="contact")
    if pairs:
        rows.append({"n": config["contacts"]["n"], "source": "contacts (molecule pairs)", "configurations": pairs,
                     "oracle_calls": pairs})  # fmt: skip
    dimers = store.count(source="initial", config_type="dimer")
    if dimers:
        rows.append({"n": "–", "source": f"dimers r_in … r0 (force weight {config['fit']['dimer_force_weight']:g})",
                     "configurations": dimers, "oracle_calls": dimers})  # fmt: skip
    return rows


def excluded_forces(config: dict, run_dir: Path) -> tuple[int, int, int]:
    """(atoms, configurations, all atoms) of the database whose |F| exceeds their f_max (``fit.f_max``, none for
    the dimers): left out of the fit."""
    from hal.fit.design import Weights
    from hal.loop.store import Store

    data, w = Store(run_dir / "data.db").labelled(), Weights(f_max=config["fit"]["f_max"])
    big = [int(np.sum(np.linalg.norm(a.arrays["forces"], axis=1) > w.f_max_of(a))) for a in data]
    return sum(big), sum(b > 0 for b in big), sum(len(a) for a in data)


def run(config: dict, run_dir: str | Path, progress: bool = True) -> dict:
    """Data, HAL per chain length, stability, the melt's NPT runs and the export; returns the densities."""
    from hal.loop.executors import make_executor

    check(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with make_executor(config["workers"], config.get("scheduler")) as executor:
        data = chain_data(config, run_dir, executor)
        stages = run_hal(config, run_dir, data, executor, progress)
    rows = stability(config, run_dir, progress)
    densities = density_runs(config, run_dir, progress)
    export(config, run_dir)
    keys = ("labels", "reason", "rounds")
    out = {f"HAL PEG({n})": {k: s[k] for k in keys} for n, s in zip(config["hal"]["n"], stages)}
    out.update({f"stability PEG({r['n']})": {"min_stable": r["min_stable"]} for r in rows})
    out.update({f"density {d['temperature_K']:g} K": {"g_cm3": d["density"], "stderr": d["stderr"], "drift": d["drift"],
                "drift_stderr": d["drift_stderr"], "settled": d["settled"]} for d in densities})  # fmt: skip
    return out


def report(run_dir: Path, config: dict) -> Path:
    """``report.md``: the database, the stability figures, the melt's density against time (``density.png``,
    like the paper's Fig. 8, with the experimental 1.2 g/cm³ ± 3 % band) and the block-averaged densities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hal.io import read_jsonl

    run_dir, m = Path(run_dir), config["melt"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axhspan(EXPERIMENT_G_CM3 * 0.97, EXPERIMENT_G_CM3 * 1.03, color="0.85", label="experiment 1.2 g/cm³ ± 3 %")
    if (run_dir / "npt_compress.npz").exists():
        c = np.load(run_dir / "npt_compress.npz")
        label = f"compression, {m['compress_bar']:g} bar"
        ax.plot(c["time_ps"] - c["time_ps"][-1], c["density"], color="0.5", lw=1, label=label)
    for k, T in enumerate(m["temperatures_K"]):
        if (run_dir / f"npt_{T:g}K.npz").exists():
            r = np.load(run_dir / f"npt_{T:g}K.npz")
            ax.plot(r["time_ps"], r["density"], color=f"C{k}", lw=1, label=f"{T:g} K, {m['pressure_bar']:g} bar")
    ax.axvline(m["equilibration_ps"], color="k", ls=":", lw=0.8)
    ax.set(xlabel="time (ps)", ylabel="density (g/cm³)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run_dir / "density.png", dpi=120)
    plt.close(fig)
    atoms, configs, total = excluded_forces(config, run_dir)
    lines = [f"# PEG melt density from isolated chains: {run_dir.name}", "",
             "| n | data | configurations | oracle calls |", "|---:|---|---:|---:|"]  # fmt: skip
    lines += [f"| {r['n']} | {r['source']} | {r['configurations']} | {r['oracle_calls']} |"
              for r in composition(config, run_dir)]  # fmt: skip
    lines += ["", f"Forces above {config['fit']['f_max']:g} eV/Å left out of the fit: {atoms} of {total} atoms, in "
              f"{configs} configurations (with those configurations' energies).", "",
              f"MD stability tests of isolated chains at {config['stability']['temperature_K']:g} K (minimum over "
              f"seeds of the steps before a bond leaves its window), after each HAL round and of the final model "
              f"({final_model_path(run_dir).name}):", "", "| model | n | seeds | steps | min stable steps |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    stability(config, run_dir, progress=False)
    rows = read_jsonl(run_dir / "stability.jsonl")
    lines += [f"| {r['model']} | {r['n']} | {r['seeds']} | {r['steps']} | {r['min_stable']} |"
              for r in rows if r.get("system", "chain") == "chain"]  # fmt: skip
    b = config["boxes"]
    tests = [r for r in rows if r.get("system") == "boxes"]
    if tests:
        lines += ["", f"NPT tests of the {b['n_chains']} × PEG({b['n']}) boxes after each box round ("
                  f"{tests[0]['seeds']} boxes, {b['temperature_K']:g} K, {b['pressure_bar']:g} bar from "
                  f"{b['density']:g} g/cm³; minimum over boxes of the steps before a bond leaves its window; a box "
                  f"that broke starts the next round's walker {BOX_RECORD * BOX_LOOKBACK} steps before its break):",
                  "",
                  "| model | boxes | steps | min stable steps |", "|---|---:|---:|---:|"]  # fmt: skip
        lines += [f"| {r['model']} | {r['seeds']} | {r['steps']} | {r['min_stable']} |" for r in tests]
    lines += ["", "![density against time](density.png)", "",
              f"Melt: {m['n_chains']} × PEG({m['n']}), built at {m['start_density']:g} g/cm³, Berendsen NPT "
              f"(ASE), {m['timestep_fs']:g} fs steps; block average (5 blocks) after {m['equilibration_ps']:g} ps.",
              "", "| T (K) | density (g/cm³) | stderr | vs 1.2 | drift over the average (g/cm³) | length (ps) | atoms "
              "| µs/atom/step | wall (s) | topology |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    runs = density_runs(config, run_dir, progress=False)
    for d in runs:
        lines.append(f"| {d['temperature_K']:g} | {d['density']:.4f} | {d['stderr']:.4f} | "
                     f"{d['density'] / EXPERIMENT_G_CM3 - 1:+.1%} | {d['drift']:+.4f} ± {d['drift_stderr']:.4f} | "
                     f"{d['length_ps']:.1f} | {d['n_atoms']} | {d['us_per_atom_step']:.1f} | {d['wall_s']:.0f} | "
                     f"{'intact' if d['intact'] else d['broken']} |")  # fmt: skip
    lines += ["", "Drift: the change of the block means across the averaged window (their slope against time, times "
              "the window), ± its standard error. "]  # fmt: skip
    for d in runs:
        if np.isfinite(d["drift"]):
            lines[-1] += (f"{d['temperature_K']:g} K: " + ("settled (the drift is within twice the errors)"
                          if d["settled"] else f"still {'falling' if d['drift'] < 0 else 'rising'} by "
                          f"{abs(d['drift']):.3f} g/cm³ over the {d['averaged_ps']:g} ps averaged: too short to "
                          f"tell the equilibrium density, which lies {'below' if d['drift'] < 0 else 'above'} the "
                          "mean") + ". ")  # fmt: skip
    lines += ["", "LAMMPS: `peg.yace`, `melt.data` and `npt.in` in this folder (`lmp -in npt.in`, ML-PACE)."]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
