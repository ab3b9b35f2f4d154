"""Training: the loops that turn gradients into a trained model.

- ``reference``: the report's per-sample SGD as a textbook loop (read this first)
- ``per_sample``: the same computation compiled with numba (the tests prove them equal)
- ``minibatch``: shuffled mini-batch training (notebook 05)
- ``lifecycle``: what every run shares: the run options both fast trainers take
  (``RunOptions``), ``History``, argument checks, divergence, resuming, progress
- ``interruption``: Ctrl-C during training: the flag, the checkpoint, ``TrainingInterrupted``
- ``estimator``: ``MLPClassifier``, the engines behind scikit-learn's conventions

May import: ``core`` and ``io``. Nothing of the study or the apps.
"""

from ..core.model import evaluate
from .interruption import TrainingInterrupted
from .lifecycle import DivergenceError, History
from .minibatch import train_minibatch
from .per_sample import train_per_sample

__all__ = [
    "train_per_sample",
    "train_minibatch",
    "evaluate",
    "History",
    "DivergenceError",
    "TrainingInterrupted",
]
