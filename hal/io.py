"""Reading structures: extxyz files, ASE databases and globs of them, with errors that name the file."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from ase import Atoms


class DataError(Exception):
    """Bad input data; the message names the file (and the configuration index where there is one)."""


def read_configs(path: str | Path) -> list[Atoms]:
    """All configurations of an extxyz file or an ASE database (``.db``/``.json``)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file")
    try:
        if p.suffix in (".db", ".json"):
            from ase.db import connect

            out = []
            for row in connect(str(p)).select():
                atoms = row.toatoms()
                atoms.info.update(row.key_value_pairs)
                out.append(atoms)
            return out
        from ase.io import read

        return list(read(str(p), index=":"))
    except Exception as exc:  # noqa: BLE001 (any reader error becomes a data error naming the file)
        raise DataError(f"{path}: cannot read ({exc})") from exc


def expand(patterns: Iterable[str]) -> list[str]:
    """File names of paths and glob patterns, in order, each once; a pattern matching nothing is an error."""
    out: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise DataError(f"{pattern}: no file matches")
        out += [m for m in matches if m not in out]
    return out


def read_many(patterns: Iterable[str]) -> list[tuple[str, int, Atoms]]:
    """(file, index, atoms) of every configuration of every file that the paths or globs name."""
    return [(path, i, atoms) for path in expand(patterns) for i, atoms in enumerate(read_configs(path))]


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, np.ndarray | list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.floating | np.integer):
        return x.item()
    return x


def read_jsonl(path: str | Path) -> list[dict]:
    """The complete JSON lines of a log file (a line cut short by a crash, and what follows, dropped)."""
    path = Path(path)
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def repaired_jsonl(path: str | Path) -> list[dict]:
    """``read_jsonl``, with the file rewritten to hold just those lines (a crash's half line goes)."""
    lines = read_jsonl(path)
    if Path(path).exists():
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in lines))
    return lines


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one record (numpy values as plain numbers and lists) as a JSON line."""
    with Path(path).open("a") as fh:
        fh.write(json.dumps(_jsonable(record)) + "\n")
