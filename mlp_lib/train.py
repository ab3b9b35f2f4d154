"""The trainers in one place, for ``from mlp_lib.train import ...``.

Each lives in its own module:

- ``mlp_lib.reference.train_per_sample``: the textbook loop, slow, one equation a line;
- ``mlp_lib.per_sample.train_per_sample``: the fast engine, the same numbers
  (``tests/test_reference.py`` proves it); this is the one exported here;
- ``mlp_lib.minibatch.train_minibatch``: shuffled mini-batches (notebook 05);
- ``mlp_lib.lifecycle``: what every run shares (``History``, errors, Ctrl-C, resume);
- ``mlp_lib.model.evaluate``: test loss and accuracy.
"""

from .lifecycle import DivergenceError, History, TrainingInterrupted
from .minibatch import train_minibatch
from .model import evaluate
from .per_sample import train_per_sample

__all__ = [
    "History",
    "DivergenceError",
    "TrainingInterrupted",
    "train_per_sample",
    "train_minibatch",
    "evaluate",
]
