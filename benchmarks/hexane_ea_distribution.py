"""The decisive E_a comparison: the distribution of E_a over thermal starts, the oracle against the main job's models.

One pull's E_a is not a stable number (``hexane_chaos.py``): the snap is a symmetry-breaking instability, so
the quantity a pull defines is the distribution of E_a over independent 10 K starts, and its mean. This runs
N tblite reference pulls (seeds 0 … N−1, each from its own relaxed and 10 K-equilibrated chain, two at a time
on a process pool) and pulls the same starts with the main job's models (``hal run hexane_smd``, run first
when its run directory has no final HAL-SMD model: ≈ 7 min). Every pull's E_a, break d0 and broken bond is
appended to ``benchmarks/results/hexane_ea_distribution_run/pulls.jsonl`` as it arrives, so a rerun (or a
larger N) only adds what is missing; the pulls' arrays stay in the study's run directory.

Per model: the mean E_a with its 95 % confidence interval, the paired difference from the oracle (same
starts) and the unpaired (Welch) one with theirs, a two-sample Kolmogorov–Smirnov test, and which bond broke
where. Writes ``benchmarks/results/hexane_ea_distribution[_quick].md`` and ``….png``.

    python benchmarks/hexane_ea_distribution.py [--quick] [--seeds N] [--study runs/hexane_smd]
        [--models NAME ...] [--post-break N ...] [--trainings K [--training-seeds M]]

``--trainings K`` trains the main job's setting K more times, each with its own seed (``hal-smd-s<k>`` in
``runs/hexane_smd_s<k>``, ≈ 7 min each; with ``--training-post-break N`` the setting of ``hal-smd-pbN``), pulls
each on the first ``--training-seeds`` seeds (50) and reports the mean offset over the trainings with its
interval: the method's offset rather than one draw's.

``--post-break N`` also trains HAL-SMD with up to N labels per pull after the bond has broken (the main job's
strategy otherwise, ``runs/hexane_smd_pb<N>``, ≈ 7 min) and pulls it: the main job labels nothing after the
break, and an earlier run's model's E_a offset was work done after it (``hexane_snap_work.py``).

The models are kept beside their pulls (``hexane_ea_distribution_run/models/``, each pull records its model's
hash and oracle calls) and pulled from there, so a rerun reports the models on record; a model is trained only
when none is kept under its name.

Goal: the HAL-SMD model's mean E_a within 1 kcal/mol (0.043 eV) of the oracle's, with a 95 % half-width
≤ 1 kcal/mol. Last line: ``ea_mean_difference_ev: <paired mean difference> ± <95 % half-width>``.
"""

from __future__ import annotations

import argparse
import collections
import filecmp
import hashlib
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from hal.config import load
from hal.io import append_jsonl, read_jsonl
from hal.loop.learner import read_events
from hal.protocols import default_config
from hal.protocols import hexane_smd as H
from hal.protocols.hexane_eval import bond_name, compare, mean_ci, model_pull
from hal.protocols.hexane_reference import PullSettings, reference_pull

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
RUN = RESULTS / "hexane_ea_distribution_run"
# the main job's models, in the order of the tables: HAL-SMD after 25 and 50 labels and at its end (do more
# labels close the gap?), the multi-chain HAL-SMD models of hexane_transfer.py where they have run (without and
# with labels after the break; on C2, C4, C6 and C10), the MD baseline; ``--post-break N`` models
# (``hal-smd-pbN``) come after ``hal-smd``
MODELS = ("hal-smd-0025", "hal-smd-0050", "hal-smd", "hal-smd-multi", "hal-smd-multi-pb2",
          "hal-smd-multi-c2-4-6-10-pb2", "baseline-md")  # fmt: skip
KCAL = 0.0433641  # eV per kcal/mol
SEEDED = re.compile(r"(hal-smd(?:-pb\d+)?)-s\d+")  # a setting trained again with its own seed (--trainings)


def _record(who: str, seed: int, pull, n_carbon: int, **model) -> dict:
    return {"who": who, "seed": seed, "ea": pull.activation_energy, "break_d0": pull.break_d0,
            "bond": bond_name(pull.broken_bond, n_carbon), **model}  # fmt: skip


def reference_job(study: Path, n_carbon: int, seed: int, settings: PullSettings) -> dict:
    """The oracle's pull of a seed (cached in the study's run directory)."""
    return _record("oracle", seed, reference_pull(study, n_carbon, seed, settings), n_carbon)


def model_job(who: str, path: Path, study: Path, n_carbon: int, seed: int, settings: PullSettings,
              model: dict) -> dict:  # fmt: skip
    """A model's pull from the oracle's start state of a seed (``model``: its hash and oracle calls, recorded)."""
    from hal.model import LinearACE

    pull, _ = model_pull(LinearACE.load(path).calculator(threads=1), study, n_carbon, seed, settings)
    return _record(who, seed, pull, n_carbon, **model)


def model_hash(path: Path) -> str:
    """The first 12 hex digits of the model file's SHA-256: which model a recorded pull came from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def oracle_calls(study: Path, name: str) -> int | str:
    """Oracle calls behind a model (its strategy's score events: ``<strategy>-<labels>`` or the last)."""
    strategy, _, labels = name.rpartition("-") if name[-4:].isdigit() else (name, "", "")
    scores = [e for e in read_events(study) if e["event"] == "score" and e["strategy"] == strategy]
    if labels:
        scores = [e for e in scores if e["iteration"] == int(labels)]
    return max((e["oracle_calls"] for e in scores), default="?")


def variant_model(config: dict, main: Path, post_break: int = 0, seed: int = 0) -> tuple[str, Path]:
    """The main job's HAL-SMD strategy with up to ``post_break`` labels per pull after the bond has broken and its
    own ``seed`` (another training of the setting), trained (once, resumable) as ``hal-smd[-pbN][-sK]`` in its own
    run directory ``runs/hexane_smd[_pbN][_sK]`` from the main job's reference data (``reference/`` linked to
    ``main``'s: the same MD frames and start states)."""
    name = "hal-smd" + (f"-pb{post_break}" if post_break else "") + (f"-s{seed}" if seed else "")
    study = ROOT / "runs" / ("hexane_smd" + name.removeprefix("hal-smd").replace("-", "_"))
    if not trained(name, study):
        study.mkdir(parents=True, exist_ok=True)
        if not (study / "reference").exists():
            (study / "reference").symlink_to((main / "reference").resolve(), target_is_directory=True)
        hal_smd = next(s for s in config["strategies"] if s["name"] == "hal-smd")
        strategy = {**hal_smd, "name": name, "post_break": post_break, "seed": seed}
        H.run({**config, "strategies": [strategy]}, study, progress=True)
    return name, study


def trained(name: str, home: Path) -> bool:
    """Whether a model of that name is kept or in ``home``'s run directory."""
    return (RUN / "models" / f"{name}.npz").exists() or model_path(home, name) is not None


def kept_model(name: str, home: Path) -> Path | None:
    """The model whose pulls are on record (``RUN/models/<name>.npz``), kept there from ``home``'s run directory
    the first time it is pulled. A newer training in ``home`` is reported, not pulled: compare it under a new
    name (rename the kept file and its rows)."""
    kept, fresh = RUN / "models" / f"{name}.npz", model_path(home, name)
    if not kept.exists() and fresh is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fresh, kept)
    if kept.exists() and fresh is not None and not filecmp.cmp(fresh, kept, shallow=False):
        print(f"{name}: pulling the kept {kept.name}; {fresh} is another training of it (not pulled)")
    return kept if kept.exists() else None


def model_path(study: Path, name: str) -> Path | None:
    for p in (study / "models" / f"{name}-final.npz", study / "models" / f"{name}.npz"):
        if p.exists():
            return p
    return None


def pulls(study: Path, config: dict, seeds: list[int], workers: int, homes: dict[str, Path]) -> list[dict]:
    """Every pull of the seeds (the oracle first, then each model of ``homes``: name → run directory), computing
    only the missing ones. Every model pulls from the oracle's start states in ``study``."""
    settings, n = PullSettings(**config["pull"]), config["n_carbon"]
    path = RUN / "pulls.jsonl"
    records = read_jsonl(path) if path.exists() else []
    done = {(r["who"], r["seed"]) for r in records}
    models, info = {}, {}
    for m, home in homes.items():
        if (p := kept_model(m, home)) is None:
            continue
        h = model_hash(p)
        recorded = [r for r in records if r["who"] == m]
        if any(r.get("model") != h for r in recorded):  # never two models' pulls under one name
            raise SystemExit(f"{path} holds {m} pulls of another model than {p} ({h}): rename those rows' who "
                             f"(e.g. {m}-run1) or remove them")  # fmt: skip
        calls = next((r["oracle_calls"] for r in recorded if "oracle_calls" in r), None) or oracle_calls(home, m)
        models[m], info[m] = p, {"model": h, "oracle_calls": calls}
    with ProcessPoolExecutor(workers) as pool:
        for who in ("oracle", *models):  # the model pulls start from the states the oracle's prepared
            futures = [pool.submit(reference_job, study, n, s, settings) if who == "oracle" else
                       pool.submit(model_job, who, models[who], study, n, s, settings, info[who])
                       for s in seeds if (who, s) not in done]  # fmt: skip
            for k, future in enumerate(as_completed(futures)):
                append_jsonl(path, future.result())
                print(f"{who}: {k + 1}/{len(futures)} pulls", flush=True)
    return read_jsonl(path)


def over_budget(calls, budget: int = 150) -> str:
    """A clause for a model trained past the goal's oracle-call budget."""
    return f" (over the goal's {budget})" if isinstance(calls, int) and calls > budget else ""


def report(records: list[dict], seeds: list[int], tag: str, wall: float, args: argparse.Namespace,
           homes: dict[str, Path]) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wanted = set(seeds)
    by = collections.defaultdict(dict)
    rec = collections.defaultdict(list)
    for r in records:
        if r["seed"] in wanted:
            by[r["who"]][r["seed"]] = r["ea"]
            rec[r["who"]].append(r)
    ref = by["oracle"]
    command = " ".join(
        ["--quick"] * args.quick
        + ["--seeds", str(len(seeds))]
        + ["--models", *args.models] * (tuple(args.models) != MODELS)
        + ["--post-break", *map(str, args.post_break)] * bool(args.post_break)
        + ["--trainings", str(args.trainings), "--training-seeds", str(args.training_seeds)] * bool(args.trainings)
        + ["--training-post-break", str(args.training_post_break)] * bool(args.trainings and args.training_post_break)
    )
    lines = [f"`python benchmarks/hexane_ea_distribution.py {command}`: "
             f"{wall:.0f} s this run (pulls already in `pulls.jsonl` are not redone); tblite GFN2-xTB reference, "
             "k = 10 eV/Å², 1 Å/ps, 10 K starts; 95 % intervals (Student t).", "",
             "| pulls | oracle calls | seeds | mean E_a (eV) | 95 % CI | paired ΔE_a (eV) | 95 % CI | unpaired ΔE_a | "
             "95 % CI | KS statistic | KS p |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    mean, half = mean_ci(list(ref.values()))
    lines.append(f"| oracle | – | {len(ref)} | {mean:.3f} | ± {half:.3f} | – | – | – | – | – | – |")
    comparisons, calls = {}, {}
    earlier = sorted(set(by) - set(homes) - {"oracle"})  # pulls of models no longer in a run directory
    for who in [m for m in homes if m in by] + earlier:
        c = comparisons[who] = compare(by[who], ref)
        calls[who] = rec[who][-1].get("oracle_calls") or (oracle_calls(homes[who], who) if who in homes else "?")
        lines.append(f"| {who} | {calls[who]} | {c.n_model} | {c.model_mean:.3f} | "
                     f"± {c.model_ci:.3f} | {c.paired:+.3f} | ± {c.paired_ci:.3f} | {c.unpaired:+.3f} | "
                     f"± {c.unpaired_ci:.3f} | {c.ks_statistic:.2f} | {c.ks_pvalue:.2g} |")  # fmt: skip
    lines += [
        "",
        "Broken bonds and where (break d0, mean ± sd, Å):",
        "",
        "| pulls | bonds | break d0 |",
        "|---|---|---:|",
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for j, who in enumerate(["oracle", *(m for m in comparisons if not SEEDED.fullmatch(m))]):
        bonds = collections.Counter(r["bond"] for r in rec[who])
        d0 = np.array([r["break_d0"] for r in rec[who]], float)
        d0 = d0[np.isfinite(d0)]
        lines.append(f"| {who} | {', '.join(f'{b} {n}' for b, n in bonds.most_common())} | "
                     f"{d0.mean():.3f} ± {d0.std():.3f} |" if len(d0) else f"| {who} | none broke | – |")  # fmt: skip
        ea = np.array([r["ea"] for r in rec[who]])
        axes[0].hist(ea, bins=20, alpha=0.5, color=f"C{j}", label=f"{who} ({len(ea)})")
        if len(d0):
            axes[1].hist(d0, bins=20, alpha=0.5, color=f"C{j}", label=who)
    axes[0].set(xlabel="E_a (eV)", ylabel="pulls")
    axes[1].set(xlabel="spring length at the break, d0 (Å)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{tag}.png", dpi=120)
    plt.close(fig)
    finals = [m for m in comparisons if m.startswith("hal-smd") and not m[-4:].isdigit()]  # no checkpoints
    trainings = [m for m in finals if "multi" not in m]  # hexane-only: the spread between trainings
    for who in finals:
        c = comparisons[who]
        goal = "the goal (|ΔE_a| within 1 kcal/mol with a half-width ≤ 1 kcal/mol)"
        verdict = (f"meets {goal}, its whole interval inside ± 1 kcal/mol" if abs(c.paired) + c.paired_ci <= KCAL else
                   f"meets {goal} as worded, but its interval reaches past ± 1 kcal/mol"
                   if abs(c.paired) <= KCAL and c.paired_ci <= KCAL else
                   f"misses {goal}: its whole interval lies beyond ± 1 kcal/mol" if abs(c.paired) - c.paired_ci > KCAL
                   else f"is resolved but misses {goal}" if c.paired_ci <= KCAL else
                   f"does not yet resolve {goal}")  # fmt: skip
        lines += ["", f"{who} against the oracle: {c.paired:+.3f} ± {c.paired_ci:.3f} eV paired "
                  f"({c.paired / KCAL:+.2f} ± {c.paired_ci / KCAL:.2f} kcal/mol) over {c.n_paired} seeds after "
                  f"{calls[who]} oracle calls{over_budget(calls[who])}; this {verdict}."]  # fmt: skip
    if len(trainings) > 1:  # one training's offset is one draw: how far apart do trainings land?
        offsets = np.array([comparisons[m].paired for m in trainings])
        widest = max(comparisons[m].paired_ci for m in trainings)
        lines += [
            "",
            f"Between the {len(trainings)} hexane-only HAL-SMD trainings above ({', '.join(trainings)}): "
            f"paired offsets from {offsets.min():+.3f} to {offsets.max():+.3f} eV, standard deviation "
            f"{offsets.std(ddof=1):.3f} eV, against 95 % half-widths of at most {widest:.3f} eV within each.",
        ]
    draws = collections.defaultdict(list)  # setting → its trainings with their own seeds
    for m in comparisons:
        if x := SEEDED.fullmatch(m):
            draws[x[1]].append(m)
    for setting, seeded in draws.items():
        method = [setting] * (setting in comparisons) + seeded  # one setting, its own seed each
        offsets = [comparisons[m].paired for m in method]
        mean, half = mean_ci(offsets)
        inside = "inside" if abs(mean) + half <= KCAL else "not inside"
        lines += ["", f"The method rather than one draw: {len(method)} trainings of the setting `{setting}` "
                  f"({', '.join(method)}; each its own seed for the initial frames, committee samples and pull "
                  f"noise, all from the same reference data) land at paired offsets "
                  f"{', '.join(f'{o:+.3f}' for o in offsets)} eV: mean **{mean:+.3f} ± {half:.3f} eV** (95 %, "
                  f"Student t over the trainings; sd {np.std(offsets, ddof=1):.3f} eV), {inside} "
                  "± 1 kcal/mol."]  # fmt: skip
    c = comparisons.get("hal-smd")
    lines += ["", f"![E_a and break d0 distributions]({tag}.png)"]
    if c is not None:  # the headline closes the file too, not only the console
        lines += ["", headline(c)]
    (RESULTS / f"{tag}.md").write_text("\n".join(lines) + "\n")


def headline(c) -> str:
    """The benchmark's last line: the main job's paired mean E_a difference and its 95 % half-width (eV)."""
    return f"ea_mean_difference_ev: {c.paired:.3f} ± {c.paired_ci:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 seeds")
    ap.add_argument("--seeds", type=int, help="number of seeds (default 200; 20 with --quick)")
    ap.add_argument("--study", default=str(ROOT / "runs" / "hexane_smd"), help="the main job's run directory")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", nargs="+", choices=MODELS, default=MODELS, help="the main job's models to pull")
    ap.add_argument(
        "--post-break",
        type=int,
        nargs="*",
        default=[],
        metavar="N",
        help="also train and pull HAL-SMD with up to N labels per pull after the break (hal-smd-pbN)",
    )
    ap.add_argument("--trainings", type=int, default=0, metavar="K", help="train the main job's HAL-SMD setting K "
                    "more times, each with its own seed (hal-smd-s1 … -sK); their mean offset")  # fmt: skip
    ap.add_argument("--training-post-break", type=int, default=0, metavar="N", help="the setting --trainings "
                    "draws again: the main job's with N labels after each break (hal-smd-pbN-sK)")  # fmt: skip
    ap.add_argument("--training-seeds", type=int, default=50, metavar="M", help="pulls of each extra training "
                    "(the first M seeds; default 50)")  # fmt: skip
    args = ap.parse_args()
    n_seeds = args.seeds or (20 if args.quick else 200)
    tag = "hexane_ea_distribution_quick" if args.quick else "hexane_ea_distribution"
    config = load(default_config("hexane_smd"), H.SCHEMA)
    study = Path(args.study)
    t0 = time.perf_counter()
    if not trained("hal-smd", study):  # the main job (resumable), whose models are compared
        H.run(config, study, progress=True)
    main_models = [m for m in MODELS if m in args.models]
    homes = dict.fromkeys(main_models[: main_models.index("hal-smd") + 1] if "hal-smd" in main_models else [], study)
    homes |= dict(variant_model(config, study, post_break=n) for n in args.post_break)
    homes |= dict.fromkeys([m for m in main_models if m not in homes], study)
    RUN.mkdir(parents=True, exist_ok=True)
    trainings = dict(
        variant_model(config, study, args.training_post_break, seed=k) for k in range(1, args.trainings + 1)
    )
    records = pulls(study, config, list(range(n_seeds)), args.workers, homes)
    if trainings:
        records = pulls(study, config, list(range(min(args.training_seeds, n_seeds))), args.workers, trainings)
    report(records, list(range(n_seeds)), tag, time.perf_counter() - t0, args, homes | trainings)
    print((RESULTS / f"{tag}.md").read_text(), end="")  # its last line is the headline


if __name__ == "__main__":
    main()
