"""mlp_lib: an exact, fast NumPy multilayer perceptron with hand-derived backprop.

The package is built in layers, each a folder that imports only the ones
below it (a test holds it so):

- ``core``: the maths (activations and losses, ``MLP``, initialisers,
  optimisers, schedules, augmentation, gradient checks); numpy and scipy only
- ``io``: the project's paths, the data sets, images, checkpoints
- ``engines``: the training loops (the plain reference, the compiled
  per-sample engine, mini-batch) and what every run shares; ``MLPClassifier``
- ``study``: the report's rows, notebook 05's rungs, sweeps, conclusions,
  the notebooks' figures, tables and provenance
- ``apps``: the command line (``mlp-lib``) and the local server

The names below are the public API; everything else is one import away
(``from mlp_lib.core.functional import softmax``).
"""

from .core.model import MLP
from .core.schedules import Constant, LinearDecay
from .engines import (
    DivergenceError,
    History,
    TrainingInterrupted,
    evaluate,
    train_minibatch,
    train_per_sample,
)
from .engines.estimator import MLPClassifier
from .io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .io.data import DataError, load_mnist
from .io.project import VERSION as __version__

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
