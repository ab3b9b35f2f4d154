"""The notebooks' figures. Each function draws on a new (or given) Axes and
returns the Figure, with a title, axis labels and, where several things are
drawn, a legend."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "digit_grid",
    "network_diagram",
    "loss_curves",
    "confusion",
    "accuracy_bars",
    "dataset_bars",
    "gradient_norms",
    "learning_rates",
    "activation_histograms",
    "first_layer_weights",
]


def _axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def digit_grid(images, titles, n_cols=8, title="", cmap="gray_r"):
    """Images (N, 784) as a grid of 28×28 digits, each titled by ``titles[i]``."""
    n = len(images)
    n_rows = -(-n // n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.3 * n_cols, 1.5 * n_rows + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, titles):
        ax.imshow(np.asarray(image).reshape(28, 28), cmap=cmap, vmin=0, vmax=1)
        ax.set_title(str(label), fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def network_diagram(layer_sizes, activation="sigmoid", ax=None):
    """Boxes for the layers of an MLP, with sizes and the maths between them."""
    fig, ax = _axes(ax, (2.2 * len(layer_sizes), 3))
    n = len(layer_sizes)
    top = max(np.log2(layer_sizes))
    for i, size in enumerate(layer_sizes):
        height = 0.3 + 0.7 * np.log2(size) / top
        colour = "#cfe2f3" if i == 0 else "#f9cb9c" if i == n - 1 else "#d9ead3"
        ax.add_patch(plt.Rectangle((i - 0.2, -height / 2), 0.4, height, fc=colour, ec="k"))
        name = "input x" if i == 0 else "softmax ŷ" if i == n - 1 else f"hidden {i}"
        ax.text(i, height / 2 + 0.06, f"{name}\n{size}", ha="center", va="bottom", fontsize=9)
        if i:
            ax.annotate("", (i - 0.2, 0), (i - 0.8, 0), arrowprops=dict(arrowstyle="->"))
            act = "softmax" if i == n - 1 else activation
            ax.text(i - 0.5, -0.12, f"W{i}, b{i}\n{act}", ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-0.75, 0.9)
    ax.axis("off")
    ax.set_title(f"{n - 1}-layer MLP: " + " → ".join(map(str, layer_sizes)))
    return fig


def loss_curves(
    curves, record_every=100, steps_per_epoch=60000, title="Training loss", ax=None, log=True
):
    """Running-mean training loss against the step.

    ``curves`` maps a label to one curve or to several (one per seed, same
    length): the mean is drawn as a line and the min–max over seeds as a band.
    Epoch boundaries are marked.
    """
    fig, ax = _axes(ax, (9, 4.5))
    for label, runs in curves.items():
        runs = np.atleast_2d(np.asarray(runs, dtype=float))
        steps = (np.arange(runs.shape[1]) + 1) * record_every
        (line,) = ax.plot(
            steps,
            runs.mean(axis=0),
            lw=1,
            label=label + (f" (mean of {len(runs)} seeds)" if len(runs) > 1 else ""),
        )
        if len(runs) > 1:
            ax.fill_between(
                steps, runs.min(axis=0), runs.max(axis=0), alpha=0.2, color=line.get_color(), lw=0
            )
    n_steps = max(np.atleast_2d(r).shape[1] for r in curves.values()) * record_every
    for epoch_end in range(steps_per_epoch, n_steps, steps_per_epoch):
        ax.axvline(epoch_end, color="grey", ls=":", lw=1)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step (one image per step)")
    ax.set_ylabel(f"mean cross-entropy of the last {record_every} steps")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def confusion(counts, title="Confusion matrix (test set)", ax=None):
    """A 10×10 count matrix with the counts written in the cells."""
    fig, ax = _axes(ax, (6, 5.2))
    image = ax.imshow(np.log1p(counts), cmap="Blues")
    for (i, j), value in np.ndenumerate(counts):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if value > counts.max() / 3 else "black",
        )
    ax.set_xticks(range(counts.shape[1]))
    ax.set_yticks(range(counts.shape[0]))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return fig


def accuracy_bars(summary, title="Test accuracy per row", ax=None):
    """Mean accuracy per row (dots), min–max over seeds (error bars), the
    report's figure (crimson marks). Dots, not bars: a bar's length would claim
    a zero the zoomed axis does not show."""
    fig, ax = _axes(ax, (10, 4.5))
    x = np.arange(len(summary))
    means = np.array([s["acc_mean"] for s in summary])
    low = means - np.array([s["acc_min"] for s in summary])
    high = np.array([s["acc_max"] for s in summary]) - means
    ax.errorbar(
        x,
        means,
        yerr=[low, high],
        fmt="o",
        color="#3d85c6",
        ecolor="k",
        capsize=4,
        label="reproduced: mean over seeds, min–max",
    )
    reported = [
        (i, s["report_accuracy"]) for i, s in enumerate(summary) if s["report_accuracy"] is not None
    ]
    if reported:
        ax.scatter(
            *zip(*reported), marker="_", s=900, color="crimson", zorder=3, label="report (one run)"
        )
    ax.set_xticks(x, [s["row"] for s in summary], rotation=20)
    ax.set_xlim(-0.5, len(summary) - 0.5)
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return fig


def dataset_bars(summaries, title="Test accuracy per row and dataset", ax=None):
    """Grouped bars: each row's mean accuracy on each dataset (``summaries``:
    dataset name -> ``experiments.summarize`` output), min–max over seeds as
    error bars. Rows that diverged everywhere sit at their (chance) accuracy."""
    fig, ax = _axes(ax, (11, 4.5))
    rows = [s["row"] for s in next(iter(summaries.values()))]
    width = 0.8 / len(summaries)
    colours = ["#9fc5e8", "#f6b26b", "#b6d7a8", "#d5a6bd"]
    for k, (name, summary) in enumerate(summaries.items()):
        by_row = {s["row"]: s for s in summary}
        x = np.arange(len(rows)) + (k - (len(summaries) - 1) / 2) * width
        means = np.array([by_row[r]["acc_mean"] for r in rows])
        low = means - np.array([by_row[r]["acc_min"] for r in rows])
        high = np.array([by_row[r]["acc_max"] for r in rows]) - means
        ax.bar(x, means, width, color=colours[k % len(colours)], label=name)
        ax.errorbar(x, means, yerr=[low, high], fmt="none", ecolor="k", capsize=3)
    ax.set_xticks(np.arange(len(rows)), rows, rotation=20)
    ax.set_ylabel("test accuracy (mean; bars: min–max over seeds)")
    ax.set_ylim(0, 1.0)
    ax.set_title(title)
    ax.legend(loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return fig


def gradient_norms(norms_by_label, title="Gradient size per layer", ax=None):
    """Grouped bars: mean per-sample ``||∂L/∂W_l||`` for each layer (log scale)."""
    fig, ax = _axes(ax, (8, 4))
    labels = list(norms_by_label)
    n_layers = len(next(iter(norms_by_label.values())))
    width = 0.8 / len(labels)
    for k, label in enumerate(labels):
        ax.bar(
            np.arange(n_layers) + (k - (len(labels) - 1) / 2) * width,
            norms_by_label[label],
            width,
            label=label,
        )
    ax.set_xticks(range(n_layers), [f"W{l + 1}" for l in range(n_layers)])
    ax.set_yscale("log")
    ax.set_xlabel("layer (W1 next to the input)")
    ax.set_ylabel("mean per-sample ‖∂L/∂W‖ (Frobenius)")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return fig


def learning_rates(
    schedules, n_steps, steps_per_epoch=60000, title="Learning rate by step", ax=None
):
    """η of each schedule (``{label: schedule}``) over ``n_steps`` steps, with the
    epochs marked (log scale: the report's decays span three decades)."""
    fig, ax = _axes(ax, (8, 3.5))
    steps = np.arange(n_steps)
    for label, schedule in schedules.items():
        ax.plot(steps, schedule.values(n_steps), label=label)
    for epoch in range(1, -(-n_steps // steps_per_epoch)):
        ax.axvline(epoch * steps_per_epoch, color="0.8", lw=0.8, zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel(f"step (one sample each; an epoch is {steps_per_epoch:,} steps, grey lines)")
    ax.set_ylabel("learning rate η")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return fig


def activation_histograms(models, images, title="Hidden activations at initialisation"):
    """One panel a model (``{label: MLP}``), one histogram a hidden layer, of the
    activations of ``images``: sigmoid units pile up at 0 or 1 when saturated,
    ReLU units at 0 when inactive. Each layer's legend gives the share of
    saturated (sigmoid: below 0.01 or above 0.99) or zero (ReLU) activations."""
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.2), squeeze=False)
    for ax, (label, model) in zip(axes[0], models.items()):
        _, cache = model.forward_cache(np.asarray(images, dtype=model.dtype))
        sigmoid = model.activation == "sigmoid"
        for layer, a in enumerate(cache["A"][1:], start=1):
            share = np.mean((a < 0.01) | (a > 0.99)) if sigmoid else np.mean(a == 0)
            what = "saturated" if sigmoid else "zero"
            ax.hist(a.ravel(), bins=50, histtype="step", label=f"layer {layer}: {share:.0%} {what}")
        ax.set_yscale("log")
        ax.set_xlabel(f"activation {'σ(z)' if sigmoid else 'max(0, z)'}")
        ax.set_ylabel("count (units × images)")
        ax.set_title(label)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def first_layer_weights(
    model, units, n_cols=8, title="First-layer weights", label="weight W₁[pixel, unit]"
):
    """The incoming weights of ``units`` of layer 1 as 28×28 images, on one colour
    scale symmetric about zero (red: ink there raises the unit, blue: lowers it),
    with its colour bar (``label``)."""
    weights = model.weights[0][:, list(units)]
    top = float(np.abs(weights).max()) or 1.0
    n_rows = -(-len(units) // n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.4 * n_cols, 1.5 * n_rows + 0.6), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, unit, column in zip(axes.ravel(), units, weights.T):
        image = ax.imshow(column.reshape(28, 28), cmap="RdBu_r", vmin=-top, vmax=top)
        ax.set_title(f"unit {unit}", fontsize="small")
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    bar.set_label(label)
    fig.suptitle(title)
    return fig
