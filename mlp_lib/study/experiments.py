"""The report's experiments (docs/experiments.md, "The rows") as named rows.

``run(row_id, seed)`` trains one row from scratch on MNIST with the report's
per-sample SGD and evaluates it on the test set; ``run_many`` does several
rows and seeds on all cores; ``summarize`` compares seeds with the report.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ..core.model import MLP, evaluate
from ..core.schedules import Constant, LinearDecay
from ..engines.lifecycle import progress_bar
from ..engines.per_sample import train_per_sample
from ..io.data import default_root, load_dataset
from .jobs import Job, run_pool, train
from .provenance import provenance
from .tables import figure, markdown_table, mean_std

__all__ = [
    "Row",
    "ROWS",
    "RunResult",
    "run",
    "run_many",
    "summarize",
    "verdict",
    "format_table",
    "save_results",
    "load_results",
    "load_provenance",
    "fingerprint",
    "confusion_matrix",
    "layer_gradient_norms",
    "run_jobs",
]

#: The seeds every notebook uses for every row (never chosen to match the report).
SEEDS = (0, 1, 2, 3, 4)


FOUR_LAYER = (784, 512, 256, 64, 10)
SIX_LAYER = (784, 512, 256, 128, 64, 32, 10)


@dataclass(frozen=True)
class Row:
    """One row of the report's table: the settings and what the report measured.

    ``report_loss`` / ``report_accuracy`` are the report's single-run test
    figures (``None`` where it gives none: the uniform row "did not converge").
    """

    id: str
    layer_sizes: tuple
    activation: str
    init: str
    schedule: object
    report_loss: float | None
    report_accuracy: float | None
    notebook: str
    epochs: int = 3

    def describe(self):
        depth = len(self.layer_sizes) - 1
        return (
            f"{depth}-layer {self.activation}, init {self.init}, "
            f"lr {self.schedule!r}, {self.epochs} epochs per-sample SGD"
        )


def _decay(n):  # the report's 10e-3 is 0.01 (docs/experiments.md)
    return LinearDecay(0.01, 1e-5, n) if n == 100000 else LinearDecay(0.01, 1e-6, n)


# fmt: off
ROWS = {row.id: row for row in [
    #   id               net         act        init       schedule         loss    accuracy notebook
    Row("sigmoid-normal", FOUR_LAYER, "sigmoid", "normal",  _decay(100000), 0.1893, 0.9444, "01"),
    Row("sigmoid-xavier", FOUR_LAYER, "sigmoid", "xavier",  _decay(100000), 0.3105, 0.9084, "03"),
    Row("relu-normal",    FOUR_LAYER, "relu",    "normal",  _decay(15000),  0.1666, 0.9495, "02"),
    Row("relu-xavier",    FOUR_LAYER, "relu",    "xavier",  _decay(15000),  0.1652, 0.9500, "03"),
    Row("relu-he",        FOUR_LAYER, "relu",    "he",      _decay(15000),  0.1553, 0.9521, "03"),
    Row("relu-he-const",  FOUR_LAYER, "relu",    "he",      Constant(0.01), 0.1041, 0.9723, "03"),
    Row("six-layer",      SIX_LAYER,  "relu",    "he",      Constant(0.01), 0.1530, 0.9618, "04"),
    Row("relu-uniform",   FOUR_LAYER, "relu",    "uniform", _decay(15000),  None,   None,   "03"),
]}
# fmt: on


@dataclass
class RunResult:
    """One trained row: test figures, the training curve and the model."""

    row: str
    seed: int
    test_loss: float
    test_accuracy: float
    loss_curve: np.ndarray
    seconds: float
    diverged_at: int | None = None
    model: MLP | None = field(default=None, repr=False)
    dataset: str = "mnist"

    def as_dict(self):
        """JSON-ready summary (no curve, no model)."""
        return {
            "row": self.row,
            "seed": self.seed,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "seconds": round(self.seconds, 3),
            "diverged_at": self.diverged_at,
        }


def get_row(row_id):
    try:
        return ROWS[row_id]
    except KeyError:
        raise ValueError(f"unknown row {row_id!r}; valid: {', '.join(ROWS)}") from None


@functools.lru_cache(maxsize=4)
def _data(dataset, split, root):
    """``load_dataset(dataset, split, root)`` once per process and read-only: a
    process running many rows converts the images to float only once (~0.3 s each)."""
    images, labels = load_dataset(dataset, split, root)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def run(
    row_id,
    seed=0,
    progress=None,
    epochs=None,
    n_train=None,
    keep_model=True,
    schedule=None,
    start_model=None,
    dataset="mnist",
    observer=None,
    on_start=None,
):
    """Train one row of the report from scratch and test it.

    Parameters
    ----------
    row_id : str or Row
        A key of ``ROWS`` (or a ``Row`` of one's own, e.g. the playground's
        custom settings).
    seed : int
        Seeds the initial weights (the data order is fixed, as in the report).
    progress : bool, None or callable
        Progress bar (default: only on a terminal); a callable ``progress(done,
        total)`` is told the steps done (``lifecycle.progress_bar``).
    epochs, n_train : int, optional
        Override the row's 3 epochs / the 60,000 training images (for quick
        checks only; the table uses the defaults).
    keep_model : bool
        Keep the trained model in the result.
    schedule : schedule, optional
        Override the row's learning-rate schedule (sensitivity checks).
    start_model : MLP, optional
        Continue training a copy of this model instead of a fresh one (e.g. a
        notebook cell run twice); ``seed`` is then only a label.
    dataset : {"mnist", "fashion-mnist"}
        Train and test on this dataset (same sizes, same order rules).
    observer : callable, optional
        Told each block of 100 steps (``train_per_sample``'s observer); the
        results are the same bits with or without one.
    on_start : callable, optional
        ``on_start(model)`` with the model about to be trained (the playground
        keeps it, to test and draw it while it trains).

    Returns
    -------
    RunResult
        A NaN/inf loss stops training (``diverged_at`` is the step) and the
        test figures are those of the model as it stopped.
    """
    row = row_id if isinstance(row_id, Row) else get_row(row_id)
    start = time.perf_counter()
    images, labels = _data(dataset, "train", default_root(dataset))
    if n_train is not None:
        images, labels = images[:n_train], labels[:n_train]
    if start_model is not None:
        model = start_model.copy()
    else:
        model = MLP(row.layer_sizes, row.activation, row.init, seed=seed)
    if on_start is not None:
        on_start(model)
    history = train_per_sample(
        model,
        images,
        labels,
        epochs=epochs or row.epochs,
        schedule=schedule or row.schedule,
        progress=progress,
        on_divergence="stop",
        observer=observer,
    )
    # one BLAS thread for the test set, wherever this runs (alone, in a worker, in the
    # playground): the matmul's last bits depend on how many threads split it
    with np.errstate(all="ignore"), threadpool_limits(1):  # (a diverged model: inf/NaN)
        test_loss, test_accuracy = evaluate(model, *_data(dataset, "test", default_root(dataset)))
    return RunResult(
        row.id,
        seed,
        test_loss,
        test_accuracy,
        history.loss_curve,
        time.perf_counter() - start,
        history.diverged_at,
        model if keep_model else None,
        dataset,
    )


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
    return [
        RunResult(
            r["row"],
            r["seed"],
            r["test_loss"],
            r["test_accuracy"],
            np.array(r["loss_curve"]),
            r["seconds"],
            r["diverged_at"],
        )
        for r in records
    ]


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
