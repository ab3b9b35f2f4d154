"""A/B test of an engine change: the working tree's ``mlp_lib`` against the one
at a git revision, in one process, alternating, with a bit-for-bit check.

    python benchmarks/ab.py HEAD                     # per-sample, two rows
    python benchmarks/ab.py 39bb80e --rows relu-uniform six-layer --steps 5000
    python benchmarks/ab.py HEAD --minibatch         # notebook 05's configurations

Per-sample: each row's model is first trained on ``--warmup`` images (by the
working tree), then both versions train copies of it on ``--steps`` images, in turn,
``--rounds`` times; the medians of microseconds per step and of the per-round
ratios are printed, and whether the final weights are identical to the bit.
Mini-batch: both versions train every notebook-05 configuration (narrowed to
small nets, 2 epochs on 3,000 images, with validation) and the weights and
losses are hashed; then one plain epoch of the report's net and two epochs of
the sprint are timed in turn.

Timings on a shared machine are noisy: alternating in one process makes both
versions see the same phases, but a difference under a few percent is noise.
Not part of ``tasks.py bench``: this is a tool for deciding whether a change
keeps results (then the notebooks need not be re-executed) and whether it pays.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlp_lib  # noqa: E402  (the working tree's)
import mlp_lib.study.beyond  # noqa: E402
import mlp_lib.study.experiments  # noqa: E402


def load_revision(revision, into):
    """``mlp_lib`` as it is at ``revision``, imported as ``mlp_lib_base`` (its
    imports are all relative, so a renamed copy is a separate package)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "mlp_lib"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(into, filter="data")
        except TypeError:  # a Python without extraction filters
            tar.extractall(into)
    shutil.move(str(Path(into) / "mlp_lib"), str(Path(into) / "mlp_lib_base"))
    for name in [name for name in sys.modules if name.split(".")[0] == "mlp_lib_base"]:
        del sys.modules[name]  # another revision loaded before
    sys.path.insert(0, str(into))
    base = importlib.import_module("mlp_lib_base")
    for name in ("mlp_lib_base.study.beyond", "mlp_lib_base.beyond"):  # the layered house, or flat
        try:
            importlib.import_module(name)
            break
        except ModuleNotFoundError:
            continue
    return base


def _beyond(lib):
    """Notebook 05's module of ``lib``, wherever the revision keeps it."""
    return lib.study.beyond if hasattr(lib, "study") else lib.beyond


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))


def per_sample(base, rows, steps, rounds, warmup):
    images, labels = mlp_lib.load_mnist("train")
    window = slice(warmup, warmup + steps)
    for row_id in rows:
        row = mlp_lib.study.experiments.ROWS[row_id]
        start = mlp_lib.MLP(row.layer_sizes, row.activation, row.init, seed=0)
        if warmup:
            mlp_lib.train_per_sample(
                start,
                images[:warmup],
                labels[:warmup],
                epochs=1,
                schedule=row.schedule,
                progress=False,
            )
        times, final = {"base": [], "tree": []}, {}
        for _ in range(rounds):
            for name, train in (
                ("base", base.train_per_sample),
                ("tree", mlp_lib.train_per_sample),
            ):
                model = start.copy()
                began = time.perf_counter()
                train(
                    model,
                    images[window],
                    labels[window],
                    epochs=1,
                    schedule=row.schedule,
                    progress=False,
                )
                times[name].append((time.perf_counter() - began) / steps * 1e6)
                final[name] = model
        ratio = statistics.median(b / t for b, t in zip(times["base"], times["tree"]))
        print(
            f"{row_id}: base {statistics.median(times['base']):.1f} µs/step, working tree "
            f"{statistics.median(times['tree']):.1f} µs/step, speed-up {ratio:.3f}×; "
            f"bit-identical: {_same(final['base'], final['tree'])}"
        )


def _minibatch_digest(lib):
    """Hash of weights and losses after every notebook-05 configuration."""
    images, labels = mlp_lib.load_mnist("train")
    images, labels = images[:3000].astype(np.float32), labels[:3000]
    digest = hashlib.sha256()
    for rung in _beyond(lib).LADDER + [_beyond(lib).SPRINT, _beyond(lib).ELASTIC]:
        sizes = (784, 64, 32, 10) if len(rung.layer_sizes) == 5 else (784, 64, 10)
        rung = replace(rung, epochs=2, layer_sizes=sizes)
        model = lib.MLP(sizes, "relu", "he", seed=0, dtype=np.float32)
        history = lib.train_minibatch(
            model,
            images,
            labels,
            progress=False,
            validation=(images[:500], labels[:500]),
            **_beyond(lib).rung_options(rung, len(images), 0),
        )
        for array in model.weights + model.biases + [history.losses, np.asarray(history.val_loss)]:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def minibatch(base, rounds):
    same = _minibatch_digest(base) == _minibatch_digest(mlp_lib)
    print(f"notebook 05's configurations (2 epochs, small nets): bit-identical: {same}")
    images, labels = mlp_lib.load_mnist("train")
    images = images.astype(np.float32)

    def plain(lib):  # the bench's epoch: the report's net, plain SGD
        model = lib.MLP([784, 512, 256, 64, 10], "relu", "he", seed=0, dtype=np.float32)
        lib.train_minibatch(
            model,
            images,
            labels,
            epochs=1,
            batch_size=128,
            schedule=lib.Constant(0.05),
            seed=0,
            progress=False,
        )

    def sprint(lib):  # notebook 05's sprint, 2 of its epochs
        rung = replace(_beyond(lib).SPRINT, epochs=2)
        model = lib.MLP(rung.layer_sizes, "relu", "he", seed=0, dtype=np.float32)
        lib.train_minibatch(
            model,
            images[:50000],
            labels[:50000],
            progress=False,
            **_beyond(lib).rung_options(rung, 50000, 0),
        )

    for label, run in (
        ("one plain epoch (report's net, batch 128)", plain),
        ("two sprint epochs (784-1024-10, Nesterov, shifts)", sprint),
    ):
        times = {"base": [], "tree": []}
        with threadpool_limits(2):
            for _ in range(rounds):
                for name, lib in (("base", base), ("tree", mlp_lib)):
                    began = time.perf_counter()
                    run(lib)
                    times[name].append(time.perf_counter() - began)
        ratio = statistics.median(b / t for b, t in zip(times["base"], times["tree"]))
        print(
            f"{label}, float32, 2 threads: base {statistics.median(times['base']):.2f} s, "
            f"working tree {statistics.median(times['tree']):.2f} s, speed-up {ratio:.3f}×"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revision", help="git revision to compare with (e.g. HEAD)")
    parser.add_argument(
        "--rows",
        nargs="+",
        default=["relu-he-const", "sigmoid-normal"],
        help="per-sample rows (default relu-he-const sigmoid-normal)",
    )
    parser.add_argument("--steps", type=int, default=10000, help="steps per timing (10000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternations (5)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=20000,
        help="steps trained before timing, so the weights are late-phase (20000)",
    )
    parser.add_argument(
        "--minibatch", action="store_true", help="compare the mini-batch trainer instead"
    )
    args = parser.parse_args(argv)
    unknown = [row for row in args.rows if row not in mlp_lib.study.experiments.ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(mlp_lib.study.experiments.ROWS)}")
    with tempfile.TemporaryDirectory() as into:
        try:
            base = load_revision(args.revision, into)
        except subprocess.CalledProcessError as error:
            parser.error(
                f"cannot read mlp_lib at {args.revision!r}: {error.stderr.decode().strip()}"
            )
        print(f"base: mlp_lib at {args.revision}; working tree: {ROOT}")
        if args.minibatch:
            minibatch(base, args.rounds)
        else:
            per_sample(base, args.rows, args.steps, args.rounds, args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
