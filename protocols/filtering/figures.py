"""Report of a filtering run: learning curves (paper Fig. 1b), property convergence, phonons and
thermal properties (Fig. 2), a Table I of elastic moduli, and the selection histogram by config_type."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from hal.io import read_jsonl
from hal.protocols.filtering import held_out_force_rmse_at, properties

MODULI = ("B", "C11", "C12", "C44")


def selection_logs(run_dir: Path) -> dict[str, list[dict]]:
    names = sorted(p.stem for p in run_dir.glob("*.jsonl") if p.stem == "greedy" or p.stem.startswith("random_"))
    return {n: read_jsonl(run_dir / f"{n}.jsonl") for n in names}


def _curve(records: list[dict], key: str, grid: np.ndarray) -> np.ndarray:
    """Force RMSE (``key`` "train"/"test") on a grid of environment fractions (step-wise, NaN before the start)."""
    x = np.array([r["fraction"] for r in records])
    y = np.array([r[key]["all"]["F_rmse"] for r in records])
    i = np.searchsorted(x, grid, side="right") - 1
    return np.where(i >= 0, y[np.clip(i, 0, None)], np.nan)


def plot_learning(runs: dict[str, list[dict]], path: Path, full: dict | None = None) -> None:
    """Train and test force RMSE against the fraction of the pool's environments, greedy and random
    (and the whole-pool fit's test RMSE, ``full``, as a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(r[-1]["fraction"] for r in runs.values() if r)
    grid = np.linspace(0, top, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, style in (("test", "-"), ("train", ":")):
        g = runs.get("greedy")
        if g:
            ax.plot(grid * 100, _curve(g, key, grid), style, color="C0", label=f"filtered, {key}")
        rnd = np.array([_curve(v, key, grid) for k, v in runs.items() if k.startswith("random") and v])
        if len(rnd):  # median and quartiles: a seed that extrapolates wildly would swamp a mean
            q1, med, q3 = np.percentile(rnd, [25, 50, 75], axis=0)
            ax.plot(grid * 100, med, style, color="C1", label=f"random (median of {len(rnd)}), {key}")
            if key == "test":
                ax.fill_between(grid * 100, q1, q3, color="C1", alpha=0.2, label="random, quartiles")
    if full is not None:
        ax.axhline(full["test"]["all"]["F_rmse"], color="k", lw=0.8, ls="--", label="whole pool, test")
    ax.set(xlabel="environments in the training set (% of the pool)", ylabel="force RMSE (eV/Å)", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_selection(runs: dict[str, list[dict]], path: Path) -> dict[str, Counter]:
    """Histogram of picks by config_type (greedy against all random runs together, as fractions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rnd = [r for k, v in runs.items() if k.startswith("random") for r in v]
    counts = {"filtered": Counter(r["config_type"] for r in runs.get("greedy", [])),
              "random": Counter(r["config_type"] for r in rnd)}  # fmt: skip
    types = sorted(set(counts["filtered"]) | set(counts["random"]))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    w = 0.4
    for j, (name, c) in enumerate(counts.items()):
        total = max(sum(c.values()), 1)
        ax.bar(np.arange(len(types)) + (j - 0.5) * w, [c[t] / total for t in types], w, label=name)
    ax.set_xticks(np.arange(len(types)), types, rotation=40, ha="right", fontsize=8)
    ax.set(ylabel="fraction of the picks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return counts


def plot_properties(props: list[dict], path: Path) -> None:
    """Moduli errors against the checkpoint, and at the largest checkpoint the phonon bands, F(T), Cv(T)
    and the E–V curve of the filtered model, a random one and the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = next(r["props"] for r in props if r["run"] == "oracle")
    models = [r for r in props if r["run"] not in ("oracle", "full")]
    full = next((r["props"] for r in props if r["run"] == "full"), None)
    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    ax = axes[0, 0]
    for j, key in enumerate(MODULI):
        for name, style in (("greedy", "-o"), ("random", "--s")):
            rows = sorted((r for r in models if r["run"].startswith(name)), key=lambda r: r["checkpoint"])
            cps = sorted({r["checkpoint"] for r in rows})
            err = [np.mean([abs(r["compare"][key]) for r in rows if r["checkpoint"] == c]) * 100 for c in cps]
            ax.plot(
                np.array(cps) * 100,
                err,
                style,
                color=f"C{j}",
                label=f"{key} {'filtered' if name == 'greedy' else 'random'}",
            )
    ax.axhline(2, color="k", lw=0.5)
    if full is not None:  # the whole-pool fit's errors, at the right edge
        x = max(r["checkpoint"] for r in models) * 100
        ref_ = next(r["props"] for r in props if r["run"] == "oracle")
        for j, key in enumerate(MODULI):
            ax.plot([x], [abs(full[key] / ref_[key] - 1) * 100], "*", ms=10, color=f"C{j}")
    ax.set(xlabel="% of the environments", ylabel="|error| (%)", yscale="log", title="elastic moduli")
    ax.legend(fontsize=6, ncol=2)
    last = max(r["checkpoint"] for r in models)
    picks = {"oracle": ref}
    for name in ("greedy", "random_0"):
        row = next((r for r in models if r["run"] == name and r["checkpoint"] == last), None)
        if row:
            picks["filtered" if name == "greedy" else "random"] = row["props"]
    if full is not None:
        picks["whole pool"] = full
    styles = {"oracle": ("k", "-"), "filtered": ("C0", "--"), "random": ("C1", ":"), "whole pool": ("C2", "-.")}
    ax = axes[0, 1]
    for name, p in picks.items():
        ph = p["phonons"]
        c, ls = styles[name]
        ax.plot(ph["x"], np.asarray(ph["bands"]), color=c, ls=ls, lw=1)
        ax.plot([], [], color=c, ls=ls, label=name)
    ph = ref["phonons"]
    for x in ph["special_x"]:
        ax.axvline(x, color="0.7", lw=0.5)
    ax.set_xticks(ph["special_x"], ["Γ" if s == "G" else s for s in ph["labels"]])
    ax.set(ylabel="frequency (THz)", title=f"phonons at {last * 100:g} %")
    ax.legend(fontsize=8)
    for ax, key, label in ((axes[1, 0], "F", "F (meV/atom)"), (axes[1, 1], "Cv", "Cv (k_B/atom)")):
        for name, p in picks.items():
            c, ls = styles[name]
            ax.plot(p["phonons"]["T"], p["phonons"][key], color=c, ls=ls, label=name)
        ax.set(xlabel="T (K)", ylabel=label)
        ax.legend(fontsize=8)
    oe = np.asarray(ref["eos"]["E"])
    for name, p in picks.items():
        c, ls = styles[name]
        e = np.asarray(p["eos"]["E"])
        axes[0, 2].plot(p["eos"]["V"], (e - e.min()) * 1e3, color=c, ls=ls, marker=".", label=name)
        axes[1, 2].plot(np.asarray(p["eos"]["strains"]) - 1, ((e - e.min()) - (oe - oe.min())) * 1e3, color=c, ls=ls,
                        marker=".", label=name)  # fmt: skip
    axes[0, 2].set(xlabel="V (Å³/atom)", ylabel="E − E_min (meV/atom)", title="E–V")
    axes[1, 2].set(xlabel="lattice strain", ylabel="E–V error (meV/atom)")
    for ax in axes[:, 2]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def property_table(props: list[dict]) -> str:
    """Table I: moduli (GPa), worst phonon error, F(300 K) error and E–V curve error at each checkpoint
    (random: mean ± sd)."""
    ref = next(r["props"] for r in props if r["run"] == "oracle")
    lines = ["| model | % env | B | C11 | C12 | C44 | max phonon error % | ΔF(300 K) meV/atom | E–V error meV/atom "
             "| all within goals |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    lines.append(f"| oracle | – | {' | '.join(f'{ref[k]:.1f}' for k in MODULI)} | – | – | – | – |")
    for name in ("greedy", "random", "full"):
        for c in sorted({r["checkpoint"] for r in props if r["run"].startswith(name)}):
            rows = [r for r in props if r["run"].startswith(name) and r["checkpoint"] == c]

            def cell(vals, spec):
                return f"{np.mean(vals):{spec}}" + (f" ± {np.std(vals):{spec}}" if len(vals) > 1 else "")

            mod = " | ".join(cell([r["props"][k] for r in rows], ".1f") for k in MODULI)
            ph = cell([100 * r["compare"]["phonon_max_rel"] for r in rows], ".1f")
            dF = cell([r["compare"]["F_300K_meV"] for r in rows], ".2f")
            ev = cell([r["compare"]["EV_max_meV"] for r in rows], ".1f")
            ok = sum(properties.converged(r["compare"], properties.GOALS) for r in rows)
            label = {"greedy": "filtered", "full": "whole pool"}.get(name, f"random ({len(rows)} seeds)")
            lines.append(f"| {label} | {100 * c:g} | {mod} | {ph} | {dF} | {ev} | {ok}/{len(rows)} |")
    return "\n".join(lines)


def convergence_fraction(props: list[dict], name: str) -> dict[str, float | None]:
    """The smallest checkpoint from which each property stays within its goal (None: never), for the
    greedy run or (``name`` "random") the seeds' mean error."""
    out = {}
    for key, bound in properties.GOALS.items():
        cps = sorted({r["checkpoint"] for r in props if r["run"].startswith(name)})
        ok = [np.mean([abs(r["compare"][key]) for r in props if r["run"].startswith(name) and r["checkpoint"] == c])
              <= bound for c in cps]  # fmt: skip
        first = next((c for j, c in enumerate(cps) if all(ok[j:])), None)
        out[key] = first
    return out


def write(run_dir: Path, config: dict) -> Path:
    """learning.png, selection.png, properties.png and report.md in ``run_dir``; returns report.md."""
    runs = {k: v for k, v in selection_logs(run_dir).items() if v}
    if not runs:
        raise FileNotFoundError(f"{run_dir}: no selection log (greedy.jsonl) yet")
    full = next(iter(read_jsonl(run_dir / "full.jsonl")), None)
    plot_learning(runs, run_dir / "learning.png", full)
    counts = plot_selection(runs, run_dir / "selection.png")
    split = json.loads((run_dir / "split.json").read_text())
    lines = [f"# Filtering run {run_dir}", "",
             f"Pool: {len(split['train'])} configurations ({split['n_env']} environments) to select from, "
             f"{len(split['test'])} held out (stratified by config_type).", "",
             "![learning curves](learning.png)", "", "## Test force RMSE (eV/Å)", "",
             "| % env | filtered | random mean ± sd | random median | filtered / random mean | filtered / median |",
             "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for c in sorted(set(config["properties"]["checkpoints"])):
        g = held_out_force_rmse_at(runs.get("greedy", []), c)
        rnd = [held_out_force_rmse_at(v, c) for k, v in runs.items() if k.startswith("random")]
        m, med = (np.mean(rnd), np.median(rnd)) if rnd else (np.nan, np.nan)
        lines.append(f"| {100 * c:g} | {g:.4f} | {m:.4f} ± {np.std(rnd) if rnd else np.nan:.4f} | {med:.4f} | "
                     f"{g / m:.2f} | {g / med:.2f} |")  # fmt: skip
    if full is not None:
        lines.append(f"| 100 (whole pool, one fit) | {full['test']['all']['F_rmse']:.4f} | | | | |")
    lines += ["", "## Picks by config_type", "", "![selection](selection.png)", "",
              "| config_type | filtered | random (all seeds) |", "|---|---:|---:|"]  # fmt: skip
    for t in sorted(set(counts["filtered"]) | set(counts["random"])):
        lines.append(f"| {t} | {counts['filtered'][t]} | {counts['random'][t]} |")
    props = read_jsonl(run_dir / "properties.jsonl")
    if any(r["run"] != "oracle" for r in props):
        plot_properties(props, run_dir / "properties.png")
        lines += ["", "## Properties of diamond Si", "", property_table(props), "",
                  "Goals: B, C11, C12, C44 within 2 %, phonons within 3 % along Γ–X–W–K–Γ–L (modes above 1 THz), "
                  "F(300 K) within 1 meV/atom. B is the curvature at the minimum (a Birch–Murnaghan fit over ±1 % "
                  "lattice strain); the E–V error (not a goal) is the largest difference of E − E_min from the "
                  "oracle's over ±6 %, at the same lattice strains.", ""]  # fmt: skip
        for name in ("greedy", "random"):
            conv = convergence_fraction(props, name)
            said = ", ".join(f"{k} {'never' if v is None else f'{100 * v:g} %'}" for k, v in conv.items())
            lines.append(f"- converged from ({'filtered' if name == 'greedy' else 'random, mean error'}): {said}")
        lines += ["", "![properties](properties.png)"]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
