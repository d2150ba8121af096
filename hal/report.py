"""Plots and a Markdown summary of a run directory (``hal report DIR``); reads, never writes the data.

* ``traces.png``: per HAL trajectory, one after the other (HAL paper, Fig. 3): the stopping
  criterion (named, with its threshold), temperature, pressure and τ against the MD step, coloured by
  iteration.
* ``learning.png``: labelled structures, σ at the trigger and held-out errors (``test.xyz``, per
  config_type) of each iteration's model, against the iteration.
* ``report.md``: stages, labels, failures, oracle time, a per-iteration table and the ARD sweep.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from hal.loop.learner import read_events

_TRACE = re.compile(r"(?P<stage>.+)-it(?P<it>\d+)-w(?P<w>\d+)\.npz$")


def traces(run_dir: Path) -> list[tuple[str, int, int, dict[str, np.ndarray]]]:
    """(stage, iteration, walker, trace) of every saved HAL trajectory, in iteration order."""
    out = []
    for path in (run_dir / "trajectories").glob("*.npz"):
        m = _TRACE.match(path.name)
        if m:
            with np.load(path) as f:
                out.append((m["stage"], int(m["it"]), int(m["w"]), {k: f[k] for k in f.files}))
    return sorted(out, key=lambda t: (t[1], t[0], t[2]))


def model_errors(run_dir: Path) -> dict[int, dict[str, dict[str, float]]]:
    """Held-out errors (``test.xyz``) of every ``models/iter_NNN.npz``, by iteration."""
    from ase.io import read

    from hal.fit.metrics import errors
    from hal.model import LinearACE

    test_path = run_dir / "test.xyz"
    if not test_path.exists():
        return {}
    test = read(test_path, ":")
    out = {}
    for path in sorted((run_dir / "models").glob("iter_*.npz")):
        out[int(path.stem.split("_")[1])] = errors(LinearACE.load(path), test)
    return out


def _criteria(run_dir: Path) -> dict[str, tuple[str, float]]:
    """Per stage of the run's config: which stopping criterion its traces hold, and its threshold."""
    from hal.config import read

    path = run_dir / "config.toml"
    stages = read(path).get("stages", []) if path.exists() else []
    return {st["name"]: ("max_i f_i", st["f_tol"]) if st.get("f_tol") is not None
            else ("max softmax(f_i)", st.get("s_tol", 0.5)) for st in stages if "name" in st}  # fmt: skip


def plot_traces(items: list, path: Path, criteria: dict[str, tuple[str, float]] | None = None) -> dict:
    """Traces one after the other, coloured by iteration (colour bar), the stopping threshold dashed;
    returns what the figure shows (panel labels, threshold lines, colour-bar label) for checks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    criteria = criteria or {}
    names = sorted({criteria.get(stage, ("criterion", None))[0] for stage, *_ in items})
    keys = [("criterion", " / ".join(names) or "criterion"), ("temperature", "T (K)"), ("pressure_GPa", "P (GPa)"),
            ("tau", "τ")]  # fmt: skip
    keys = [(k, label) for k, label in keys if any(np.isfinite(tr[k]).any() for *_, tr in items)]  # no P: molecules
    iterations = [it for _, it, _, _ in items]
    norm = matplotlib.colors.Normalize(min(iterations), max(max(iterations), min(iterations) + 1))
    cmap = matplotlib.colormaps["viridis"]
    fig, axes = plt.subplots(len(keys), 1, figsize=(11, 2.1 * len(keys) + 0.8), sharex=True, layout="constrained")
    offset, last_it = 0, None
    for stage, it, _, tr in items:
        x = offset + np.arange(len(tr["sigma"]))
        for ax, (k, _) in zip(axes, keys):
            y = tr[k]
            ok = np.isfinite(y)
            ax.plot(x[ok], y[ok], lw=0.7, color=cmap(norm(it)))
        threshold = criteria.get(stage, (None, None))[1]
        if threshold is not None:
            axes[0].hlines(threshold, x[0], x[-1], colors="C3", linestyles="--", lw=0.9)
        if it != last_it:
            for ax in axes:
                ax.axvline(offset, color="0.85", lw=0.5)
            last_it = it
        offset = x[-1] + 1
    for ax, (_, label) in zip(axes, keys):
        ax.set_ylabel(label, fontsize=11)
        ax.tick_params(labelsize=10)
    axes[0].plot([], [], "C3--", lw=0.9, label="stopping threshold")
    axes[0].legend(fontsize=9, loc="upper left")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("MD step (the trajectories one after the other; grey lines: a new iteration)", fontsize=11)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.7, pad=0.01)
    bar.set_label("iteration", fontsize=11)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    fig.savefig(path, dpi=120)
    shown = {"ylabels": [ax.get_ylabel() for ax in axes], "thresholds": len(axes[0].collections),
             "colorbar": bar.ax.get_ylabel(), "fontsize": axes[0].yaxis.label.get_size()}  # fmt: skip
    plt.close(fig)
    return shown


def plot_learning(rows: list[dict], errs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    its = [r["iteration"] for r in rows]
    axes[0].step(its, [r["n_data"] for r in rows], where="post")
    axes[0].set_ylabel("labelled structures fitted")
    axes[1].semilogy(its, [r["sigma"] for r in rows], "o-", ms=3)
    axes[1].set_ylabel("σ at the trigger (eV), mean")
    groups = sorted({g for e in errs.values() for g in e if not g.startswith("element ")})
    for g in groups:
        k = sorted(errs)
        axes[2].semilogy(k, [errs[i].get(g, {}).get("F_rmse", np.nan) for i in k], "o-", ms=3, label=g)
    axes[2].set_ylabel("held-out force RMSE (eV/Å)")
    if groups:
        axes[2].legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("iteration", fontsize=11)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _protocol_report(run_dir: Path) -> Path | None:
    """The report of the run's protocol, when that protocol writes its own (e.g. the hexane study)."""
    from hal import protocols
    from hal.config import load, read

    path = run_dir / "config.toml"
    name = read(path).get("protocol") if path.exists() else None
    module = protocols.get(name) if name in protocols.PROTOCOLS else None
    if module is None or not hasattr(module, "report"):
        return None
    return module.report(run_dir, load(path, module.SCHEMA))


def _num(value: float | None, spec: str) -> str:
    """A figure for a table: "–" where there is none (an iteration without labels has no σ)."""
    return "–" if value is None or not np.isfinite(value) else format(value, spec)


def report(run_dir: str | Path) -> Path:
    """Write ``traces.png``, ``learning.png`` and ``report.md`` into ``run_dir``; returns report.md."""
    from ase.db import connect

    run_dir = Path(run_dir)
    own = _protocol_report(run_dir)
    if own is not None:
        return own
    if not (run_dir / "data.db").exists():
        raise FileNotFoundError(f"{run_dir}: no data.db here; is this a hal run directory?")
    events = read_events(run_dir)
    db_rows = list(connect(str(run_dir / "data.db")).select(sort="id"))
    hal_rows = [r for r in db_rows if r.get("source") == "hal"]
    fits = {e["iteration"]: e for e in events if e["event"] == "fit"}
    walkers = defaultdict(list)
    for e in events:
        if e["event"] == "walker":
            walkers[e["iteration"]].append(e)
    rows = []
    for it in sorted(fits):
        labelled = [r for r in hal_rows if r.iteration == it]
        sig = [r.sigma for r in labelled if r.get("sigma") is not None]
        steps = [w["steps"] for w in walkers[it]]
        rows.append({"iteration": it, "stage": fits[it].get("stage", ""), "n_data": fits[it]["n_data"],
                     "labels": len(labelled), "failed": sum(r.status != "ok" for r in labelled),
                     "steps": float(np.mean(steps)) if steps else np.nan,
                     "sigma": float(np.mean(sig)) if sig else np.nan})  # fmt: skip
    errs = model_errors(run_dir)
    items = traces(run_dir)
    if items:
        plot_traces(items, run_dir / "traces.png", _criteria(run_dir))
    if rows:
        plot_learning(rows, errs, run_dir / "learning.png")

    ends = [e for e in events if e["event"] == "end"]
    oracle_s = sum(r.get("oracle_time", 0.0) for r in hal_rows)
    lines = [f"# HAL run `{run_dir.name}`", "", f"* structures in the database: {len(db_rows)} "
             f"({len(db_rows) - len(hal_rows)} initial, {len(hal_rows)} from HAL)",
             f"* failed oracle calls: {sum(r.status != 'ok' for r in db_rows)}",
             f"* oracle time: {oracle_s:.1f} s", ""]  # fmt: skip
    for e in ends:
        lines.append(f"* stage `{e.get('stage', 'hal')}`: {e['reason']} after iteration {e['iterations']}, "
                     f"{e['labels']} labels ({e['failures']} failed)")  # fmt: skip
    groups = sorted({g for e in errs.values() for g in e if g != "all" and not g.startswith("element ")})
    head = "| iteration | stage | fitted on | labels | failed | mean steps | σ at trigger (eV) |"
    head += "".join(f" {g} E / F RMSE |" for g in groups)
    lines += ["", "## Iterations", "", head, "|" + "---:|" * (7 + len(groups))]
    for r in rows:
        e = errs.get(r["iteration"], {})
        cells = [f"{_num(e.get(g, {}).get('E_rmse'), '.2f')} meV / {_num(e.get(g, {}).get('F_rmse'), '.3f')} eV/Å"
                 for g in groups]  # fmt: skip
        lines.append(f"| {r['iteration']} | {r['stage']} | {r['n_data']} | {r['labels']} | {r['failed']} | "
                     f"{_num(r['steps'], '.0f')} | {_num(r['sigma'], '.3g')} |"
                     + "".join(f" {c} |" for c in cells))  # fmt: skip
    if items:
        lines += ["", "![traces](traces.png)"]
    if rows:
        lines += ["", "![learning](learning.png)"]
    sweep = run_dir / "ard_sweep.md"
    if sweep.exists():
        lines += ["", "## Final refits (ARD α' sweep, HAL paper Table II)", "", sweep.read_text()]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def plot_parity(model, sets: dict, keys, path: Path) -> Path:
    """Model against reference: energies (eV/atom) and force components (eV/Å), coloured by config_type,
    one marker per set (e.g. train and test); isolated atoms left out. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hal.fit.design import is_isolated_atom, read_labels

    points: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: {"E": [], "F": []})
    for name, configs in sets.items():
        for atoms in configs:
            if is_isolated_atom(atoms):
                continue
            lab, res = read_labels(atoms, keys), model.evaluate(atoms)
            d = points[(name, str(atoms.info.get("config_type", "all")))]
            if lab.energy is not None:
                d["E"].append((lab.energy / len(atoms), res.energies[0] / len(atoms)))
            if lab.forces is not None:
                d["F"] += list(zip(lab.forces.ravel(), res.forces[0].ravel()))
    types = sorted({t for _, t in points})
    markers = dict(zip(sets, "o^sv"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, key, unit in ((axes[0], "E", "eV/atom"), (axes[1], "F", "eV/Å")):
        lo, hi = np.inf, -np.inf
        for (name, t), d in sorted(points.items()):
            if d[key]:
                ref, pred = np.array(d[key]).T
                rmse = np.sqrt(np.mean((pred - ref) ** 2))
                ax.scatter(ref, pred, s=8, marker=markers[name], color=f"C{types.index(t) % 10}", alpha=0.6,
                           label=f"{name} {t} (RMSE {rmse * (1000 if key == 'E' else 1):.3g} "
                                 f"{'meV/atom' if key == 'E' else unit})")  # fmt: skip
                lo, hi = min(lo, ref.min(), pred.min()), max(hi, ref.max(), pred.max())
        if np.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        ax.set_xlabel(f"reference {'energy' if key == 'E' else 'force component'} ({unit})", fontsize=11)
        ax.set_ylabel(f"model ({unit})", fontsize=11)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
