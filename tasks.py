#!/usr/bin/env python3
"""Set up and run the project with nothing but Python >= 3.10.

    python3 tasks.py reproduce   # set up .venv, re-execute notebooks/*.ipynb in place
    python3 tasks.py reproduce 01 03   # only the notebooks whose names start so
    python3 tasks.py test        # set up .venv, run unit tests + nbval on the notebooks
    python3 tasks.py test --oldest   # fast tests in .venv-oldest, every dependency at its floor
    python3 tasks.py bench       # set up .venv (with PyTorch, scikit-learn), run the benchmarks
    python3 tasks.py lint        # ruff: pyflakes and bugbear rules, and the formatter check
    python3 tasks.py readme      # regenerate the README's figures from results/
    python3 tasks.py site        # render the committed notebooks as a site in site/
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


def setup(extras="notebooks,test,cluster", venv_dir=VENV, pins=()):
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


def notebooks():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def reproduce(prefixes=()):
    """Re-execute the chosen notebooks in place with papermill (progress bar, streamed output)."""
    setup()
    chosen = [nb for nb in notebooks() if not prefixes or nb.name.startswith(tuple(prefixes))]
    if not chosen:
        sys.exit(f"no notebook name starts with {' or '.join(prefixes)}")
    started = time.time()
    for number, notebook in enumerate(chosen, 1):
        print(
            f"\n[{number}/{len(chosen)}] {notebook.name}{previous_time(notebook.name)}", flush=True
        )
        env = dict(os.environ, MLP_LIB_COMMAND=f"python3 tasks.py reproduce {notebook.name[:2]}")
        code = run(PYTHON, Path(__file__).name, "_execute", notebook, env=env)
        if code:
            return code
        print(
            f"[{number}/{len(chosen)}] {notebook.name} done; "
            f"{(time.time() - started) / 60:.1f} min so far",
            flush=True,
        )
    return run(PYTHON, "-m", "mlp_lib", "table", "--update-readme")


def previous_time(name):
    """' (last run: 3.2 min)' from results/timings.json, or '' when there is none."""
    import json

    try:
        seconds = json.loads((ROOT / "results" / "timings.json").read_text())[name]["seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f" (last full run: {seconds / 60:.1f} min)"


def execute(args):
    """Inside .venv: run one notebook with papermill and record its time (``_execute NB``).

    The kernel talks over IPC sockets rather than TCP: nothing is sent over
    an unencrypted network port, and the kernel has no reason to warn.
    """
    import logging
    import papermill
    from traitlets.config import Config

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
    notebook = Path(args[0])
    started = time.time()
    papermill.execute_notebook(
        notebook,
        notebook,
        kernel_name="python3",
        cwd=notebook.parent,
        log_output=True,
        progress_bar=True,
        config=Config({"KernelManager": {"transport": "ipc"}}),
    )
    record_time(notebook.name, time.time() - started, os.environ.get("MLP_LIB_COMMAND", ""))
    return 0


def record_time(name, seconds, command):
    """Add a notebook's execution time, with provenance, to results/timings.json."""
    import json
    from mlp_lib.provenance import provenance

    path = ROOT / "results" / "timings.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    times[name] = {"seconds": round(seconds, 1), "provenance": provenance(command)}
    path.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")


def test(extra_args=()):
    if "--oldest" in extra_args:
        return test_oldest([a for a in extra_args if a != "--oldest"])
    setup()
    env = dict(os.environ)
    env.setdefault("MLP_LIB_QUICK", "1")
    env.setdefault("MPLBACKEND", "Agg")
    args = ["tests"]
    if notebooks():
        args += ["--nbval-lax", "--nbval-current-env", *notebooks()]
    return run(PYTHON, "-m", "pytest", "-p", "no:cacheprovider", *args, *extra_args, env=env)


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
    pyproject.toml): the lint rules, then the formatter's check (``--fix``: apply both)."""
    python = setup()
    fix = "--fix" in extra_args
    checks = [("check", *(["--fix"] if fix else [])), ("format", *([] if fix else ["--check"]))]
    return max(run(python, "-m", "ruff", *check, ".") for check in checks)


def bench(extra_args=()):
    setup("notebooks,test,cluster,bench")
    return run(PYTHON, "benchmarks/run.py", *extra_args)


def site(extra_args=()):
    """Render the committed notebooks (without running them) and an index into ``site/``."""
    setup()
    return run(PYTHON, Path(__file__).name, "_site")


def build_site(args=()):
    """Inside .venv (``_site``): notebooks -> HTML, docs -> HTML, an index page.

    Offline by design: no script or style is loaded from a CDN (equations stay
    as their TeX source), and every figure is embedded in its page.
    """
    import html
    import re
    import shutil

    import mistune
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    from mlp_lib.experiments import ROWS

    out = ROOT / "site"
    shutil.rmtree(out, ignore_errors=True)
    (out / "notebooks").mkdir(parents=True)
    exporter = HTMLExporter(
        template_name="lab",
        config=Config({"HTMLExporter": {"mathjax_url": "", "require_js_url": ""}}),
    )
    entries = []
    for notebook in notebooks():
        body, _ = exporter.from_filename(str(notebook))
        body = re.sub(r'<script src="">\s*</script>', "", body)
        body = body.replace('href="../docs/experiments.md', 'href="../experiments.html')
        target = out / "notebooks" / (notebook.stem + ".html")
        target.write_text(body)
        title = json_title(notebook)
        sections = sorted(
            {
                part
                for row in ROWS.values()
                if row.notebook == notebook.name[:2]
                for part in row.section.split(", ")
            }
        )
        entries.append(
            (
                notebook.name[:2],
                title,
                target.relative_to(out).as_posix(),
                "; ".join(sections) or "beyond the report",
            )
        )
        print(f"site/{target.relative_to(out)}", flush=True)

    def page(title, content):
        return (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'>"
            f"<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
            f"padding:0 1rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;"
            f"padding:.2rem .5rem}}code{{background:#f3f3f3}}</style></head>"
            f"<body>{content}</body></html>"
        )

    markdown = mistune.create_markdown(plugins=["table"])
    spec = (ROOT / "docs" / "experiments.md").read_text()
    (out / "experiments.html").write_text(page("The experiments, specified", markdown(spec)))
    readme = (ROOT / "README.md").read_text()
    results = readme[readme.index("## Results") :]
    results = results[: results.index("\n## ", 3)]
    results = re.sub(r"<!-- \w+:(start|end) -->\n", "", results)  # generated-section marks
    rows = "".join(
        f"<tr><td>{number}</td><td><a href='{html.escape(link)}'>"
        f"{html.escape(title)}</a></td><td>{html.escape(sections)}</td></tr>"
        for number, title, link, sections in entries
    )
    index = (
        f"<h1>mlp_lib: the notebooks</h1><p>The coursework report's experiments, "
        f"reproduced row by row with a from-scratch NumPy MLP. Each notebook is shown as "
        f"committed (executed by <code>python3 tasks.py reproduce</code>), beside the "
        f"sections of the report it follows. The experiments are specified in "
        f"<a href='experiments.html'>The experiments, specified</a>.</p>"
        f"<table><thead><tr><th>#</th><th>notebook</th><th>report sections</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
        f"<h2>Draw a digit</h2><p>The interactive page needs the library's server: "
        f"<code>python3 tasks.py setup &amp;&amp; .venv/bin/python -m mlp_lib serve</code>, "
        f"then open <code>http://localhost:8000/</code>.</p>" + markdown(results)
    )
    (out / "index.html").write_text(page("mlp_lib: the notebooks", index))
    print(f"site/index.html: open it in a browser ({out / 'index.html'})")
    return 0


def json_title(notebook):
    """The notebook's first heading (its title)."""
    import json

    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip()
    return notebook.stem


def readme(extra_args=()):
    setup()
    return run(PYTHON, "-m", "mlp_lib", "table", "--update-readme")


def main(argv):
    commands = {
        "setup": lambda rest: setup() and 0,
        "reproduce": reproduce,
        "test": test,
        "lint": lint,
        "bench": bench,
        "readme": readme,
        "site": site,
        "_execute": execute,
        "_site": build_site,
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
