"""HAL against active learning on PEG(2) (HAL paper Fig. 6), with GFN2-xTB (tblite) as the oracle.

Runs the packaged protocol (``protocols/polymer.toml``: τ_r = 0 (AL), 0.05, 0.1, 0.2; 500 K, 0.5 fs; max f_i
criterion with the bond/temperature guard; the MD stability test of every saved model) once per protocol
``--seeds`` (initial MD, walkers and stability test all drawn from it) in
``benchmarks/results/polymer[_quick][_s<seed>]_run`` (resumable), and writes
``benchmarks/results/polymer[_quick].md`` with Fig. 6 of each seed and, per strategy and seed, the first
iteration whose model keeps every seed intact, with the exploratory MD steps and oracle calls behind it.

    python benchmarks/polymer.py [--quick] [--fresh] [--seeds 0 1 2] [--pyscf] [--n-stable N] [--dimers N]
        [--tau-rel 0 0.1]

``--n-stable N`` (the learner's stop: every walker N steps without a trigger), ``--dimers N`` (``fit.dimers``:
N oracle dimers per species pair in the initial data of every strategy, a repulsive core) and ``--tau-rel`` run
a variant in its own ``polymer_ns<N>_d<N>[_s<seed>]_run`` folders and ``polymer_ns<N>_d<N>.md``.

Goal: the best HAL strategy reaches "every seed stable" with ≥ 5× fewer exploratory MD steps than AL,
and no more oracle calls. Last line (of the console and of the results file):
``hal_over_al_md_steps_to_stable: <ratio>``, HAL's advantage in the issue's name: the median over
protocol seeds of the per-seed ratio, for the τ_r whose median is best (a seed where AL never gets there
counts its steps so far, a lower bound; one where HAL never does counts 0).
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import NamedTuple

from hal.config import load
from hal.io import read_jsonl
from hal.protocols import default_config
from hal.protocols import polymer as P

RESULTS = Path(__file__).resolve().parent / "results"
NAN = float("nan")
PYSCF = {"n_initial": 6, "tau_rel": [0.0, 0.1], "max_oracle_calls": 12}  # 96 s per PEG(2) call on one core


class Outcome(NamedTuple):
    """One strategy of one seed: its first stable model's row (None: never), the row of the iteration it
    stays stable from (None: its last model is not stable) and its last model's row."""

    first: dict | None
    stays: dict | None
    last: dict


def run_seed(config: dict, tag: str, seed: int, fresh: bool) -> tuple[dict[float, Outcome], str, float]:
    """One protocol run at ``seed``: ({τ_r: Outcome}, its report text, wall s)."""
    config = copy.deepcopy(config)
    config["seed"] = seed
    run_dir = RESULTS / (f"{tag}_run" if seed == 0 else f"{tag}_s{seed}_run")
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    P.run(config, run_dir, progress=True)
    wall = time.perf_counter() - t0
    text = P.report(run_dir, config).read_text().replace("](", f"]({run_dir.name}/")
    rows = read_jsonl(run_dir / "stability.jsonl")
    last = {r["tau_rel"]: r for r in sorted(rows, key=lambda r: r["iteration"])}
    at = {(r["tau_rel"], r["iteration"]): r for r in rows}
    taus = config["hal"]["tau_rel"]
    return {t: Outcome(P.first_stable(rows, t), at.get((t, P.stable_from(rows, t))), last[t]) for t in taus}, text, wall


def ratio(al: Outcome, hal: Outcome, which: str = "first") -> tuple[float, bool]:
    """(AL's exploratory MD steps to its first stable model (``which="stays"``: to the model it stays stable
    from) over HAL's, whether it is only a lower bound). AL never there: its last model's steps stand in (a
    lower bound); HAL never there: 0."""
    a, h = getattr(al, which), getattr(hal, which)
    if h is None:
        return 0.0, False
    return (a or al.last)["md_steps"] / max(h["md_steps"], 1), a is None


def ratio_table(
    firsts: dict[int, dict[float, Outcome]], label: dict[float, str], which: str
) -> tuple[list[str], dict[float, float]]:
    """Markdown rows: per strategy, the seeds that got there (``which``: "first" stable model or the one it
    "stays" stable from) and AL's steps over its own per seed, with their median; and {τ_r: median}."""
    n, got = len(firsts), "stable in" if which == "first" else "stays stable in"
    lines = [f"| strategy | {got} | ratio per seed | median |", "|---|---:|---|---:|"]
    medians = {}
    for t in label:
        ok = sum(getattr(first[t], which) is not None for first in firsts.values())
        if t == 0.0:
            lines.append(f"| {label[t]} | {ok}/{n} | | |")
            continue
        rs = [ratio(first[0.0], first[t], which) for first in firsts.values()]
        medians[t] = statistics.median(r for r, _ in rs)
        cells = ", ".join(f"{'≥' if low else ''}{r:.2f}" for r, low in rs)
        lines.append(f"| {label[t]} | {ok}/{n} | {cells} | {medians[t]:.2f} |")
    return lines, medians


def verdict(
    firsts: dict[int, dict[float, Outcome]],
    label: dict[float, str],
    medians: dict[float, float],
    stays: dict[float, float],
    tag: str,
) -> list[str]:
    """The goal (best HAL median ≥ 5× fewer exploratory MD steps than AL, with no more oracle calls), said
    plainly with its evidence, and the variants tried (the other ``polymer*.md`` files and their headlines)."""
    if not medians:
        return []
    best = max(medians, key=medians.get)

    def calls(t: float) -> float:  # median oracle calls to the first stable model (the budget used where never)
        return statistics.median((f[t].first or f[t].last)["oracle_calls"] for f in firsts.values())

    wins = sum(ratio(f[0.0], f[best])[0] >= 5 for f in firsts.values())
    met = medians[best] >= 5 and calls(best) <= calls(0.0)
    n = len(firsts)
    out = ["## Verdict", "",
           f"**The goal is {'met' if met else 'not met'}** here. The best HAL strategy by median, {label[best]}, "
           f"takes a median AL/HAL = {medians[best]:.2f} (goal ≥ 5; the paper ≈ 10): AL's exploratory MD steps to "
           f"its first stable model over HAL's, ≥ 5 in {wins} of {n} seeds; {stays[best]:.2f} counting only a "
           f"model every later one is as stable. Median oracle calls to the first stable model (all it used where "
           f"it never got there): {calls(best):g} against AL's {calls(0.0):g}.", ""]  # fmt: skip
    for t in label:
        ok = sum(f[t].first is not None for f in firsts.values())
        keep = sum(f[t].stays is not None for f in firsts.values())
        ratios = f"; median AL/HAL {medians[t]:.2f} (first stable), {stays[t]:.2f} (stays stable)" if t else ""
        out.append(f"- {label[t]}: stable in {ok}/{n} seeds, stays stable in {keep}/{n}{ratios}.")
    tried = []
    for path in sorted(RESULTS.glob("polymer*.md")):
        if path.stem == tag or "rare" in path.stem or "quick" in path.stem:
            continue
        text = path.read_text().strip().splitlines()
        command = re.match(r"`([^`]*)`", text[0]) if text else None
        if command and text[-1].startswith("hal_over_al_md_steps_to_stable"):
            tried.append(f"- `{command.group(1)}` (`{path.name}`): {text[-1]}")
    if tried:
        out += ["", "What else was tried (each file's command and headline; see its own verdict):", "", *tried]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller basis, budget and stability test")
    ap.add_argument("--fresh", action="store_true", help="delete earlier run directories first")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="protocol seeds, one run each")
    ap.add_argument("--pyscf", action="store_true", help="the paper's ωB97X/6-31G(d) (PySCF) labels GFN2-xTB MD "
                    f"frames and the walkers' triggers, at a reduced budget: {PYSCF}")  # fmt: skip
    ap.add_argument("--n-stable", type=int, help="the learner's stop: every walker this many steps untriggered")
    ap.add_argument("--dimers", type=int, help="fit.dimers: oracle dimers per species pair in the initial data")
    ap.add_argument("--tau-rel", type=float, nargs="+", help="only these strategies (0: AL, which is required)")
    args = ap.parse_args()
    config = load(default_config("polymer"), P.SCHEMA)
    tag = "polymer_quick" if args.quick else "polymer"
    if args.quick:
        config["basis"]["max_degree"] = [10, 8, 6]
        config["hal"].update(n_stable=1000, max_oracle_calls=16)
        config["stability"].update(seeds=4, steps=2000)
    if args.n_stable:
        tag += f"_ns{args.n_stable}"
        config["hal"]["n_stable"] = args.n_stable
    if args.dimers is not None:
        tag += f"_d{args.dimers}"
        config["fit"]["dimers"] = args.dimers
    if args.pyscf:
        tag += "_pyscf"
        config["oracle"].update(calculator="hal.oracles:PySCF", kwargs={"method": "wb97x", "basis": "6-31g*"})
        config["system"].update(md_calculator="tblite", n_initial=PYSCF["n_initial"])
        config["hal"].update(tau_rel=PYSCF["tau_rel"], max_oracle_calls=PYSCF["max_oracle_calls"])
    if args.tau_rel:
        if 0.0 not in args.tau_rel:
            ap.error("--tau-rel needs 0 (AL): every ratio is AL's steps over a HAL strategy's")
        config["hal"]["tau_rel"] = sorted(args.tau_rel)
    taus = config["hal"]["tau_rel"]
    firsts, texts, walls = {}, [], []
    for seed in args.seeds:
        firsts[seed], text, wall = run_seed(config, tag, seed, args.fresh)
        texts.append(f"## Protocol seed {seed}\n\n" + text.replace("# Polymer run", "### Polymer run", 1))
        walls.append(wall)
    label = {t: "AL (τ = 0)" if t == 0 else f"HAL τ_r = {t:g}" for t in taus}
    lines = ["| seed | " + " | ".join(label[t] for t in taus) + " |", "|---:|" + "---:|" * len(taus)]
    for seed, first in firsts.items():
        cells = []
        for t in taus:
            f, keep, last = first[t]
            cells.append(f"{f['md_steps']} steps, {f['oracle_calls']} calls (it. {f['iteration']}; stays stable "
                         f"from it. {'–' if keep is None else keep['iteration']})" if f else
                         f"never ({last['md_steps']} steps, {last['oracle_calls']} calls)")  # fmt: skip
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "Per strategy: seeds whose learner reached a model that keeps every MD seed intact, and AL's "
              "exploratory MD steps to its first stable model over the strategy's, per seed (≥: AL never got there "
              "and its steps up to its last model stand in, a lower bound; 0: this strategy never got there). "
              "The median of the per-seed ratios is the headline.", ""]  # fmt: skip
    table, medians = ratio_table(firsts, label, "first")
    lines += table + ["", "The same for the model each strategy *stays* stable from (every later model stable too: "
                      "one lucky model does not count):", ""]  # fmt: skip
    table, stays = ratio_table(firsts, label, "stays")
    lines += table
    best = max(medians, key=medians.get) if medians else None
    headline = medians[best] if best is not None else NAN
    lines += ["", *verdict(firsts, label, medians, stays, tag)]
    flags = "".join(f" --{f}" for f in ("quick", "pyscf") if getattr(args, f))
    flags += f" --n-stable {args.n_stable}" if args.n_stable else ""
    flags += f" --dimers {args.dimers}" if args.dimers is not None else ""
    flags += f" --tau-rel {' '.join(f'{t:g}' for t in taus)}" if args.tau_rel else ""
    head = (f"`python benchmarks/polymer.py{flags} --seeds {' '.join(map(str, args.seeds))}`"
            f": {sum(walls):.0f} s in this invocation (finished seeds resume). Basis ν = {config['basis']['order']}, "
            f"max_degree {config['basis']['max_degree']}; {config['hal']['max_oracle_calls']} oracle calls per "
            f"strategy at most, n_stable {config['hal']['n_stable']}; oracle {config['oracle']['calculator']} "
            f"{config['oracle'].get('kwargs') or ''}, initial MD driven by the {config['system']['md_calculator']} "
            f"({config['system']['n_initial']} frames). A protocol seed draws the initial MD, the "
            f"walkers and the stability test's seeds. \"Stays stable from\": the first iteration from which every "
            f"later model of the strategy is stable too (– when its last model is not).\n\n")  # fmt: skip
    body = "# HAL against AL on PEG(2) over protocol seeds\n\n" + "\n".join(lines) + "\n\n" + "\n".join(texts)
    last = f"hal_over_al_md_steps_to_stable: {headline:.2f}"  # AL's steps over the best HAL's: ≥ 5 is the goal
    (RESULTS / f"{tag}.md").write_text(head + body.rstrip("\n") + "\n\n" + last + "\n")
    for seed, first in firsts.items():
        for t, (f, _, _) in first.items():
            said = f"iteration {f['iteration']}, {f['md_steps']} MD steps, {f['oracle_calls']} calls" if f else "never"
            print(f"seed {seed} τ_r {t:g}: first stable model {said}")
    print(f"best HAL strategy by median: {label[best] if best is not None else 'none'}")
    print(last)


if __name__ == "__main__":
    main()
