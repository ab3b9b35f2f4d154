"""The notebooks' plumbing (mlp_lib.study.notebook): modes, where a run writes, what it
reads from other notebooks, and the first cells every notebook must have."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp_lib.study import experiments, notebook
from mlp_lib.study.notebook import MODES, NOTEBOOKS, Plan, resolve_mode
from mlp_lib.study.tables import Table, markdown_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("MLP_LIB_MODE", "MLP_LIB_QUICK", "MLP_LIB_RECORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_mode_comes_from_the_parameter_then_the_environment_then_preview(clean_env):
    assert resolve_mode() == "preview"
    clean_env.setenv("MLP_LIB_QUICK", "1")
    assert resolve_mode() == "quick"
    clean_env.setenv("MLP_LIB_MODE", "full")
    assert resolve_mode() == "full"
    assert resolve_mode("preview") == "preview"
    with pytest.raises(ValueError, match="preview, quick, full"):
        resolve_mode("fast")


def test_a_notebook_run_writes_outside_the_committed_results_unless_reproduce_records(clean_env):
    for mode in MODES:
        path = Plan("02", mode).results_path("relu-normal")
        assert path == ROOT / "results" / "local" / mode / "relu-normal.json"
        assert subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT).returncode == 0
    clean_env.setenv("MLP_LIB_RECORD", "1")  # what python3 tasks.py reproduce sets
    assert Plan("02", "full").results_path("relu-normal") == ROOT / "results" / "relu-normal.json"
    with pytest.raises(ValueError, match="records the full mode"):
        Plan("02", "preview")
    with pytest.raises(ValueError, match="records the full mode"):
        Plan("02", "full", seeds=[7])


def test_modes_set_seeds_and_lengths(clean_env):
    from mlp_lib.study.beyond import LADDER

    preview, quick, full = Plan("01", "preview"), Plan("01", "quick"), Plan("01", "full")
    assert preview.seeds == quick.seeds == (0,) and full.seeds == experiments.SEEDS
    assert preview.row_options == {"epochs": 1} and quick.row_options == full.row_options == {}
    assert preview.shortened and quick.shortened and not full.shortened
    affine = LADDER[-1]
    assert Plan("05", "full").rung_seeds(affine) == [0, 1, 2]
    assert Plan("05", "quick").rung_seeds(affine) == [0]
    assert Plan("05", "full", seeds=[4]).rung_seeds(affine) == [4]
    with pytest.raises(ValueError, match="at least one seed"):
        Plan("01", "full", seeds=[])
    with pytest.raises(ValueError, match="unknown notebook"):
        Plan("07")


def test_rows_of_other_notebooks_come_from_the_committed_results_or_are_trained(
    clean_env, monkeypatch, capsys
):
    trained = []

    def fake_run_many(row_ids, seeds, **options):  # records what would be trained
        trained.append((tuple(row_ids), tuple(seeds), options))
        return []

    monkeypatch.setattr(experiments, "run_many", fake_run_many)
    quick = Plan("02", "quick").rows(["sigmoid-normal"])
    assert [(r.row, r.seed) for r in quick] == [("sigmoid-normal", 0)] and not trained
    committed = experiments.load_results(ROOT / "results" / "sigmoid-normal.json")
    assert quick[0].test_accuracy == committed[0].test_accuracy
    assert "as notebook 01 trained them (its full run" in capsys.readouterr().out
    Plan("02", "full").rows(["sigmoid-normal"])
    assert not trained
    Plan("02", "preview").rows(["sigmoid-normal"])
    assert trained == [(("sigmoid-normal",), (0,), {"epochs": 1})]
    assert "trained here" in capsys.readouterr().out
    Plan("02", "full", seeds=[9]).rows(["sigmoid-normal"])  # a seed not committed
    assert trained[-1] == (("sigmoid-normal",), (9,), {})


def test_a_run_is_shown_beside_the_committed_one_seed_by_seed(clean_env):
    committed = experiments.load_results(ROOT / "results" / "relu-normal.json")
    same = Plan("02", "quick").beside_committed(committed[:1])
    assert "identical to the committed" in same
    other = experiments.RunResult("relu-normal", 0, 0.5, 0.9, np.zeros(3), 1.0)
    table = Plan("02", "preview").beside_committed([other])
    assert f"{committed[0].test_accuracy:.4f}" in table and "0.9000" in table
    assert "1 epoch a row" in table


def test_the_plan_says_in_one_paragraph_what_this_run_trains_and_how_long_it_takes(
    clean_env, tmp_path, monkeypatch
):
    monkeypatch.setattr(notebook, "TIMINGS", tmp_path / "timings.json")
    shown = Plan("03", "preview")._repr_markdown_()
    assert "**This run: preview mode**" in shown and shown.count("not measured yet") == 2
    assert "1 epoch of per-sample SGD per row instead of 3" in shown
    prov = {"cpu": "test CPU", "cores": 2}
    notebook.record_timing("03_initialization.ipynb", "preview", 41.26, prov)
    notebook.record_timing("03_initialization.ipynb", "full", 262.0, prov)
    stored = json.loads((tmp_path / "timings.json").read_text())
    assert stored["03_initialization.ipynb"]["preview"]["seconds"] == 41.3
    shown = Plan("03", "preview")._repr_markdown_()
    assert "about 41 s on test CPU (2 cores)" in shown and "about 4.4 min" in shown
    assert 'MODE = "full"' in shown and "\n" not in shown
    full = Plan("03", "full")._repr_markdown_()
    assert "**This run: full mode**" in full and "seeds 0–4" in full and "MODE =" not in full
    # the reader's paragraph speaks of what is trained, not of CI or where files go
    for plumbing in ("CI", "nbval", "fingerprint", "results/"):
        assert plumbing not in shown + full
    rungs = Plan("05", "full")._repr_markdown_()
    assert "seeds 0–2 for the affine rung" in rungs and "[0, 1, 2, 3, 4]" not in rungs


def test_tables_render_as_markdown_and_one_seed_has_no_spread():
    table = markdown_table(["a", "b"], [[1, "x"]], note="a note")
    assert isinstance(table, Table) and table._repr_markdown_() == str(table) == repr(table)
    assert str(table).splitlines()[:3] == ["| a | b |", "|---|---|", "| 1 | x |"]
    one = experiments.RunResult("relu-he", 0, 0.16, 0.95, np.zeros(3), 1.0)
    text = experiments.format_table(experiments.summarize([one]))
    assert "0.9500 ± —" in text and "± 0.0000" not in text
    assert "one seed: no spread" in experiments.compare_with_report(experiments.summarize([one]))


def _cells(nb):
    return json.loads(nb.path.read_text())["cells"]


@pytest.mark.parametrize("number", list(NOTEBOOKS))
def test_each_notebook_opens_with_its_parameters_and_a_kernel_check(number):
    nb = NOTEBOOKS[number]
    code = [c for c in _cells(nb) if c["cell_type"] == "code"]
    first, second = ("".join(c["source"]) for c in code[:2])
    assert code[0]["metadata"].get("tags") == ["parameters"]  # papermill's parameters cell
    # no cell of papermill's injected parameters: it would fix the mode of every later run
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in code)
    # the parameters cell is the two parameters, nothing else
    assert [line.split("=")[0].strip() for line in first.splitlines()] == ["MODE", "SEEDS"]
    assert "MODE = None" in first and "SEEDS = None" in first
    assert "tasks.py lab" in second and "tasks.py kernel" in second
    assert f'Plan("{number}", MODE, SEEDS)' in second
    source = "\n".join("".join(c["source"]) for c in code)
    # every result a notebook saves goes where its plan says: never straight into results/
    saves = source.count("save_results(") + source.count("save_rung_results(")
    assert source.count("plan.results_path(") >= saves >= (0 if number == "06" else 1)
    assert "quick_mode()" not in source and "default_seeds()" not in source


def test_a_notebook_with_a_kernel_that_lacks_the_project_says_how_to_fix_it(tmp_path):
    code = [c for c in _cells(NOTEBOOKS["01"]) if c["cell_type"] == "code"]
    cells = "\n".join("".join(c["source"]) for c in code[:2])
    # a Python without mlp_lib on its path: the project's folder is not the working folder
    script = tmp_path / "cell.py"
    script.write_text(cells)
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "python3 tasks.py lab" in done.stderr and "Python (mlp_lib)" in done.stderr


PLUMBING = re.compile(r"\bCI\b|nbval|fingerprint|committed|[Rr]egression guard|\bprovenance\b")


def _shown(cell):
    """What a reader sees of a cell: its source and its outputs' text."""
    text = "".join(cell["source"])
    for output in cell.get("outputs", []):
        text += "".join(output.get("text", ""))
        data = output.get("data", {})
        text += "".join(data.get("text/markdown", "")) + "".join(data.get("text/plain", ""))
    return text


@pytest.mark.parametrize("number", list(NOTEBOOKS))
def test_plumbing_stays_out_of_the_reading(number):
    """Only the last cell a reader sees, the Record, may speak of CI, fingerprints or
    committed results; what else needs them is tagged to be removed from the site."""
    cells = [
        c for c in _cells(NOTEBOOKS[number]) if "remove-cell" not in c["metadata"].get("tags", [])
    ]
    record = [c for c in cells if c["cell_type"] == "code"][-1]
    assert "nbval-check-output" in record["metadata"].get("tags", [])
    assert "fingerprint(" in "".join(record["source"])
    talking = [_shown(c)[:120] for c in cells if c is not record and PLUMBING.search(_shown(c))]
    assert not talking
    assert "".join(cells[-2]["source"]).startswith("## Record")


@pytest.mark.parametrize("number", list(NOTEBOOKS))
def test_no_progress_bar_text_is_committed(number):
    for cell in _cells(NOTEBOOKS[number]):
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", ""))
            assert not re.search(r"\d+%\|[^|]*\|", text), text[:200]


def _exercises(number):
    cells = _cells(NOTEBOOKS[number])
    found = []
    for k, cell in enumerate(cells):
        text = "".join(cell["source"])
        stub = "return None   # your code" in text or "= None   # your guess" in text
        if cell["cell_type"] == "code" and stub:
            found.append((cell, cells[k + 1]))
    return found


def test_notebooks_01_to_04_end_with_exercises_whose_solutions_are_collapsed_and_pass():
    checks = set()
    for number in ("01", "02", "03", "04"):
        pairs = _exercises(number)
        assert pairs, f"notebook {number} has no exercise"
        for stub, solution in pairs:
            check = re.search(r"exercises\.(check_\w+)\(", "".join(stub["source"])).group(1)
            assert f"exercises.{check}(" in "".join(solution["source"])
            checks.add(check)
            assert "hide-input" in solution["metadata"].get("tags", [])  # a click on the site
            assert solution["metadata"].get("jupyter", {}).get("source_hidden")  # and in the lab
            said = _shown(solution)
            assert "correct:" in said, f"{number}: the solution of {check} was not run or failed"
            assert "not answered yet" in _shown(stub)
    assert len(checks) >= 6
    from mlp_lib.study import exercises

    assert checks <= set(exercises.__all__)


def test_notebook_01_shows_the_backward_pass_and_a_gradient_check_that_can_fail():
    cells = _cells(NOTEBOOKS["01"])
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for shown in (
        "source(MLP.forward_cache)",
        "source(softmax_cross_entropy_grad)",
        "source(MLP.backward, MLP.delta_below, sigmoid_grad)",
    ):
        assert shown in code
    shown = [_shown(c) for c in cells if "source(MLP.backward" in "".join(c["source"])][0]
    assert "def delta_below" in shown and "Δ_{l-1}" in shown  # the real code, with its equations
    tables = [_shown(c) for c in cells if "error_table(layer_errors(" in "".join(c["source"])]
    right, wrong = tables[0], tables[1]
    # the table, once (a cell's output carries it as Markdown and as plain text)
    errors = [
        [float(e) for e in re.findall(r"\| (\d\.\de[-+]\d+) \|", t)][:8] for t in (right, wrong)
    ]
    assert len(errors[0]) == len(errors[1]) == 8
    assert max(errors[0]) < 1e-5  # right: every layer agrees with central differences
    # wrong below the output layer only, by orders of magnitude more than rounding
    assert min(errors[1][:6]) > 1e-2 and max(errors[1][6:]) < 1e-5
    assert min(w / r for w, r in zip(errors[1][:6], errors[0][:6])) > 1e3


@pytest.mark.slow
def test_a_notebook_run_alone_in_preview_leaves_the_checkout_clean(tmp_path, clean_env):
    before = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--execute",
            "--to",
            "notebook",
            "--output-dir",
            str(tmp_path),
            "--output",
            "run",
            str(NOTEBOOKS["02"].path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "MLP_LIB_MODE": "preview"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert after == before
    ran = json.loads((tmp_path / "run.ipynb").read_text())
    printed = json.dumps(ran["cells"])
    assert "**This run: preview mode**" in printed and "trained here" in printed


def test_plots_carry_no_chinese_text_that_their_font_could_not_draw():
    """Matplotlib's default font has no CJK glyphs: the report's Chinese headings stay in the
    notebooks' Markdown (which the browser and the site render with CJK fonts), never in a
    figure's title or labels."""
    import re

    cjk = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
    for nb in NOTEBOOKS.values():
        for cell in _cells(nb):
            if cell["cell_type"] == "code":
                assert not cjk.search("".join(cell["source"])), nb.file
    assert not cjk.search((ROOT / "mlp_lib" / "study" / "plots.py").read_text())


def test_under_reproduce_the_run_is_not_compared_with_itself(clean_env):
    clean_env.setenv("MLP_LIB_RECORD", "1")
    committed = experiments.load_results(ROOT / "results" / "relu-normal.json")
    said = Plan("02", "full").beside_committed(committed)
    assert "written to results/ by this run" in said and "identical" not in said


def test_reproduce_refuses_an_unknown_mode_before_any_work():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tasks.py"), "reproduce", "--mode", "fast"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode != 0 and "--mode takes one of preview, quick, full" in done.stderr


@pytest.mark.parametrize("number", list(NOTEBOOKS))
def test_nbvals_markers_are_cell_tags_not_comments_a_student_reads(number):
    """The cells CI compares carry the tag nbval-check-output; no `# NBVAL_...` comment
    stands in the code a reader sees; and every cell that prints a regression
    fingerprint is among the compared ones (a fingerprint nobody compares guards nothing)."""
    code = [c for c in _cells(NOTEBOOKS[number]) if c["cell_type"] == "code"]
    assert not [c for c in code if "NBVAL" in "".join(c["source"])]
    checked = [c for c in code if "nbval-check-output" in c["metadata"].get("tags", [])]
    assert checked, "no cell is compared"
    for cell in code:
        if "fingerprint(" in "".join(cell["source"]) and "print(" in "".join(cell["source"]):
            assert cell in checked, "".join(cell["source"])[:200]


def test_source_shows_the_library_functions_themselves():
    from mlp_lib.core.model import MLP

    shown = notebook.source(MLP.backward, MLP.delta_below)
    assert shown.data.startswith("def backward(self, probs, cache, labels")
    assert "def delta_below(self, layer, delta, cache)" in shown.data
    assert "softmax_cross_entropy_grad(probs, labels)" in shown.data
