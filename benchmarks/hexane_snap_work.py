"""Where the models' E_a offset sits: the work at the snap against max W over the whole pull, paired with the oracle.

E_a = max W over the pull. The oracle's work peaks ≈ 0.05 Å after the bond breaks and then stays flat (the
fragments fly apart); a model that keeps the fragments bound goes on doing work to the end of the pull. This
pulls the main job's models (those ``hexane_ea_distribution.py`` pulled and kept, by its names, else the study's
``models/<name>.npz``) from the oracle's start states (seeds 0 … N−1, as ``hexane_ea_distribution.py``,
whose reference pulls it reuses from the study directory) and compares, per seed, W at the snap (max W up to
0.05 Å past the break) and max W. Cached in ``benchmarks/results/hexane_snap_work.jsonl``.

``--case N V`` does the same for the study's other transfer cases (a chain of N carbons pulled at V Å/ps, e.g.
``--case 5 1 --case 6 0.5``: the chain's stretch scaled as in ``hexane_transfer.py``, whose reference pulls
it reuses), with the models of the study's ``models/<name>-final.npz`` too; results in
``hexane_snap_work_cases.md``.

    python benchmarks/hexane_snap_work.py [--quick] [--seeds N] [--models hal-smd hal-smd-run1 ...]
        [--case N V ...]

Last line: ``snap_work_difference_ev: <paired mean> ± <95 % half-width>`` of the first model.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from hexane_ea_distribution import RUN
from publish import publish

from hal.config import load
from hal.io import append_jsonl, read_jsonl
from hal.protocols import default_config
from hal.protocols import hexane_smd as H
from hal.protocols.hexane_eval import mean_ci, model_pull
from hal.protocols.hexane_reference import PullSettings, reference_pull

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / "results" / "hexane_snap_work.jsonl"
KEPT = RUN / "models"  # the models hexane_ea_distribution.py pulled
PAST = 0.05  # Å past the break: where the oracle's work peaks


def snap_and_max(pull) -> tuple[float, float]:
    """(W at the snap, max W) of a pull (eV)."""
    w, d0 = np.asarray(pull.work), np.asarray(pull.d0)
    return float(w[d0 <= pull.break_d0 + PAST].max()), float(w.max())


def model_file(who: str, study: Path) -> Path:
    """The model ``hexane_ea_distribution.py`` kept under that name, else the study's ``models/<who>.npz`` or
    ``models/<who>-final.npz``."""
    if (KEPT / f"{who}.npz").exists():
        return KEPT / f"{who}.npz"
    final = study / "models" / f"{who}-final.npz"
    return final if final.exists() else study / "models" / f"{who}.npz"


def case_key(record: dict) -> tuple:
    """(who, seed, chain, velocity) of a cached pull; rows from before ``--case`` are hexane at 1 Å/ps."""
    return record["who"], record["seed"], record.get("chain", 6), record.get("velocity", 1.0)


def job(args: tuple) -> dict:
    who, seed, study, n, v, settings = args
    if who == "oracle":
        pull = reference_pull(study, n, seed, settings)
    else:
        from hal.model import LinearACE

        pull, _ = model_pull(LinearACE.load(model_file(who, study)).calculator(threads=1), study, n, seed, settings)
    w_snap, w_max = snap_and_max(pull)
    return {"who": who, "seed": seed, "chain": n, "velocity": v, "w_snap": w_snap, "w_max": w_max}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 seeds")
    ap.add_argument("--seeds", type=int, help="number of seeds (default 200; 20 with --quick)")
    ap.add_argument("--models", nargs="+", default=["hal-smd", "hal-smd-run1", "hal-smd-multi-final"])
    ap.add_argument("--study", default=str(ROOT / "runs" / "hexane_smd"), help="the main job's run directory")
    ap.add_argument("--case", nargs=2, type=float, action="append", metavar=("N", "V"),
                    help="a transfer case: N carbons at V Å/ps (default: hexane at 1 Å/ps)")  # fmt: skip
    args = ap.parse_args()
    seeds = list(range(args.seeds or (20 if args.quick else 200)))
    cases = [(int(n), v) for n, v in args.case] if args.case else [(6, 1.0)]
    study = Path(args.study)
    done = {case_key(r) for r in read_jsonl(CACHE)} if CACHE.exists() else set()
    present = [who for who in args.models if model_file(who, study).exists()]  # the others: their cached seeds
    config = load(default_config("hexane_smd"), H.SCHEMA)
    pull = PullSettings(**config["pull"])
    todo = [(who, s, study, n, v, H.case_settings(pull, config["n_carbon"], n, v)) for n, v in cases
            for who in ("oracle", *present) for s in seeds if (who, s, n, v) not in done]  # fmt: skip
    with ProcessPoolExecutor(2) as pool:
        for r in pool.map(job, todo):
            append_jsonl(CACHE, r)
    by: dict = {}
    for r in read_jsonl(CACHE):
        by.setdefault(case_key(r)[2:], {}).setdefault(r["who"], {})[r["seed"]] = r
    command = " ".join(["python benchmarks/hexane_snap_work.py"] + ["--quick"] * args.quick
                       + ["--seeds", str(len(seeds)), "--models", *args.models]
                       + [f"--case {n} {v:g}" for n, v in cases] * bool(args.case))  # fmt: skip
    lines = [f"`{command}`: paired with the oracle over the seeds each model has; W at the snap = max W up to "
             f"{PAST} Å past the break; 95 % intervals (Student t); % of the oracle's mean E_a.", "",
             "| case | model | seeds | Δ W at the snap (eV) | Δ max W = ΔE_a (eV) |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    first = None
    for n, v in cases:
        ref = by.get((n, v), {}).get("oracle", {})
        e_a = np.mean([r["w_max"] for r in ref.values()]) if ref else np.nan
        for who in args.models:
            mine = by.get((n, v), {}).get(who, {})
            common = [s for s in seeds if s in mine and s in ref]
            d_snap = mean_ci([mine[s]["w_snap"] - ref[s]["w_snap"] for s in common])
            d_max = mean_ci([mine[s]["w_max"] - ref[s]["w_max"] for s in common])
            first = first or d_snap
            snap, peak = (f"{d[0]:+.3f} ± {d[1]:.3f} ({d[0] / e_a:+.1%})" for d in (d_snap, d_max))
            lines.append(f"| C{n} at {v:g} Å/ps | {who} | {len(common)} | {snap} | {peak} |")
    stem = "hexane_snap_work" + "_cases" * bool(args.case)
    publish(stem, "\n".join(lines) + f"\n\nsnap_work_difference_ev: {first[0]:.3f} ± {first[1]:.3f}\n", args.quick)


if __name__ == "__main__":
    main()
