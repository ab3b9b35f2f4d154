"""The notebooks' plumbing: which part of the report each notebook follows, how
much a run of it trains (its mode), where its results go, and how long each mode
took. Not maths: the notebooks call it in their first cells.

A notebook's first cell sets ``MODE`` and ``SEEDS`` (papermill's parameters
cell); ``Plan(number, MODE, SEEDS)`` turns them into what the notebook runs:

``preview``
    for reading: seed 0 and shortened training (one epoch per report row,
    three per notebook-05 rung), so that every cell runs in about a minute.
``quick``
    what CI runs (``MLP_LIB_QUICK=1``): seed 0 with the rows' full training,
    whose fingerprints nbval compares with the committed notebooks.
``full``
    the committed reproduction: five seeds per row, every rung as specified.

Only ``python3 tasks.py reproduce`` writes the committed ``results/`` (it sets
``MLP_LIB_RECORD=1`` and runs the full mode); any other run of a notebook, in
Jupyter or with nbconvert, writes under ``results/local/MODE/``, which git
ignores, so running a notebook never changes a committed file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..io.project import NOTEBOOKS_DIR, RESULTS_DIR
from .tables import markdown_table

__all__ = [
    "NOTEBOOKS",
    "REPORT_SECTIONS",
    "MODES",
    "Plan",
    "resolve_mode",
    "timings",
    "record_timing",
    "TIMINGS",
    "source",
]

RESULTS = RESULTS_DIR
TIMINGS = RESULTS / "timings.json"

#: The report's sections (its table of contents), by label.
REPORT_SECTIONS = {
    "§1": "第一部分：实现 4 层 MLP、损失函数、训练算法 (part 1: a 4-layer MLP, the loss, training)",
    "§1.1": "导入 MNIST 数据集 (loading MNIST)",
    "§1.2": "定义 4 层 MLP 模型，并初始化权重 (the 4-layer model and its initial weights)",
    "§1.3": "分类损失函数设计 (the classification loss)",
    "§1.4": "反向传播和梯度下降训练算法实现 (backpropagation and gradient descent)",
    "§1.5": "预测、测试分类结果 (prediction and test)",
    "§2.1": "调整学习率和激活函数 (learning rate and activation)",
    "§2.2": "再调整权重初始化方法 (weight initialisation)",
    "§2.3": "对以上调整方法进行测试对比 (the comparison of the changes)",
    "§3": "第三部分：构建一个 6 层的 MLP 网络 (part 3: a 6-layer MLP)",
}


@dataclass(frozen=True)
class Notebook:
    """One notebook: its number, file, the report label its introduction uses
    (``report``) and the report's sections it follows (keys of ``REPORT_SECTIONS``)."""

    number: str
    file: str
    report: str
    sections: tuple
    kind: str = "rows"  # "rows" (per-sample report rows), "rungs" (notebook 05), "sweep"

    @property
    def path(self):
        return NOTEBOOKS_DIR / self.file


NOTEBOOKS = {
    nb.number: nb
    for nb in [
        Notebook(
            "01",
            "01_four_layer_sigmoid.ipynb",
            "§1.1–§1.5",
            ("§1.1", "§1.2", "§1.3", "§1.4", "§1.5"),
        ),
        Notebook("02", "02_relu.ipynb", "§2.1", ("§2.1",)),
        Notebook("03", "03_initialization.ipynb", "§2.2–§2.3", ("§2.2", "§2.3")),
        Notebook("04", "04_six_layer.ipynb", "§3", ("§3",)),
        Notebook("05", "05_beyond.ipynb", "beyond the report", (), "rungs"),
        Notebook("06", "06_fashion_mnist.ipynb", "beyond the report", (), "sweep"),
    ]
}


@dataclass(frozen=True)
class Mode:
    """How much a notebook trains in one mode (``None``: as specified)."""

    name: str
    seeds: tuple | None  # the rows' seeds (None: experiments.SEEDS)
    row_epochs: int | None  # epochs of per-sample SGD per report row (the rows have 3)
    rung_epochs: int | None  # epochs per notebook-05 rung
    all_rung_seeds: bool  # every seed a rung lists (else its first)


# What each is for: preview for reading (every cell, shortened training), quick for CI (nbval
# compares its fingerprints with the committed notebooks), full for the committed reproduction.
# fmt: off
MODES = {
    #              name      row seeds  row epochs  rung epochs  all rung seeds
    "preview": Mode("preview", (0,),   1,          3,           False),
    "quick":   Mode("quick",   (0,),   None,       2,           False),
    "full":    Mode("full",    None,   None,       None,        True),
}
# fmt: on


def resolve_mode(mode=None):
    """``mode`` if given, else ``$MLP_LIB_MODE``, else ``quick`` when
    ``$MLP_LIB_QUICK`` is set (CI), else ``preview``."""
    if mode is None:
        mode = os.environ.get("MLP_LIB_MODE") or (
            "quick" if os.environ.get("MLP_LIB_QUICK", "") not in ("", "0") else "preview"
        )
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def timings():
    """``results/timings.json``: notebook file -> mode -> {"seconds", "provenance"}."""
    if not TIMINGS.is_file():
        return {}
    return json.loads(TIMINGS.read_text())


def record_timing(notebook_file, mode, seconds, provenance):
    """Store how long ``notebook_file`` took in ``mode`` (``tasks.py reproduce``)."""
    document = timings()
    document.setdefault(notebook_file, {})[mode] = {
        "seconds": round(seconds, 1),
        "provenance": provenance,
    }
    TIMINGS.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def source(*functions):
    """The code of ``functions`` (the library's own, not a copy), highlighted, as
    a notebook cell's output: how notebook 01 puts each equation beside the line
    that computes it."""
    import inspect
    import textwrap

    from IPython.display import Code

    return Code(
        "\n\n".join(textwrap.dedent(inspect.getsource(f)) for f in functions), language="python"
    )


def _epochs(n):
    return f"{n} epoch" + ("s" if n != 1 else "")


def duration(seconds):
    """``41 s`` or ``2.3 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class Plan:
    """What one run of notebook ``number`` trains, from its ``MODE`` and ``SEEDS``
    parameters, and where it writes. Displayed in a notebook, it is the table
    of the three modes with the time each last took (``results/timings.json``).

    Attributes: ``mode``, ``seeds`` (the rows'), ``row_options`` (keyword
    arguments that shorten a report row: ``{"epochs": 1}`` in preview, else
    ``{}``), ``rung_epochs``, ``record`` (whether this run writes the committed
    ``results/``).
    """

    def __init__(self, number, mode=None, seeds=None):
        from .rows import SEEDS

        if number not in NOTEBOOKS:
            raise ValueError(f"unknown notebook {number!r}; known: {', '.join(NOTEBOOKS)}")
        self.notebook = NOTEBOOKS[number]
        self.mode = resolve_mode(mode)
        settings = MODES[self.mode]
        self.custom_seeds = seeds is not None
        self.seeds = (
            tuple(int(s) for s in seeds) if seeds is not None else (settings.seeds or SEEDS)
        )
        if not self.seeds:
            raise ValueError("SEEDS must name at least one seed")
        self.row_epochs = settings.row_epochs
        self.rung_epochs = settings.rung_epochs
        self._all_rung_seeds = settings.all_rung_seeds
        recording = os.environ.get("MLP_LIB_RECORD", "") == "1"
        if recording and (self.mode != "full" or self.custom_seeds):
            raise ValueError(
                "MLP_LIB_RECORD=1 (python3 tasks.py reproduce) records the full "
                "mode with its own seeds only"
            )
        self.record = recording

    @property
    def row_options(self):
        """``run``/``run_many`` keyword arguments for the mode's length of a report row."""
        return {} if self.row_epochs is None else {"epochs": self.row_epochs}

    @property
    def shortened(self):
        """True when this run trains less than the committed reproduction."""
        return self.row_epochs is not None or self.rung_epochs is not None

    def rung_seeds(self, rung):
        """The seeds to run ``rung`` with: this run's ``SEEDS`` if given, else all of the
        rung's (full mode) or its first."""
        if self.custom_seeds:
            return list(self.seeds)
        return list(rung.seeds if self._all_rung_seeds else rung.seeds[:1])

    def results_path(self, name, suffix=".json"):
        """Where this run writes its results called ``name``: ``results/NAME.json``
        under ``tasks.py reproduce``, else ``results/local/MODE/NAME.json`` (git-ignored)."""
        folder = RESULTS if self.record else RESULTS / "local" / self.mode
        return folder / f"{name}{suffix}"

    @staticmethod
    def full_results_path(name, suffix=".json"):
        """The committed full results called ``name`` (``results/NAME.json``)."""
        return RESULTS / f"{name}{suffix}"

    def rows(self, row_ids):
        """Results of other notebooks' ``row_ids`` for this run's seeds: the committed
        full results when this mode trains the rows as they were committed (quick,
        full), else trained here with this mode's settings. Prints which."""
        from .experiments import ROWS, load_results, run_many

        results = []
        for row_id in row_ids:
            path = self.full_results_path(row_id)
            committed = load_results(path) if path.is_file() else []
            by_seed = {r.seed: r for r in committed}
            if self.row_epochs is None and all(s in by_seed for s in self.seeds):
                results += [by_seed[s] for s in self.seeds]
                print(
                    f"{row_id}: seeds {list(self.seeds)} as notebook {ROWS[row_id].notebook} "
                    f"trained them (its full run, results/{path.name})"
                )
            else:
                why = (
                    f"{_epochs(self.row_epochs)}, this mode's length"
                    if self.row_epochs
                    else "seeds the committed results lack"
                )
                print(
                    f"{row_id}: trained here (notebook {ROWS[row_id].notebook}'s row; "
                    f"seeds {list(self.seeds)}, {why})",
                    flush=True,
                )
                results += run_many([row_id], self.seeds, **self.row_options)
        return results

    def beside_committed(self, results):
        """A table of this run's test figures beside the committed full run's,
        seed by seed (or a line saying they are identical)."""
        from .experiments import load_results

        if self.record:  # python3 tasks.py reproduce: this run is the committed one
            return markdown_table(
                ["this run"], [["the committed full results: written to results/ by this run"]]
            )
        lines, same = [], True
        for r in results:
            path = self.full_results_path(r.row)
            committed = {c.seed: c for c in load_results(path)} if path.is_file() else {}
            c = committed.get(r.seed)
            theirs = ("—", "—") if c is None else (f"{c.test_loss:.4f}", f"{c.test_accuracy:.4f}")
            same &= c is not None and (c.test_loss, c.test_accuracy) == (
                r.test_loss,
                r.test_accuracy,
            )
            lines.append(
                [
                    r.row,
                    r.seed,
                    f"{r.test_loss:.4f}",
                    theirs[0],
                    f"{r.test_accuracy:.4f}",
                    theirs[1],
                ]
            )
        if same:
            return markdown_table(
                ["this run"], [["identical to the committed full results, seed by seed"]]
            )
        length = f" ({_epochs(self.row_epochs)} a row)" if self.row_epochs else ""
        return markdown_table(
            [
                "row",
                "seed",
                f"test loss, this run{length}",
                "committed (3 epochs)",
                f"accuracy, this run{length}",
                "committed (3 epochs)",
            ],
            lines,
            note=f"This run is the {self.mode} mode; the committed figures come from "
            f"`python3 tasks.py reproduce` (results/ROW.json).",
        )

    def describe(self, mode):
        """What ``mode`` trains in this notebook, in words."""
        m = MODES[mode]
        seeds = "seeds 0–4" if m.seeds is None else f"seed {', '.join(map(str, m.seeds))}"
        kind = self.notebook.kind
        if kind == "rungs":
            if m.rung_epochs is None:
                return (
                    "each rung as specified: its epochs, seeds 0–2 for the affine rung and "
                    "the sprint, seed 0 for the others"
                )
            return f"seed 0, {m.rung_epochs} epochs per rung (instead of 10–180)"
        rows = (
            f"{seeds}, {m.row_epochs} epoch of per-sample SGD per row instead of 3"
            if m.row_epochs
            else f"{seeds}, the rows' full 3 epochs"
        )
        if kind == "sweep":
            sprint = (
                f"the sprint {m.rung_epochs} epochs"
                if m.rung_epochs
                else "the sprint's 15 epochs, seeds 0–2"
            )
            rows += f"; {sprint}"
        return rows

    def _repr_markdown_(self):
        """One paragraph for the reader: what this run trains and how long the
        whole notebook took in this mode (and in the full mode) when last measured."""
        entries = timings().get(self.notebook.file, {})

        def took(mode):
            entry = entries.get(mode)
            return f"about {duration(entry['seconds'])}" if entry else "not measured yet"

        seeds = ""
        if self.custom_seeds:
            seeds = f" (your seeds: {', '.join(map(str, self.seeds))})"
        text = (
            f"**This run: {self.mode} mode**{seeds}: {self.describe(self.mode)}; the whole "
            f"notebook took {took(self.mode)}"
        )
        made = next((e["provenance"] for e in entries.values()), None)
        if made and self.mode in entries:
            text += f" on {made['cpu']} ({made['cores']} cores)"
        text += "."
        if self.mode != "full":
            text += (
                f" The figures quoted in the text are the full mode's "
                f'({self.describe("full")}; {took("full")}): set `MODE = "full"` above to '
                f"train them."
            )
        return text

    def __repr__(self):
        return self._repr_markdown_()
