"""Transferability of HAL-SMD models: other chains and other loading rates, hexane-only against multi-chain.

Two HAL-SMD models of the main job's study (``protocols/hexane_smd.toml``, run or resumed in ``--out``):
``hal-smd``, trained on hexane pulls only, and ``hal-smd-multi``, one learner pulling ethane, butane and
hexane in turn (``chains = [2, 4, 6]``) from the same 40 MD frames. Each pulls C2…C11 chains at 1 Å/ps and
hexane at 0.25, 0.5, 2 and 4 Å/ps, every case paired with its own GFN2-xTB reference pulls from the same
start states (3 seeds; cached in the run directory). ``--post-break N`` trains and compares the
multi-chain learner with up to N labels per pull after the bond has broken (``hal-smd-multi-pbN``):
without them its fragments stay bound and max W lands at the end of the pull (results in
``hexane_transfer_pbN.md``); ``--train-chains 2 4 6 10`` trains it on other chains
(``hal-smd-multi-c2-4-6-10[-pbN]``, results in ``hexane_transfer_c2_4_6_10[_pbN].md``), ``--train-velocities
0.25 1 4`` at each of those loading rates (``…-v0.25-1-4…``); ``--seed S`` trains
the same setting again with other random draws (``…-sS``). ``--confirm 10`` pulls its cases that 3 seeds
leave within two standard errors of the goal again with 10 (the oracle's too; the tables report each case
with its most seeds). Writes ``benchmarks/results/hexane_transfer[_quick].md``; last line: the multi-chain
model's largest |ΔE_a| / E_a over the cases (goal ≤ 0.05).

    python benchmarks/hexane_transfer.py [--quick] [--out runs/hexane_smd] [--post-break N] [--train-chains N ...]
        [--train-velocities V ...] [--labels-per-pull N] [--seed S] [--confirm N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from publish import publish

from hal import protocols
from hal.config import load, validate
from hal.loop.learner import read_events
from hal.loop.store import Store
from hal.protocols import hexane_smd
from hal.protocols.hexane_report import transfer_cases, transfer_table

MULTI = {"name": "hal-smd-multi", "kind": "hal", "chains": [2, 4, 6], "n_initial": 40, "max_oracle_calls": 250,
         "sigma_tol": 0.005, "post_break": 0, "score_every": 25}  # fmt: skip
GOAL = 0.05  # |ΔE_a| / E_a on every case


def multi(post_break: int, chains: list[int] | None = None, seed: int = 0, velocities: list[float] | None = None,
          per_pull: int = 0) -> dict:  # fmt: skip
    """The multi-chain strategy, with up to ``post_break`` labels per pull after the break, pulling ``chains``
    (default C2, C4, C6; others are named in the strategy, e.g. ``hal-smd-multi-c2-4-6-10-pb2``) at each of
    ``velocities`` (Å/ps; default the study's, others named ``…-v0.25-1-4``), with the strategy's own ``seed``
    (> 0: another training of the same setting, named ``…-s<seed>``), with at most ``per_pull`` labels per pull
    (> 0, named ``…-l<per_pull>``)."""
    chains = chains or MULTI["chains"]
    name = MULTI["name"] + ("-c" + "-".join(map(str, chains)) if chains != MULTI["chains"] else "")
    name += "-v" + "-".join(f"{v:g}" for v in velocities) if velocities else ""
    name += (
        (f"-l{per_pull}" if per_pull else "")
        + (f"-pb{post_break}" if post_break else "")
        + (f"-s{seed}" if seed else "")
    )
    return {**MULTI, "name": name, "post_break": post_break, "chains": chains, "seed": seed,
            "velocities": list(velocities or []), "max_labels_per_pull": per_pull}  # fmt: skip


def config(quick: bool, post_break: int = 0, train_chains: list[int] | None = None, seed: int = 0,
           train_velocities: list[float] | None = None, per_pull: int = 0) -> dict:  # fmt: skip
    """The main job's configuration, the multi-chain strategy and the transfer cases (quick: a smaller
    study, 60- and 80-call models, C2 and C3, hexane at 4 Å/ps, 1 seed)."""
    cfg = load(protocols.default_config("hexane_smd"), hexane_smd.SCHEMA)
    strategy = multi(post_break, train_chains, seed, train_velocities, per_pull)
    models = {"models": ["hal-smd", strategy["name"]]}
    if quick:
        cfg.update(seeds=[0], initial={**cfg["initial"], "n_md": 100})
        hal = [{**s, "max_oracle_calls": 60} for s in cfg["strategies"] if s["kind"] == "hal"]
        cfg["strategies"] = hal + [{**strategy, "chains": train_chains or [2, 6], "max_oracle_calls": 80}]
        cfg["transfer"] = {**models, "chains": [2, 3], "velocities": [4.0], "seeds": [0]}
    else:
        cfg["strategies"] = [*cfg["strategies"], strategy]
        cfg["transfer"] = {**models, "chains": [2, 3, 4, 5, 7, 8, 9, 10, 11],
                           "velocities": [0.25, 0.5, 2.0, 4.0], "seeds": [0, 1, 2]}  # fmt: skip
    return validate(cfg, hexane_smd.SCHEMA)  # fills the new strategy's defaults


def undecided(cases: list[dict], model: str, goal: float = GOAL) -> list[tuple[int, float]]:
    """(chain, velocity) of a model's cases whose |ΔE_a| / E_a lies within two standard errors of ``goal``:
    their seeds do not decide which side of it they fall."""
    out = []
    for e in (e for e in cases if e["strategy"] == model):
        ref = np.mean(e["ea_reference"])
        se = e["spread_ea"] / np.sqrt(max(len(e["ea_model"]) - 1, 1)) / ref  # spread_ea: std with ddof 0
        if abs(abs(e["delta_ea"]) / ref - goal) <= 2 * se:
            out.append((e["chain"], e["velocity"]))
    return out


def worst(cases: list[dict], model: str) -> float:
    """The largest |ΔE_a| / E_a of a model over the transfer cases."""
    return max(abs(e["delta_ea"]) / np.mean(e["ea_reference"]) for e in cases if e["strategy"] == model)


def labels_by_chain(run_dir: Path, name: str) -> str:
    """``"C2: 31, C4: 40, C6: 20"``: the labels of a multi-chain learner by chain (and loading rate, Å/ps, where
    it pulled at several: ``"C2 at 0.25: 12, …"``)."""
    rows = list(Store(run_dir / "data.db").db.select(strategy=name))
    rates = len({r.get("velocity") for r in rows}) > 1
    keys = Counter((r.get("chain"), r.get("velocity") if rates else None) for r in rows)
    return ", ".join(f"C{n}" + (f" at {v:g}" if v is not None else "") + f": {c}" for (n, v), c in sorted(keys.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60/80-call models, C2 and C3, hexane at 4 Å/ps")
    ap.add_argument("--out", default=None, help="run directory (default: the main job's, runs/hexane_smd)")
    ap.add_argument("--chains", type=int, nargs="*", help="only these chains (default: C2…C11 but C6)")
    ap.add_argument("--velocities", type=float, nargs="*", help="only these loading rates for hexane (Å/ps)")
    ap.add_argument("--post-break", type=int, default=0, help="labels per pull after the break for the multi-chain "
                    "learner (default 0; N > 0 trains hal-smd-multi-pbN)")  # fmt: skip
    ap.add_argument("--train-chains", type=int, nargs="+", help="the chains the multi-chain learner pulls "
                    "(default 2 4 6; others train hal-smd-multi-c<chains>[-pbN])")  # fmt: skip
    ap.add_argument("--train-velocities", type=float, nargs="+", help="loading rates (Å/ps) the multi-chain "
                    "learner pulls each chain at (default the study's; others train …-v<rates>)")  # fmt: skip
    ap.add_argument("--labels-per-pull", type=int, default=0, help="at most N labels per pull of the multi-chain "
                    "learner, then the next case (default 0: no cap; N > 0 trains …-lN)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="another training of the same multi-chain setting "
                    "(its initial frames, committee samples and pull noise; named …-s<seed>)")  # fmt: skip
    ap.add_argument("--confirm", type=int, default=0, metavar="N", help="pull the multi-chain model's cases within "
                    "two standard errors of 5 %% again with N seeds (references included)")  # fmt: skip
    args = ap.parse_args()
    cfg = config(args.quick, args.post_break, args.train_chains, args.seed, args.train_velocities, args.labels_per_pull)
    name = cfg["transfer"]["models"][1]
    for key in ("chains", "velocities"):  # a subset of the cases, e.g. those whose references are cached
        if getattr(args, key) is not None:
            cfg["transfer"][key] = getattr(args, key)
    run_dir = Path(args.out or ("runs/hexane_transfer_quick" if args.quick else cfg["run_dir"]))
    t0 = time.perf_counter()
    hexane_smd.run(cfg, run_dir, progress=True)
    confirmed = ""
    if args.confirm and (close := undecided(transfer_cases(run_dir), name)):  # more seeds where 3 do not decide
        hexane = cfg["n_carbon"]  # its cases are the other loading rates; the other chains' are at the study's
        more = {"models": [name], "seeds": list(range(args.confirm)), "chains": [n for n, _ in close if n != hexane],
                "velocities": [v for n, v in close if n == hexane]}  # fmt: skip
        hexane_smd.run({**cfg, "strategies": [], "transfer": more}, run_dir, progress=True)
        confirmed = (f"Cases of `{name}` within two standard errors of {GOAL:.0%} after "
                     f"{len(cfg['transfer']['seeds'])} seeds, pulled again with {args.confirm} (`--confirm`): "
                     + ", ".join(f"C{n} at {v:g} Å/ps" for n, v in close) + ".\n\n")  # fmt: skip
    hexane_smd.report(run_dir, cfg)
    cases = transfer_cases(run_dir)
    calls = {e["strategy"]: e["oracle_calls"] for e in read_events(run_dir) if e["event"] == "score"}
    cmd = "python benchmarks/hexane_transfer.py " + " ".join(sys.argv[1:])
    wall = time.perf_counter() - t0
    summary = "".join(f"| `{m}` | {calls[m]} | {worst(cases, m):.1%} |\n" for m in cfg["transfer"]["models"])
    out = (f"{cmd}\n\nrun directory {run_dir}, wall {wall:.0f} s (this invocation; cached steps excluded)\n\n"
           f"| model | oracle calls (MD frames + HAL-SMD labels) | worst |ΔE_a| / E_a |\n|---|---:|---:|\n{summary}\n"
           f"Labels of `{name}` by chain: {labels_by_chain(run_dir, name)}.\n\n{confirmed}"
           f"{transfer_table(run_dir)}"
           f"transfer_worst_relative_delta_ea hal-smd: {worst(cases, 'hal-smd'):.3f}\n"
           f"transfer_worst_relative_delta_ea: {worst(cases, name):.3f}\n")  # fmt: skip
    publish("hexane_transfer" + name.removeprefix(MULTI["name"]).replace("-", "_"), out, args.quick)


if __name__ == "__main__":
    main()
