#!/usr/bin/env python3
"""Set up and run the project with nothing but Python >= 3.10.

    python3 tasks.py setup       # create/refresh .venv (the project, JupyterLab, the tests)
    python3 tasks.py lab         # JupyterLab on working copies of the notebooks, in lab/
    python3 tasks.py kernel      # register the kernel "Python (mlp_lib)" for your own Jupyter
    python3 tasks.py reproduce   # re-execute notebooks/*.ipynb in place (the full mode)
    python3 tasks.py reproduce 01 03   # only the notebooks whose names start so
    python3 tasks.py reproduce --mode preview   # time the preview mode (into build/)
    python3 tasks.py test        # unit tests + nbval on the notebooks (quick mode)
    python3 tasks.py test --oldest   # fast tests in .venv-oldest, every dependency at its floor
    python3 tasks.py lint        # ruff (pyflakes, bugbear, formatter) and the layers contract
    python3 tasks.py bench       # set up .venv (with PyTorch, scikit-learn), run the benchmarks
    python3 tasks.py readme      # regenerate the README's figures from results/
    python3 tasks.py site        # the notebooks, the specification and the results as a site

The virtual environment lives in ``.venv`` and is reinstalled only when
``pyproject.toml`` changes. A notebook's mode (preview, quick, full) is its
first cell's ``MODE``; ``MLP_LIB_QUICK=1`` (set by ``test``) selects quick.
Only ``reproduce`` writes the committed results/, notebooks and README.
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


EXTRAS = "notebooks,docs,test,cluster"  # what setup installs (environment.yml: the same)


def setup(extras=EXTRAS, venv_dir=VENV, pins=()):
    """Create ``venv_dir`` and install the project with ``extras`` (and
    ``pins``, exact versions from wheels) if needed; returns its python."""
    if sys.version_info < (3, 10):
        sys.exit(f"mlp_lib needs Python >= 3.10, this is {sys.version.split()[0]}")
    python = venv_dir / PYTHON.relative_to(VENV)
    stamp = venv_dir / STAMP.name
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + extras.encode() + "\n".join(pins).encode()
    ).hexdigest()
    if stamp.exists() and python.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        print(f"creating {venv_dir}", flush=True)
        venv.create(venv_dir, with_pip=True)
    pinned = ("--only-binary=:all:", *pins) if pins else ()
    steps = [
        (python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"),
        (python, "-m", "pip", "install", "--quiet", *pinned, "-e", f".[{extras}]"),
    ]
    for step in steps:
        if run(*step) != 0:
            sys.exit("setup failed: see the pip output above")
    stamp.write_text(wanted)
    return python


def setup_command(args=()):
    setup()
    print(
        "\n.venv is ready. Next:\n"
        "  python3 tasks.py lab         # open the notebooks in JupyterLab\n"
        "  python3 tasks.py reproduce   # re-execute every notebook (the committed results)\n"
        "  python3 tasks.py test        # the test suite\n"
        "  .venv/bin/mlp-lib --help     # the command line"
    )
    return 0


def notebooks():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


MODES = ("preview", "quick", "full")


def reproduce(args=()):
    """Execute the chosen notebooks with papermill (progress bar, streamed output).

    ``--mode full`` (the default) re-executes them in place and writes the
    committed ``results/`` and README; ``--mode preview`` or ``quick`` runs
    them into ``build/notebooks/MODE/`` and records only how long each took.
    """
    args = list(args)
    mode = "full"
    if "--mode" in args:
        at = args.index("--mode")
        mode = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
    if mode not in MODES:
        sys.exit(f"--mode takes one of {', '.join(MODES)}")
    setup()
    chosen = [nb for nb in notebooks() if not args or nb.name.startswith(tuple(args))]
    if not chosen:
        sys.exit(f"no notebook name starts with {' or '.join(args)}")
    started = time.time()
    for number, notebook in enumerate(chosen, 1):
        print(
            f"\n[{number}/{len(chosen)}] {notebook.name}, {mode} mode"
            f"{previous_time(notebook.name, mode)}",
            flush=True,
        )
        command = f"python3 tasks.py reproduce {notebook.name[:2]}" + (
            f" --mode {mode}" if mode != "full" else ""
        )
        env = dict(os.environ, MLP_LIB_COMMAND=command, MLP_LIB_MODE=mode)
        env.pop("MLP_LIB_QUICK", None)
        if mode == "full":
            env["MLP_LIB_RECORD"] = "1"  # the one run that writes the committed results/
            output = notebook
        else:
            env.pop("MLP_LIB_RECORD", None)
            output = ROOT / "build" / "notebooks" / mode / notebook.name
        code = run(PYTHON, Path(__file__).name, "_execute", notebook, output, mode, env=env)
        if code:
            return code
        print(
            f"[{number}/{len(chosen)}] {notebook.name} done; "
            f"{(time.time() - started) / 60:.1f} min so far",
            flush=True,
        )
    return run(PYTHON, "tools/readme.py")


def previous_time(name, mode):
    """' (last full run: 3.2 min)' from results/timings.json, or '' when there is none."""
    import json

    try:
        entry = json.loads((ROOT / "results" / "timings.json").read_text())[name][mode]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f" (last {mode} run: {entry['seconds'] / 60:.1f} min)"


def execute(args):
    """Inside .venv: run one notebook with papermill and record its time
    (``_execute NOTEBOOK OUTPUT MODE``).

    The kernel talks over IPC sockets rather than TCP: nothing is sent over
    an unencrypted network port, and the kernel has no reason to warn. The
    mode reaches the notebook through ``$MLP_LIB_MODE``, not as papermill
    parameters: an injected ``MODE = "full"`` cell would stay in the committed
    notebook and override the mode of every later run of it (a reader's
    preview, CI's quick run).
    """
    import logging

    import papermill
    from traitlets.config import Config

    from mlp_lib.study.notebook import record_timing
    from mlp_lib.study.provenance import provenance

    class CellOutputOnly(logging.Filter):
        def filter(self, record):  # keep printed lines, drop papermill's cell banners
            return not str(record.msg).startswith(
                ("Executing Cell", "Ending Cell", "Executing notebook with kernel")
            )

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(CellOutputOnly())
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    notebook, output, mode = Path(args[0]), Path(args[1]), args[2]
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    papermill.execute_notebook(
        notebook,
        output,
        kernel_name="python3",
        cwd=notebook.parent,
        log_output=True,
        progress_bar=True,
        config=Config({"KernelManager": {"transport": "ipc"}}),
    )
    record_timing(notebook.name, mode, time.time() - started, provenance())
    return 0


LAB = ROOT / "lab"  # the reader's working copies of the notebooks (git-ignored)


def working_copies(fresh=False):
    """Copy the committed notebooks into ``lab/`` (keeping a reader's own copies
    unless ``fresh``); returns the copies."""
    import shutil

    LAB.mkdir(exist_ok=True)
    copies = []
    for notebook in notebooks():
        copy = LAB / notebook.name
        if fresh or not copy.exists():
            shutil.copyfile(notebook, copy)
        copies.append(copy)
    return copies


def lab(args=()):
    """Open JupyterLab on working copies of the notebooks (``lab/``), with the
    project's kernel: ``--fresh`` copies the committed notebooks again over your
    copies, ``--mode MODE`` sets the notebooks' default mode, other arguments go
    to ``jupyter lab`` (e.g. ``--no-browser``, ``--port 8890``)."""
    import json

    args = list(args)
    fresh = "--fresh" in args
    env = dict(os.environ)
    if "--mode" in args:
        at = args.index("--mode")
        env["MLP_LIB_MODE"] = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
        if env["MLP_LIB_MODE"] not in MODES:
            sys.exit(f"--mode takes one of {', '.join(MODES)}")
    args = [a for a in args if a != "--fresh"]
    python = setup()
    copies = working_copies(fresh)
    # JupyterLab asks whether to fetch Jupyter's news from the web: a reader offline, or in
    # class, is not asked; the project's settings for its own Lab, in .venv
    overrides = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(
        json.dumps(
            {
                "@jupyterlab/apputils-extension:notification": {
                    "fetchNews": "false",
                    "checkForUpdates": False,
                }
            },
            indent=1,
        )
        + "\n"
    )
    print(
        f"JupyterLab on your working copies in {LAB.relative_to(ROOT)}/ (git-ignored; the "
        f"committed notebooks/ stay as the record to compare with"
        f"{'; copied afresh' if fresh else '; --fresh copies them again'}). Ctrl-C stops.",
        flush=True,
    )
    env.pop("MLP_LIB_RECORD", None)
    command = [
        python,
        "-m",
        "jupyter",
        "lab",
        f"--ServerApp.root_dir={ROOT}",
        "--KernelManager.transport=ipc",
        *args,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI machines and containers run as root
    command.append(copies[0].relative_to(ROOT).as_posix())
    try:
        return run(*command, env=env)
    except KeyboardInterrupt:
        return 0


def kernel(args=()):
    """Register this project's .venv as the Jupyter kernel "Python (mlp_lib)" for
    your own Jupyter (``--user``), so the notebooks can be run there."""
    python = setup()
    code = run(
        python,
        "-m",
        "ipykernel",
        "install",
        "--user",
        "--name",
        "mlp_lib",
        "--display-name",
        "Python (mlp_lib)",
        *args,
    )
    if code == 0:
        print(
            'In your Jupyter, open a notebook and pick the kernel "Python (mlp_lib)" '
            "(Kernel > Change Kernel...)."
        )
    return code


def test(extra_args=()):
    if "--oldest" in extra_args:
        return test_oldest([a for a in extra_args if a != "--oldest"])
    setup()
    env = dict(os.environ)
    env.setdefault(
        "MLP_LIB_QUICK", "1"
    )  # the notebooks' quick mode, whose fingerprints nbval checks
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("MLP_LIB_RECORD", None)  # tests never write the committed results/
    args = ["tests"]
    if notebooks():
        args += ["--nbval-lax", "--nbval-current-env", *notebooks()]
    return run(
        PYTHON,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--durations=15",
        *args,
        *extra_args,
        env=env,
    )


def floors():
    """The dependencies' lower bounds in pyproject.toml, as exact pins ('numpy==1.25')."""
    import re

    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    pins = re.findall(r'"([A-Za-z0-9_.-]+)>=([^",;]+)"', block)
    if not pins:
        sys.exit("found no '>=' floors in pyproject.toml's dependencies")
    return [f"{name}=={version}" for name, version in pins]


def test_oldest(extra_args=()):
    """Run the fast tests with every runtime dependency at the floor pyproject.toml declares."""
    pins = floors()
    python = setup("test", ROOT / ".venv-oldest", pins)
    run(
        python,
        "-c",
        "import importlib.metadata as m, sys; print('floors under test:', "
        "', '.join(f'{p.split(\"==\")[0]} {m.version(p.split(\"==\")[0])}' "
        "for p in sys.argv[1:]))",
        *pins,
    )
    env = dict(os.environ, MPLBACKEND="Agg")
    return run(
        python,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        "tests",
        *extra_args,
        env=env,
    )


def lint(extra_args=()):
    """ruff over the library, tests, benchmarks and tasks.py (``[tool.ruff]`` in
    pyproject.toml): the lint rules, then the formatter's check (``--fix``: apply both);
    then import-linter's contracts (``[tool.importlinter]``: imports only go down the layers)."""
    python = setup()
    fix = "--fix" in extra_args
    checks = [("check", *(["--fix"] if fix else [])), ("format", *([] if fix else ["--check"]))]
    codes = [run(python, "-m", "ruff", *check, ".") for check in checks]
    codes.append(run(python.parent / "lint-imports", "--no-cache"))
    return max(codes)


def bench(extra_args=()):
    setup(EXTRAS + ",bench")
    return run(PYTHON, "benchmarks/run.py", *extra_args)


def site(extra_args=()):
    """Build the site of the committed notebooks (not re-run) into ``site/``."""
    setup()
    return run(PYTHON, "tools/site.py")


def readme(extra_args=()):
    setup()
    return run(PYTHON, "tools/readme.py")


def main(argv):
    commands = {
        "setup": setup_command,
        "reproduce": reproduce,
        "test": test,
        "lint": lint,
        "lab": lab,
        "kernel": kernel,
        "bench": bench,
        "readme": readme,
        "site": site,
        "_execute": execute,
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
