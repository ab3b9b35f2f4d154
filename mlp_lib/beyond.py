"""Beyond the report (notebook 05): a ladder of mini-batch configurations, each
one change away from the previous, trained on 50,000 training images with the
last 10,000 as the validation split; the test set is used once per final model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .augment import distort
from .data import load_mnist
from .model import MLP
from .optim import SGD, Adam
from .schedules import Constant, Cosine
from .train import evaluate, train_minibatch

__all__ = ["Rung", "RungResult", "LADDER", "SPRINT", "ELASTIC", "run_rung", "split"]

N_TRAIN = 50000   # the rest of the 60,000 is the validation split


@dataclass(frozen=True)
class Rung:
    """One configuration of the ladder (see ``LADDER``)."""

    name: str
    change: str
    layer_sizes: tuple = (784, 512, 256, 64, 10)
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"          # sgd | nesterov | adam
    lr: float = 0.1
    cosine: bool = False            # cosine decay, warm-up: 1 epoch (at most 1/5 of training)
    dropout: float = 0.0
    input_dropout: float = 0.0
    weight_decay: float = 0.0
    max_norm: float | None = None
    shift: float = 0.0              # augmentation: max shift (pixels)
    rotation: float = 0.0           # augmentation: max rotation (degrees)
    scale: float = 0.0              # augmentation: max relative scale change
    elastic: float = 0.0            # augmentation: elastic alpha (sigma 4)
    seeds: tuple = (0,)             # the notebook's seeds (3 for the final rungs)
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


def split(dtype=np.float32):
    """(train images, train labels, validation images, validation labels):
    the first 50,000 training images and the last 10,000."""
    images, labels = load_mnist("train", dtype=dtype)
    return images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:]


def _optimizer(rung):
    return {"sgd": lambda: SGD(), "nesterov": lambda: SGD(0.9, nesterov=True),
            "adam": lambda: Adam()}[rung.optimizer]()


def run_rung(rung: Rung, seed=0, keep_model=False, epochs=None, progress=None):
    """Train ``rung`` from scratch (float32, ReLU, He init) and test it once.

    ``seconds`` is the training wall time (validation included, test excluded).
    ``epochs`` overrides the rung's (quick mode only).
    """
    rung = replace(rung, epochs=epochs) if epochs else rung
    x, y, xv, yv = split()
    model = MLP(rung.layer_sizes, "relu", "he", seed=seed, dtype=np.float32)
    steps = rung.epochs * -(-len(x) // rung.batch_size)
    per_epoch = -(-len(x) // rung.batch_size)
    schedule = (Cosine(rung.lr, steps, warmup=min(per_epoch, steps // 5)) if rung.cosine
                else Constant(rung.lr))
    augment = None
    if rung.augmented:
        def augment(batch, rng):
            return distort(batch, rng, rung.shift, rung.rotation, rung.scale, rung.elastic)
    start = time.perf_counter()
    history = train_minibatch(model, x, y, epochs=rung.epochs, batch_size=rung.batch_size,
                              schedule=schedule, seed=seed, optimizer=_optimizer(rung),
                              weight_decay=rung.weight_decay, dropout=rung.dropout,
                              input_dropout=rung.input_dropout, max_norm=rung.max_norm,
                              augment=augment, validation=(xv, yv), progress=progress)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = evaluate(model, *load_mnist("test", dtype=np.float32))
    return RungResult(rung.name, seed, test_accuracy, test_loss, history.epoch_loss,
                      history.val_loss, history.val_accuracy, seconds, history.best_epoch,
                      model if keep_model else None)


LADDER = [
    Rung("mini-batch SGD", "the report's best net and rate, batches of 128, shuffled",
         lr=0.1, epochs=10),
    Rung("+ Nesterov, cosine", "Nesterov momentum 0.9, cosine decay with warm-up",
         optimizer="nesterov", lr=0.05, cosine=True, epochs=10),
    Rung("+ wider (2×1024)", "784-1024-1024-10 (13 epochs: about a minute)",
         layer_sizes=(784, 1024, 1024, 10), optimizer="nesterov", lr=0.05, cosine=True,
         epochs=13),
    Rung("+ dropout, max-norm", "dropout 0.3 on hidden units, max-norm 3.5, 30 epochs",
         layer_sizes=(784, 1024, 1024, 10), optimizer="nesterov", lr=0.1, cosine=True,
         dropout=0.3, max_norm=3.5, epochs=30),
    Rung("+ affine augmentation", "random shifts ±2 px, rotations ±10°, scale ±10%; "
         "70 epochs (about 8 minutes)",
         layer_sizes=(784, 1024, 1024, 10), optimizer="nesterov", lr=0.1, cosine=True,
         dropout=0.3, max_norm=3.5, shift=2, rotation=10, scale=0.1, epochs=70,
         seeds=(0, 1, 2)),
]

# Not a step of the ladder: the cheapest configuration found (on the validation
# split) for the 60-second target, and a long run with elastic distortions for
# the 30-minute one.
SPRINT = Rung("60-second sprint", "784-1024-10, Nesterov, cosine, shifts ±2 px, 15 epochs",
              layer_sizes=(784, 1024, 10), optimizer="nesterov", lr=0.1, cosine=True,
              shift=2, epochs=15, seeds=(0, 1, 2))
ELASTIC = Rung("+ elastic distortions", "the affine rung plus elastic distortions "
               "(α = 34, σ = 4), 180 epochs (about 24 minutes)",
               layer_sizes=(784, 1024, 1024, 10), optimizer="nesterov", lr=0.1, cosine=True,
               dropout=0.3, max_norm=3.5, shift=2, rotation=10, scale=0.1, elastic=34,
               epochs=180)
