"""The report's experiments (docs/experiments.md, "The rows"): run, summarised, judged.

The rows and ``run(row_id, seed)`` live in ``rows`` and are re-exported here,
so a notebook needs this one module: ``run_many`` does several rows and seeds
on all cores; ``summarize`` compares seeds with the report; the results files
keep every run with its provenance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..engines.lifecycle import progress_bar
from .jobs import Job, run_pool, train
from .provenance import provenance
from .rows import ROWS, RunResult, get_row
from .tables import figure, markdown_table, mean_std

# the rows and run, re-exported: a notebook needs only this module (experiments.ROWS, .run)
from .rows import FOUR_LAYER as FOUR_LAYER
from .rows import SEEDS as SEEDS
from .rows import SIX_LAYER as SIX_LAYER
from .rows import Row as Row
from .rows import run as run

__all__ = [  # what this module defines; the rows and run (from rows) are reachable here too
    "run_many",
    "run_jobs",
    "summarize",
    "verdict",
    "prediction_interval",
    "compare_with_report",
    "format_table",
    "save_results",
    "load_results",
    "load_provenance",
    "fingerprint",
    "confusion_matrix",
    "layer_gradient_norms",
]


def _task(job):
    """A ``run(**job)`` dict as ``jobs.run_pool``'s ``(Job, options)``."""
    options = dict(job)
    row_id = options.pop("row_id")
    get_row(row_id)
    sizes = {k: options.pop(k, None) for k in ("seed", "dataset", "epochs", "n_train")}
    sizes["seed"] = sizes["seed"] or 0
    sizes["dataset"] = sizes["dataset"] or "mnist"
    return Job("row", row_id, **sizes), options


def run_jobs(jobs, processes=None, progress=None):
    """``run(**job)`` for each dict in ``jobs``, in parallel processes (default:
    one per core); results in the order of ``jobs``.

    Each job is ``jobs.train``'s: one BLAS thread, so two processes use both
    cores of a 2-core machine; the jobs expected to take longest start first.
    Results are identical to running the jobs one by one.
    """
    tasks = [_task(job) for job in jobs]
    results = [None] * len(tasks)
    bar = progress_bar(progress, len(tasks), "rows", unit="run")

    def done(index, result):
        results[index] = result
        bar.update(1)

    try:
        run_pool(train, tasks, processes, done=done)
    finally:
        bar.close()
    return results


def run_many(row_ids, seeds, processes=None, keep_model=False, progress=None, **kwargs):
    """Run every row of ``row_ids`` with every seed (order: rows × seeds), in
    parallel processes; ``kwargs`` go to ``run``."""
    return run_jobs(
        [
            dict(row_id=row_id, seed=int(seed), keep_model=keep_model, **kwargs)
            for row_id in row_ids
            for seed in seeds
        ],
        processes,
        progress,
    )


def prediction_interval(values, level=0.95):
    r"""The interval that holds one new run with probability ``level``, from
    ``values`` (the seeds' figures), assuming they are normal draws:
    :math:`\bar x \pm t_{(1+level)/2,\,n-1}\, s \sqrt{1 + 1/n}` (Student's t,
    :math:`s` the sample standard deviation). ``(nan, nan)`` for fewer than 2 values."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    from scipy.stats import t

    half = t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) * math.sqrt(1 + 1 / n)
    return float(values.mean() - half), float(values.mean() + half)


def verdict(values, report):
    """One line: does the report's single run look like one more of our seeds?

    It does when it lies inside the 95% prediction interval for one new run
    (``prediction_interval``); ``z`` is its distance from the seeds' mean in
    seed standard deviations."""
    values = np.asarray(values, dtype=float)
    if report is None:
        return "the report gives no figure"
    if not np.all(np.isfinite(values)):
        return "some seeds are not finite"
    if len(values) < 2:
        return "one seed: no interval"
    low, high = prediction_interval(values)
    spread, gap = values.std(ddof=1), report - values.mean()
    if spread == 0:
        return (
            "inside (no spread)" if gap == 0 else f"{'above' if gap > 0 else 'below'} (no spread)"
        )
    z = gap / spread
    where = "inside" if low <= report <= high else ("above" if report > high else "below")
    return f"{where} [{low:.4f}, {high:.4f}], z = {z:+.1f}"


def fingerprint(results, entries=10):
    """Lines that pin down each row's training for regression checks: seed 0's
    first ``entries`` loss-curve means (100 steps each), to 6 significant
    figures. They change with any change of a row's settings, data or maths,
    but not with a BLAS or CPU that rounds differently in the last bits (float64,
    and before chaotic rows amplify rounding)."""
    lines = []
    for r in results:
        if r.seed != 0:
            continue
        curve = " ".join(f"{x:.6g}" for x in np.asarray(r.loss_curve)[:entries])
        lines.append(f"{r.row} seed 0, loss per 100 steps from step 0: {curve}")
    return "\n".join(lines)


def compare_with_report(summary):
    """Each row's figures against the report's, one paragraph a row (the
    notebooks' closing cell)."""
    lines = []
    for s in summary:
        n = len(s["seeds"])
        lines.append(f"{s['row']} (seeds {s['seeds']}):")
        for name, key, report in (
            ("accuracy", "acc", s["report_accuracy"]),
            ("test loss", "loss", s["report_loss"]),
        ):
            theirs = "no figure" if report is None else f"{report:.4f}"
            spread = (
                f"{s[key + '_mean']:.4f} ± {s[key + '_std']:.4f} "
                f"(min–max {s[key + '_min']:.4f}–{s[key + '_max']:.4f})"
                if n > 1
                else f"{s[key + '_mean']:.4f} (one seed: no spread)"
            )
            lines.append(f"  {name} {spread}; report {theirs}: {s[key + '_verdict']}")
    return "\n".join(lines)


def summarize(results):
    """Per row: mean ± std (ddof=1), min–max over seeds, beside the report.

    Returns a list of dicts with keys ``row``, ``seeds``, ``loss_mean``,
    ``loss_std``, ``loss_min``, ``loss_max``, ``acc_mean``, ``acc_std``,
    ``acc_min``, ``acc_max``, ``report_loss``, ``report_accuracy``,
    ``loss_verdict``, ``acc_verdict`` (``verdict``), ``diverged``.
    """
    by_row = {}
    for result in results:
        by_row.setdefault(result.row, []).append(result)
    table = []
    for row_id, group in by_row.items():
        row = ROWS[row_id]
        losses = np.array([r.test_loss for r in group])
        accs = np.array([r.test_accuracy for r in group])
        ddof = 1 if len(group) > 1 else 0
        with np.errstate(all="ignore"):
            table.append(
                {
                    "row": row_id,
                    "seeds": [r.seed for r in group],
                    "loss_mean": float(np.mean(losses)),
                    "loss_std": float(np.std(losses, ddof=ddof)),
                    "loss_min": float(np.min(losses)),
                    "loss_max": float(np.max(losses)),
                    "acc_mean": float(np.mean(accs)),
                    "acc_std": float(np.std(accs, ddof=ddof)),
                    "acc_min": float(np.min(accs)),
                    "acc_max": float(np.max(accs)),
                    "report_loss": row.report_loss,
                    "report_accuracy": row.report_accuracy,
                    "loss_verdict": verdict(losses, row.report_loss),
                    "acc_verdict": verdict(accs, row.report_accuracy),
                    "diverged": sum(r.diverged_at is not None for r in group),
                }
            )
    return table


def format_table(summary):
    """The summary as a Markdown ``Table`` (rendered in a notebook): the report's
    figure, our mean ± std over the seeds ("± —" for one seed), and the verdict
    (the report's run against the 95% prediction interval for one new run), for
    the test loss and the accuracy."""
    header = [
        "row",
        "seeds",
        "report loss",
        "loss (mean ± std)",
        "loss verdict: report vs 95% PI",
        "report acc",
        "acc (mean ± std)",
        "acc min–max",
        "acc verdict: report vs 95% PI",
    ]
    rows = [
        [
            s["row"],
            len(s["seeds"]),
            figure(s["report_loss"]),
            mean_std(s["loss_mean"], s["loss_std"], len(s["seeds"])),
            s["loss_verdict"],
            figure(s["report_accuracy"]),
            mean_std(s["acc_mean"], s["acc_std"], len(s["seeds"])),
            f"{figure(s['acc_min'])}–{figure(s['acc_max'])}",
            s["acc_verdict"],
        ]
        for s in summary
    ]
    return markdown_table(header, rows)


def save_results(results, path, command=None):
    """Write results (figures and loss curves, no models) as JSON to ``path``,
    with their provenance (``mlp_lib.study.provenance``): ``{"provenance": ...,
    "runs": [...]}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [
        dict(r.as_dict(), loss_curve=np.asarray(r.loss_curve).tolist(), seconds=r.seconds)
        for r in results
    ]
    document = {"provenance": provenance(command), "runs": records}
    path.write_text(json.dumps(document) + "\n")


def load_provenance(path):
    """The provenance record of a results file (None for an old file without one)."""
    document = json.loads(Path(path).read_text())
    return document.get("provenance") if isinstance(document, dict) else None


def load_results(path):
    """Read what ``save_results`` wrote; a clear error says how to make the file."""
    path = Path(path)
    if not path.is_file():
        row = ROWS.get(path.stem)
        writer = (
            f"notebook {row.notebook} writes them: python3 tasks.py reproduce {row.notebook}"
            if row
            else "python3 tasks.py reproduce writes the committed results"
        )
        raise FileNotFoundError(f"{path}: no saved results ({writer})")
    document = json.loads(path.read_text())
    records = document["runs"] if isinstance(document, dict) else document
    return [RunResult.from_record(r) for r in records]


def confusion_matrix(labels, predicted, n_classes=10):
    """``counts[true, predicted]``: how often each true class got each prediction."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    return counts


def layer_gradient_norms(model, images, labels):
    """Mean over samples of the Frobenius norm of each layer's weight gradient,
    ``||∂L/∂W_l||`` for one sample at a time (per-sample SGD's actual step sizes).

    Returns an array of shape (n_layers,), layer 1 first.
    """
    norms = np.zeros(model.n_layers)
    for image, label in zip(images, labels):
        _, weight_grads, _ = model.gradients(image, label)
        norms += [np.linalg.norm(g) for g in weight_grads]
    return norms / len(images)
