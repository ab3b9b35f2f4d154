"""README, result files and committed notebooks tell the same story, and every
figure a reader sees was generated from a result file with its provenance."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tools import readme
from mlp_lib.study import experiments
from mlp_lib.study.beyond import load_rung_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
PROVENANCE_KEYS = (
    "commit",
    "dirty",
    "date",
    "cpu",
    "cores",
    "python",
    "numpy",
    "scipy",
    "blas",
    "command",
)


def _outputs(notebook):
    """All text a committed notebook printed, cell by cell."""
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    texts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                texts.append("".join(output["text"]))
            elif "text/plain" in output.get("data", {}):
                texts.append("".join(output["data"]["text/plain"]))
    return "\n".join(texts)


def _check_provenance(record, where):
    assert isinstance(record, dict), f"{where}: no provenance record"
    for key in PROVENANCE_KEYS:
        assert record.get(key) not in (None, "", []), f"{where}: provenance lacks {key}"


def test_readme_figures_are_generated_from_the_results():
    stale = readme.stale_sections()
    assert not stale, f"README sections {stale} differ from results/: run python3 tasks.py readme"


@pytest.mark.parametrize(
    "name",
    [f"{row}.json" for row in experiments.ROWS] + ["beyond.json", "bench.json", "timings.json"],
)
def test_every_result_file_records_its_provenance(name):
    path = RESULTS / name
    assert path.is_file(), f"{path} is missing"
    document = json.loads(path.read_text())
    if name == "timings.json":
        for notebook, modes in document.items():
            assert set(modes) <= {"preview", "quick", "full"} and "full" in modes, notebook
            for mode, entry in modes.items():
                assert entry["seconds"] > 0
                _check_provenance(entry.get("provenance"), f"{name}[{notebook}][{mode}]")
    else:
        _check_provenance(document.get("provenance"), name)


def test_notebooks_print_the_figures_of_the_results_files():
    for row_id, row in experiments.ROWS.items():
        results = experiments.load_results(RESULTS / f"{row_id}.json")
        printed = _outputs(next(p.name for p in (ROOT / "notebooks").glob(f"{row.notebook}_*")))
        for line in experiments.compare_with_report(experiments.summarize(results)).splitlines():
            assert line in printed, f"notebook {row.notebook} does not print: {line}"
        assert experiments.fingerprint(results) in printed, row_id
    printed = _outputs("05_beyond.ipynb")
    for run in load_rung_results(RESULTS / "beyond.json"):
        assert re.search(
            rf"{re.escape(run.rung)} +seed {run.seed}: test accuracy "
            rf"{run.test_accuracy:.4f}[,;] ",
            printed,
        ), (run.rung, run.seed)


def test_no_file_cites_a_path_outside_the_repository():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"SPEC\.md|\.\./shared|shared/(SPEC|reference|data)")
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".gz", ".png", ".npz"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if name != "tests/test_docs.py" and pattern.search(text):
            offenders.append(name)
    assert not offenders, offenders


def test_readme_names_the_floors_that_tasks_oldest_installs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Supported versions.**") :]
    section = section[: section.index("\n\n")].replace("\n", " ")
    pins = tasks.floors()
    assert len(pins) == 7
    for pin in pins:
        name, version = pin.split("==")
        assert f"{name} {version}".lower() in section.lower(), pin


def _spec_rows():
    """The rows table of docs/experiments.md: id -> (report loss, report accuracy)."""
    text = (ROOT / "docs" / "experiments.md").read_text()
    rows = {}
    for line in text[text.index("## The rows") :].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] in experiments.ROWS:
            rows[cells[0]] = tuple(
                float(c) if re.fullmatch(r"\d\.\d{4}", c) else None for c in cells[5:7]
            )
    return rows


def test_the_rows_report_figures_are_the_specifications():
    assert _spec_rows() == {
        row_id: (row.report_loss, row.report_accuracy) for row_id, row in experiments.ROWS.items()
    }


def _all_outputs(notebook):
    """Everything a committed notebook shows: printed text, and Markdown/plain results."""
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    texts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for text in (output.get("text"), data.get("text/markdown"), data.get("text/plain")):
                if text and "<Figure" not in "".join(text):
                    texts.append("".join(text))
    return "\n".join(texts)


def _report_figures_shown(text):
    """(row, "loss" or "accuracy", shown figure) for every report figure ``text`` shows:
    in Markdown tables (a column or a row labelled "report"), in compare_with_report's
    paragraphs and in prose ("report 0.9723", "report (ROW) 0.9723")."""
    ids = sorted(experiments.ROWS, key=len, reverse=True)

    def row_in(cell):
        found = [r for r in ids if re.search(rf"(?<![\w-]){re.escape(r)}(?![\w-])", cell)]
        return found[0] if len(found) == 1 else None

    shown, header, paragraph_row = [], None, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if header is None:
                header = [c.lower() for c in cells]
                continue
            if set("".join(cells)) <= set("-: "):
                continue
            row = row_in(cells[0])
            for name, cell in zip(header, cells):
                number = re.search(r"\d\.\d{4}", cell)
                labelled = name.startswith("report") or "report" in cells[0].lower()
                if row and labelled and number and name != header[0]:
                    kind = "loss" if "loss" in name else "accuracy" if "acc" in name else None
                    if name.startswith("report") and "mnist" in name:
                        kind = "accuracy"
                    if "verdict" in name:
                        kind = None
                    if kind:
                        shown.append((row, kind, float(number.group())))
            continue
        header = None
        start = re.match(r"^(\S+) \(seeds \[", stripped)
        if start and start.group(1) in experiments.ROWS:
            paragraph_row = start.group(1)
            continue
        in_paragraph = re.match(r"^(accuracy|test loss) .*; report (\d\.\d{4}):", stripped)
        if in_paragraph and paragraph_row:
            kind = "accuracy" if in_paragraph.group(1) == "accuracy" else "loss"
            shown.append((paragraph_row, kind, float(in_paragraph.group(2))))
            continue
        row = row_in(line)
        for match in re.finditer(r"\breport\b(?:\s*\([\w-]+\))?[\s:=]{0,3}(\d\.\d{4})", line):
            if row:
                shown.append((row, "either", float(match.group(1))))
    return shown


def test_every_report_figure_a_notebook_shows_is_the_specifications():
    spec = _spec_rows()
    checked = 0
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for row, kind, figure in _report_figures_shown(_all_outputs(notebook.name)):
            loss, accuracy = spec[row]
            allowed = {"loss": [loss], "accuracy": [accuracy], "either": [loss, accuracy]}[kind]
            assert figure in allowed, (
                f"{notebook.name} shows {figure} as the report's {kind} of {row}; "
                f"docs/experiments.md gives loss {loss}, accuracy {accuracy}"
            )
            checked += 1
    assert checked >= 30


def test_the_report_figure_check_catches_a_wrong_label():
    wrong = "report (relu-he-const)   0.9707 (5 seeds, nb 03)     37 s  per-sample SGD"
    assert _report_figures_shown(wrong) == [("relu-he-const", "either", 0.9707)]
    table = "| row | report acc | acc |\n|---|---|---|\n| relu-he | 0.9500 | 0.9516 |"
    assert _report_figures_shown(table) == [("relu-he", "accuracy", 0.95)]
    # a figure after "in the report," is ours, not a label of the report's
    ours = "relu-he-const: 0.9723 in the report, 0.9718 ± 0.0024 here"
    assert _report_figures_shown(ours) == []


def test_the_readme_labels_each_notebook_with_the_report_sections_the_notebook_names():
    from mlp_lib.study.notebook import NOTEBOOKS

    text = (ROOT / "README.md").read_text()
    table = text[text.index("## The notebooks") :].split("\n\n")[1]
    labels = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        labels[re.search(r"`(\d\d)_", cells[0]).group(1)] = cells[1]
    for number, nb in NOTEBOOKS.items():
        if nb.sections:
            assert labels[number] == nb.report, number
            intro = next(
                "".join(c["source"])
                for c in json.loads(nb.path.read_text())["cells"]
                if c["cell_type"] == "markdown"
            )
            assert nb.report in intro, (number, "the notebook's introduction names", nb.report)
        else:
            assert labels[number] == "beyond", number


def test_environment_yml_installs_what_setup_installs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    environment = (ROOT / "environment.yml").read_text()
    assert f"-e .[{tasks.EXTRAS}]" in environment


def test_every_readme_example_runs_the_cli_the_one_way_the_readme_states():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    calls = [line for line in lines if "mlp-lib " in line]
    assert len(calls) >= 15
    for line in calls:
        assert re.search(r"(^|&& )\.venv/bin/mlp-lib ", line), line
    others = [line for line in lines if "-m mlp_lib" in line]
    assert not others, f"the README's examples run the console command, not {others}"


def test_the_readme_says_which_blas_the_products_go_through_and_the_code_agrees():
    """The README once said every product went through scipy's gemm, a release after the
    code had moved them all to numpy's `@`. The claim and the code are read together here:
    no module of the library calls scipy's BLAS, and the README's note on threads names
    numpy's `@` as the one way in."""
    calls = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "mlp_lib").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"scipy\.linalg\.blas|get_blas_funcs|\bdgemm\b|\bsgemm\b", line)
    ]
    assert not calls, f"the library calls scipy's BLAS at {calls}: update the README"
    notes = (ROOT / "README.md").read_text()
    notes = notes[notes.index("Two notes on threads.") :]
    notes = " ".join(notes[: notes.index("\n\n")].split())
    assert "goes through numpy's `@`" in notes, notes
    assert "none through scipy's `gemm`" in notes, notes


def test_provenance_names_every_version_that_can_change_a_results_bits():
    """The per-sample engine is compiled by numba (through llvmlite's LLVM): its version, like
    numpy's and the BLAS's, decides the machine code and so, in principle, the bits."""
    import llvmlite
    import numba

    import mlp_lib
    from mlp_lib.study.provenance import provenance

    made = provenance("a test")
    assert made["mlp_lib"] == mlp_lib.__version__
    assert (made["numba"], made["llvmlite"]) == (numba.__version__, llvmlite.__version__)
    line = readme._made(made)
    assert f"numba {numba.__version__}" in line and f"mlp_lib {mlp_lib.__version__}" in line
    older = {k: v for k, v in made.items() if k not in ("numba", "mlp_lib", "llvmlite")}
    assert "numba" not in readme._made(older)  # a result made before they were recorded
