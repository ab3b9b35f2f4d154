#!/usr/bin/env python3
"""Set up and run the project with nothing but Python >= 3.10.

    python3 tasks.py reproduce   # set up .venv, re-execute notebooks/*.ipynb in place
    python3 tasks.py reproduce 01 03   # only the notebooks whose names start so
    python3 tasks.py test        # set up .venv, run unit tests + nbval on the notebooks
    python3 tasks.py bench       # set up .venv (with PyTorch, scikit-learn), run the benchmarks
    python3 tasks.py readme      # regenerate the README's figures from results/
    python3 tasks.py setup       # only create/refresh .venv

The virtual environment lives in ``.venv`` and is reinstalled only when
``pyproject.toml`` changes. ``MLP_LIB_QUICK=1`` makes the notebooks use fewer
seeds (never fewer epochs or images); committed notebooks come from full runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".mlp_lib-installed"


def run(*cmd, env=None):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def setup(extras="notebooks,test"):
    """Create ``.venv`` and install the project with ``extras`` if needed."""
    if sys.version_info < (3, 10):
        sys.exit(f"mlp_lib needs Python >= 3.10, this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()
                            + extras.encode()).hexdigest()
    if STAMP.exists() and PYTHON.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    steps = [(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"),
             (PYTHON, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")]
    for step in steps:
        if run(*step) != 0:
            sys.exit("setup failed: see the pip output above")
    STAMP.write_text(wanted)


def notebooks():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def reproduce(prefixes=()):
    setup()
    chosen = [nb for nb in notebooks() if not prefixes or nb.name.startswith(tuple(prefixes))]
    if not chosen:
        sys.exit(f"no notebook name starts with {' or '.join(prefixes)}")
    for notebook in chosen:
        env = dict(os.environ, MLP_LIB_COMMAND=f"python3 tasks.py reproduce {notebook.name[:2]}")
        started = time.time()
        code = run(PYTHON, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                   "--inplace", "--ExecutePreprocessor.timeout=-1",
                   "--ExecutePreprocessor.kernel_name=python3", notebook, env=env)
        if code:
            return code
        record_time(notebook.name, time.time() - started, env["MLP_LIB_COMMAND"])
    return run(PYTHON, "-m", "mlp_lib", "table", "--update-readme")


def record_time(name, seconds, command):
    """Add a notebook's execution time, with provenance, to results/timings.json."""
    code = ("import json, sys; from pathlib import Path; from mlp_lib.provenance import provenance;"
            "p = Path('results/timings.json'); d = json.loads(p.read_text()) if p.exists() else {};"
            "d[sys.argv[1]] = {'seconds': float(sys.argv[2]), 'provenance': provenance(sys.argv[3])};"
            "p.write_text(json.dumps(d, indent=1, sort_keys=True) + chr(10))")
    run(PYTHON, "-c", code, name, f"{seconds:.1f}", command)


def test(extra_args=()):
    setup()
    env = dict(os.environ)
    env.setdefault("MLP_LIB_QUICK", "1")
    env.setdefault("MPLBACKEND", "Agg")
    args = ["tests"]
    if notebooks():
        args += ["--nbval-lax", "--nbval-current-env", *notebooks()]
    return run(PYTHON, "-m", "pytest", "-p", "no:cacheprovider", *args, *extra_args,
               env=env)


def bench(extra_args=()):
    setup("notebooks,test,bench")
    return run(PYTHON, "benchmarks/run.py", *extra_args)


def readme(extra_args=()):
    setup()
    return run(PYTHON, "-m", "mlp_lib", "table", "--update-readme")


def main(argv):
    commands = {"setup": lambda rest: setup() or 0, "reproduce": reproduce,
                "test": test, "bench": bench, "readme": readme}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
