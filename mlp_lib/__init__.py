"""mlp_lib: an exact, fast NumPy multilayer perceptron with hand-derived backprop.

Modules, each readable alone:

- ``data``: IDX reader with checksums, ``load_mnist``
- ``functional``: activations, softmax, cross-entropy and their derivatives
- ``init``: weight initialisers (normal, uniform, xavier, he)
- ``model``: ``MLP`` (parameters, forward with cache, backward), ``evaluate``
- ``gradcheck``: central-difference gradient checks
- ``schedules``: learning-rate schedules
- ``optim``: SGD (momentum, Nesterov), Adam
- ``reference``: the report's per-sample SGD as a textbook loop (read this first)
- ``per_sample``: the fast per-sample engine (same numbers as ``reference``)
- ``minibatch``: shuffled mini-batch training (notebook 05)
- ``lifecycle``: what every run shares: History, errors, Ctrl-C, resume
- ``train``: the trainers gathered for import
- ``experiments``: the report's rows, ``run``, comparison tables
- ``checkpoint``: save / load models and training state
- ``estimator``: ``MLPClassifier`` with scikit-learn's conventions
- ``plots``: the notebooks' figures
"""

from .data import DataError, load_mnist
from .model import MLP
from .schedules import Constant, LinearDecay
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .estimator import MLPClassifier
from .train import (
    DivergenceError,
    History,
    TrainingInterrupted,
    evaluate,
    train_minibatch,
    train_per_sample,
)

__version__ = "0.1.0"

__all__ = [
    "load_mnist",
    "DataError",
    "MLP",
    "Constant",
    "LinearDecay",
    "History",
    "DivergenceError",
    "TrainingInterrupted",
    "train_per_sample",
    "train_minibatch",
    "evaluate",
    "MLPClassifier",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "__version__",
]
