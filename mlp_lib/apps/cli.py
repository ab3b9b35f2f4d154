"""Command line: ``python -m mlp_lib COMMAND``; ``--help`` lists the commands.

User errors (bad arguments, missing or corrupt files) print one line
``error: ...`` and exit with status 2, without a traceback; Ctrl-C during
training saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from ..io.project import VERSION


def _fmt(x):
    return "—" if x is None else f"{x:.4f}"


def _reproduce(args):
    from ..study.rows import ROWS

    rows = list(ROWS) if args.rows == ["all"] else args.rows
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown row {', '.join(unknown)}; valid: {', '.join(ROWS)} (or 'all')")
    args.rows, args.rungs, args.seeds, args.datasets = rows, [], args.seed, [args.dataset]
    args.config = None
    args.restart = args.results is None
    if (args.epochs or args.n_train) and not args.json:
        print(
            f"quick check: {args.epochs or 3} epochs on {args.n_train or 60000:,} images "
            f"(the report's figures are for 3 epochs on 60,000)"
        )
    return _sweep(args, beside_report=True)


def _sweep(args, beside_report=False):
    """``sweep`` (and ``reproduce``, a sweep of rows printed beside the report)."""
    import tempfile

    from ..study.rows import ROWS
    from ..study.sweep import grid, load_config, run_sweep

    config = load_config(args.config) if args.config else {}
    settings = {
        key: config.get(key, getattr(args, key))
        for key in ("rows", "rungs", "seeds", "datasets", "epochs", "n_train")
    }
    if settings["rows"] == ["all"]:
        settings["rows"] = list(ROWS)
    jobs = grid(**settings)
    if not jobs:
        raise ValueError("the sweep is empty: give --rows or --rungs (or a --config file)")
    command = "python -m mlp_lib " + " ".join(sys.argv[1:]) if sys.argv[1:] else None
    with tempfile.TemporaryDirectory() as scratch:
        results = args.results or os.path.join(scratch, "runs.jsonl")
        if args.results:
            _check_output(results)
        report = run_sweep(
            jobs,
            results,
            scheduler=args.scheduler,
            processes=args.processes,
            retries=args.retries,
            progress=False if args.quiet else None,
            restart=args.restart,
            command=command,
        )
    for record in report.records:
        if args.json and beside_report:  # reproduce's documented fields, as before
            print(
                json.dumps(
                    {
                        "row": record["name"],
                        **{
                            key: record[key]
                            for key in (
                                "seed",
                                "dataset",
                                "test_loss",
                                "test_accuracy",
                                "seconds",
                                "diverged_at",
                            )
                        },
                    }
                ),
                flush=True,
            )
            continue
        if args.json:
            print(json.dumps({k: v for k, v in record.items() if k != "loss_curve"}), flush=True)
            continue
        note = (
            f"  (diverged at step {record['diverged_at']})"
            if record.get("diverged_at") is not None
            else ""
        )
        beside = ("", "")
        if beside_report and record["dataset"] == "mnist":
            row = ROWS[record["name"]]
            beside = (
                f" (report {_fmt(row.report_loss)})",
                f" (report {_fmt(row.report_accuracy)})",
            )
        label = record["name"] if beside_report else f"{record['dataset']} {record['name']}"
        print(
            f"{label:15s} seed {record['seed']:<3d} test loss {record['test_loss']:.4f}"
            f"{beside[0]}  accuracy {record['test_accuracy']:.4f}{beside[1]}  "
            f"{record['seconds']:.1f} s{note}",
            flush=True,
        )
    if not args.json and not beside_report:
        print(
            f"{len(report.records)} runs in {args.results} ({report.skipped} already there, "
            f"{len(report.records) - report.skipped} run now in {report.seconds:.0f} s)"
        )
    for job, error in report.lost:
        print(f"error: run {job.key} lost after {args.retries} retries: {error}", file=sys.stderr)
    return 1 if report.lost else 0


def _rows(args):
    from ..study.rows import ROWS

    for row in ROWS.values():
        print(
            f"{row.id:15s} {row.describe()}; report: loss {_fmt(row.report_loss)}, "
            f"accuracy {_fmt(row.report_accuracy)} (notebook {row.notebook})"
        )
    return 0


def _table(args):
    from ..study.experiments import RESULTS_DIR, ROWS, format_table, load_results, summarize

    results = []
    missing = []
    for row_id in ROWS:
        path = RESULTS_DIR / f"{row_id}.json"
        if path.is_file():
            results += load_results(path)
        else:
            missing.append(row_id)
    if not results:
        raise FileNotFoundError(
            "no saved results in results/; python3 tasks.py reproduce writes them"
        )
    table = format_table(summarize(results))
    if missing:
        table += f"\n\n(no saved results for: {', '.join(missing)})"
    print(table)
    return 0


DATASET_NAMES = ("mnist", "fashion-mnist")


def _dataset_option(parser):
    parser.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default="mnist",
        help="the data to train or test on (default mnist)",
    )


def _executor_options(parser):
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


def _parse_schedule(text, n_steps=1, per_epoch=1):
    """``0.01`` or ``constant:0.01``, ``linear:START,END,STEPS``, or
    ``cosine:RATE`` (over the ``n_steps`` of the run, warming up for one epoch
    or a fifth of the run, whichever is shorter, as notebook 05 does)."""
    from ..core.schedules import Constant, Cosine, LinearDecay

    kind, _, rest = text.partition(":")
    try:
        if not rest:
            return Constant(float(kind))
        if kind == "constant":
            return Constant(float(rest))
        if kind == "cosine":
            return Cosine(float(rest), n_steps, warmup=min(per_epoch, n_steps // 5))
        if kind == "linear":
            start, end, steps = rest.split(",")
            return LinearDecay(float(start), float(end), int(steps))
    except ValueError as exc:
        raise ValueError(f"bad --schedule {text!r} ({exc}); {_SCHEDULE_FORMS}") from None
    raise ValueError(f"bad --schedule {text!r}; {_SCHEDULE_FORMS}")


_SCHEDULE_FORMS = (
    "use RATE (e.g. 0.01), constant:RATE, linear:START,END,STEPS (e.g. "
    "linear:0.01,1e-6,15000) or cosine:RATE"
)


def _check_output(path):
    """Refuse, before any work, an output path the model could not be saved to."""
    import tempfile
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"-o {path}: is a directory; name a file, e.g. {path / 'model.npz'}")
    if not path.parent.is_dir():
        raise ValueError(f"-o {path}: the folder {path.parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".mlp_lib-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"-o {path}: cannot write in {path.parent} ({exc.strerror})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"-o {path}: the file exists and is not writable")


def _save_model(output, model, save):
    """Save to ``output``; if that fails, to a new file in the working folder or
    the temporary folder, so a trained model is never lost. Returns the path
    written and the error that diverted it (or None)."""
    import tempfile
    import time
    from pathlib import Path

    try:
        return save(output, model), None
    except OSError as exc:
        name = f"mlp_lib-model-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.npz"
        for folder in (Path.cwd(), Path(tempfile.gettempdir())):
            try:
                return save(folder / name, model), exc
            except OSError:
                continue
        raise


#: The CLI's mini-batch options (notebook 05's), kept in an interrupted run's
#: checkpoint so that --resume continues with the same ones.
MINIBATCH_OPTIONS = {
    "optimizer": "sgd",
    "dropout": 0.0,
    "input_dropout": 0.0,
    "weight_decay": 0.0,
    "max_norm": None,
    "shift": 0.0,
    "rotation": 0.0,
    "scale": 0.0,
    "elastic": 0.0,
    "validation": 0,
    "patience": None,
}


def _train(args):
    import numpy as np

    from ..core.augment import distort
    from ..core.model import MLP
    from ..core.optim import make_optimizer
    from ..engines import evaluate, train_minibatch, train_per_sample
    from ..engines.lifecycle import sigint_flag
    from ..io.checkpoint import load_checkpoint, save_checkpoint
    from ..io.data import load_dataset

    progress = False if args.quiet else None
    state = None
    if args.resume:
        model, state = load_checkpoint(args.resume)
        if state is None:
            raise ValueError(f"{args.resume}: holds a finished model, not a training run to resume")
        per_sample = state.trainer == "per-sample"
        info = (state.extra or {}).get("info") or {}
        for name, value in info.items():
            setattr(args, name, value)
    else:
        if args.layers[0] != 784 or args.layers[-1] != 10:
            raise ValueError(
                f"--layers must start with 784 (MNIST pixels) and end with 10 "
                f"(classes), got {args.layers}"
            )
        model = MLP(
            args.layers, args.activation, args.init, seed=args.seed, dtype=np.dtype(args.dtype)
        )
        per_sample = args.batch_size == 1
        _parse_schedule(args.schedule)  # its syntax, before any work
    changed = [
        name for name, default in MINIBATCH_OPTIONS.items() if getattr(args, name) != default
    ]
    if per_sample and changed:
        raise ValueError(
            f"--{changed[0].replace('_', '-')} is a mini-batch option: give --batch-size > 1"
        )
    output = args.output or args.resume
    _check_output(output)
    images, labels = load_dataset(args.dataset, "train", dtype=model.dtype)
    validation = None
    if args.validation:
        if not 0 < args.validation < len(images):
            raise ValueError(f"--validation must be in 1..{len(images) - 1}, got {args.validation}")
        validation = (images[-args.validation :], labels[-args.validation :])
        images, labels = images[: -args.validation], labels[: -args.validation]
    common = dict(progress=progress, checkpoint=output, resume=state)
    batch_size = state.batch_size if state and not per_sample else args.batch_size
    if state is None:
        per_epoch = -(-len(images) // batch_size)
        common.update(
            epochs=args.epochs,
            schedule=_parse_schedule(args.schedule, args.epochs * per_epoch, per_epoch),
        )
    augment = None
    if args.shift or args.rotation or args.scale or args.elastic:

        def augment(batch, rng):
            return distort(batch, rng, args.shift, args.rotation, args.scale, args.elastic)

    # Ctrl-C from here on stops the run with a checkpoint, even during the
    # trainer's set-up (the trainer shares this flag)
    with sigint_flag():
        print(
            f"training {model} on {len(images):,} images"
            + (f", resuming at step {state.step}" if state else ""),
            flush=True,
        )
        if per_sample:
            history = train_per_sample(model, images, labels, **common)
        else:
            history = train_minibatch(
                model,
                images,
                labels,
                seed=args.seed,
                batch_size=batch_size,
                optimizer=make_optimizer(args.optimizer),
                weight_decay=args.weight_decay,
                dropout=args.dropout,
                input_dropout=args.input_dropout,
                max_norm=args.max_norm,
                augment=augment,
                validation=validation,
                patience=args.patience,
                checkpoint_info={
                    **{name: getattr(args, name) for name in MINIBATCH_OPTIONS},
                    "seed": args.seed,
                },
                **common,
            )
    saved, diverted = _save_model(output, model, save_checkpoint)
    loss, accuracy = evaluate(model, *load_dataset(args.dataset, "test", dtype=model.dtype))
    print(
        f"trained {history.steps} steps in {history.seconds:.1f} s; test loss {loss:.4f}, "
        f"accuracy {accuracy:.4f}; model saved to {saved}"
    )
    if diverted is not None:
        print(
            f"error: could not save to {output} ({diverted}); the trained model was "
            f"saved to {saved} instead",
            file=sys.stderr,
        )
        return 1
    return 0


def _evaluate(args):
    from ..engines import evaluate
    from ..io.checkpoint import load_checkpoint
    from ..io.data import load_dataset

    model, _ = load_checkpoint(args.checkpoint)
    loss, accuracy = evaluate(model, *load_dataset(args.dataset, args.split, dtype=model.dtype))
    if args.json:
        print(
            json.dumps(
                {"dataset": args.dataset, "split": args.split, "loss": loss, "accuracy": accuracy}
            )
        )
    else:
        where = "" if args.dataset == "mnist" else f" of {args.dataset}"
        print(
            f"{args.checkpoint} on the {args.split} set{where}: loss {loss:.4f}, "
            f"accuracy {accuracy:.4f}"
        )
    return 0


def _serve(args):
    from ..io.checkpoint import load_checkpoint
    from .serve import serve

    for path in args.checkpoints:
        load_checkpoint(path)  # a bad file fails here, in one line
    try:
        return serve(
            args.checkpoints, host=args.host, port=args.port, cache=args.cache, verbose=args.verbose
        )
    except OSError as exc:  # port in use, address not available
        import errno

        hint = (
            "; another program uses that port: choose another with --port (e.g. --port "
            f"{args.port + 1}, or --port 0 for any free one)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise ValueError(
            f"cannot serve on {args.host}:{args.port} ({exc.strerror}){hint}"
        ) from None


def _predict(args):
    import numpy as np

    from ..io.checkpoint import load_checkpoint
    from ..io.data import DataError, image_to_mnist

    model, _ = load_checkpoint(args.checkpoint)
    if model.layer_sizes[0] != 784:
        raise ValueError(
            f"{args.checkpoint}: the model takes {model.layer_sizes[0]} inputs, not a 28×28 image"
        )
    failed = 0
    for path in args.images:  # every readable image is classified; each bad one is reported
        try:
            pixels = image_to_mnist(path)
        except (FileNotFoundError, DataError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            failed += 1
            continue
        probs = model.forward(pixels)
        top = np.argsort(probs)[::-1][: args.top]
        print(f"{path}: " + ", ".join(f"{d} ({probs[d]:.1%})" for d in top), flush=True)
    if failed:
        print(
            f"error: {failed} of {len(args.images)} images could not be classified", file=sys.stderr
        )
        return 2
    return 0


def main(argv=None):
    parser = _Parser(
        prog="python -m mlp_lib",
        description="mlp_lib: reproduce the coursework report's MLP experiments on MNIST.",
    )
    parser.add_argument("--version", action="version", version=f"mlp_lib {VERSION}")
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="folder holding the MNIST IDX files (default: $MLP_LIB_DATA, "
        "else data/mnist of the source checkout)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    rep = commands.add_parser(
        "reproduce",
        help="train rows of the report's table and print them beside the report",
        description="Train each ROW_ID with the report's per-sample SGD (3 epochs over the "
        "60,000 training images in file order) and print test loss and accuracy "
        "beside the report's. Several rows or seeds run in parallel processes.",
    )
    rep.add_argument(
        "rows", nargs="+", metavar="ROW_ID", help="row ids (see 'python -m mlp_lib rows'), or 'all'"
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
    rep.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="override the rows' 3 epochs (quick checks; the table uses 3)",
    )
    rep.add_argument(
        "--n-train",
        type=_positive_int,
        default=None,
        help="train on the first N images only (quick checks; the table uses 60,000)",
    )
    rep.add_argument(
        "--results",
        metavar="FILE.jsonl",
        default=None,
        help="keep each finished run in this file (JSON lines) and skip those "
        "already there (default: nothing kept)",
    )
    _executor_options(rep)
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func=_reproduce)
    sw = commands.add_parser(
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
    sw.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="override each run's epochs (quick checks)",
    )
    sw.add_argument(
        "--n-train",
        type=_positive_int,
        default=None,
        help="train rows on the first N images only (quick checks)",
    )
    sw.add_argument(
        "--config",
        metavar="FILE.toml",
        default=None,
        help="the grid from a TOML file (keys: rows, rungs, seeds, datasets, "
        "epochs, n_train); it overrides the flags",
    )
    sw.add_argument(
        "--results",
        metavar="FILE.jsonl",
        required=True,
        help="results file: one JSON line per finished run",
    )
    sw.add_argument(
        "--restart",
        action="store_true",
        help="start the results file afresh instead of skipping what it holds",
    )
    _executor_options(sw)
    sw.add_argument("--json", action="store_true", help="print one JSON object per run")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)
    rows = commands.add_parser("rows", help="list the report's rows and their settings")
    rows.set_defaults(func=_rows)
    train = commands.add_parser(
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
    _dataset_option(train)
    train.set_defaults(func=_train)
    ev = commands.add_parser(
        "evaluate",
        help="test loss and accuracy of a saved model",
        description="Evaluate a checkpoint on an MNIST split.",
    )
    ev.add_argument("checkpoint")
    ev.add_argument("--split", default="test", choices=["test", "train"])
    ev.add_argument("--json", action="store_true", help="one JSON object")
    _dataset_option(ev)
    ev.set_defaults(func=_evaluate)
    pred = commands.add_parser(
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
    pred.set_defaults(func=_predict)
    table = commands.add_parser(
        "table",
        help="the report-vs-reproduced table from the notebooks' saved results",
        description="Summarise results/*.json (written by the notebooks) as a Markdown "
        "table: mean ± std over seeds beside the report, with a verdict.",
    )
    table.set_defaults(func=_table)
    srv = commands.add_parser(
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
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
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
    srv.set_defaults(func=_serve)
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
