"""The project's site: the committed notebooks (not re-run), the specification
and the API reference, built with Sphinx and myst-nb into ``site/``.

``python3 tasks.py site`` runs this inside the project's environment (``python
tools/site.py``). A developer's tool, not part of the installed package.
"""

from __future__ import annotations

import json
import re
import shutil
import sys

from sphinx.cmd.build import build_main

from mlp_lib.io.project import ROOT
from mlp_lib.study.notebook import NOTEBOOKS, REPORT_SECTIONS

__all__ = ["build_site"]

SITE_SOURCES = ROOT / "build" / "site-src"


def build_site():
    """Inside .venv: assemble the site's sources and build them with
    Sphinx and myst-nb (``docs/site/conf.py``) into ``site/``.

    The sources: an index generated from ``mlp_lib.study.notebook`` (each notebook
    beside the report's sections it follows, the results, the serve page), the
    specification, copies of the committed notebooks, each opened by a note of
    those sections, and the API reference generated from the docstrings. MathJax
    comes from ``sphinx-mathjax-offline``: the site loads nothing from the network.
    """
    shutil.rmtree(SITE_SOURCES, ignore_errors=True)
    (SITE_SOURCES / "notebooks").mkdir(parents=True)
    static = SITE_SOURCES / "_static"
    static.mkdir()
    shutil.copyfile(ROOT / "docs" / "site" / "site.css", static / "site.css")
    for name in ("conf.py", "favicon.svg"):
        shutil.copyfile(ROOT / "docs" / "site" / name, SITE_SOURCES / name)
    spec = (ROOT / "docs" / "experiments.md").read_text()
    (SITE_SOURCES / "experiments.md").write_text(spec)
    rows = site_notebooks()
    api = site_api()
    (SITE_SOURCES / "index.md").write_text(site_index(rows, api))
    # built in build/ (myst-nb keeps its image files beside the output folder), then moved
    built, out = ROOT / "build" / "site", ROOT / "site"
    shutil.rmtree(built, ignore_errors=True)
    code = build_main(
        [
            "-q",
            "-b",
            "html",
            "-d",
            str(ROOT / "build" / "site-doctrees"),
            str(SITE_SOURCES),
            str(built),
        ]
    )
    if code == 0:
        shutil.rmtree(out, ignore_errors=True)
        built.rename(out)
        print(f"site/index.html: open it in a browser ({out / 'index.html'})")
    return code


def site_notebooks():
    """Copy the committed notebooks into the site's sources, each opened by a note of
    the report's sections it follows; the index's table rows."""
    rows = []
    for nb in NOTEBOOKS.values():
        notebook = json.loads(nb.path.read_text())
        sections = "; ".join(f"{label} {REPORT_SECTIONS[label]}" for label in nb.sections)
        note = (
            f"**The report:** {sections}."
            if nb.sections
            else "**The report:** beyond the report (its experiments go no further)."
        )
        note += (
            " This page shows the notebook as committed, executed by `python3 tasks.py "
            "reproduce`; to run it yourself, `python3 tasks.py lab`."
        )
        notebook["cells"].insert(
            1, {"cell_type": "markdown", "id": "report-sections", "metadata": {}, "source": note}
        )
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"]).replace(
                    "../docs/experiments.md", "../experiments.md"
                )
                # links into the checkout (a test, a module) work in the lab, not on the
                # site, which has no copy of the code: there the link's text stays
                cell["source"] = re.sub(
                    r"\[([^\]]+)\]\(\.\./(?:tests|mlp_lib)/[^)]*\)", r"\1", text
                )
        target = SITE_SOURCES / "notebooks" / nb.file
        target.write_text(json.dumps(notebook, ensure_ascii=False))
        rows.append(
            f"| {nb.number} | [{json_title(nb.path)}](notebooks/{nb.file}) | "
            f"**{nb.report}**{' — ' + sections if len(nb.sections) > 1 else ''}"
            f"{' ' + REPORT_SECTIONS[nb.sections[0]] if len(nb.sections) == 1 else ''} |"
        )
    return rows


#: The API reference: one page a layer, the modules in reading order.
API_PAGES = {
    "core": ("The maths", ["functional", "init", "model", "optim", "schedules", "augment",
                           "gradcheck", "blas"]),
    "io": ("Files", ["data", "checkpoint", "project"]),
    "engines": ("Training", ["reference", "per_sample", "minibatch", "lifecycle",
                             "interruption", "estimator"]),
    "study": ("The study", ["rows", "experiments", "beyond", "jobs", "sweep", "conclusions",
                            "exercises", "plots", "tables", "provenance", "notebook"]),
}  # fmt: skip


def site_api():
    """Write the API reference pages (autodoc reads each module's docstrings); their names."""
    folder = SITE_SOURCES / "api"
    folder.mkdir()
    pages = []
    for layer, (title, modules) in API_PAGES.items():
        heading = f"``mlp_lib.{layer}``: {title.lower()}"
        parts = [heading, "=" * len(heading), ""]
        parts += [f".. automodule:: mlp_lib.{layer}", "   :no-members:", ""]
        for module in modules:
            title = f"``mlp_lib.{layer}.{module}``"
            parts += [title, "-" * len(title), "", f".. automodule:: mlp_lib.{layer}.{module}", ""]
        (folder / f"{layer}.rst").write_text("\n".join(parts))
        pages.append(f"api/{layer}")
    return pages


def site_index(rows, api):
    """The site's front page: the notebooks beside the report, the results, the API."""
    readme = (ROOT / "README.md").read_text()
    results = readme[readme.index("## Results") :]
    results = re.sub(r"<!-- \w+:(start|end) -->\n", "", results[: results.index("\n## ", 3)])
    toctree = "\n".join(f"notebooks/{nb.file[:-6]}" for nb in NOTEBOOKS.values())
    api_links = "\n".join(
        f"- [`mlp_lib.{page[4:]}`]({page}.rst): {API_PAGES[page[4:]][0].lower()}" for page in api
    )
    api_toctree = "\n".join(api)
    return f"""# mlp_lib: the notebooks

The coursework report's experiments, reproduced row by row with a from-scratch NumPy MLP whose
gradients are derived by hand. Each notebook is shown here as committed (executed by
`python3 tasks.py reproduce`), with the sections of the report it follows. The experiments,
and the decisions taken where the report is ambiguous, are specified in
[The experiments, specified](experiments.md).

| # | notebook | the report |
|---|---|---|
{chr(10).join(rows)}

To run them yourself: `python3 tasks.py setup && python3 tasks.py lab` opens JupyterLab on
working copies of these notebooks.

## Draw a digit, train a row live

The interactive pages need the library's server: `python3 tasks.py setup && .venv/bin/mlp-lib
serve`, then open <a href="http://localhost:8000/">http://localhost:8000/</a>: draw a digit and
watch every layer of the report's network answer; or
<a href="http://localhost:8000/playground">http://localhost:8000/playground</a>: train a row of the
report and watch its loss, accuracy, gradients and dead units as it learns.

{results}

## The library's API

Generated from the docstrings, one page a layer (each layer imports only those above it
in this list):

{api_links}

```{{toctree}}
:hidden:
:caption: Notebooks

{toctree}
```

```{{toctree}}
:hidden:
:caption: Specification

experiments
```

```{{toctree}}
:hidden:
:caption: API reference

{api_toctree}
```
"""


def json_title(notebook):
    """The notebook's first heading (its title)."""
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip()
    return notebook.stem


if __name__ == "__main__":
    sys.exit(build_site())
