"""Where a result came from: commit, machine, library versions and command.

Every file under ``results/`` carries this record next to its figures, so a
reader can tell which code on which machine produced a number.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from ..io.project import ROOT as _ROOT
from ..io.project import VERSION

__all__ = ["provenance", "cpu_model"]

_CODE = ("mlp_lib", "benchmarks", "data", "tasks.py", "pyproject.toml")


def _git(*args):
    try:
        out = subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model():
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas():
    try:
        from threadpoolctl import threadpool_info

        return sorted(
            {
                f"{i.get('internal_api')} {i.get('version')} ({i.get('prefix')})"
                for i in threadpool_info()
                if i.get("user_api") == "blas"
            }
        )
    except Exception:  # pragma: no cover - threadpoolctl is a dependency
        return []


def provenance(command=None):
    """A JSON-ready dict: git commit and whether the library, benchmarks, data
    or build files had uncommitted changes, UTC date, CPU model and core count, the
    versions of Python, mlp_lib and every library whose version can change a
    result's bits (numpy, scipy and the BLAS: the products and the test set;
    numba and its LLVM, llvmlite: the per-sample engine's machine code), and
    ``command`` (default: ``MLP_LIB_COMMAND``, which ``tasks.py`` sets for the
    notebooks it executes, else this process's command line)."""
    import llvmlite
    import numba
    import numpy
    import scipy

    commit = _git("rev-parse", "HEAD")
    # "dirty": uncommitted changes to the code that computes results. Results,
    # notebooks and the README are left out: a reproduction rewrites them as
    # it goes, and they are its output, not its input.
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *_CODE)
    return {
        "commit": commit,
        "dirty": None if status is None else bool(status),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "mlp_lib": VERSION,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "blas": _blas(),
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "command": command
        or os.environ.get("MLP_LIB_COMMAND")
        or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
