"""Where the project's files are, and its version: the one place that knows.

In a source checkout ``ROOT`` is the repository (``data/``, ``results/``,
``notebooks/`` beside the package); an installed package has no such folders,
and the functions that need them say so when they are missing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "VERSION",
    "ROOT",
    "DATA_DIR",
    "RESULTS_DIR",
    "NOTEBOOKS_DIR",
    "is_checkout",
    "cache_dir",
]

VERSION = "0.1.0"  # pyproject.toml reads it from here

ROOT = Path(__file__).resolve().parents[2]  # mlp_lib/io/project.py -> the repository
DATA_DIR = ROOT / "data"
RESULTS_DIR = ROOT / "results"
NOTEBOOKS_DIR = ROOT / "notebooks"


def is_checkout() -> bool:
    """True when the package runs from a source checkout (not an installed wheel)."""
    return (ROOT / "pyproject.toml").is_file() and (ROOT / "mlp_lib").is_dir()


def cache_dir():
    """Where the package keeps what it makes or fetches for itself (serve's default
    models; an installed package's data sets, in ``data/``): ``$MLP_LIB_CACHE``, else
    ``$XDG_CACHE_HOME/mlp_lib``, else ``~/.cache/mlp_lib`` (on Windows
    ``%LOCALAPPDATA%\\mlp_lib``, on macOS ``~/Library/Caches/mlp_lib``)."""
    import sys

    if os.environ.get("MLP_LIB_CACHE"):
        return Path(os.environ["MLP_LIB_CACHE"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "mlp_lib"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "mlp_lib"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlp_lib"
