"""Report of a hexane study run directory: learning curves, work curves, snapshots, a strategy table.

* ``learning.png``: paired |ΔE_a| (mean over the seeds, bars: spread/√n), the quasi-static |ΔE_a| and
  the work-curve error before the snap vs oracle calls per strategy, with the 1 kcal/mol line
  (Fig. 3b/5 of Jung et al.); force MAE on the unseen reference frames vs oracle calls (Fig. 3d).
* ``work.png``: the reference work curves and each strategy's at every scored model, first seed
  (Fig. 3a), darker = later.
* ``snapshots.png``: the chain just before, at and after the break (first seed): the reference, and
  each strategy's last scored model pulling from the same start.
* ``report.md``: per strategy, the last score and the first oracle-call count at |ΔE_a| ≤ 1 kcal/mol.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase.io import read  # noqa: E402
from ase.visualize.plot import plot_atoms  # noqa: E402

from hal.loop.learner import read_events  # noqa: E402
from hal.loop.select import KCAL_PER_MOL  # noqa: E402
from hal.protocols.hexane_reference import Pull, PullSettings, reference_path  # noqa: E402


def scores_by_strategy(run_dir: Path, names: Collection[str] | None = None) -> dict[str, list[dict]]:
    """The ``score`` events of the log, per strategy (those in ``names``, if given), in order."""
    out: dict[str, list[dict]] = {}
    for e in read_events(run_dir):
        if e["event"] == "score" and (names is None or e["strategy"] in names):
            out.setdefault(e["strategy"], []).append(e)
    return out


def calls_to_target(scores: list[dict], target: float = KCAL_PER_MOL, key: str = "delta_ea") -> int | None:
    """Oracle calls at the first score with |``key``| ≤ target (default: the mean paired ΔE_a, eV);
    None if never (or not scored)."""
    for e in scores:
        if abs(e.get(key, np.nan)) <= target:
            return int(e["oracle_calls"])
    return None


def _hit(scores: list[dict], key: str = "delta_ea") -> str:
    hit = calls_to_target(scores, key=key)
    return "not reached" if hit is None else str(hit)


def table(run_dir: Path, names: Collection[str] | None = None) -> str:
    """Markdown table: one row per strategy (those in ``names``, if given; its last score), with the bond its
    pulls broke."""
    head = ("| strategy | oracle calls | ΔE_a paired (eV) | spread (eV) | ΔE_a quasi-static (eV) | "
            "max \\|ΔW\\| before the snap (eV) | Δ peak force (eV/Å) | F MAE unseen (eV/Å) | fit per refit (s) | "
            "wall (s) | calls to 1 kcal/mol: ΔE_a | calls to 1 kcal/mol: W | bond broken |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")  # fmt: skip
    rows = []
    for name, scores in scores_by_strategy(run_dir, names).items():
        e = scores[-1]
        rows.append(f"| {name} | {e['oracle_calls']} | {e['delta_ea']:+.3f} | {e['spread_ea']:.3f} | "
                    f"{e['delta_ea_quasi_static']:+.3f} | {e.get('work_error', np.nan):.3f} | "
                    f"{e.get('peak_force_error', np.nan):+.3f} | {e['force_mae']:.4f} | {e.get('fit_s', np.nan):.1f} | "
                    f"{e['wall_s']:.0f} | {_hit(scores)} | {_hit(scores, 'work_error')} | "
                    f"{count(e.get('bonds', []))} |")  # fmt: skip
    return head + "\n".join(rows) + "\n"


def transfer_cases(run_dir: Path) -> list[dict]:
    """The transferability pulls of a run directory, one event per (model, chain, velocity): the one with the
    most seeds (a case confirmed with more seeds replaces its first estimate), in the order first logged."""
    best = {}
    for e in (e for e in read_events(run_dir) if e["event"] == "transfer"):
        key = (e["strategy"], e["chain"], e["velocity"])
        if len(e["ea_model"]) >= len(best.get(key, {}).get("ea_model", [])):
            best[key] = e
    return list(best.values())


def transfer_table(run_dir: Path) -> str:
    """Markdown tables of the transferability pulls (other chains, other loading rates), one per model, each
    case with its most seeds; '' if none."""
    rows = transfer_cases(run_dir)
    out = ""
    for name in dict.fromkeys(e["strategy"] for e in rows):
        mine = [e for e in rows if e["strategy"] == name]
        out += (f"Transferability of `{mine[-1]['model']}` (paired with each case's own GFN2-xTB reference over "
                "its seeds; bonds up to the chain's mirror symmetry):\n\n"
                "| chain | velocity (Å/ps) | seeds | E_a reference (eV) | E_a model (eV) | ΔE_a (eV) | spread (eV) "
                "| ΔE_a / E_a | bond broken: reference | model |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")  # fmt: skip
        for e in mine:
            ref, mod = np.mean(e["ea_reference"]), np.mean(e["ea_model"])
            bonds = [count(e.get(key, [])) for key in ("bonds_reference", "bonds")]
            out += (f"| C{e['chain']} | {e['velocity']:g} | {len(e['ea_model'])} | {ref:.2f} | {mod:.2f} | "
                    f"{e['delta_ea']:+.3f} | {e['spread_ea']:.3f} | {e['delta_ea'] / ref:+.1%} | {bonds[0]} | "
                    f"{bonds[1]} |\n")  # fmt: skip
        out += "\n"
    return out


def count(names: list[str]) -> str:
    """``"C1–C2 ×2, C2–C3"``: how often each name occurs, most frequent first."""
    return ", ".join(n if c == 1 else f"{n} ×{c}" for n, c in Counter(names).most_common())


def _learning(run_dir: Path, out: Path, names: Collection[str] | None = None) -> None:
    fig, (ax, wx, fx) = plt.subplots(1, 3, figsize=(15, 4.4))
    for k, (name, scores) in enumerate(scores_by_strategy(run_dir, names).items()):
        color = f"C{k % 10}"
        calls = [e["oracle_calls"] for e in scores]
        err = [e["spread_ea"] / np.sqrt(len(e["ea_model"])) for e in scores]
        ax.errorbar(calls, np.abs([e["delta_ea"] for e in scores]), yerr=err, marker="o", ms=3, capsize=2,
                    color=color, label=name)  # fmt: skip
        ax.plot(calls, np.abs([e["delta_ea_quasi_static"] for e in scores]), ls=":", color=color)
        wx.plot(calls, [e.get("work_error", np.nan) for e in scores], marker="o", ms=3, color=color)
        fx.plot(calls, [e["force_mae"] for e in scores], marker="o", ms=3, color=color)
    for a in (ax, wx):
        a.axhline(KCAL_PER_MOL, color="k", lw=0.8, ls="--")
    titles = ("|ΔE_a|: paired (solid, bars: spread/√n), quasi-static (dotted)",
              "max |ΔW| before the snap (quasi-static)", "force MAE, unseen reference pulls")  # fmt: skip
    for a, title, ylabel in zip((ax, wx, fx), titles, ("eV", "eV", "eV/Å")):
        a.set(xscale="log", yscale="log", xlabel="oracle calls", ylabel=ylabel)
        a.set_title(title, fontsize=9)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=8, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _first_reference(run_dir: Path, config: dict, ext: str) -> Path:
    """The first seed's reference pull: its ``npz`` record or its ``xyz`` frames."""
    return reference_path(run_dir, config["n_carbon"], config["seeds"][0], PullSettings(**config["pull"]).velocity, ext)


def _work(run_dir: Path, config: dict, out: Path, names: Collection[str] | None = None) -> None:
    ref = Pull.load(_first_reference(run_dir, config, "npz"))
    strategies = scores_by_strategy(run_dir, names)
    cols = min(max(len(strategies), 1), 4)
    rows = -(-max(len(strategies), 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(strategies) :]:
        ax.axis("off")
    for ax, (name, scores) in zip(axes.flat, strategies.items()):
        files = [run_dir / "scores" / f"{name}-{e['oracle_calls']:05d}.npz" for e in scores]
        files = [f for f in files if f.exists()]
        for k, f in enumerate(files):
            d0, w = np.load(f)["curves"][0]
            ax.plot(d0, w, color=plt.cm.viridis(k / max(len(files) - 1, 1)), lw=0.8)
        ax.plot(ref.d0, ref.work, color="k", lw=1.5, label="GFN2-xTB")
        ax.set(title=name, xlabel="d0 (Å)", ylabel="W (eV)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _snapshots(run_dir: Path, config: dict, out: Path, names: Collection[str] | None = None) -> None:
    ref = Pull.load(_first_reference(run_dir, config, "npz"))
    frames = read(_first_reference(run_dir, config, "xyz"), index=":")
    d0 = np.array([f.info["d0"] for f in frames])
    at = int(np.argmin(np.abs(d0 - ref.break_d0)))
    rows = [("GFN2-xTB", [(frames[k], f"d0 = {d0[k]:.2f} Å, W = {frames[k].info['work']:.2f} eV")
                          for k in (max(at - 20, 0), at, min(at + 20, len(frames) - 1))])]  # fmt: skip
    for name, scores in scores_by_strategy(run_dir, names).items():
        f = run_dir / "scores" / f"{name}-{scores[-1]['oracle_calls']:05d}.npz"
        snaps = np.load(f, allow_pickle=True).get("snapshots") if f.exists() else None
        if snaps is None or snaps.ndim != 3:
            continue
        when = ("before", f"break at d0 = {scores[-1]['break_d0'][0]:.2f} Å", "after")
        rows.append((f"{name} ({scores[-1]['oracle_calls']} calls)",
                     [(frames[0].copy(), w) for w in when]))  # fmt: skip
        for (atoms, _), pos in zip(rows[-1][1], snaps):
            atoms.positions = pos
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 2.6 * len(rows)), squeeze=False)
    for ax_row, (label, panels) in zip(axes, rows):
        for ax, (atoms, title) in zip(ax_row, panels):
            plot_atoms(atoms, ax, radii=0.4, rotation="90x,0y,0z", show_unit_cell=0)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        ax_row[0].text(-0.05, 0.5, label, transform=ax_row[0].transAxes, rotation=90, va="center", ha="right",
                       fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_report(run_dir: Path, config: dict) -> Path:
    """Plots and ``report.md`` in ``run_dir`` of the config's strategies (a run directory may hold more);
    returns the report's path."""
    run_dir = Path(run_dir)
    names = [s["name"] for s in config.get("strategies", [])] or None
    _learning(run_dir, run_dir / "learning.png", names)
    _work(run_dir, config, run_dir / "work.png", names)
    _snapshots(run_dir, config, run_dir / "snapshots.png", names)
    velocity = PullSettings(**config["pull"]).velocity  # the study's rate: the transfer cases' pulls are not its
    refs = [reference_path(run_dir, config["n_carbon"], s, velocity, "npz") for s in config["seeds"]]
    ea = [Pull.load(p).activation_energy for p in refs if p.exists()]
    text = (f"# Hexane bond breaking (GFN2-xTB reference)\n\nReference E_a over {len(ea)} seeds: "
            f"{np.mean(ea):.2f} ± {np.std(ea):.2f} eV.\n\n" + table(run_dir, names) + "\n" + transfer_table(run_dir)
            + "\n![learning](learning.png)\n\n![work](work.png)\n\n![snapshots](snapshots.png)\n")  # fmt: skip
    path = run_dir / "report.md"
    path.write_text(text)
    return path
