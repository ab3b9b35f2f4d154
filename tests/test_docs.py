"""README, result files and committed notebooks tell the same story, and every
figure a reader sees was generated from a result file with its provenance."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from mlp_lib import experiments, readme
from mlp_lib.beyond import load_rung_results

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
        for notebook, entry in document.items():
            assert entry["seconds"] > 0
            _check_provenance(entry.get("provenance"), f"{name}[{notebook}]")
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
            rf"{run.test_accuracy:.4f}, ",
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
    assert len(pins) == 6
    for pin in pins:
        name, version = pin.split("==")
        assert f"{name} {version}".lower() in section.lower(), pin
