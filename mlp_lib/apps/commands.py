"""What each command of the command line does (``cli`` parses, then calls one of these).

Each handler takes the parsed arguments and returns the exit status. User errors
raise ``ValueError`` (and the like), which ``cli.main`` prints in one line.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = [
    "reproduce",
    "sweep",
    "rows",
    "table",
    "train",
    "evaluate",
    "serve",
    "predict",
    "check_output",
    "save_model",
    "MINIBATCH_OPTIONS",
]


def _fmt(x):
    return "—" if x is None else f"{x:.4f}"


def reproduce(args):
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
    return sweep(args, beside_report=True)


def sweep(args, beside_report=False):
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
    command = "mlp-lib " + " ".join(sys.argv[1:]) if sys.argv[1:] else None
    with tempfile.TemporaryDirectory() as scratch:
        results = args.results or os.path.join(scratch, "runs.jsonl")
        if args.results:
            check_output(results)
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
        print(_record_line(record, args.json, beside_report), flush=True)
    if not args.json and not beside_report:
        print(
            f"{len(report.records)} runs in {args.results} ({report.skipped} already there, "
            f"{len(report.records) - report.skipped} run now in {report.seconds:.0f} s)"
        )
    for job, error in report.lost:
        print(f"error: run {job.key} lost after {args.retries} retries: {error}", file=sys.stderr)
    return 1 if report.lost else 0


def _record_line(record, as_json, beside_report):
    """One finished run as the command prints it: JSON, or a line (beside the report's
    figures for ``reproduce``)."""
    from ..study.rows import ROWS

    if as_json and beside_report:  # reproduce's documented fields, as before
        fields = ("seed", "dataset", "test_loss", "test_accuracy", "seconds", "diverged_at")
        return json.dumps({"row": record["name"], **{key: record[key] for key in fields}})
    if as_json:
        return json.dumps({k: v for k, v in record.items() if k != "loss_curve"})
    note = (
        f"  (diverged at step {record['diverged_at']})"
        if record.get("diverged_at") is not None
        else ""
    )
    beside = ("", "")
    if beside_report and record["dataset"] == "mnist":
        row = ROWS[record["name"]]
        beside = (f" (report {_fmt(row.report_loss)})", f" (report {_fmt(row.report_accuracy)})")
    label = record["name"] if beside_report else f"{record['dataset']} {record['name']}"
    return (
        f"{label:15s} seed {record['seed']:<3d} test loss {record['test_loss']:.4f}"
        f"{beside[0]}  accuracy {record['test_accuracy']:.4f}{beside[1]}  "
        f"{record['seconds']:.1f} s{note}"
    )


def rows(args):
    from ..study.rows import ROWS

    for row in ROWS.values():
        print(
            f"{row.id:15s} {row.describe()}; report: loss {_fmt(row.report_loss)}, "
            f"accuracy {_fmt(row.report_accuracy)} (notebook {row.notebook})"
        )
    return 0


def table(args):
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


def check_output(path):
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


def save_model(output, model, save):
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


def train(args):
    """``train``: a new or resumed run of either trainer, saved however the save goes."""
    from ..engines import evaluate
    from ..engines.interruption import sigint_flag
    from ..io.checkpoint import save_checkpoint
    from ..io.data import load_dataset

    model, state, per_sample = _model_to_train(args)
    changed = [
        name for name, default in MINIBATCH_OPTIONS.items() if getattr(args, name) != default
    ]
    if per_sample and changed:
        raise ValueError(
            f"--{changed[0].replace('_', '-')} is a mini-batch option: give --batch-size > 1"
        )
    output = args.output or args.resume
    check_output(output)
    images, labels = load_dataset(args.dataset, "train", dtype=model.dtype)
    images, labels, validation = _hold_out(args.validation, images, labels)
    # Ctrl-C from here on stops the run with a checkpoint, even during the
    # trainer's set-up (the trainer shares this flag)
    with sigint_flag():
        print(
            f"training {model} on {len(images):,} images"
            + (f", resuming at step {state.step}" if state else ""),
            flush=True,
        )
        history = _fit(args, model, state, per_sample, images, labels, validation, output)
    saved, diverted = save_model(output, model, save_checkpoint)
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


def _model_to_train(args):
    """(model, training state or None, per-sample?): a new model from the flags, or
    the run in ``--resume``'s checkpoint (whose settings then replace the flags)."""
    import numpy as np

    from ..core.model import MLP
    from ..io.checkpoint import load_checkpoint

    if args.resume:
        model, state = load_checkpoint(args.resume)
        if state is None:
            raise ValueError(f"{args.resume}: holds a finished model, not a training run to resume")
        for name, value in ((state.extra or {}).get("info") or {}).items():
            setattr(args, name, value)
        return model, state, state.trainer == "per-sample"
    if args.layers[0] != 784 or args.layers[-1] != 10:
        raise ValueError(
            f"--layers must start with 784 (MNIST pixels) and end with 10 "
            f"(classes), got {args.layers}"
        )
    model = MLP(args.layers, args.activation, args.init, seed=args.seed, dtype=np.dtype(args.dtype))
    _parse_schedule(args.schedule)  # its syntax, before any work
    return model, None, args.batch_size == 1


def _hold_out(n, images, labels):
    """(training images, labels, validation pair or None): the last ``n`` held out."""
    if not n:
        return images, labels, None
    if not 0 < n < len(images):
        raise ValueError(f"--validation must be in 1..{len(images) - 1}, got {n}")
    return images[:-n], labels[:-n], (images[-n:], labels[-n:])


def _fit(args, model, state, per_sample, images, labels, validation, output):
    """Train with the trainer the run uses; its History."""
    from ..core.augment import distort
    from ..core.optim import make_optimizer
    from ..engines import train_minibatch, train_per_sample

    common = dict(progress=False if args.quiet else None, checkpoint=output, resume=state)
    batch_size = state.batch_size if state and not per_sample else args.batch_size
    if state is None:
        per_epoch = -(-len(images) // batch_size)
        common.update(
            epochs=args.epochs,
            schedule=_parse_schedule(args.schedule, args.epochs * per_epoch, per_epoch),
        )
    if per_sample:
        return train_per_sample(model, images, labels, **common)
    augment = None
    if args.shift or args.rotation or args.scale or args.elastic:

        def augment(batch, rng):
            return distort(batch, rng, args.shift, args.rotation, args.scale, args.elastic)

    return train_minibatch(
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


def evaluate(args):
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


def serve(args):
    from ..io.checkpoint import load_checkpoint
    from .serve import serve

    for path in args.checkpoints:
        load_checkpoint(path)  # a bad file fails here, in one line
    try:
        return serve(
            args.checkpoints,
            host=args.host,
            port=args.port,
            cache=args.cache,
            verbose=args.verbose,
            token=args.token,
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


def predict(args):
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
