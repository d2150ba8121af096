"""Command line: ``hal fit``, ``hal run CONFIG`` / ``hal run --resume DIR``, ``hal report DIR``,
``hal stability MODEL...`` and ``hal export MODEL OUT.yace``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from hal.config import ConfigError
from hal.io import DataError, read_many


def _parse_e0(text: str | None, elements: list[str]) -> dict[str, float] | None:
    if not text:
        return None
    try:
        e0 = {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError as exc:
        raise DataError(f"--e0 must look like 'C=-1.2,H=-0.4', got {text!r}") from exc
    missing, extra = sorted(set(elements) - set(e0)), sorted(set(e0) - set(elements))
    if missing or extra:
        raise DataError(f"--e0 needs one value per basis element {elements}: "
                        + (f"missing {missing}" if missing else f"{extra} not in the basis"))  # fmt: skip
    return e0


def _check_fit_args(args: argparse.Namespace) -> None:
    """Range checks of every ``hal fit`` option, before any data is read or anything written."""
    if not 1 <= args.order <= 4:
        raise DataError(f"--order must be 1..4, got {args.order}")
    if len(args.max_degree) != args.order or min(args.max_degree) < 1:
        raise DataError(f"--max-degree needs {args.order} positive value(s), one per order, got {args.max_degree}")
    if not args.r_cut > 0:
        raise DataError(f"--r-cut must be positive (Å), got {args.r_cut}")
    if args.pair_degree is not None and not 0 <= args.pair_degree <= 20:
        raise DataError(f"--pair-degree must be 0..20, got {args.pair_degree}")
    if args.committee < 0:
        raise DataError(f"--committee must be >= 0, got {args.committee}")
    if not 0 <= args.test_fraction < 1:
        raise DataError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    if min(args.weights) < 0:
        raise DataError(f"--weights must be >= 0, got {args.weights}")
    if not args.f_max > 0:
        raise DataError(f"--f-max must be positive (eV/Å), got {args.f_max}")
    if args.workers is not None and args.workers < 1:
        raise DataError(f"--workers must be >= 1, got {args.workers}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise DataError(f"--out {args.out}: no directory {out.parent}")
    if out.is_dir() or not os.access(out.parent, os.W_OK):
        raise DataError(f"--out {args.out}: cannot write a file there")


def cmd_fit(args: argparse.Namespace) -> int:
    from hal import ACEBasis
    from hal.fit import LabelKeys, Weights, fit
    from hal.fit.design import exclusions, read_labels
    from hal.fit.metrics import errors, format_table
    from hal.fit_config import basis_kwargs, namespace
    from hal.report import plot_parity

    if len(args.data) == 1 and args.data[0].endswith(".toml"):
        args = namespace(args.data[0])
    _check_fit_args(args)
    keys = LabelKeys(energy=args.energy_key, forces=args.forces_key, stress=args.stress_key)
    weights = Weights(*args.weights, f_max=args.f_max)
    data = read_many(args.data)
    test_data = read_many(args.test or [])
    if not data:
        raise DataError(f"{', '.join(args.data)}: no configurations")
    elements = args.elements or sorted({s for _, _, a in data + test_data for s in a.get_chemical_symbols()})
    b = getattr(args, "basis", None) or {"order": args.order, "max_degree": args.max_degree, "r_cut": args.r_cut,
                                         "pair_degree": args.pair_degree}  # fmt: skip
    kwargs = basis_kwargs(b, elements)
    try:
        basis = ACEBasis(elements, **kwargs)
    except ValueError as exc:
        why = str(exc)
        if "r_in" in why and "r_in" not in kwargs:  # the default inner cutoff, which the flags do not show
            from ase.data import atomic_numbers, covalent_radii

            rin = 0.6 * 2 * max(covalent_radii[atomic_numbers[e]] for e in elements if e in atomic_numbers)
            why = f"--r-cut {args.r_cut} Å must exceed every pair's inner cutoff r_in (0.6 × r0), {rin:.2f} Å here"
        raise DataError(f"basis: {why}") from exc
    e0 = _parse_e0(args.e0, list(basis.elements))
    for path, i, atoms in data + test_data:
        try:
            read_labels(atoms, keys)
            basis.neighbours(atoms)  # elements, finite positions and cell, no coincident atoms
        except ValueError as exc:
            raise DataError(f"{path}: configuration {i}: {exc}") from exc
    for atoms in (a for _, _, a in data + test_data):  # per-config_type weights, where info sets none
        w = getattr(args, "type_weights", {}).get(str(atoms.info.get("config_type")))
        if w is not None:
            for key, value in zip(("energy_weight", "force_weight", "virial_weight"), w):
                atoms.info.setdefault(key, value)
    configs = [a for _, _, a in data]
    if test_data:
        train, test = configs, [a for _, _, a in test_data]
        named = [(f"{p}:{i}", a) for p, i, a in data + test_data]
    else:
        order = np.random.default_rng(args.seed).permutation(len(configs))
        n_test = int(round(args.test_fraction * len(configs)))
        if n_test >= len(configs):
            raise DataError(f"--test-fraction {args.test_fraction} leaves no configuration to fit")
        test = [configs[k] for k in order[:n_test]]
        train = [configs[k] for k in order[n_test:]]
        named = [(f"{p}:{i}", a) for p, i, a in data]
    print(basis.summary())
    for line in exclusions(named, weights, keys):
        print(f"note: {line}")
    t0 = time.perf_counter()
    model = fit(
        train, basis, solver=args.solver, weights=weights, e0=e0, committee_size=args.committee, seed=args.seed,
        ard_threshold=args.ard_threshold, keys=keys, n_workers=args.workers,
    )  # fmt: skip
    print(f"\nfitted {len(train)} configurations in {time.perf_counter() - t0:.1f} s "
          f"({model.fit_info['n_rows']} rows, solver {args.solver})")  # fmt: skip
    tables = {"train": errors(model, train, keys, f_max=args.f_max)}
    if test:
        tables["test"] = errors(model, test, keys, f_max=args.f_max)
    print(format_table(tables))
    path = model.save(args.out)
    parity = plot_parity(model, {"train": train, "test": test}, keys, path.with_suffix(".parity.png"))
    print(f"\nmodel written to {path}; parity plot {parity}")
    return 0


def _config_path(spec: str) -> Path:
    """A config file, or the name of a protocol whose packaged default is meant."""
    from hal import protocols

    path = Path(spec)
    if not path.exists() and spec in protocols.PROTOCOLS:
        return protocols.default_config(spec)
    return path


# how a run summary's keys read: (label, unit)
_SUMMARY_KEYS = {
    "oracle_calls": ("oracle calls", ""), "labels": ("labels", ""), "failures": ("failed oracle calls", ""),
    "iterations": ("iterations", ""), "reason": ("stopped on", ""), "stage": ("stage", ""),
    "delta_ea": ("ΔE_a", " eV"), "spread_ea": ("spread", " eV"), "delta_ea_quasi_static": ("ΔE_a quasi-static", " eV"),
    "force_mae": ("unseen F MAE", " eV/Å"),
}  # fmt: skip


def format_summary(name: str, value) -> str:
    """One readable line of a protocol's run summary (a dict of figures, or text printed as it is)."""
    if isinstance(value, str):
        return f"\n{name}:\n{value.rstrip()}"
    if not isinstance(value, dict):
        return f"{name}: {value}"

    parts = []
    for key, v in value.items():
        if key == "stage" and v == name:
            continue
        label, unit = _SUMMARY_KEYS.get(key, (key.replace("_", " "), ""))
        if isinstance(v, float):
            v = f"{v:+.3f}" if key.startswith("delta") else f"{v:.3g}"
        parts.append(f"{label} {v}{unit}")
    return f"{name}: " + ", ".join(parts)


def _claim(run_dir: Path, config: dict, schema: dict) -> None:
    """Write ``config`` into ``run_dir``. A directory that holds a run of another configuration is
    refused, naming the keys that differ, unless it holds no labelled structure yet (nothing is lost)."""
    from hal.config import differences, dumps, load

    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir}: a file is in the way")
    saved = run_dir / "config.toml"
    if saved.exists():
        old = load(saved, schema)
        if old != config:
            db = run_dir / "data.db"
            if db.exists() and db.stat().st_size > 0 and _count_rows(db):
                diff = differences(old, config)
                raise ConfigError(f"{run_dir} holds a run with another configuration (differs in: "
                                  f"{'; '.join(diff[:4])}{' …' if len(diff) > 4 else ''}): resume it with "
                                  f"'hal run --resume {run_dir}', or start afresh with --dir NEW (or after "
                                  f"deleting {run_dir})")  # fmt: skip
            print(f"hal run: {run_dir} holds no labels yet; its configuration is replaced")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "config.toml.tmp"
        tmp.write_text(dumps(config))
        tmp.replace(saved)
    except OSError as exc:
        raise ConfigError(f"run_dir {run_dir}: cannot write there ({exc})") from exc


def _count_rows(db: Path) -> int:
    from ase.db import connect

    return connect(str(db)).count()


def cmd_run(args: argparse.Namespace) -> int:
    from hal import protocols
    from hal.config import load, read
    from hal.report import report

    if args.resume:
        run_dir = Path(args.resume)
        path = run_dir / "config.toml"
        if not path.exists():
            raise ConfigError(f"{run_dir}: no config.toml here; is this a hal run directory?")
    elif args.config:
        path = _config_path(args.config)
    else:
        raise ConfigError("give a config file (or a protocol name, e.g. 'alloy'), or --resume DIR")
    name = read(path).get("protocol", "")
    if name not in protocols.PROTOCOLS:
        raise ConfigError(f"{path}: protocol: {name!r} is not a protocol; known: {', '.join(protocols.PROTOCOLS)}")
    module = protocols.get(name)
    config = load(path, module.SCHEMA)
    if hasattr(module, "resolve_paths") and not args.resume:
        module.resolve_paths(config, path.resolve().parent)
    try:
        module.check(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not args.resume:
        run_dir = Path(args.dir or config["run_dir"])
        _claim(run_dir, config, module.SCHEMA)
    if args.workers is not None:
        config["workers"] = args.workers
    print(f"hal run: protocol {name}, run directory {run_dir}")
    try:
        summary = module.run(config, run_dir, progress=not args.quiet)
    except KeyboardInterrupt:
        _ignore_interrupts()
        print(f"\nhal run: interrupted; every label made so far is kept in {run_dir}: continue with "
              f"'hal run --resume {run_dir}'", file=sys.stderr)  # fmt: skip
        return 130
    except (ConfigError, DataError):
        raise
    except Exception as exc:  # noqa: BLE001 (one line for the user, the traceback in the run directory)
        import traceback

        (run_dir / "error.log").write_text(traceback.format_exc())
        print(f"hal run: error: {type(exc).__name__}: {exc} (traceback in {run_dir / 'error.log'}); every label "
              f"made so far is kept: fix the cause and 'hal run --resume {run_dir}'", file=sys.stderr)  # fmt: skip
        return 1
    for key, value in summary.items():
        print(format_summary(key, value))
    print(f"\nreport: {report(run_dir)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hal.report import report

    try:
        print(report(args.dir))
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from exc
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hal.export import ExportError
    from hal.model import LinearACE

    if not Path(args.model).exists():
        raise DataError(f"{args.model}: no such file")
    try:
        model = LinearACE.load(args.model)
        path = model.to_yace(args.out, member=args.member)
    except (ExportError, ValueError, OSError) as exc:
        raise DataError(f"{args.model}: {exc}") from exc
    what = "the mean model" if args.member is None else f"committee member {args.member}"
    print(f"{path}: {what} of {args.model} ({model.basis.size} functions, {path.stat().st_size / 1e6:.2f} MB)\n"
          f"LAMMPS: pair_style pace\n        pair_coeff * * {path.name} {' '.join(model.basis.elements)}")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    from hal import __version__

    ap = argparse.ArgumentParser(prog="hal", description="Hyperactive learning of interatomic potentials")
    ap.add_argument("--version", action="version", version=f"hal {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a linear ACE model (Bayesian) to labelled data")
    f.add_argument("data", nargs="+", help="extxyz files or ASE databases (.db), or globs; or one CONFIG.toml "
                   "holding every option (see hal.fit_config)")  # fmt: skip
    f.add_argument("--test", nargs="*", help="held-out files (default: a random --test-fraction of the data)")
    f.add_argument("--test-fraction", type=float, default=0.1)
    f.add_argument("--out", default="model.npz", help="model file to write")
    f.add_argument("--elements", nargs="*", help="basis elements (default: those in the data)")
    f.add_argument("--order", type=int, default=3)
    f.add_argument("--max-degree", type=int, nargs="+", default=[12, 10, 8])
    f.add_argument("--r-cut", type=float, default=5.0)
    f.add_argument("--pair-degree", type=int, help="pair basis functions per species pair (default: the first "
                   "--max-degree; 0: no pair basis, order-1 ACE functions instead)")  # fmt: skip
    f.add_argument("--solver", choices=["brr", "ard"], default="brr")
    f.add_argument("--ard-threshold", type=float, default=1e4, help="α' of ARD")
    f.add_argument("--committee", type=int, default=32, help="committee size K")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--weights", type=float, nargs=3, default=[30.0, 1.0, 1.0], metavar=("W_E", "W_F", "W_V"))
    f.add_argument("--f-max", type=float, default=20.0, help="forces above this (eV/Å) are not fitted")
    f.add_argument("--e0", help="reference energies, e.g. 'C=-1.2,H=-0.4' (default: isolated atoms or fitted)")
    f.add_argument("--energy-key", default="energy")
    f.add_argument("--forces-key", default="forces")
    f.add_argument("--stress-key", default="stress")
    f.add_argument("--workers", type=int, default=None, help="processes for the design assembly")
    f.set_defaults(func=cmd_fit)

    r = sub.add_parser("run", help="run a protocol from a config file (TOML), or resume a run directory")
    r.add_argument("config", nargs="?", help="config file, or a protocol name for its default (e.g. 'alloy')")
    r.add_argument("--resume", metavar="DIR", help="continue the run in DIR where it stopped")
    r.add_argument("--dir", help="run directory (default: run_dir of the config)")
    r.add_argument("--workers", type=int, help="override the config's number of local worker processes")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="plots and report.md of a run directory")
    p.add_argument("dir", help="run directory")
    p.set_defaults(func=cmd_report)

    st = sub.add_parser("stability", help="MD stability test of molecular models (seeds until a bond breaks)")
    st.add_argument("models", nargs="+", help="model files (.npz)")
    st.add_argument("--molecule", default="peg2", help="'peg<n>' or a structure file (default peg2)")
    st.add_argument("--seeds", type=int, default=16)
    st.add_argument("--steps", type=int, default=10000)
    st.add_argument("--temperature", type=float, default=500.0, help="K")
    st.add_argument("--timestep", type=float, default=0.5, help="fs")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--quiet", action="store_true", help="no progress bars")
    st.set_defaults(func=cmd_stability)

    e = sub.add_parser("export", help="write a fitted model as a PACE .yace file (python-ace, LAMMPS pair_style pace)")
    e.add_argument("model", help="model file written by hal fit (.npz)")
    e.add_argument("out", help="the .yace file to write")
    e.add_argument("--member", type=int, help="export committee member K instead of the mean model")
    e.set_defaults(func=cmd_export)
    return ap


def _molecule(spec: str):
    """``peg<n>`` (all-trans PEG(n), hal.structures.peg) or a structure file (its first frame)."""
    import re

    from hal.structures import peg

    m = re.fullmatch(r"peg(\d+)", spec.lower())
    if m:
        return peg(int(m.group(1)))
    return read_many([spec])[0][2]


def cmd_stability(args: argparse.Namespace) -> int:
    from hal.dynamics.stability import stability_test
    from hal.model import LinearACE

    if args.seeds < 1 or args.steps < 1 or not args.temperature > 0:
        raise DataError("--seeds and --steps must be >= 1 and --temperature positive")
    molecule = _molecule(args.molecule)
    models = []
    for path in args.models:
        if not Path(path).exists():
            raise DataError(f"{path}: no such model file")
        models.append((path, LinearACE.load(path)))
    print(f"{'model':40s} {'min stable steps':>16s} {'seeds stable':>12s}  first broken bond")
    for path, model in models:
        r = stability_test(model.calculator, molecule, args.seeds, args.steps, args.temperature, args.timestep,
                           seed=args.seed, progress=not args.quiet)  # fmt: skip
        first = next((b for k, b in sorted(zip(r.first_broken, r.bonds), key=lambda x: x[0]) if b is not None), None)
        print(f"{path:40s} {r.min_stable:16d} {int((r.first_broken >= r.steps).sum()):>7d}/{args.seeds:<4d}  "
              f"{first or '–'}")  # fmt: skip
    return 0


def _ignore_interrupts() -> None:
    """After the first Ctrl-C has been answered, a second one (or one still pending from a worker
    process) must not end the shutdown with a traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _redeliver_interrupt(unraisable) -> None:
    """``sys.unraisablehook`` of the command line: a Ctrl-C that lands in a callback Python cannot raise
    from (a weakref callback of an import lock, a ``__del__``) is printed and dropped by default, and the
    run goes on. Send SIGINT again from a timer thread, so that it lands after the callback (raised in the
    hook itself, it would be dropped the same way)."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        import signal
        import threading

        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    else:
        sys.__unraisablehook__(unraisable)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sys.unraisablehook = _redeliver_interrupt
    try:
        return args.func(args)
    except (DataError, ConfigError) as exc:
        print(f"hal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _ignore_interrupts()
        print(f"\nhal {args.command}: interrupted", file=sys.stderr)
        return 130


def _exit(code: int) -> None:
    """Exit with ``code``. After an interrupt (130), flush, stop any labelling child and leave at once:
    interpreter finalization can still meet a KeyboardInterrupt and end the process by SIGINT (−2)."""
    if code != 130:
        sys.exit(code)
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
