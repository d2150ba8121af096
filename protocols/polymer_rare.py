"""Polymer protocol, part 2 (HAL paper II.C, Table III, Fig. 7): the rare events HAL finds on PEG(n) that hot
MD misses.

1. Plain oracle MD of all-trans H[OCH2CH2]nOH at 500 K and 800 K (``trajectories`` independent runs each,
   in parallel on the executor; a frame every ``md_every`` steps of 0.5 fs). The last trajectory of each
   temperature is the test set, the others train: time-correlated frames never straddle the split.
2. HAL (τ_r = ``tau_rel``, max f_i criterion with the bond/temperature guard of part 1) from a fit to the
   500 K train set, until ``n_hal`` oracle calls (or stability): the HAL set. Every third HAL frame is held
   out as its test set (the paper kept none).
3. Three fits, 500 K, 500 K + 800 K and 500 K + HAL (train sets only, each with the learner's oracle dimers
   when ``fit.dimers`` > 0; the added 800 K or HAL frames weigh ``fit.added_weight`` of a 500 K frame), each
   scored on every set and on the HAL test frames without an H–H contact (E RMSE meV/atom, F RMSE meV/Å):
   Table III, and energy parity plots (Fig. 7). ``weight_scan`` refits both mixed models over a range of
   added weights: the trade-off between the base and the added set.
4. The hydrogen-bond census of each set (``hal.bonds.Topology.hydrogen_bonds``: frames with an end-to-end
   or an internal O–H···O bond, and with two hydrogens closer than 1 Å), and the oracle energy of the lowest
   HAL and MD frames against the relaxed all-trans chain and a ring conformer (the lowest frame with an
   end-to-end bond, relaxed by the oracle; when no frame holds one, the chain folded by MD with a spring
   between its ends, then relaxed).

Everything is cached in the run directory (``md_<T>K_<k>.xyz``, ``hal/``, ``models/``, ``scores.json``,
``census.json``), so a rerun resumes. Units: eV, Å, K.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from hal.bonds import BondGuard, Topology
from hal.config import ConfigError, Field, at_least, between, non_negative, positive
from hal.dynamics.sampling import md_frames
from hal.fit.design import read_labels
from hal.fit_config import check_basis
from hal.protocols import hal as general
from hal.protocols import polymer
from hal.structures import peg

SCHEMA = {
    "protocol": Field(str, "polymer_rare", choices=("polymer_rare",)),
    "run_dir": Field(str, "runs/polymer_rare"),
    "seed": Field(int, 0),
    "workers": Field(int, 2, check=at_least(1)),
    "scheduler": Field(str),
    "system": {
        "n": Field(int, 4, check=at_least(1)),
        "temperatures_K": Field(list, [500.0, 800.0], item=float, check=positive),
        "frames": Field(list, [200, 100], item=int, check=at_least(2)),
        "trajectories": Field(int, 4, check=at_least(2)),
        "md_every": Field(int, 200, check=at_least(1)),
        "burn_in": Field(int, 400, check=non_negative),
        "md_calculator": polymer.SCHEMA["system"]["md_calculator"],
    },
    "oracle": polymer.SCHEMA["oracle"],
    "basis": polymer.SCHEMA["basis"],
    "fit": {
        **polymer.SCHEMA["fit"],
        "added_weight": Field(float, 0.5, check=between(1e-3, 1.0)),
        # non-empty: the added weight is the largest of these whose 500K+HAL fit keeps its base validation errors
        # within 10 % of the base fit's (``validated_weight``), and ``added_weight`` is not used
        "weight_candidates": Field(list, [], item=float, check=between(1e-3, 1.0)),
    },
    "hal": {
        "tau_rel": Field(float, 0.1, check=positive),
        "n_hal": Field(int, 60, check=at_least(3)),
        "n_walkers": Field(int, 4, check=at_least(1)),
        "temperature_K": Field(float, 500.0, check=positive),
        "timestep_fs": Field(float, 0.5, check=positive),
        "n_stable": Field(int, 4000, check=at_least(1)),
        "f_tol": Field(float, 0.5, check=positive),
        "check_every": Field(int, 10, check=at_least(1)),
        "n_hist": Field(int, 100, check=at_least(1)),
        "max_temperature_K": Field(float, 2000.0, check=positive),
        "ring_start": Field(bool, False),  # the last walker starts from the folded ring (fold_ring)
    },
    "conformers": {
        "fmax": Field(float, 0.05, check=between(1e-4, 1.0)),
        "fold_seeds": Field(int, 5, check=non_negative),
        "fold_steps": Field(int, 2000, check=at_least(1)),
    },
}

MODELS = ("500K", "500K+800K", "500K+HAL")  # Table III's three fits
CONTACT_HH = 1.0  # Å: two hydrogens this close are a collapse a model walked into, not a conformation
CLEAN = "HAL test, no H–H contact"  # the HAL test frames without one


def hh_contact(atoms: Atoms) -> bool:
    """Whether two hydrogens sit closer than ``CONTACT_HH`` (Å)."""
    h = np.flatnonzero(atoms.numbers == 1)
    d = atoms.get_all_distances()[np.ix_(h, h)]
    return bool((d[np.triu_indices(len(h), 1)] < CONTACT_HH).any())


def check(config: dict) -> None:
    check_basis(config["basis"])
    general.basis_of(config["basis"], ["C", "H", "O"])
    if config["oracle"]["calculator"] != "tblite":
        general.calculator_factory(config["oracle"]["calculator"])
    s = config["system"]
    if len(s["temperatures_K"]) != 2 or len(s["frames"]) != 2:
        raise ConfigError("system: temperatures_K and frames need two entries (the base and the hot MD)")
    if config["hal"]["ring_start"] and s["n"] < 2:
        raise ConfigError("hal.ring_start: PEG(1)'s hydroxyl ends are too close for an end-to-end bond (n >= 2)")
    if config["fit"]["weight_candidates"] and s["trajectories"] < 3:
        raise ConfigError("fit.weight_candidates: validation takes a base train trajectory (trajectories >= 3)")
    if min(s["frames"]) < s["trajectories"]:
        raise ConfigError("system: every trajectory needs a frame (frames >= trajectories)")


def _energy(atoms: Atoms) -> float:
    """The oracle energy label (eV), from info or from the calculator extxyz reading attaches."""
    return float(read_labels(atoms).energy)


def _tag(T: float) -> str:
    return f"{T:.0f}K"


def _md_chunk(config: dict, T: float, k: int, n: int) -> list[Atoms]:
    """Trajectory k of the MD at T: n labelled frames (a module-level function: it runs on workers, the
    oracle on one thread each)."""
    from threadpoolctl import threadpool_limits

    s = config["system"]
    rng = np.random.default_rng([config["seed"], int(T), k])
    drive, label = polymer.md_calculators(config)  # loads the oracle's libraries: the limit must see their OpenMP
    with threadpool_limits(1):
        return md_frames(peg(s["n"]), drive, n, T, rng, every=s["md_every"], burn_in=s["burn_in"], timestep_fs=0.5,
                         friction=0.01, config_type=f"md_{_tag(T)}", label_calc=label)  # fmt: skip


def md_sets(config: dict, run_dir: Path, executor) -> dict[str, list[Atoms]]:
    """{"<T>K train": frames, "<T>K test": frames} for both temperatures; each trajectory cached."""
    s = config["system"]
    todo = {}
    for T, n in zip(s["temperatures_K"], s["frames"]):
        counts = np.diff(np.linspace(0, n, s["trajectories"] + 1).round().astype(int))
        for k, m in enumerate(counts):
            path = run_dir / f"md_{_tag(T)}_{k}.xyz"
            if not path.exists():
                job = (_md_chunk, config, T, k, int(m))
                todo[path] = job if executor is None else executor.submit(*job)
    for path, job in todo.items():  # each trajectory written as it comes: a crash keeps the finished ones
        tmp = path.with_suffix(".tmp.xyz")
        write(tmp, job[0](*job[1:]) if executor is None else job.result())
        tmp.replace(path)
    out = {}
    for T in s["temperatures_K"]:
        chunks = [read(run_dir / f"md_{_tag(T)}_{k}.xyz", ":") for k in range(s["trajectories"])]
        out[f"{_tag(T)} train"] = [a for c in chunks[:-1] for a in c]
        out[f"{_tag(T)} test"] = chunks[-1]
    return out


def all_trans(config: dict, run_dir: Path) -> Atoms:
    """The all-trans chain relaxed by the oracle (cached in ``all_trans.xyz``; no calculator attached)."""
    path = run_dir / "all_trans.xyz"
    if not path.exists():
        write(path, peg(config["system"]["n"], relax_with=polymer.oracle_calculator(config),
                        fmax=config["conformers"]["fmax"]))  # fmt: skip
    return read(path)


def folded(config: dict, run_dir: Path) -> Atoms | None:
    """The ring conformer ``fold_ring`` folds from ``all_trans`` with the ``conformers`` settings (cached in
    ``folded.xyz``; no calculator attached), or None when no try holds an end-to-end bond."""
    path = run_dir / "folded.xyz"
    if path.exists():
        return read(path)
    c = config["conformers"]
    make = functools.partial(polymer.oracle_calculator, config)
    topology = Topology(peg(config["system"]["n"]))
    ring = fold_ring(all_trans(config, run_dir), make, topology, c["fold_seeds"], c["fold_steps"], c["fmax"])
    if ring is not None:
        ring.calc = None
        write(path, ring)
    return ring


def hal_set(config: dict, run_dir: Path, initial: list[Atoms], executor, progress: bool) -> list[Atoms]:
    """The HAL frames (labelled, in order) of a learner from the base train set; its walkers start from
    frames spread over that set, the last from the folded ring when ``hal.ring_start``."""
    from hal.loop import Learner, LearnerSettings, Oracle

    h = config["hal"]
    guard = BondGuard(Topology(peg(config["system"]["n"])), h["max_temperature_K"])
    settings = LearnerSettings(
        n_stable=h["n_stable"], max_oracle_calls=h["n_hal"], seed=config["seed"], stage="hal", progress=progress,
        fit=general.fit_options(config),
        hal={"temperature_K": h["temperature_K"], "timestep_fs": h["timestep_fs"], "f_tol": h["f_tol"],
             "check_every": h["check_every"], "n_hist": h["n_hist"], "tau_rel": h["tau_rel"], "guard": guard,
             "min_distance": 0.5},
    )  # fmt: skip
    oracle = Oracle(functools.partial(polymer.oracle_calculator, config), timeout_s=config["oracle"].get("timeout_s"))
    basis = general.basis_of(config["basis"], ["C", "H", "O"])
    extra = [folded(config, run_dir)] if h["ring_start"] else []
    if None in extra:
        raise RuntimeError(
            f"no fold of PEG({config['system']['n']}) held an end-to-end bond: raise conformers.fold_seeds"
        )
    step = max(1, len(initial) // h["n_walkers"])
    starts = initial[::step][: h["n_walkers"] - len(extra)] + extra
    Learner(
        run_dir / "hal", basis, oracle, starts, general.with_dimers(config, basis, initial), settings, executor
    ).run()
    return hal_frames(run_dir)


def split_hal(frames: list[Atoms], topology: Topology) -> tuple[list[Atoms], list[Atoms]]:
    """The HAL set of Table III: the frames whose bonds all stay in their windows (a walker stopped by the
    bond guard is labelled too, but a broken chain is not a conformation), every third one test."""
    intact = [a for a in frames if topology.intact(a)]
    return [a for k, a in enumerate(intact) if k % 3 != 2], [a for k, a in enumerate(intact) if k % 3 == 2]


def _weighted(frames: list[Atoms], weight: float) -> list[Atoms]:
    """Copies of labelled frames whose fit rows weigh ``weight`` (``info["weight"]``; labels kept)."""
    out = []
    for a in frames:
        b = a.copy()
        b.calc = a.calc  # extxyz labels live on the calculator read_labels reads
        b.info["weight"] = weight
        out.append(b)
    return out


def training_sets(config: dict, run_dir: Path, sets: dict[str, list[Atoms]], added_weight: float) -> dict:
    """{model: train frames} of Table III's three fits: the 500 K train set, plus the 800 K or HAL train set
    weighted ``added_weight``, plus the HAL learner's labelled dimers when ``fit.dimers`` > 0."""
    from hal.loop.store import Store

    base, hot = (_tag(T) for T in config["system"]["temperatures_K"])
    dimers = config["fit"]["dimers"] > 0
    extra = Store(run_dir / "hal" / "data.db").labelled(config_type="dimer") if dimers else []
    data = {MODELS[0]: sets[f"{base} train"],
            MODELS[1]: sets[f"{base} train"] + _weighted(sets[f"{hot} train"], added_weight),
            MODELS[2]: sets[f"{base} train"] + _weighted(sets["HAL train"], added_weight)}  # fmt: skip
    return {name: configs + extra for name, configs in data.items()}


def model_path(run_dir: Path, name: str, added_weight: float) -> Path:
    """Where a Table III fit is kept: the mixed models' names carry their added weight (unless 1)."""
    tag = "" if name == MODELS[0] or added_weight == 1 else f"-w{added_weight:g}"
    return run_dir / "models" / f"{name.replace('+', '_')}{tag}.npz"


def fits(config: dict, run_dir: Path, sets: dict[str, list[Atoms]], progress: bool,
         added_weight: float | None = None) -> dict:  # fmt: skip
    """The three models of Table III, fitted once and kept in ``models/``; each also gets the HAL learner's
    labelled dimers (``fit.dimers``; the same repulsive core in all three). ``added_weight`` defaults to
    ``fit.added_weight``."""
    import hal
    from hal.model import LinearACE

    w = config["fit"]["added_weight"] if added_weight is None else added_weight
    paths = {name: model_path(run_dir, name, w) for name in MODELS}
    if not all(p.exists() for p in paths.values()):
        (run_dir / "models").mkdir(exist_ok=True)
        basis = general.basis_of(config["basis"], ["C", "H", "O"])
        for name, configs in training_sets(config, run_dir, sets, w).items():
            if not paths[name].exists():
                hal.fit(configs, basis, progress=progress, **general.fit_options(config)).save(paths[name])
    return {name: LinearACE.load(p) for name, p in paths.items()}


def weight_scan(config: dict, run_dir: Path, sets: dict[str, list[Atoms]], weights: list[float]) -> dict:
    """{added weight: Table III scores} for each weight (fits cached in ``models/``, the table in
    ``weight_scan.json``): how the added set's weight trades the base set's errors against the added one's."""
    path = run_dir / "weight_scan.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for w in weights:
        if f"{w:g}" not in done:
            done[f"{w:g}"] = scores(fits(config, run_dir, sets, False, w), sets, config["fit"]["f_max"])
            path.write_text(json.dumps(done, indent=1))
    return {w: done[f"{w:g}"] for w in weights}


BASE_TOLERANCE = 1.1  # the goal: the 500K+HAL fit's base-set errors at most 10 % above the base fit's


def validation_sets(config: dict, run_dir: Path, sets: dict[str, list[Atoms]]) -> tuple[dict, dict]:
    """(train sets without the validation frames, {"<T>K val", "HAL val"}): the last base train trajectory
    and every third HAL train frame. The test sets are never seen."""
    s = config["system"]
    base = _tag(s["temperatures_K"][0])
    last = read(run_dir / f"md_{base}_{s['trajectories'] - 2}.xyz", ":")
    train = dict(sets)
    train[f"{base} train"] = sets[f"{base} train"][: -len(last)]
    hal = sets["HAL train"]
    train["HAL train"] = [a for k, a in enumerate(hal) if k % 3 != 2]
    return train, {f"{base} val": last, "HAL val": [a for k, a in enumerate(hal) if k % 3 == 2]}


def validated_weight(config: dict, run_dir: Path, sets: dict[str, list[Atoms]]) -> float:
    """The added weight of the mixed fits chosen on validation frames (``validation_sets``), never on a test
    set: the largest of ``fit.weight_candidates`` whose 500K+HAL fit keeps its base validation E and F RMSE
    within ``BASE_TOLERANCE`` of the base fit's (the smallest candidate if none does); ``added_weight`` when
    there are no candidates. Scores cached in ``validation.json``."""
    import hal

    candidates = sorted(config["fit"]["weight_candidates"])
    if not candidates:
        return config["fit"]["added_weight"]
    path = run_dir / "validation.json"
    train, val = validation_sets(config, run_dir, sets)
    sizes = {k: len(v) for k, v in (train | val).items()}
    done = json.loads(path.read_text()) if path.exists() else {}
    if done.get("sizes") != sizes:  # a resumed run with more frames: fit again
        done = {"sizes": sizes}
    basis = general.basis_of(config["basis"], ["C", "H", "O"])
    f_max = config["fit"]["f_max"]
    for w in ["base", *candidates]:
        key = w if w == "base" else f"{w:g}"
        if key not in done:
            data = training_sets(config, run_dir, train, 1.0 if w == "base" else w)[MODELS[0 if w == "base" else 2]]
            model = hal.fit(data, basis, progress=False, **general.fit_options(config))
            done[key] = scores({"fit": model}, val, f_max)["fit"]
            path.write_text(json.dumps(done, indent=1))
    return _choose(config, done)


def _choose(config: dict, done: dict) -> float:
    """``validated_weight``'s choice from its validation scores."""
    candidates = sorted(config["fit"]["weight_candidates"])
    b = f"{_tag(config['system']['temperatures_K'][0])} val"
    ok = [w for w in candidates if all(done[f"{w:g}"][b][q] <= BASE_TOLERANCE * done["base"][b][q] for q in "EF")]
    return max(ok) if ok else candidates[0]


def added_weight(config: dict, run_dir: Path) -> float:
    """The mixed fits' added weight of a finished run: validated (``validation.json``) or ``fit.added_weight``."""
    if not config["fit"]["weight_candidates"]:
        return config["fit"]["added_weight"]
    return _choose(config, json.loads((Path(run_dir) / "validation.json").read_text()))


def scores(models: dict, sets: dict[str, list[Atoms]], f_max: float) -> dict:
    """{model: {set: {"E": meV/atom RMSE, "F": meV/Å RMSE, "n": frames}}} (forces above f_max left out)."""
    from hal.fit.metrics import errors

    out = {}
    for name, model in models.items():
        out[name] = {}
        for key, frames in sets.items():
            e = errors(model, frames, f_max=f_max)["all"]
            out[name][key] = {"E": e["E_rmse"], "F": 1000 * e["F_rmse"], "n": len(frames)}
    return out


def census(config: dict, sets: dict[str, list[Atoms]]) -> dict:
    """Per set: frames, those with an end-to-end and with an internal hydrogen bond, and those with a bond
    out of its window (left in the set: the oracle labelled them)."""
    topo = Topology(peg(config["system"]["n"]))
    out = {}
    for key, frames in sets.items():
        kinds = [{b.kind for b in topo.hydrogen_bonds(a)} for a in frames]
        out[key] = {"frames": len(frames), "end-to-end": sum("end-to-end" in k for k in kinds),
                    "internal": sum("internal" in k for k in kinds),
                    "broken": sum(not topo.intact(a) for a in frames),
                    "hh_contact": sum(map(hh_contact, frames))}  # fmt: skip
    return out


FOLD = {"rt": 3.0, "k": 0.3, "temperature_K": 300.0}  # the fold's O···O spring (Å, eV/Å²) and MD temperature


def fold_ring(trans: Atoms, calculator, topology: Topology, seeds: int, steps: int, fmax: float) -> Atoms | None:
    """A ring conformer of a relaxed chain: for each seed, ``steps`` of 0.5 fs Langevin MD at 300 K with a
    spring between the two terminal oxygens (beyond 3 Å), a relaxation with it, then one without; the lowest
    intact result that holds an end-to-end hydrogen bond, or None. ``calculator``: makes a fresh oracle."""
    from ase import units
    from ase.constraints import Hookean
    from ase.md.langevin import Langevin
    from ase.optimize import BFGS

    from hal.dynamics.hal import thermalize

    ends = topology.terminal_oxygens()
    best = None
    for seed in range(seeds):
        ring = trans.copy()
        ring.calc = calculator()
        ring.set_constraint(Hookean(ends[0], ends[-1], rt=FOLD["rt"], k=FOLD["k"]))
        rng = np.random.default_rng(seed)
        thermalize(ring, FOLD["temperature_K"], rng)
        Langevin(ring, 0.5 * units.fs, temperature_K=FOLD["temperature_K"], friction=0.02, fixcm=False,
                 rng=rng).run(steps)  # fmt: skip
        BFGS(ring, logfile=None).run(fmax=fmax, steps=1000)
        ring.set_constraint()
        BFGS(ring, logfile=None).run(fmax=fmax, steps=2000)
        folded = topology.intact(ring) and any(b.kind == "end-to-end" for b in topology.hydrogen_bonds(ring))
        if folded and (best is None or ring.get_potential_energy() < best.get_potential_energy()):
            best = ring
    return best


def conformers(config: dict, run_dir: Path, sets: dict[str, list[Atoms]]) -> dict:
    """Oracle energies (eV) relative to the relaxed all-trans chain: the lowest HAL and MD frames, and a ring
    conformer, relaxed from the lowest frame with an end-to-end hydrogen bond or, when no frame holds one,
    folded from the chain (``fold_ring``; None when that finds none either); cached in ``conformers.json``."""
    from ase.optimize import BFGS

    path = run_dir / "conformers.json"
    if path.exists() and ((cached := json.loads(path.read_text()))["ring"] is not None or "fold_tries" in cached):
        return cached
    c = config["conformers"]
    n, fmax = config["system"]["n"], c["fmax"]
    trans = all_trans(config, run_dir)
    trans.calc = polymer.oracle_calculator(config)
    e_trans = trans.get_potential_energy()
    topo = Topology(peg(n))
    frames = [(key, a) for key, fs in sets.items() for a in fs if topo.intact(a)]
    hal_frames = [a for key, a in frames if key.startswith("HAL")]
    md = [a for key, a in frames if not key.startswith("HAL")]
    ring_from = [(key, a) for key, a in frames if any(b.kind == "end-to-end" for b in topo.hydrogen_bonds(a))]
    out = {"all_trans_eV": e_trans, "lowest_hal": None, "lowest_md": None, "ring": None}
    if hal_frames:
        out["lowest_hal"] = min(map(_energy, hal_frames)) - e_trans
    if md:
        out["lowest_md"] = min(map(_energy, md)) - e_trans
    if ring_from:
        key, start = min(ring_from, key=lambda ka: _energy(ka[1]))
        ring = start.copy()
        ring.calc = polymer.oracle_calculator(config)
        BFGS(ring, logfile=None).run(fmax=fmax, steps=1000)
        key = f"relaxed from the lowest {key} frame with an end-to-end bond"
    else:
        key = f"folded from the all-trans chain: the lowest of {c['fold_seeds']} spring-restrained MD tries"
        out["fold_tries"] = c["fold_seeds"]
        if (ring := folded(config, run_dir)) is not None:
            ring.calc = polymer.oracle_calculator(config)
    if ring is not None:
        bonds = [b.kind for b in topo.hydrogen_bonds(ring)]
        out["ring"] = {"from": key, "relative_eV": ring.get_potential_energy() - e_trans, "hydrogen_bonds": bonds,
                       "intact": bool(topo.intact(ring))}  # fmt: skip
        ring.calc = None
        write(run_dir / "ring.xyz", ring)
    path.write_text(json.dumps(out, indent=1))
    return out


def scored_sets(config: dict, run_dir: Path) -> dict[str, list[Atoms]]:
    """Every set of Table III from a run's MD and HAL frames: the MD train/test sets, the HAL train/test
    split and the HAL test frames without an H–H contact (``CLEAN``, when any)."""
    sets = md_sets(config, run_dir, None)
    frames = hal_frames(run_dir)
    sets["HAL train"], sets["HAL test"] = split_hal(frames, Topology(peg(config["system"]["n"])))
    if not sets["HAL test"]:
        raise RuntimeError(f"HAL labelled {len(frames)} frames, too few intact for a train/test split (raise n_hal)")
    if clean := [a for a in sets["HAL test"] if not hh_contact(a)]:
        sets[CLEAN] = clean
    return sets


def run(config: dict, run_dir: str | Path, progress: bool = True) -> dict:
    """All four steps, resumable; returns the HAL-set force errors of the three models and the census."""
    from hal.loop.executors import make_executor

    check(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = _tag(config["system"]["temperatures_K"][0])
    with make_executor(config["workers"], config.get("scheduler")) as executor:
        frames = hal_set(config, run_dir, md_sets(config, run_dir, executor)[f"{base} train"], executor, progress)
    sets = scored_sets(config, run_dir)
    models = fits(config, run_dir, sets, progress, validated_weight(config, run_dir, sets))
    table = scores(models, sets, config["fit"]["f_max"])
    (run_dir / "scores.json").write_text(json.dumps(table, indent=1))
    counts = census(config, sets)
    (run_dir / "census.json").write_text(json.dumps(counts, indent=1))
    conf = conformers(config, run_dir, sets)
    f_hal = {m: round(table[m]["HAL test"]["F"], 1) for m in MODELS}
    e_hal = {m: table[m]["HAL test"]["E"] for m in MODELS}
    clean = {m: table[m][CLEAN]["F"] for m in MODELS} if CLEAN in sets else None
    ring = None if conf["ring"] is None else round(conf["ring"]["relative_eV"], 3)
    kept = len(sets["HAL train"]) + len(sets["HAL test"])
    return {"HAL frames (intact, labelled)": f"{kept}, {len(frames)}", "HAL test F RMSE meV/Å": f_hal,
            "ratio (500K+800K)/(500K+HAL) on HAL test": round(f_hal[MODELS[1]] / f_hal[MODELS[2]], 2),
            "energy ratio (500K+800K)/(500K+HAL) on HAL test": round(e_hal[MODELS[1]] / e_hal[MODELS[2]], 2),
            f"ratio on {CLEAN}": None if clean is None else round(clean[MODELS[1]] / clean[MODELS[2]], 2),
            "end-to-end hydrogen bonds (frames)": {k: v["end-to-end"] for k, v in counts.items()},
            "ring conformer eV vs all-trans": ring}  # fmt: skip


def validation_text(config: dict, run_dir: Path) -> str:
    """How the added weight was chosen, with the validation table (markdown)."""
    done = json.loads((Path(run_dir) / "validation.json").read_text())
    b = f"{_tag(config['system']['temperatures_K'][0])} val"
    keys = list(done["base"])  # the validation sets
    counts = ", ".join(f"{k}: {done['base'][k]['n']} frames" for k in keys)
    lines = [
        f", chosen on validation frames, never on a test set (`fit.weight_candidates`): the largest candidate "
        f"whose 500K+HAL fit keeps its {b} E and F RMSE within {BASE_TOLERANCE - 1:.0%} of the 500K fit's, "
        "both fitted without the validation frames (the last 500 K train trajectory, every third HAL train "
        "frame). E RMSE (meV/atom) / F RMSE (meV/Å) on the validation sets "
        f"({counts}):",
        "",
        "| fit | " + " | ".join(keys) + f" | {b}, over the 500K fit (E, F) |",
        "|---|" + "---:|" * (len(keys) + 1),
    ]
    for key in ["base", *(f"{w:g}" for w in sorted(config["fit"]["weight_candidates"]))]:
        name = "500K" if key == "base" else f"500K+HAL, weight {key}"
        ratio = ", ".join(f"{done[key][b][q] / done['base'][b][q]:.2f}×" for q in "EF")
        lines.append(f"| {name} | " + " | ".join(f"{done[key][k]['E']:.1f} / {done[key][k]['F']:.0f}" for k in keys)
                     + f" | {ratio} |")  # fmt: skip
    return "\n".join(lines)


def report(run_dir: Path, config: dict) -> Path:
    """report.md: Table III, the census, the conformer energies and ``parity.png`` (Fig. 7)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hal.model import LinearACE

    run_dir = Path(run_dir)
    if not (run_dir / "scores.json").exists():
        raise FileNotFoundError(f"{run_dir}: no scores.json yet (the run has not reached its fits)")
    table = json.loads((run_dir / "scores.json").read_text())
    counts = json.loads((run_dir / "census.json").read_text())
    conf = json.loads((run_dir / "conformers.json").read_text())
    keys = list(next(iter(table.values())))
    n = config["system"]["n"]
    lines = [f"# Rare events on PEG({n}): Table III", "",
             "E RMSE (meV/atom) / F RMSE (meV/Å) of each fit on each set (frames in brackets):", "",
             "| model | " + " | ".join(f"{k} ({table[MODELS[0]][k]['n']})" for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]  # fmt: skip
    for m in MODELS:
        lines.append(f"| {m} | " + " | ".join(f"{table[m][k]['E']:.1f} / {table[m][k]['F']:.0f}" for k in keys) + " |")

    def over(key: str, q: str) -> str:  # the 500K+800K model's error over the 500K+HAL model's
        return f"{table[MODELS[1]][key][q] / table[MODELS[2]][key][q]:.2f}×" if key in table[MODELS[2]] else "–"

    w = added_weight(config, run_dir)
    lines += [
        "",
        f"The mixed fits weigh each added frame (800 K or HAL) {w:g} of a 500 K frame"
        + (validation_text(config, run_dir) if config["fit"]["weight_candidates"] else " (`fit.added_weight`)."),
    ]
    if (run_dir / "weight_scan.json").exists():
        scan = json.loads((run_dir / "weight_scan.json").read_text())
        lines += ["", "The added weight's trade-off (`weight_scan`; both mixed models refitted at each weight): the "
                  "HAL test ratios (500K+800K over 500K+HAL) and the 500K+HAL model's 500 K test error over the "
                  "500K model's:", "",
                  "| added weight | HAL test E ratio | HAL test F ratio | 500 K test E, 500K+HAL / 500K | F |",
                  "|---:|---:|---:|---:|---:|"]  # fmt: skip
        base = f"{_tag(config['system']['temperatures_K'][0])} test"
        for key, t in sorted(scan.items(), key=lambda kv: float(kv[0])):
            hal_e, hal_f = (t[MODELS[1]]["HAL test"][q] / t[MODELS[2]]["HAL test"][q] for q in "EF")
            base_e, base_f = (t[MODELS[2]][base][q] / t[MODELS[0]][base][q] for q in "EF")
            lines.append(f"| {key} | {hal_e:.2f}× | {hal_f:.2f}× | {base_e:.2f}× | {base_f:.2f}× |")
    labelled = len(hal_frames(run_dir))
    kept = table[MODELS[0]]["HAL train"]["n"] + table[MODELS[0]]["HAL test"]["n"]
    lines += ["", f"HAL test set: the 500K+800K model's force error is {over('HAL test', 'F')} the 500K+HAL model's, "
              f"its energy error {over('HAL test', 'E')}; without the frames where two hydrogens come closer than "
              f"{CONTACT_HH:g} Å ({CLEAN}), {over(CLEAN, 'F')} and {over(CLEAN, 'E')}. The HAL sets hold the {kept} of "
              f"{labelled} HAL frames whose bonds all stay in their windows (a walker stopped by the bond guard is "
              "labelled, but a broken chain is not a conformation). Energies of frames with a force above "
              "`fit.f_max` are not scored (as in the fit).", "",
              "Hydrogen bonds (frames holding at least one) and H–H contacts:", "",
              f"| set | frames | end-to-end | internal | a bond out of its window | H–H under {CONTACT_HH:g} Å |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for k, c in counts.items():
        lines.append(f"| {k} | {c['frames']} | {c['end-to-end']} | {c['internal']} | {c['broken']} | "
                     f"{c.get('hh_contact', '–')} |")  # fmt: skip

    def ev(x):
        return "–" if x is None else f"{x:+.3f} eV"

    ring = conf["ring"]
    lines += [
        "",
        "Oracle energies against the relaxed all-trans chain "
        f"({conf['all_trans_eV']:.3f} eV): lowest HAL frame {ev(conf['lowest_hal'])}, lowest MD frame "
        f"{ev(conf['lowest_md'])}; "
        + (
            "no frame holds an end-to-end hydrogen bond and folding the chain found none either."
            if ring is None
            else f"ring conformer ({ring['from']}) "
            f"{ev(ring['relative_eV'])}, hydrogen bonds after relaxation: {ring['hydrogen_bonds'] or 'none'}."
        ),
    ]
    models = {m: LinearACE.load(model_path(run_dir, m, w)) for m in MODELS}
    if ring is not None and (run_dir / "all_trans.xyz").exists():  # each fit's ring − all-trans energy
        trans, closed = read(run_dir / "all_trans.xyz"), read(run_dir / "ring.xyz")
        gaps = [f"{m} {ev(model.evaluate(closed).energies[0] - model.evaluate(trans).energies[0])}"
                for m, model in models.items()]  # fmt: skip
        lines += [
            "",
            "The ring conformer against the all-trans chain, E(ring) − E(all-trans): oracle "
            f"{ev(ring['relative_eV'])}, " + ", ".join(gaps) + ".",
        ]
    lines += ["", "![parity](parity.png)"]  # fmt: skip
    # Fig. 7: energy errors of the three fits on the HAL and the hot MD test sets
    hot = _tag(config["system"]["temperatures_K"][1])
    last = config["system"]["trajectories"] - 1
    test = split_hal(hal_frames(run_dir), Topology(peg(n)))[1]
    sets = {"HAL test": test, f"{hot} test": read(run_dir / f"md_{hot}_{last}.xyz", ":")}
    fig, axes = plt.subplots(1, len(MODELS), figsize=(4 * len(MODELS), 3.8), sharey=True)
    for ax, (m, model) in zip(axes, models.items()):
        for j, (key, frames) in enumerate(sets.items()):
            ref = np.array([_energy(a) / len(a) for a in frames])
            pred = np.array([model.evaluate(a).energies[0] / len(a) for a in frames])
            ax.plot(ref, pred - ref, "o", ms=3, color=f"C{j}", label=key)
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=m, xlabel="oracle E (eV/atom)")
    axes[0].set_ylabel("model − oracle E (eV/atom)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run_dir / "parity.png", dpi=120)
    plt.close(fig)
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def hal_frames(run_dir: Path) -> list[Atoms]:
    """The HAL set of a run, in labelling order (config_type "hal")."""
    from hal.loop.store import Store

    frames = Store(run_dir / "hal" / "data.db").labelled(source="hal")
    for a in frames:
        a.info["config_type"] = "hal"
    return frames
