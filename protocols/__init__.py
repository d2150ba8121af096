"""Runnable protocols (installed as ``hal.protocols``), each driven by one config file.

A protocol module has ``SCHEMA`` (see ``hal.config``), ``check(config)`` and ``run(config, run_dir,
progress)``, and may have ``resolve_paths(config, folder)``; its default configuration is
``<name>.toml`` next to it. ``hal`` is the general protocol (any structures, any ASE oracle).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

PROTOCOLS = ("hal", "alloy", "hexane_smd", "filtering", "polymer", "polymer_rare", "polymer_bulk")


def get(name: str) -> ModuleType:
    """The protocol module called ``name``."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return importlib.import_module(f"hal.protocols.{name}")


def default_config(name: str) -> Path:
    """The packaged default configuration file of a protocol."""
    get(name)
    return Path(__file__).with_name(f"{name}.toml")
