"""Where the project's files are, and its version: the one place that knows.

In a source checkout ``ROOT`` is the repository (``data/``, ``results/``,
``notebooks/`` beside the package); an installed package has no such folders,
and the functions that need them say so when they are missing.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["VERSION", "ROOT", "DATA_DIR", "RESULTS_DIR", "NOTEBOOKS_DIR", "is_checkout"]

VERSION = "0.1.0"  # pyproject.toml reads it from here

ROOT = Path(__file__).resolve().parents[2]  # mlp_lib/io/project.py -> the repository
DATA_DIR = ROOT / "data"
RESULTS_DIR = ROOT / "results"
NOTEBOOKS_DIR = ROOT / "notebooks"


def is_checkout() -> bool:
    """True when the package runs from a source checkout (not an installed wheel)."""
    return (ROOT / "pyproject.toml").is_file() and (ROOT / "mlp_lib").is_dir()
