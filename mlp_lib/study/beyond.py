"""Beyond the report (notebook 05): a ladder of mini-batch configurations, each
one change away from the previous, trained on 50,000 training images with the
last 10,000 as the validation split; the test set is used once per final model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.augment import distort
from ..core.model import MLP, evaluate
from ..core.optim import SGD, Adam
from ..core.schedules import Constant, Cosine
from ..engines.minibatch import train_minibatch
from ..io.data import load_dataset
from .provenance import provenance

__all__ = [
    "Rung",
    "RungResult",
    "LADDER",
    "SPRINT",
    "ELASTIC",
    "run_rung",
    "rung_options",
    "split",
    "fingerprint",
    "save_rung_results",
    "load_rung_results",
]

N_TRAIN = 50000  # the rest of the 60,000 is the validation split


@dataclass(frozen=True)
class Rung:
    """One configuration of the ladder (see ``LADDER``)."""

    name: str
    change: str
    layer_sizes: tuple = (784, 512, 256, 64, 10)
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | nesterov | adam
    lr: float = 0.1
    cosine: bool = False  # cosine decay, warm-up: 1 epoch (at most 1/5 of training)
    dropout: float = 0.0
    input_dropout: float = 0.0
    weight_decay: float = 0.0
    max_norm: float | None = None
    shift: float = 0.0  # augmentation: max shift (pixels)
    rotation: float = 0.0  # augmentation: max rotation (degrees)
    scale: float = 0.0  # augmentation: max relative scale change
    elastic: float = 0.0  # augmentation: elastic alpha (sigma 4)
    seeds: tuple = (0,)  # the notebook's seeds (3 for the final rungs)
    extra: dict = field(default_factory=dict)

    @property
    def augmented(self):
        return bool(self.shift or self.rotation or self.scale or self.elastic)


@dataclass
class RungResult:
    rung: str
    seed: int
    test_accuracy: float
    test_loss: float
    train_loss: list
    val_loss: list
    val_accuracy: list
    seconds: float
    best_epoch: int | None
    model: MLP | None = field(default=None, repr=False)
    dataset: str = "mnist"


def split(dtype=np.float32, dataset="mnist"):
    """(train images, train labels, validation images, validation labels):
    the first 50,000 training images and the last 10,000."""
    images, labels = load_dataset(dataset, "train", dtype=dtype)
    return images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:]


def _optimizer(rung):
    return {
        "sgd": lambda: SGD(),
        "nesterov": lambda: SGD(0.9, nesterov=True),
        "adam": lambda: Adam(),
    }[rung.optimizer]()


def rung_options(rung, n_train, seed):
    """``train_minibatch``'s keyword arguments for ``rung`` trained on ``n_train``
    images: epochs, batch size, schedule, optimiser, regularisation and
    augmentation (no validation set)."""
    per_epoch = -(-n_train // rung.batch_size)
    steps = rung.epochs * per_epoch
    schedule = (
        Cosine(rung.lr, steps, warmup=min(per_epoch, steps // 5))
        if rung.cosine
        else Constant(rung.lr)
    )
    augment = None
    if rung.augmented:

        def augment(batch, rng):
            return distort(batch, rng, rung.shift, rung.rotation, rung.scale, rung.elastic)

    return dict(
        epochs=rung.epochs,
        batch_size=rung.batch_size,
        schedule=schedule,
        seed=seed,
        optimizer=_optimizer(rung),
        weight_decay=rung.weight_decay,
        dropout=rung.dropout,
        input_dropout=rung.input_dropout,
        max_norm=rung.max_norm,
        augment=augment,
    )


def _setup(rung, seed, dtype, dataset="mnist"):
    """The rung's model, training data and ``train_minibatch`` keyword arguments."""
    x, y, xv, yv = split(dtype, dataset)
    model = MLP(rung.layer_sizes, "relu", "he", seed=seed, dtype=dtype)
    options = rung_options(rung, len(x), seed)
    options["validation"] = (xv, yv)
    return model, x, y, options


def run_rung(
    rung: Rung,
    seed=0,
    keep_model=False,
    epochs=None,
    progress=None,
    dataset="mnist",
    observer=None,
    on_start=None,
):
    """Train ``rung`` from scratch (float32, ReLU, He init) on ``dataset`` and
    test it once.

    ``seconds`` is the training wall time (validation included, test excluded).
    ``epochs`` overrides the rung's (quick mode only); ``observer`` is
    ``train_minibatch``'s (told every 100 batches; it changes no bit), and
    ``on_start(model)`` is told the model about to be trained.
    """
    rung = replace(rung, epochs=epochs) if epochs else rung
    model, x, y, options = _setup(rung, seed, np.float32, dataset)
    if on_start is not None:
        on_start(model)
    start = time.perf_counter()
    history = train_minibatch(model, x, y, progress=progress, observer=observer, **options)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = evaluate(model, *load_dataset(dataset, "test", dtype=np.float32))
    return RungResult(
        rung.name,
        seed,
        test_accuracy,
        test_loss,
        history.epoch_loss,
        history.val_loss,
        history.val_accuracy,
        seconds,
        history.best_epoch,
        model if keep_model else None,
        dataset,
    )


def fingerprint(rungs, steps=100):
    """Lines that pin down each rung's settings for regression checks: the first
    ``steps`` batch losses of seed 0, with the rung's full schedule, dropout and
    augmentation, but in float64 so that another BLAS or CPU rounds them the
    same to the 6 significant figures shown (the loss of step 0, and the mean
    losses of steps 1-9 and of the last ten steps). A few seconds in all."""
    lines = []
    for rung in rungs:
        model, x, y, options = _setup(rung, 0, np.float64)
        options.update(validation=None)
        losses = train_minibatch(model, x, y, max_steps=steps, progress=False, **options).losses
        lines.append(
            f"{rung.name}: {losses[0]:.6g} {losses[1:10].mean():.6g} {losses[-10:].mean():.6g}"
        )
    return "\n".join(lines)


def save_rung_results(results, path, command=None):
    """Write rung results (no models) with their provenance as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = [{k: v for k, v in vars(r).items() if k != "model"} for r in results]
    path.write_text(json.dumps({"provenance": provenance(command), "runs": runs}) + "\n")


def load_rung_results(path):
    """Read what ``save_rung_results`` wrote."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no saved results; execute notebook 05 first (python3 tasks.py reproduce 05)"
        )
    return [RungResult(**r) for r in json.loads(path.read_text())["runs"]]


# Each rung is the one before it plus its change.
_SGD = Rung(
    "mini-batch SGD", "the report's best net, batches of 128, shuffled, rate 0.1", lr=0.1, epochs=10
)
_NESTEROV = replace(
    _SGD,
    name="+ Nesterov, cosine",
    change="Nesterov momentum 0.9, cosine decay with warm-up",
    optimizer="nesterov",
    lr=0.05,
    cosine=True,
)
_WIDER = replace(
    _NESTEROV,
    name="+ wider (2×1024)",
    change="784-1024-1024-10, 13 epochs",
    layer_sizes=(784, 1024, 1024, 10),
    epochs=13,
)
_DROPOUT = replace(
    _WIDER,
    name="+ dropout, max-norm",
    change="dropout 0.3 on hidden units, max-norm 3.5, 30 epochs",
    lr=0.1,
    dropout=0.3,
    max_norm=3.5,
    epochs=30,
)
_AFFINE = replace(
    _DROPOUT,
    name="+ affine augmentation",
    change="random shifts ±2 px, rotations ±10°, scale ±10%, 70 epochs",
    shift=2,
    rotation=10,
    scale=0.1,
    epochs=70,
    seeds=(0, 1, 2),
)
LADDER = [_SGD, _NESTEROV, _WIDER, _DROPOUT, _AFFINE]

# Not a step of the ladder: the cheapest configuration found (on the validation
# split) for the 60-second target, and a long run with elastic distortions for
# the 30-minute one.
SPRINT = Rung(
    "60-second sprint",
    "784-1024-10, Nesterov, cosine, shifts ±2 px, 15 epochs",
    layer_sizes=(784, 1024, 10),
    optimizer="nesterov",
    lr=0.1,
    cosine=True,
    shift=2,
    epochs=15,
    seeds=(0, 1, 2),
)
ELASTIC = replace(
    _AFFINE,
    name="+ elastic distortions",
    change="the affine rung plus elastic distortions (α = 34, σ = 4), 180 epochs",
    elastic=34,
    epochs=180,
    seeds=(0,),
)


def rung_by_name(name):
    """The ladder's rung, the sprint or the elastic rung called ``name``."""
    rungs = {rung.name: rung for rung in LADDER + [SPRINT, ELASTIC]}
    try:
        return rungs[name]
    except KeyError:
        raise ValueError(f"unknown rung {name!r}; known: {', '.join(rungs)}") from None
