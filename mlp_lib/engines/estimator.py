"""``MLPClassifier``: the library behind scikit-learn's estimator conventions
(without depending on scikit-learn)."""

from __future__ import annotations

import inspect
import sys
import warnings

import numpy as np

from ..core.model import MLP
from ..core.schedules import Constant, LinearDecay
from . import evaluate, train_minibatch, train_per_sample

__all__ = ["MLPClassifier", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """``predict`` or ``score`` before ``fit`` (scikit-learn's exception is used
    instead when scikit-learn is loaded, so its tools recognise it)."""


def _sklearn_or(name, fallback):
    """scikit-learn's exception/warning class ``name`` if it is already imported."""
    if "sklearn" in sys.modules:
        import sklearn.exceptions

        return getattr(sklearn.exceptions, name)
    return fallback


class MLPClassifier:
    """A multilayer perceptron classifier with scikit-learn's conventions.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (512, 256, 64)
        Hidden layers; input and output sizes come from the data in ``fit``.
    activation : {"relu", "sigmoid"}
    init : {"he", "xavier", "normal", "uniform"}
    solver : {"minibatch", "per-sample"}
        Mini-batch SGD (shuffled with ``random_state``), or the report's
        per-sample SGD in data order.
    batch_size : int, default 128
        Mini-batch size (ignored by ``per-sample``).
    learning_rate : float, default 0.05
        Initial learning rate.
    lr_decay_steps : int or None
        If set, the rate decays linearly to ``learning_rate / 1000`` over this
        many steps (the report's schedule); else it is constant.
    epochs : int, default 10
    random_state : int or None
        Seeds the initial weights and the shuffling.
    dtype : {"float32", "float64"}
    progress : bool or None
        Progress bar (None: only on a terminal).

    Attributes (after ``fit``)
    --------------------------
    classes_ : ndarray
        The class labels, sorted; the network's outputs are in this order.
    model_ : MLP
    loss_curve_ : list of float
        Mean training loss per epoch (mini-batch) or per 100 steps (per-sample).
    n_features_in_ : int
    n_iter_ : int
        Epochs run.
    """

    def __init__(
        self,
        hidden_layer_sizes=(512, 256, 64),
        activation="relu",
        init="he",
        solver="minibatch",
        batch_size=128,
        learning_rate=0.05,
        lr_decay_steps=None,
        epochs=10,
        random_state=None,
        dtype="float32",
        progress=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay_steps = lr_decay_steps
        self.epochs = epochs
        self.random_state = random_state
        self.dtype = dtype
        self.progress = progress

    # ---------------------------------------------------------- sklearn protocol
    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=True):
        """The constructor's parameters as a dict."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; unknown names are an error (nothing is set)."""
        valid = self._param_names()
        unknown = [name for name in params if name not in valid]
        if unknown:
            raise ValueError(
                f"invalid parameter(s) {', '.join(unknown)} for MLPClassifier; "
                f"valid: {', '.join(valid)}"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        """Tags for scikit-learn's estimator checks (imported only when asked)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
            input_tags=InputTags(),
        )

    def __repr__(self):
        changed = {
            k: v
            for k, v in self.get_params().items()
            if v != inspect.signature(type(self).__init__).parameters[k].default
        }
        return f"MLPClassifier({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ----------------------------------------------------------------- fitting
    def _check_X(self, X, fitted):
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError("sparse input is not supported: pass a dense array (X.toarray())")
        X = np.asarray(X)
        if X.dtype.kind == "c":
            raise ValueError("Complex data not supported")
        if X.dtype.kind not in "biuf":
            try:
                X = X.astype(np.float64)
            except ValueError:
                raise ValueError(f"X must be numeric, got dtype {X.dtype}") from None
        if X.ndim != 2:
            raise ValueError(
                f"X must be 2-D (n_samples, n_features), got shape {X.shape}. "
                f"Reshape your data: X.reshape(-1, 1) for one feature, "
                f"X.reshape(1, -1) for one sample"
            )
        if X.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        if fitted and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but MLPClassifier is expecting "
                f"{self.n_features_in_} features as input"
            )
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity")
        return X

    def _check_y(self, y, n_rows):
        if y is None:
            raise ValueError("MLPClassifier requires y to be passed, but the target y is None")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected; it "
                "was flattened to shape (n_samples,)",
                _sklearn_or("DataConversionWarning", UserWarning),
                stacklevel=3,
            )
            y = y.ravel()
        if y.ndim != 1 or len(y) != n_rows:
            raise ValueError(
                f"y must be 1-D with one label per row of X ({n_rows}), got shape {y.shape}"
            )
        if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
            raise ValueError(
                "Unknown label type: continuous. MLPClassifier needs class "
                "labels (integers or strings)"
            )
        return y

    def fit(self, X, y):
        """Train a new network on ``X`` (n_samples, n_features) and labels ``y``."""
        X = self._check_X(X, fitted=False)
        y = self._check_y(y, len(X))
        if self.solver not in ("minibatch", "per-sample"):
            raise ValueError(f"unknown solver {self.solver!r}; valid: minibatch, per-sample")
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y needs at least 2 classes, got {len(classes)} class")
        sizes = [X.shape[1], *self.hidden_layer_sizes, len(classes)]
        rng = np.random.default_rng(self.random_state)
        model = MLP(sizes, self.activation, self.init, seed=rng, dtype=self.dtype)
        schedule = (
            Constant(self.learning_rate)
            if self.lr_decay_steps is None
            else LinearDecay.thousandfold(self.learning_rate, self.lr_decay_steps)
        )
        X = X.astype(model.dtype, copy=False)
        if self.solver == "minibatch":
            history = train_minibatch(
                model,
                X,
                encoded,
                epochs=self.epochs,
                batch_size=self.batch_size,
                schedule=schedule,
                seed=rng,
                progress=self.progress,
            )
            self.loss_curve_ = list(history.epoch_loss)
        else:
            history = train_per_sample(
                model, X, encoded, epochs=self.epochs, schedule=schedule, progress=self.progress
            )
            self.loss_curve_ = history.loss_curve.tolist()
        self.classes_, self.model_ = classes, model
        self.n_features_in_, self.n_iter_ = X.shape[1], self.epochs
        return self

    def _fitted(self):
        if not hasattr(self, "model_"):
            raise _sklearn_or("NotFittedError", NotFittedError)(
                "this MLPClassifier is not fitted yet; call fit(X, y) first"
            )

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        self._fitted()
        return self.model_.forward(self._check_X(X, fitted=True))

    def predict(self, X):
        """The most probable class of each row (values from ``classes_``)."""
        self._fitted()
        return self.classes_[self.model_.predict(self._check_X(X, fitted=True))]

    def score(self, X, y):
        """Mean accuracy on ``(X, y)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def loss(self, X, y):
        """Mean cross-entropy on ``(X, y)``; every label must be in ``classes_``."""
        self._fitted()
        y = np.asarray(y)
        encoded = np.searchsorted(self.classes_, y)
        if np.any(encoded >= len(self.classes_)) or np.any(
            self.classes_[np.minimum(encoded, len(self.classes_) - 1)] != y
        ):
            raise ValueError("y holds labels not seen in fit")
        return evaluate(self.model_, self._check_X(X, fitted=True), encoded)[0]
