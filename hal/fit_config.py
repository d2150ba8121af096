"""``hal fit CONFIG.toml``: the fit's data, basis, solver, committee and weights from one file.

    data = ["train/*.xyz"]            # extxyz or ASE .db, paths or globs, relative to this file
    test = ["test.xyz"]               # held out (default: a random test_fraction of the data)
    out = "model.npz"
    [basis]                           # as ACEBasis: order, max_degree, r_cut, r_in, r0, pair_degree, pair_r_cut
    r_cut_pairs = { "C-H" = 4.5 }     # per species pair, over r_cut (also r_in_pairs)
    [fit]                             # solver, committee_size, weights [w_E, w_F, w_V], f_max, e0 = { C = -1.2 }
    [config_type_weights]             # per config_type: [w_E, w_F, w_V] for its configurations
    md = [30.0, 1.0, 1.0]
The result is the namespace the command-line flags give, so both take the same checks and code path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hal.config import ConfigError, Field, at_least, between, element, load, non_negative, positive

# the [basis] table of every config file (hal fit, the general and alloy protocols)
BASIS = {
    "order": Field(int, 3, check=between(1, 4)),
    "max_degree": Field(list, [12, 10, 8], item=int, check=at_least(1)),
    "r_cut": Field(float, 5.0, check=positive),
    "r_in": Field(float, check=positive),
    "r0": Field(float, check=positive),
    "r_cut_pairs": Field(dict),
    "r_in_pairs": Field(dict),
    "pair_degree": Field(int, check=between(0, 20)),
    "pair_r_cut": Field(float, check=positive),
}

SCHEMA = {
    "data": Field(list, item=str, required=True),
    "test": Field(list, [], item=str),
    "test_fraction": Field(float, 0.1, check=between(0.0, 0.99)),
    "out": Field(str, "model.npz"),
    "elements": Field(list, [], item=str, check=element),
    "seed": Field(int, 0),
    "workers": Field(int, check=at_least(1)),
    "keys": {"energy": Field(str, "energy"), "forces": Field(str, "forces"), "stress": Field(str, "stress")},
    "basis": BASIS,
    "fit": {
        "solver": Field(str, "brr", choices=("brr", "ard")),
        "ard_threshold": Field(float, 1e4, check=positive),
        "committee_size": Field(int, 32, check=non_negative),
        "weights": Field(list, [30.0, 1.0, 1.0], item=float, check=non_negative),
        "f_max": Field(float, 20.0, check=positive),
        "e0": Field(dict),
    },
    "config_type_weights": Field(dict),
}


def _pairs(table: dict | None, key: str) -> dict:
    """A per-pair table {"A-B": Å}, checked."""
    for pair, value in (table or {}).items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0 or len(pair.split("-")) != 2:
            raise ConfigError(f"basis.{key}.{pair}: expected 'A-B' = a positive number (Å), got {value!r}")
    return {pair: float(v) for pair, v in (table or {}).items()}


def per_pair(elements: list[str], value: float | None, pairs: dict) -> float | dict | None:
    """``value`` for every species pair, overridden by ``pairs``; pairs left out of a table without a
    value take the basis default."""
    if not pairs:
        return value
    if value is None:
        return dict(pairs)
    return {f"{a}-{b}": pairs.get(f"{a}-{b}", pairs.get(f"{b}-{a}", value))
            for i, a in enumerate(elements) for b in elements[i:]}  # fmt: skip


def basis_kwargs(b: dict, elements: list[str]) -> dict:
    """``ACEBasis`` keyword arguments of a validated [basis] table (per-pair tables over the scalars);
    a bad per-pair entry is a ``ConfigError`` naming it."""
    kw = {"order": b["order"], "max_degree": b["max_degree"]}
    kw.update({k: b[k] for k in ("r0", "pair_degree", "pair_r_cut") if b.get(k) is not None})
    for key in ("r_cut", "r_in"):
        value = per_pair(elements, b.get(key), _pairs(b.get(f"{key}_pairs"), f"{key}_pairs"))
        if value is not None:
            kw[key] = value
    return kw


def check_basis(b: dict) -> None:
    """What the [basis] schema cannot say."""
    if len(b["max_degree"]) != b["order"]:
        raise ConfigError(f"basis.max_degree: one degree per order ({b['order']}), got {b['max_degree']}")


def namespace(path: str | Path) -> argparse.Namespace:
    """The ``hal fit`` options of a config file (relative paths from the file's folder)."""
    path = Path(path)
    c = load(path, SCHEMA)
    base = path.resolve().parent

    def resolve(p: str) -> str:
        return p if Path(p).is_absolute() else str(base / p)

    b, f, k = c["basis"], c["fit"], c["keys"]
    type_weights = {}
    for name, w in (c.get("config_type_weights") or {}).items():
        if not (isinstance(w, list) and len(w) == 3 and all(isinstance(x, int | float) and x >= 0 for x in w)):
            raise ConfigError(f"{path}: config_type_weights.{name}: expected [w_E, w_F, w_V] >= 0, got {w!r}")
        type_weights[name] = [float(x) for x in w]
    e0 = f.get("e0")
    try:
        check_basis(b)
        basis_kwargs(b, [])  # per-pair tables checked before anything is read
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return argparse.Namespace(
        data=[resolve(p) for p in c["data"]], test=[resolve(p) for p in c["test"]], test_fraction=c["test_fraction"],
        out=resolve(c["out"]), elements=c["elements"] or None, order=b["order"], max_degree=b["max_degree"],
        r_cut=b["r_cut"], pair_degree=b.get("pair_degree"), basis=b, solver=f["solver"],
        ard_threshold=f["ard_threshold"],
        committee=f["committee_size"], seed=c["seed"], weights=f["weights"], f_max=f["f_max"],
        e0=",".join(f"{el}={v}" for el, v in e0.items()) if e0 else None, energy_key=k["energy"],
        forces_key=k["forces"], stress_key=k["stress"], workers=c.get("workers"), type_weights=type_weights,
    )  # fmt: skip
