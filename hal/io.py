"""Reading structures: extxyz files, ASE databases and globs of them, with errors that name the file."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

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
