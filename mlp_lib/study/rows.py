"""The report's rows (docs/experiments.md, "The rows") and how one row is trained.

``ROWS`` holds each row's settings beside the report's figures; ``run(row_id,
seed)`` trains one row from scratch with the report's per-sample SGD and tests
it. Many rows and seeds at once: ``experiments.run_many`` (through
``jobs.train``, one BLAS thread each).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from ..core.model import MLP, evaluate
from ..core.schedules import Constant, LinearDecay
from ..engines.per_sample import train_per_sample
from ..io.data import default_root, load_dataset

__all__ = ["SEEDS", "FOUR_LAYER", "SIX_LAYER", "Row", "ROWS", "RunResult", "get_row", "run"]

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

    @classmethod
    def from_record(cls, record):
        """A result read back from a results file: a notebook's (``"row"``) or a
        sweep's (``"name"``, ``"dataset"``) record; no model."""
        return cls(
            record["row"] if "row" in record else record["name"],
            record["seed"],
            record["test_loss"],
            record["test_accuracy"],
            np.array(record["loss_curve"]),
            record["seconds"],
            record["diverged_at"],
            dataset=record.get("dataset", "mnist"),
        )

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
