"""The general HAL protocol: the user's own structures, the user's own oracle, staged HAL, one config file.

* ``[system]``: walker start structures from extxyz files or ASE databases (paths or globs; every frame
  is a start, or the first ``n_walkers``), ``initial`` labelled files (default: all the start
  structures, labelled by the oracle where they carry no labels), optional held-out ``test`` files
  (scored by ``hal report``), ``elements`` (default: those in the structures).
* ``[oracle]``: any ASE calculator, named by import path ``"package.module:Name"`` or by a factory in
  the user's own Python file ``"my_oracle.py:make"``, called with ``kwargs`` (a fresh one per call);
  ``timeout_s`` and the failure handling of ``hal.loop.Oracle`` (exceptions, NaN and time-outs are
  recorded, and the run goes on).
* ``[basis]``, ``[fit]``: the ACE basis and the Bayesian fit; ``[[stages]]`` run one after the other on
  one learner: temperature, timestep, pressure (barostat), τ_r or a fixed τ, Monte Carlo moves and the
  stopping criteria of each stage (see ``hal.dynamics.run_hal``).
Relative paths are taken from the config file's folder. The last model is ``model.npz`` in the run
directory (``hal export`` turns it into a LAMMPS file). The alloy protocol is this one with EMT and
generated fcc cells.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path

from ase import Atoms
from ase.io import write

from hal.config import ConfigError, Field, at_least, between, element, non_negative, positive
from hal.fit_config import BASIS, basis_kwargs, check_basis
from hal.io import DataError, read_many

STAGE = {
    "name": Field(str, required=True),
    "n_stable": Field(int, 5000, check=at_least(1)),
    "max_oracle_calls": Field(int, 100, check=non_negative),
    "temperature_K": Field(float, 800.0, check=positive),
    "timestep_fs": Field(float, 2.0, check=positive),
    "friction_fs": Field(float, 100.0, check=positive),
    "tau": Field(float, check=non_negative),
    "tau_rel": Field(float, 0.1, check=non_negative),
    "n_hist": Field(int, 100, check=at_least(1)),
    "s_tol": Field(float, 0.5, check=between(0.0, 1.0)),
    "f_tol": Field(float, check=positive),
    "eps": Field(float, 0.2, check=positive),
    "check_every": Field(int, 10, check=at_least(1)),
    "min_distance": Field(float, 0.5, check=non_negative),
    "pressure_GPa": Field(float),
    # 100 fs: from a solid-density start a 1000 fs barostat is still GPa off its target after 2000 steps
    "barostat_fs": Field(float, 100.0, check=positive),
    "compressibility_per_GPa": Field(float, 0.01, check=positive),
    "mc_every": Field(int, 0, check=non_negative),
    "mc_moves": Field(list, ["swap"], item=str, choices=("swap", "volume", "shape")),
    "trajectory_every": Field(int, 50, check=at_least(1)),
}

FIT = {
    "solver": Field(str, "brr", choices=("brr", "ard")),
    "committee_size": Field(int, 32, check=at_least(2)),
    "weights": Field(list, [30.0, 1.0, 1.0], item=float, check=non_negative),
    "f_max": Field(float, 20.0, check=positive),
    "dimers": Field(int, 0, check=non_negative),  # oracle-labelled dimers per species pair, r_in … r0 (hal.fit.dimers)
    "dimer_force_weight": Field(float, 0.1, check=positive),
}

SCHEMA = {
    "protocol": Field(str, "hal", choices=("hal",)),
    "run_dir": Field(str, "runs/hal"),
    "seed": Field(int, 0),
    "workers": Field(int, 2, check=at_least(1)),
    "scheduler": Field(str),
    "system": {
        "starts": Field(list, item=str, required=True),
        "initial": Field(list, [], item=str),
        "test": Field(list, [], item=str),
        "elements": Field(list, [], item=str, check=element),
        "n_walkers": Field(int, 0, check=non_negative),
    },
    "oracle": {
        "calculator": Field(str, required=True),
        "kwargs": Field(dict),
        "timeout_s": Field(float, check=positive),
    },
    "basis": BASIS,
    "fit": FIT,
    "stages": [STAGE],
}

_PATHS = (("system", "starts"), ("system", "initial"), ("system", "test"))


def resolve_paths(config: dict, base: Path) -> None:
    """Structure files and a file-based oracle factory taken relative to ``base`` (the config's folder)."""
    for table, key in _PATHS:
        config[table][key] = [p if Path(p).is_absolute() else str(base / p) for p in config[table][key]]
    module, sep, name = config["oracle"]["calculator"].rpartition(":")
    if module.endswith(".py") and not Path(module).is_absolute():
        config["oracle"]["calculator"] = f"{base / module}{sep}{name}"


@functools.cache
def calculator_factory(spec: str):
    """The class or factory that ``spec`` names: ``"package.module:Name"`` or ``"file.py:name"`` (a file
    is executed once per process, like an imported module)."""
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name:
        raise ConfigError(f"oracle.calculator: {spec!r} must look like 'package.module:Name' or 'file.py:factory'")
    try:
        if module.endswith(".py"):
            if not Path(module).exists():
                raise ConfigError(f"oracle.calculator: {module}: no such file")
            mod_spec = importlib.util.spec_from_file_location(Path(module).stem, module)
            mod = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(module)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (an import error of the user's module names the key)
        raise ConfigError(f"oracle.calculator: cannot import {module} ({type(exc).__name__}: {exc})") from exc
    if not callable(getattr(mod, name, None)):
        raise ConfigError(f"oracle.calculator: {module} has no callable {name!r}")
    return getattr(mod, name)


def make_calculator(spec: str, kwargs: dict):
    """A fresh calculator (module level, so that process pools and Dask workers can build their own)."""
    return calculator_factory(spec)(**kwargs)


def oracle_of(config: dict):
    """The run's ``hal.loop.Oracle``."""
    from hal.loop import Oracle

    o = config["oracle"]
    return Oracle(functools.partial(make_calculator, o["calculator"], dict(o.get("kwargs") or {})),
                  timeout_s=o.get("timeout_s"))  # fmt: skip


def check_stages(config: dict) -> None:
    """Stage names distinct, at least one stage."""
    if not config["stages"]:
        raise ConfigError("stages: at least one [[stages]] table is needed")
    names = [st["name"] for st in config["stages"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"stages: names must be distinct, got {names}")


def basis_of(b: dict, elements: list[str]):
    """The ACE basis of a ``[basis]`` table; a value the basis refuses names the table."""
    from hal.ace.basis import ACEBasis

    try:
        return ACEBasis(elements, **basis_kwargs(b, elements))
    except ValueError as exc:
        raise ConfigError(f"basis: {exc}") from exc


def fit_options(config: dict) -> dict:
    from hal.fit.design import Weights

    f = config["fit"]
    return {"solver": f["solver"], "committee_size": f["committee_size"],
            "weights": Weights(*f["weights"], f_max=f["f_max"])}  # fmt: skip


def _structures(patterns: list[str], key: str) -> list[tuple[str, int, Atoms]]:
    try:
        return read_many(patterns)
    except DataError as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def inputs(config: dict) -> tuple[list[Atoms], list[Atoms], list[Atoms], list[str]]:
    """Start structures, initial data, held-out data and the elements, checked: every structure is read,
    its elements are in the basis, its positions are finite and no two atoms coincide."""
    s = config["system"]
    every_start = _structures(s["starts"], "system.starts")
    if not every_start:
        raise ConfigError("system.starts: no structures")
    starts = every_start[: s["n_walkers"]] if s["n_walkers"] else every_start
    initial = _structures(s["initial"], "system.initial") if s["initial"] else every_start
    test = _structures(s["test"], "system.test")
    everything = every_start + initial + test
    elements = s["elements"] or sorted({e for _, _, a in everything for e in a.get_chemical_symbols()})
    basis = basis_of(config["basis"], elements)
    for path, i, atoms in everything:
        try:
            basis.neighbours(atoms)
        except ValueError as exc:
            raise ConfigError(f"{path}: configuration {i}: {exc}") from exc
    return [a for *_, a in starts], [a for *_, a in initial], [a for *_, a in test], elements


def check(config: dict) -> None:
    """Everything the schema cannot say, before a file is written: stages, basis, the oracle's import
    path, the structure files and their contents."""
    check_stages(config)
    check_basis(config["basis"])
    calculator_factory(config["oracle"]["calculator"])
    inputs(config)


def stage_settings(config: dict, index: int, progress: bool):
    """``LearnerSettings`` of stage ``index``."""
    from hal.loop import LearnerSettings

    stage = config["stages"][index]
    hal = {k: v for k, v in stage.items() if k not in ("name", "n_stable", "max_oracle_calls")}
    hal["mc_moves"] = tuple(hal["mc_moves"])
    return LearnerSettings(n_stable=stage["n_stable"], max_oracle_calls=stage["max_oracle_calls"],
                           seed=config["seed"], stage=stage["name"], stage_index=index, hal=hal,
                           fit=fit_options(config), progress=progress)  # fmt: skip


def with_dimers(config: dict, basis, initial: list[Atoms]) -> list[Atoms]:
    """The initial data and, after them (earlier runs resume), ``fit.dimers`` unlabelled dimers per species
    pair (``hal.fit.dimers``: the learner's oracle labels them; they keep the model repulsive below the data)."""
    from hal.fit.dimers import dimer_curves

    f = config["fit"]
    dimers = dimer_curves(basis, f["dimers"], force_weight=f["dimer_force_weight"]) if f["dimers"] else []
    return list(initial) + dimers


def run_stages(config: dict, run_dir: Path, basis, oracle, starts, initial, progress: bool):
    """Every ``[[stages]]`` table in turn on one learner; returns (summary per stage, the last learner)."""
    from hal.loop import Learner
    from hal.loop.executors import make_executor

    summary, learner = {}, None
    initial = with_dimers(config, basis, initial)
    with make_executor(config["workers"], config.get("scheduler")) as executor:
        for index, stage in enumerate(config["stages"]):
            settings = stage_settings(config, index, progress)
            learner = Learner(run_dir, basis, oracle, starts, initial, settings, executor)
            summary[stage["name"]] = learner.run()
    return summary, learner


def run(config: dict, run_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) the protocol in ``run_dir``; returns a summary per stage."""
    from hal.fit import fit

    check_stages(config)
    run_dir = Path(run_dir)
    starts, initial, test, elements = inputs(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    if test and not (run_dir / "test.xyz").exists():  # held-out data for `hal report`, written once
        write(run_dir / "test.tmp.xyz", test)
        (run_dir / "test.tmp.xyz").replace(run_dir / "test.xyz")
    basis = basis_of(config["basis"], elements)
    summary, learner = run_stages(config, run_dir, basis, oracle_of(config), starts, initial, progress)
    final = run_dir / "model.npz"
    if not final.exists():
        data = sorted(learner.store.labelled(), key=lambda a: a.info["uid"])
        fit(data, basis, seed=config["seed"], progress=progress, **fit_options(config)).save(final)
    summary["model"] = f"{final} (all {len(learner.store.labelled())} labelled structures; hal export it for LAMMPS)"
    return summary
