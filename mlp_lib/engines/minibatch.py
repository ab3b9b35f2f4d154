r"""Mini-batch training: shuffled batches, optimisers, regularisation,
augmentation, validation and early stopping (notebook 05).

Per batch of :math:`N` rows: ``MLP.forward_cache`` (with dropout if asked),
``MLP.backward`` (with weight decay), then the optimiser's step and the
max-norm constraint. For plain SGD the backward pass and the update are fused
(``sgd_backward_update``): the same equations, with no gradient matrix stored.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..core.blas import add_product
from ..core.functional import softmax_cross_entropy_grad
from ..core.model import MLP, as_generator, evaluate
from ..core.optim import SGD
from ..io.checkpoint import data_fingerprint
from .lifecycle import Block, RunOptions, check_data, check_positive_int, diverged, start_run

__all__ = ["train_minibatch", "sgd_backward_update"]


def sgd_backward_update(model, probs, cache, labels, lr, weight_decay=0.0):
    r"""``model.backward`` fused with the plain SGD update (no momentum), for speed.

    The same equations, applied layer by layer from the top as soon as each
    gradient is known:

    .. math::

        W_l \leftarrow (1 - \eta\lambda)\, W_l + A_{l-1}^\top (-\eta \Delta_l),
        \qquad b_l \leftarrow b_l - \eta \textstyle\sum_n \Delta_{l, n}

    (with :math:`\lambda` = ``weight_decay``). The weight line is a single
    BLAS gemm that scales :math:`W_l` and adds the product into it in place,
    so no weight gradient is ever stored; scaling the small :math:`\Delta_l`
    by :math:`-\eta` first costs less than scaling the product.
    :math:`\Delta_{l-1}` is computed from :math:`W_l` before it changes, so
    the result equals ``model.backward`` followed by ``SGD().step`` up to rounding.
    """
    A = cache["A"]
    lr = model.dtype.type(lr)
    # fmt: off
    keep = 1 - lr * model.dtype.type(weight_decay)             # 1 - ηλ
    delta = softmax_cross_entropy_grad(probs, labels)         # Δ_L = (Ŷ - Y)/N
    for layer in reversed(range(model.n_layers)):
        if layer > 0:                                          # Δ_{l-1}, from W_l
            below = model.delta_below(layer, delta, cache)
        step = delta * -lr                                     # -η Δ_l
        add_product(model.weights[layer], A[layer], step, keep)
        model.biases[layer] += np.add.reduce(step, 0)          # b_l - η Σ_n Δ_l
        if layer > 0:
            delta = below
    # fmt: on


@dataclass
class _Regime:
    """How each batch is trained beyond the run's plan: the optimiser, the
    regularisers, augmentation and the validation set (checked on creation)."""

    optimizer: object
    weight_decay: float
    dropout: float
    input_dropout: float
    max_norm: float | None
    augment: object
    patience: int | None
    validation: tuple | None  # (images, labels), checked against the model

    def __post_init__(self):
        if not hasattr(self.optimizer, "step"):
            raise ValueError(f"optimizer must be one of mlp_lib.core.optim, got {self.optimizer!r}")
        if self.weight_decay < 0 or (self.max_norm is not None and self.max_norm <= 0):
            raise ValueError(
                f"weight_decay must be >= 0 and max_norm > 0, got {self.weight_decay!r} and "
                f"{self.max_norm!r}"
            )
        if self.patience is not None:
            self.patience = check_positive_int("patience", self.patience)
            if self.validation is None:
                raise ValueError("early stopping (patience) needs a validation set")

    def options(self):
        """The options a resumed run must share with the interrupted one."""
        augment = self.augment
        return {
            "optimizer": repr(self.optimizer),
            "weight_decay": float(self.weight_decay),
            "dropout": float(self.dropout),
            "input_dropout": float(self.input_dropout),
            "max_norm": None if self.max_norm is None else float(self.max_norm),
            "patience": self.patience,
            "augment": None
            if augment is None
            else getattr(augment, "__qualname__", type(augment).__name__),
            "validation": None if self.validation is None else data_fingerprint(*self.validation),
        }


def _saved(options, optimizer, history, best, dropout_rng, augment_rng):
    """What an interrupted run keeps besides the weights: (JSON dict, arrays)."""
    optimizer_meta, arrays = optimizer.state() if hasattr(optimizer, "state") else ({}, {})
    arrays = {f"optimizer_{name}": array for name, array in arrays.items()}
    if best[2] is not None:
        arrays.update({f"best_{i}": p for i, p in enumerate(best[2])})
    extra = {
        "options": options,
        "optimizer": optimizer_meta,
        "dropout_rng": None if dropout_rng is None else dropout_rng.bit_generator.state,
        "augment_rng": None if augment_rng is None else augment_rng.bit_generator.state,
        "epoch_loss": history.epoch_loss,
        "val_loss": history.val_loss,
        "val_accuracy": history.val_accuracy,
        "best_loss": None if best[1] is None else best[0],
        "best_epoch": best[1],
    }
    return extra, arrays


def _restore(resume, options, optimizer, params, history, dropout_rng, augment_rng):
    """Put an interrupted run's state back; returns ``best``."""
    extra, arrays = resume.extra or {}, resume.arrays or {}
    saved = extra.get("options")
    if saved is None:
        raise ValueError(
            "resume: the checkpoint has no mini-batch state (made by an "
            "older mlp_lib); start the run again"
        )
    for key in options:
        if saved.get(key) != options[key]:
            raise ValueError(
                f"resume: {key} {options[key]!r} differs from the checkpoint's "
                f"{saved.get(key)!r} (resume with the same options)"
            )
    if hasattr(optimizer, "load_state"):
        optimizer.load_state(
            extra["optimizer"],
            {
                name[len("optimizer_") :]: a
                for name, a in arrays.items()
                if name.startswith("optimizer_")
            },
            params,
        )
    for generator, key in ((dropout_rng, "dropout_rng"), (augment_rng, "augment_rng")):
        if generator is not None:
            generator.bit_generator.state = extra[key]
    history.epoch_loss = list(extra["epoch_loss"])
    history.val_loss = list(extra["val_loss"])
    history.val_accuracy = list(extra["val_accuracy"])
    if extra["best_epoch"] is None:
        return (np.inf, None, None)
    kept = [np.array(arrays[f"best_{i}"], dtype=p.dtype) for i, p in enumerate(params)]
    return (extra["best_loss"], extra["best_epoch"], kept)


def _max_norm(weights, limit):
    """Rescale each unit's incoming weights (a column of ``W``) to norm <= limit."""
    for w in weights:
        norms = np.sqrt(np.einsum("ij,ij->j", w, w))
        w *= np.minimum(1, limit / np.maximum(norms, 1e-12)).astype(w.dtype)


def _update(model, regime, probs, cache, labels, lr, params):
    """One batch's step: the optimiser's update from the gradients, then max-norm.
    Plain SGD (no momentum) fuses the backward pass and the update
    (``sgd_backward_update``): the same equations, no gradient stored."""
    if type(regime.optimizer) is SGD and not regime.optimizer.momentum:
        sgd_backward_update(model, probs, cache, labels, lr, regime.weight_decay)
    else:
        weight_grads, bias_grads = model.backward(probs, cache, labels, regime.weight_decay)
        regime.optimizer.step(params, weight_grads + bias_grads, model.dtype.type(lr))
    if regime.max_norm is not None:
        _max_norm(model.weights[:-1], regime.max_norm)


def _validate(model, regime, history, best, params):
    """End of an epoch: test on the validation set (if any) and keep the best
    weights. (the new ``best``, whether to stop early: no better validation loss
    for ``patience`` epochs)."""
    if regime.validation is None:
        return best, False
    val_loss, val_accuracy = evaluate(model, *regime.validation)
    history.val_loss.append(val_loss)
    history.val_accuracy.append(val_accuracy)
    epoch = len(history.val_loss) - 1
    if val_loss < best[0]:
        return (val_loss, epoch, [p.copy() for p in params]), False
    return best, regime.patience is not None and epoch - best[1] >= regime.patience


def _tell(observer, model, weight_decay, probs, cache, labels, losses, rate, step):
    """Give ``observer`` the block ending at ``step`` (the last batch's gradients,
    computed before its update, with the weights it was computed with)."""
    weight_grads, _ = model.backward(probs, cache, labels, weight_decay)
    grad_norm = tuple(float(np.linalg.norm(g)) for g in weight_grads)
    active = tuple(float(np.count_nonzero(a) / a.size) for a in cache["A"][1:])
    observer(Block(step, float(losses.mean()), float(rate), grad_norm, active))


def train_minibatch(
    model: MLP,
    images,
    labels,
    epochs=None,
    batch_size=128,
    schedule=None,
    seed=None,
    optimizer=None,
    weight_decay=0.0,
    dropout=0.0,
    input_dropout=0.0,
    max_norm=None,
    augment=None,
    validation=None,
    patience=None,
    max_steps=None,
    checkpoint_info=None,
    **run_options,
):
    """Mini-batch training on the mean cross-entropy, shuffled each epoch.

    Each epoch draws a permutation from ``numpy.random.default_rng(seed)`` (or the
    Generator passed as ``seed``); the last batch may be smaller. Per batch:
    forward (with dropout if asked), ``MLP.backward`` (with weight decay), then
    ``optimizer.step`` and the max-norm constraint. With plain SGD (no momentum)
    the backward pass and the update are one fused step, ``sgd_backward_update``.

    Parameters
    ----------
    epochs : int, default 1
    batch_size : int, default 128
    schedule : schedule, default ``Constant(0.1)``
        Learning rate by batch step.
    seed : None, int or Generator
        Shuffling; dropout and augmentation draw from two generators spawned
        from it, so each is reproducible on its own.
    optimizer : ``mlp_lib.core.optim`` optimiser, default plain ``SGD()``
    weight_decay : float
        L2 penalty :math:`\\tfrac{\\lambda}{2}\\sum\\lVert W\\rVert^2` (biases excluded).
    dropout, input_dropout : float
        Inverted-dropout rates for hidden units and for input pixels.
    max_norm : float, optional
        After each step, each unit's incoming weight vector is rescaled to norm
        at most this (Srivastava et al. 2014).
    augment : callable, optional
        ``augment(batch_images, rng) -> batch_images`` (e.g. ``mlp_lib.core.augment.distort``).
    validation : (images, labels), optional
        Evaluated after every epoch (``history.val_loss``, ``val_accuracy``); at
        the end the model gets back the weights of the epoch with the lowest
        validation loss (``history.best_epoch``).
    patience : int, optional
        Early stopping: stop when the validation loss has not improved for
        this many epochs.
    max_steps : int, optional
        Stop after this many batch steps, part way through the run; the
        schedule is still the one of ``epochs`` epochs. For short checks of a
        long configuration (notebook 05's regression fingerprint).
    checkpoint_info : dict, optional
        JSON-ready data stored with an interrupted run's checkpoint and given
        back in ``state.extra["info"]`` (the CLI keeps its options there).
    **run_options
        ``record_every``, ``progress``, ``on_divergence``, ``checkpoint``,
        ``resume``, ``observer``, the same for every trainer (see
        ``mlp_lib.engines.lifecycle.RunOptions``). Here a step is a batch. The
        checkpoint keeps the optimiser's state, the dropout and augmentation
        generators, the validation history and the best weights, so a resumed
        run ends bit-identical to one never interrupted; resume with the same
        options (they are checked, except what ``augment`` does: pass the same
        function). The observer's gradient norms and active fractions are those
        of the block's last batch (one extra backward pass per block, which
        changes no bit of the run).

    Returns
    -------
    History
        ``loss_curve`` averages ``record_every`` batches; ``epoch_loss`` holds the
        mean batch loss of each epoch (from the run's start, resumed or not), ``val_loss`` / ``val_accuracy`` the
        validation figures, ``best_epoch`` the epoch whose weights were kept.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    options = RunOptions.given("train_minibatch", run_options)
    images, labels, run = start_run(
        "minibatch", model, images, labels, epochs, schedule, options, (1, 0.1), batch_size
    )
    resume, observer, on_divergence = options.resume, options.observer, options.on_divergence
    if validation is not None:
        validation = check_data(model, *validation)
    regime = _Regime(
        SGD() if optimizer is None else optimizer,
        weight_decay,
        dropout,
        input_dropout,
        max_norm,
        augment,
        patience,
        validation,
    )
    # what a resumed run must share, when needed
    shared = regime.options() if options.checkpoint is not None or resume is not None else None
    history, params = run.history, model.weights + model.biases
    rng = as_generator(seed)
    dropout_rng, augment_rng = (
        rng.spawn(2) if (dropout or input_dropout or augment) else (None, None)
    )
    n_batches = -(-len(images) // batch_size)
    stop = run.total
    if max_steps is not None:  # a short check of a long configuration
        stop = min(run.total, check_positive_int("max_steps", max_steps))
    rates = np.asarray(run.schedule.values(run.total), dtype=np.float64)
    best = (np.inf, None, None)  # (validation loss, epoch, parameters)
    if resume is not None:
        rng.bit_generator.state = resume.rng_state
        best = _restore(resume, shared, regime.optimizer, params, history, dropout_rng, augment_rng)
    epoch_rng_state = rng.bit_generator.state
    tell = None if observer is None else functools.partial(_tell, observer, model, weight_decay)

    def saved():  # an interrupted run's own state, for its checkpoint
        rng_state = rng.bit_generator.state if history.steps % n_batches == 0 else epoch_rng_state
        extra, arrays = _saved(shared, regime.optimizer, history, best, dropout_rng, augment_rng)
        return dict(rng_state=rng_state, extra=dict(extra, info=checkpoint_info), arrays=arrays)

    with run.running(model, "mini-batch SGD", saved) as (interrupt, bar):
        for step in range(run.start, stop):
            if interrupt[0]:
                raise KeyboardInterrupt
            position = step % n_batches
            if step == run.start or position == 0:
                epoch_rng_state = rng.bit_generator.state
                order = rng.permutation(len(images))
            rows = order[position * batch_size : (position + 1) * batch_size]
            batch, batch_labels = images.take(rows, 0), labels.take(rows)  # (take: faster)
            if augment is not None:
                batch = augment(batch, augment_rng)
            probs, cache = model.forward_cache(
                batch, dropout, input_dropout, dropout_rng, batch_labels
            )
            run.losses[step] = loss = cache["loss"]
            if not math.isfinite(loss):
                pairs = list(zip(model.weights, model.biases))
                diverged(history, step, rates[step], on_divergence, model, batch, pairs)
                if on_divergence == "stop":
                    break
            if tell is not None and ((step + 1) % run.record_every == 0 or step + 1 == stop):
                block = run.losses[max(run.start, step - step % run.record_every) : step + 1]
                tell(probs, cache, batch_labels, block, rates[step], step + 1)
            _update(model, regime, probs, cache, batch_labels, rates[step], params)
            history.steps = step + 1
            bar.update(1)
            if position == n_batches - 1:  # the end of an epoch
                history.epoch_loss.append(float(run.losses[step + 1 - n_batches : step + 1].mean()))
                best, stop_early = _validate(model, regime, history, best, params)
                if stop_early:
                    break
        if best[2] is not None:
            for p, kept in zip(params, best[2]):
                p[...] = kept
            history.best_epoch = best[1]
    return history
