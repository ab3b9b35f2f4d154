"""Command line: ``mlp-lib COMMAND`` (or ``python -m mlp_lib COMMAND``); ``--help`` lists the commands.

User errors (bad arguments, missing or corrupt files) print one line
``error: ...`` and exit with status 2, without a traceback; Ctrl-C during
training saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from ..io.project import VERSION
from . import commands


DATASET_NAMES = ("mnist", "fashion-mnist")


def _dataset_option(parser):
    parser.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default="mnist",
        help="the data to train or test on (default mnist)",
    )


def _shortening_options(parser, epochs_help, n_train_help):
    parser.add_argument("--epochs", type=_positive_int, default=None, help=epochs_help)
    parser.add_argument("--n-train", type=_positive_int, default=None, help=n_train_help)


def _executor_options(parser):
    """Where the runs go (local processes or Dask), and the progress bar."""
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on Dask: tcp://HOST:PORT of a running scheduler, or local:N "
        "for a LocalCluster of N worker processes (pip install -e "
        ".[cluster]); default: local processes",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=None,
        help="local processes (default: one per core)",
    )
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=2,
        help="times a run whose worker died is run again (2)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors: ``error: ...`` and exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _int_at_least(lowest):
    """argparse type: an int >= ``lowest``, refused before any data is loaded."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{text} must be at least {lowest}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _rate(upper=None):
    """argparse type: a finite float >= 0 (and < ``upper`` if given)."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < 0 or (upper is not None and value >= upper):
            bound = f"in [0, {upper})" if upper is not None else "a finite number >= 0"
            raise argparse.ArgumentTypeError(f"{text} must be {bound}")
        return value

    return parse


def build_parser():
    """The parser of every command (``main`` runs it)."""
    parser = _Parser(
        prog="mlp-lib",
        description="mlp_lib: reproduce the coursework report's MLP experiments on MNIST.",
    )
    parser.add_argument("--version", action="version", version=f"mlp_lib {VERSION}")
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="folder holding the MNIST IDX files (default: $MLP_LIB_DATA, else data/mnist "
        "of the source checkout, else the cache an installed package fetches them into)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_reproduce(sub)
    _add_sweep(sub)
    _add_train(sub)
    _add_checkpoint_commands(sub)
    _add_serve(sub)
    return parser


def _add_reproduce(sub):
    rep = sub.add_parser(
        "reproduce",
        help="train rows of the report's table and print them beside the report",
        description="Train each ROW_ID with the report's per-sample SGD (3 epochs over the "
        "60,000 training images in file order) and print test loss and accuracy "
        "beside the report's. Several rows or seeds run in parallel processes.",
    )
    rep.add_argument(
        "rows", nargs="+", metavar="ROW_ID", help="row ids (see 'mlp-lib rows'), or 'all'"
    )
    rep.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[0],
        metavar="S",
        help="seed(s) of the initial weights (default 0); several run each row once per seed",
    )
    rep.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: row, seed, dataset, test_loss, "
        "test_accuracy, seconds, diverged_at",
    )
    _dataset_option(rep)
    _shortening_options(
        rep,
        "override the rows' 3 epochs (quick checks; the table uses 3)",
        "train on the first N images only (quick checks; the table uses 60,000)",
    )
    _results_option(
        rep,
        "keep each finished run in this file (JSON lines) and skip those already there "
        "(default: nothing kept)",
    )
    _executor_options(rep)
    rep.set_defaults(func=commands.reproduce)


def _results_option(parser, help, required=False):
    """--results FILE.jsonl, shared by reproduce and sweep: a run is appended as it ends."""
    parser.add_argument(
        "--results", metavar="FILE.jsonl", default=None, required=required, help=help
    )


def _add_sweep(sub):
    sw = sub.add_parser(
        "sweep",
        help="run rows or rungs × seeds × datasets, resumable, locally or on Dask",
        description="Run a grid of report rows (per-sample SGD) and notebook-05 rungs × seeds "
        "× datasets. Each finished run is appended to --results as one JSON line "
        "with its provenance, so a stopped sweep resumes by skipping what is "
        "done. Local processes by default; --scheduler sends the runs to Dask.",
    )
    sw.add_argument(
        "--rows", nargs="+", default=[], metavar="ROW", help="report rows (see 'rows'), or 'all'"
    )
    sw.add_argument(
        "--rungs",
        nargs="+",
        default=[],
        metavar="RUNG",
        help="notebook 05's rungs by name, e.g. '60-second sprint'",
    )
    sw.add_argument("--seeds", type=_non_negative_int, nargs="+", default=[0], metavar="S")
    sw.add_argument("--datasets", nargs="+", default=["mnist"], choices=DATASET_NAMES)
    _shortening_options(
        sw,
        "override each run's epochs (quick checks)",
        "train rows on the first N images only (quick checks)",
    )
    sw.add_argument(
        "--config",
        metavar="FILE.toml",
        default=None,
        help="the grid from a TOML file (keys: rows, rungs, seeds, datasets, "
        "epochs, n_train); it overrides the flags",
    )
    _results_option(sw, "results file: one JSON line per finished run", required=True)
    sw.add_argument(
        "--restart",
        action="store_true",
        help="start the results file afresh instead of skipping what it holds",
    )
    sw.add_argument("--json", action="store_true", help="print one JSON object per run")
    _executor_options(sw)
    sw.set_defaults(func=commands.sweep)
    rows = sub.add_parser("rows", help="list the report's rows and their settings")
    rows.set_defaults(func=commands.rows)


def _add_train(sub):
    train = sub.add_parser(
        "train",
        help="train a network on MNIST and save it",
        description="Train an MLP on the 60,000 MNIST training images and save it as a "
        "checkpoint. --batch-size 1 is the report's per-sample SGD in file "
        "order; larger batches are mini-batch SGD with seeded shuffling. Ctrl-C "
        "saves the run to --output; --resume continues it bit for bit.",
    )
    train.add_argument(
        "--layers",
        type=_positive_int,
        nargs="+",
        default=[784, 512, 256, 64, 10],
        metavar="N",
        help="layer sizes (default 784 512 256 64 10)",
    )
    train.add_argument("--activation", default="relu", choices=["relu", "sigmoid"])
    train.add_argument("--init", default="he", choices=["he", "xavier", "normal", "uniform"])
    train.add_argument(
        "--schedule",
        default="0.01",
        help="learning rate: RATE, constant:RATE, linear:START,END,STEPS or "
        "cosine:RATE (default 0.01)",
    )
    train.add_argument("--epochs", type=_positive_int, default=3, help="passes over the data (3)")
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1,
        help="1 = per-sample SGD (default), more = mini-batch",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling")
    train.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    train.add_argument(
        "--output",
        "-o",
        default=None,
        help="checkpoint file to write (default: model.npz, or the --resume file)",
    )
    train.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue an interrupted run (its settings come from the file)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _dataset_option(train)
    train.set_defaults(func=commands.train)
    _add_minibatch_options(train)


def _add_minibatch_options(train):
    batch = train.add_argument_group(
        "mini-batch options (notebook 05's; need --batch-size > 1; --resume keeps them)"
    )
    batch.add_argument(
        "--optimizer",
        default="sgd",
        choices=["sgd", "momentum", "nesterov", "adam"],
        help="optimiser (default plain SGD; momentum and nesterov use 0.9)",
    )
    batch.add_argument("--dropout", type=_rate(1.0), default=0.0, help="dropout on hidden units")
    batch.add_argument("--input-dropout", type=_rate(1.0), default=0.0, help="dropout on pixels")
    batch.add_argument("--weight-decay", type=_rate(), default=0.0, help="L2 penalty λ")
    batch.add_argument(
        "--max-norm", type=_rate(), default=None, help="cap on each unit's incoming weight norm"
    )
    batch.add_argument("--shift", type=_rate(), default=0.0, help="augmentation: max shift (px)")
    batch.add_argument(
        "--rotation", type=_rate(), default=0.0, help="augmentation: max rotation (degrees)"
    )
    batch.add_argument(
        "--scale", type=_rate(), default=0.0, help="augmentation: max relative scale change"
    )
    batch.add_argument(
        "--elastic",
        type=_rate(),
        default=0.0,
        help="augmentation: elastic distortion strength α (σ = 4)",
    )
    batch.add_argument(
        "--validation",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="hold out the last N training images; keep the best epoch",
    )
    batch.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help="stop after this many epochs without a better validation loss",
    )


def _add_checkpoint_commands(sub):
    ev = sub.add_parser(
        "evaluate",
        help="test loss and accuracy of a saved model",
        description="Evaluate a checkpoint on an MNIST split.",
    )
    ev.add_argument("checkpoint")
    ev.add_argument("--split", default="test", choices=["test", "train"])
    ev.add_argument("--json", action="store_true", help="one JSON object")
    _dataset_option(ev)
    ev.set_defaults(func=commands.evaluate)
    pred = sub.add_parser(
        "predict",
        help="classify images of handwritten digits",
        description="Classify photos or drawings of single digits (PNG, or JPEG with "
        "Pillow): each is converted to a 28×28 MNIST-like image (grayscale, "
        "inverted if the paper is light, cropped, scaled to 20 px and centred "
        "by mass) and the top probabilities are printed.",
    )
    pred.add_argument("checkpoint")
    pred.add_argument("images", nargs="+", metavar="IMAGE")
    pred.add_argument("--top", type=_positive_int, default=3, help="how many classes to show (3)")
    pred.set_defaults(func=commands.predict)
    table = sub.add_parser(
        "table",
        help="the report-vs-reproduced table from the notebooks' saved results",
        description="Summarise results/*.json (written by the notebooks) as a Markdown "
        "table: mean ± std over seeds beside the report, with a verdict.",
    )
    table.set_defaults(func=commands.table)


def _add_serve(sub):
    srv = sub.add_parser(
        "serve",
        help="a local page: draw a digit and watch every layer",
        description="Serve a page on which you draw a digit (or drop an image) and see the "
        "28×28 input, the ten probabilities, every hidden layer's activations and "
        "the first-layer weights of the most active units. Without checkpoints "
        "it serves the default models (relu-he-const, sigmoid-normal, sprint), "
        "training those missing once, in the background, into the cache folder.",
    )
    srv.add_argument(
        "checkpoints",
        nargs="*",
        metavar="MODEL.npz",
        help="models to serve (named by their file names)",
    )
    srv.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; any other address "
        "needs a token)",
    )
    srv.add_argument(
        "--token",
        default=None,
        help="the token every request must carry (default: none on 127.0.0.1, a new "
        "random one on any other address, printed in the URL)",
    )
    srv.add_argument(
        "--port",
        type=_non_negative_int,
        default=8000,
        help="port (default 8000; 0 picks a free one)",
    )
    srv.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        help="where default models are kept (default $MLP_LIB_CACHE, else ~/.cache/mlp_lib)",
    )
    srv.add_argument("--verbose", action="store_true", help="log every request")
    srv.set_defaults(func=commands.serve)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.data is not None:
        os.environ["MLP_LIB_DATA"] = args.data  # read by data.default_root
    if args.command == "train" and args.output is None and args.resume is None:
        args.output = "model.npz"
    from ..engines import DivergenceError, TrainingInterrupted
    from ..io.checkpoint import CheckpointError
    from ..io.data import DataError

    try:
        return args.func(args)
    except TrainingInterrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted (nothing was being trained, nothing saved)", file=sys.stderr)
        return 130
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        DataError,
        CheckpointError,
        DivergenceError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
