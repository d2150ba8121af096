"""Filtering protocol (HAL paper II.A): reduce a labelled pool greedily by max f_i, against random selection.

* ``[pool]``: the user's labelled extxyz / ASE db (``path``; energy and forces on every configuration),
  or, when empty, the packaged silicon pool generated and labelled once by the oracle and cached as
  ``pool.xyz`` in the run directory (see ``pool``), optionally restricted to some ``config_types``
  (e.g. ``["diamond*"]``, as the paper's property study). A stratified ``test_fraction`` is held out.
* ``[selection]``: from one start configuration, the greedy run adds the remaining configuration with
  the largest max_i f_i after every BRR refit (K-member committee), up to ``budget`` (a fraction of the
  pool's environments); ``random_seeds`` random runs pick from the same start. Every step is one line
  of ``<run>.jsonl`` (pick, config_type, environments, train and test RMSE overall and per config_type):
  a killed run resumes where it stopped, with the same picks. With ``full_fit``, one fit to the whole
  selectable pool gives the ceiling any selection can reach (``full.jsonl``).
* ``[properties]``: at each ``checkpoints`` fraction, diamond-Si properties of the model (E–V and B,
  C11/C12/C44, phonons, F(T), Cv(T)) against the oracle's → ``properties.jsonl``.
``hal report DIR`` draws the learning curves, property convergence, phonons and the selection histogram.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from tqdm import tqdm

from hal.config import ConfigError, Field, at_least, between, differences, element, non_negative, positive
from hal.fit import fit_normal_equations
from hal.fit.design import Weights, assemble, reference_energies
from hal.fit.metrics import errors
from hal.fit_config import BASIS, check_basis
from hal.io import append_jsonl, read_jsonl, repaired_jsonl
from hal.loop.executors import make_executor
from hal.protocols import hal as general
from hal.protocols.filtering import greedy, pool, properties

SCHEMA = {
    "protocol": Field(str, "filtering", choices=("filtering",)),
    "run_dir": Field(str, "runs/filtering"),
    "seed": Field(int, 0),
    "workers": Field(int, 2, check=at_least(1)),
    "scheduler": Field(str),
    "pool": {
        "path": Field(str, ""),
        "size": Field(float, 1.0, check=positive),
        "test_fraction": Field(float, 0.2, check=between(0.0, 0.9)),
        "start": Field(int, -1),
        "config_types": Field(list, [], item=str),
        "elements": Field(list, ["Si"], item=str, check=element),
    },
    "oracle": {
        "calculator": Field(str, "kumagai"),
        "kwargs": Field(dict),
    },
    "basis": {
        **BASIS,
        "r_cut": Field(float, 4.0, check=positive),
        "max_degree": Field(list, [20, 18, 15], item=int),
        "pair_degree": Field(int, 3, check=between(0, 20)),
        "pair_r_cut": Field(float, 4.0, check=positive),
    },  # fmt: skip
    "fit": {
        "committee_size": Field(int, 32, check=at_least(2)),
        "weights": Field(list, [5.0, 1.0, 10.0], item=float, check=non_negative),
        "f_max": Field(float, 20.0, check=positive),
    },
    "selection": {
        "budget": Field(float, 0.10, check=between(0.0, 1.0)),
        "random_seeds": Field(int, 5, check=non_negative),
        "eps": Field(float, check=positive),
        "eps_per_config": Field(bool, False),
        "full_fit": Field(bool, True),
    },
    "properties": {
        "enabled": Field(bool, True),
        "checkpoints": Field(list, [0.01, 0.02, 0.03, 0.05, 0.10], item=float, check=positive),
        "phonon_supercell": Field(int, 4, check=at_least(2)),
    },
}


def resolve_paths(config: dict, base: Path) -> None:
    """A pool file relative to the config's folder."""
    p = config["pool"]["path"]
    if p and not Path(p).is_absolute():
        config["pool"]["path"] = str(base / p)


def oracle(config: dict):
    """A fresh oracle calculator: "kumagai" (embedded) or an import path as in the general protocol."""
    o = config["oracle"]
    if o["calculator"] in pool.ORACLES:
        return pool.ORACLES[o["calculator"]](**dict(o.get("kwargs") or {}))
    return general.make_calculator(o["calculator"], dict(o.get("kwargs") or {}))


def check(config: dict) -> None:
    """The basis and the user's pool (read and checked here, before a run directory is written)."""
    check_basis(config["basis"])
    basis_of(config)
    if config["pool"]["path"]:
        pool.read_pool(config["pool"]["path"], config["pool"]["elements"])
    elif config["oracle"]["calculator"] not in pool.ORACLES:
        general.calculator_factory(config["oracle"]["calculator"])  # an import error names the key


def basis_of(config: dict):
    return general.basis_of(config["basis"], config["pool"]["elements"])


def load_pool(config: dict, run_dir: Path, progress: bool) -> list[Atoms]:
    """The user's pool, or the default one (generated once, atomically cached in ``run_dir``), restricted
    to the config_types that ``pool.config_types`` names (shell patterns, e.g. "diamond*"; none: all)."""
    p = config["pool"]
    if p["path"]:
        configs = pool.read_pool(p["path"], p["elements"])
    else:
        cached = run_dir / "pool.xyz"
        if not cached.exists():
            generated = pool.default_pool(oracle(config), config["seed"], p["size"], progress)
            tmp = run_dir / "pool.tmp.xyz"
            write(tmp, generated)
            tmp.replace(cached)
        configs = read(cached, ":")
    if p["config_types"]:
        configs = [a for a in configs if any(fnmatch(a.info.get("config_type", ""), t) for t in p["config_types"])]
        if len(configs) < 3:
            raise ConfigError(f"pool.config_types: {p['config_types']} leave {len(configs)} configurations (need 3)")
    return configs


def start_index(configs: list[Atoms], train: np.ndarray, start: int) -> int:
    """Position in ``train`` of the start: ``start`` (a pool index) if given, else the first 300 K diamond
    frame of the default pool, else the first training configuration."""
    if start >= 0:
        where = np.flatnonzero(train == start)
        if not len(where):
            raise ConfigError(f"pool.start: configuration {start} is not in the training part of the pool")
        return int(where[0])
    types = [configs[i].info.get("config_type") for i in train]
    return types.index("diamond_md_300K") if "diamond_md_300K" in types else 0


def _table(e: dict) -> dict:
    return {g: {k: round(v, 6) for k, v in row.items() if k in ("E_rmse", "F_rmse")} for g, row in e.items()}


def run_selection(name: str, train: list[Atoms], test: list[Atoms], start: int, config: dict, run_dir: Path,
                  e0: dict, executor: Executor | None, on_checkpoint, progress: bool) -> list[dict]:  # fmt: skip
    """One selection run (``name`` "greedy" or "random_<seed>") to the budget, resumed from its log."""
    f, s = config["fit"], config["selection"]
    sel = greedy.Selection(train, basis_of(config), e0, Weights(*f["weights"], f_max=f["f_max"]),
                           f["committee_size"], config["seed"])  # fmt: skip
    log = run_dir / f"{name}.jsonl"
    done = repaired_jsonl(log)
    order = None if name == "greedy" else greedy.random_order(len(train), start, int(name.split("_")[1]))
    checkpoints = sorted(config["properties"]["checkpoints"])
    reached: set[float] = set()

    def after(record: dict) -> None:  # properties at the checkpoints this step reaches first
        for c in checkpoints:
            if c not in reached and record["fraction"] >= c:
                reached.add(c)
                on_checkpoint(name, c, record, sel.fit)

    for r in done:  # replay the log; a checkpoint that a crash left without properties is done now
        sel.add(r["pick"])
        after(r)
    total = sum(len(a) for a in train)
    bar = tqdm(total=s["budget"], initial=sel.n_env / total, desc=name, unit="pool", disable=not progress,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3f}/{total:.3f} of the environments")  # fmt: skip
    pick, fi, eps = (start, None, None) if not done else (None, None, None)
    model = None  # the model of the current training set, once fitted
    while sel.n_env / total < s["budget"] and len(sel.picked) < len(train):
        if pick is None and order is None:  # greedy: the next pick from the current model
            if model is None:
                model = sel.fit()
            pick, fi, eps = sel.greedy_pick(model, s.get("eps"), executor, s["eps_per_config"])
        elif pick is None:
            pick = int(order[len(sel.picked) - 1])
        sel.add(pick)
        model = sel.fit()
        record = {"step": len(sel.picked) - 1, "pick": pick, "config_type": train[pick].info.get("config_type"),
                  "n_atoms": len(train[pick]), "n_env": sel.n_env, "fraction": sel.n_env / total, "max_fi": fi,
                  "eps": eps, "train": _table(errors(model, [train[i] for i in sel.picked])),
                  "test": _table(errors(model, test))}  # fmt: skip
        append_jsonl(log, record)
        done.append(record)
        bar.update(sel.n_env / total - bar.n)
        after(record)
        pick = None
    bar.close()
    return done


def full_fit(train: list[Atoms], test: list[Atoms], config: dict, run_dir: Path, e0: dict, on_checkpoint,
             progress: bool) -> dict:  # fmt: skip
    """The ceiling of any selection: one fit to the whole selectable pool, its errors and properties
    (``full.jsonl``, one record at fraction 1)."""
    f = config["fit"]

    def fit():
        basis = basis_of(config)
        ne = assemble(basis, train, e0, Weights(*f["weights"], f_max=f["f_max"]), n_workers=config["workers"],
                      progress=progress)  # fmt: skip
        return fit_normal_equations(ne, basis, e0, "brr", f["committee_size"], config["seed"])

    log = run_dir / "full.jsonl"
    done = repaired_jsonl(log)
    if done:
        on_checkpoint("full", 1.0, done[0], fit)  # properties a crash left undone
        return done[0]
    model = fit()
    record = {"step": len(train) - 1, "n_env": sum(len(a) for a in train), "fraction": 1.0,
              "train": _table(errors(model, train)), "test": _table(errors(model, test))}  # fmt: skip
    append_jsonl(log, record)
    on_checkpoint("full", 1.0, record, lambda: model)
    return record


FREE = ("workers", "scheduler", "run_dir", "selection.budget", "selection.random_seeds", "properties.checkpoints")


def claim(config: dict, run_dir: Path) -> None:
    """Record the settings of a run in ``run_dir`` (``settings.json``); a directory holding a run of other
    settings is refused, naming them (the logs would mix). Workers, the budget, more seeds or
    checkpoints may change: a resumed run extends what is there."""
    path = run_dir / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = [d for d in differences(old, json.loads(json.dumps(config))) if not d.startswith(FREE)]
        if diff:
            raise ConfigError(f"{run_dir} holds a filtering run with other settings ({'; '.join(diff[:4])}): "
                              f"start it in another directory")  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "settings.tmp.json"
    tmp.write_text(json.dumps(config, indent=1))
    tmp.replace(path)


def run(config: dict, run_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume) the protocol in ``run_dir``; returns the headline figures."""
    check(config)
    run_dir = Path(run_dir)
    claim(config, run_dir)
    configs = load_pool(config, run_dir, progress)
    train_idx, test_idx = pool.split(configs, config["pool"]["test_fraction"], config["seed"])
    train, test = [configs[i] for i in train_idx], [configs[i] for i in test_idx]
    start = start_index(configs, train_idx, config["pool"]["start"])
    e0 = reference_energies(configs, config["pool"]["elements"])
    split_path = run_dir / "split.json"
    if not split_path.exists():
        split_path.write_text(json.dumps({"train": train_idx.tolist(), "test": test_idx.tolist(), "start": start,
                                          "e0": e0, "n_env": sum(len(a) for a in train)}))  # fmt: skip
    props = config["properties"]
    prop_log = run_dir / "properties.jsonl"
    have = {(r["run"], r["checkpoint"]) for r in repaired_jsonl(prop_log)}
    if props["enabled"] and ("oracle", 0.0) not in have:
        append_jsonl(prop_log, {"run": "oracle", "checkpoint": 0.0, "props": properties.diamond_properties(
            oracle(config), props["phonon_supercell"])})  # fmt: skip
    ref = next((r["props"] for r in read_jsonl(prop_log) if r["run"] == "oracle"), None)

    def on_checkpoint(name: str, c: float, record: dict, fit) -> None:
        if not props["enabled"] or (name, c) in have:
            return
        p = properties.diamond_properties(fit().calculator(), props["phonon_supercell"])
        append_jsonl(prop_log, {"run": name, "checkpoint": c, "fraction": record["fraction"], "props": p,
                           "compare": properties.compare(p, _arrays(ref))})  # fmt: skip

    names = ["greedy"] + [f"random_{k}" for k in range(config["selection"]["random_seeds"])]
    with make_executor(config["workers"], config.get("scheduler")) as executor:
        runs = {n: run_selection(n, train, test, start, config, run_dir, e0, executor, on_checkpoint, progress)
                for n in names}  # fmt: skip
    if config["selection"]["full_fit"]:
        full_fit(train, test, config, run_dir, e0, on_checkpoint, progress)
    return summary(runs)


def _arrays(d: dict) -> dict:
    """Property records as read back from JSON, with the phonon arrays as numpy arrays again."""
    return {**d, "phonons": {k: np.asarray(v) if k != "labels" else v for k, v in d["phonons"].items()}}


def held_out_force_rmse_at(records: list[dict], fraction: float) -> float:
    """Test force RMSE of the first step at or past ``fraction`` of the environments (NaN if none)."""
    for r in records:
        if r["fraction"] >= fraction:
            return r["test"]["all"]["F_rmse"]
    return float("nan")


def summary(runs: dict[str, list[dict]], at: float = 0.05) -> dict:
    """Greedy and random test force RMSE at ``at`` of the environments, and their ratio."""
    g = held_out_force_rmse_at(runs["greedy"], at)
    rnd = [held_out_force_rmse_at(v, at) for k, v in runs.items() if k.startswith("random")]
    out = {"greedy_F_rmse": g, "steps": len(runs["greedy"])}
    if rnd:
        out.update(random_F_rmse=float(np.mean(rnd)), random_F_rmse_spread=float(np.std(rnd)),
                   random_F_rmse_median=float(np.median(rnd)), filtered_over_random=g / float(np.mean(rnd)),
                   filtered_over_random_median=g / float(np.median(rnd)))  # fmt: skip
    return {"filtering": out}


def report(run_dir: Path, config: dict) -> Path:
    """Plots and ``report.md`` of a filtering run (``hal.protocols.filtering.figures``)."""
    from hal.protocols.filtering import figures

    return figures.write(run_dir, config)
