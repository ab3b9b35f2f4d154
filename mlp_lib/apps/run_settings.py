"""The playground's settings: what a run may ask for, checked before it starts.

``settings_from`` turns a request (a preset: a report row or a notebook-05
rung; or a custom network) into a complete settings record, or raises
``SettingsError`` naming the field at fault, within ``LIMITS``. ``presets``
lists what the page offers, each row with the report's figures and our
committed results (``reference_for``).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..core.schedules import schedule_from_dict, schedule_to_dict
from ..io.project import RESULTS_DIR

__all__ = [
    "LIMITS",
    "SettingsError",
    "settings_from",
    "presets",
    "reference_for",
    "rungs",
    "row_of",
    "label",
]

#: What one run may ask for (a 400 names the setting that is out of bounds).
LIMITS = {
    "hidden_layers": (1, 6),  # custom networks: hidden layers
    "width": (1, 1024),  # units per hidden layer
    "parameters": 2_000_000,  # weights and biases of a custom network
    "epochs": (1, 10),  # per-sample runs
    "rung_epochs": (1, 70),  # mini-batch rungs (the ladder's longest is 70)
    "n_train": (100, 60_000),  # training images, the first N in file order
    "steps": 360_000,  # per-sample steps (epochs x images): 6 epochs of 60,000
    "seed": (0, 2**31 - 1),
    "lr": (1e-6, 1.0),
    "decay_steps": (1, 360_000),
    "queued": 8,  # runs waiting for a worker; one more gets 429
    "kept": 40,  # runs remembered; the oldest finished ones are forgotten first
}
_ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu")
_INITS = ("he", "xavier", "normal", "uniform")
_DATASETS = ("mnist", "fashion-mnist")


class SettingsError(ValueError):
    """A request's settings are invalid; ``field`` names the one at fault."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


def rungs():
    from ..study.beyond import LADDER, SPRINT

    return {r.name: r for r in [*LADDER, SPRINT]}


def presets():
    """Every preset the page offers: the report's rows, then notebook 05's rungs."""
    from ..study.rows import ROWS

    listed = [
        {
            "kind": "row",
            "name": row.id,
            "description": row.describe(),
            "notebook": row.notebook,
            "epochs": row.epochs,
            "reference": reference_for(row.id, "mnist"),
        }
        for row in ROWS.values()
    ]
    listed += [
        {
            "kind": "rung",
            "name": r.name,
            "description": r.change,
            "notebook": "05",
            "epochs": r.epochs,
        }
        for r in rungs().values()
    ]
    return listed


def _int(request, field, bounds, default):
    value = request.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(field, f"must be an integer, got {json.dumps(value)}")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise SettingsError(field, f"must be in {lo:,}..{hi:,}, got {value:,}")
    return value


def _choice(request, field, choices, default):
    value = request.get(field, default)
    if value not in choices:
        listed = ", ".join(json.dumps(c, ensure_ascii=False) for c in choices)
        raise SettingsError(field, f"must be one of {listed}; got {json.dumps(value)}")
    return value


def _rate(request, field, default):
    value = request.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(field, f"must be a number, got {json.dumps(value)}")
    lo, hi = LIMITS["lr"]
    if not lo <= value <= hi:
        raise SettingsError(field, f"must be in {lo:g}..{hi:g}, got {value:g}")
    return float(value)


_COMMON = {"seed", "epochs", "n_train", "dataset"}
_CUSTOM = _COMMON | {"layers", "activation", "init", "schedule", "lr", "decay_steps"}


def settings_from(request):
    """A run's complete settings from a request body (a dict): a report row
    (``{"row": "relu-he-const", "seed": 1}``, optionally ``epochs``,
    ``n_train``, ``dataset``), a rung (``{"rung": "60-second sprint"}``,
    optionally ``seed``, ``epochs``, ``dataset``) or custom per-sample settings
    (``layers`` (hidden widths), ``activation``, ``init``, ``schedule``
    ("constant" or "decay": the report's linear decay over ``decay_steps``), ``lr``,
    and the common ones). Raises ``SettingsError`` naming the field at fault."""
    from ..study.rows import ROWS

    if not isinstance(request, dict):
        raise SettingsError("body", "must be a JSON object")
    if "row" in request and "rung" in request:
        raise SettingsError("row", 'give "row" or "rung", not both')
    allowed = _COMMON | {"row"} if "row" in request else _CUSTOM
    if "rung" in request:
        allowed = {"rung", "seed", "epochs", "dataset"}
    unknown = sorted(set(request) - allowed)
    if unknown:
        raise SettingsError(
            unknown[0], f"unknown or not allowed here (allowed: {', '.join(sorted(allowed))})"
        )
    seed = _int(request, "seed", LIMITS["seed"], 0)
    dataset = _choice(request, "dataset", _DATASETS, "mnist")
    if "rung" in request:
        return _rung_settings(request, seed, dataset)
    if "row" in request:
        row = ROWS.get(request["row"]) if isinstance(request["row"], str) else None
        if row is None:
            raise SettingsError(
                "row", f"must be one of {', '.join(ROWS)}; got {json.dumps(request['row'])}"
            )
        layers, activation, init = list(row.layer_sizes[1:-1]), row.activation, row.init
        schedule, default_epochs, preset = row.schedule, row.epochs, row.id
    else:
        layers = _hidden_layers(request)
        activation = _choice(request, "activation", _ACTIVATIONS, "relu")
        init = _choice(request, "init", _INITS, "he")
        kind = _choice(request, "schedule", ("constant", "decay"), "constant")
        lr = _rate(request, "lr", 0.01)
        schedule = _schedule(kind, lr, _int(request, "decay_steps", LIMITS["decay_steps"], 15000))
        default_epochs, preset = 3, None
    epochs = _int(request, "epochs", LIMITS["epochs"], default_epochs)
    n_train = _int(request, "n_train", LIMITS["n_train"], 60_000)
    if epochs * n_train > LIMITS["steps"]:
        raise SettingsError(
            "epochs",
            f"{epochs} epochs of {n_train:,} images is {epochs * n_train:,} steps; "
            f"the limit is {LIMITS['steps']:,}",
        )
    return {
        "kind": "row",
        "preset": preset,
        "seed": seed,
        "dataset": dataset,
        "epochs": epochs,
        "n_train": n_train,
        "steps": epochs * n_train,
        "layer_sizes": [784, *layers, 10],
        "activation": activation,
        "init": init,
        "schedule": repr(schedule),
        "schedule_spec": schedule_to_dict(schedule),
    }


def _rung_settings(request, seed, dataset):
    """A rung run's settings (notebook 05's mini-batch training on 50,000 images)."""
    known = rungs()
    rung = known[_choice(request, "rung", list(known), None)]
    epochs = _int(request, "epochs", LIMITS["rung_epochs"], rung.epochs)
    return {
        "kind": "rung",
        "preset": rung.name,
        "seed": seed,
        "dataset": dataset,
        "epochs": epochs,
        "n_train": 50_000,
        "steps": epochs * -(-50_000 // rung.batch_size),
        "layer_sizes": list(rung.layer_sizes),
        "activation": "relu",
        "init": "he",
        "schedule": f"mini-batch {rung.batch_size}, {rung.optimizer}, lr {rung.lr:g}"
        + (", cosine" if rung.cosine else ""),
    }


def _hidden_layers(request):
    """A custom network's hidden widths, within ``LIMITS``."""
    layers = request.get("layers", [512, 256, 64])
    if not isinstance(layers, list) or not all(
        isinstance(w, int) and not isinstance(w, bool) for w in layers
    ):
        raise SettingsError("layers", "must be a list of hidden-layer widths (integers)")
    lo, hi = LIMITS["hidden_layers"]
    if not lo <= len(layers) <= hi:
        raise SettingsError("layers", f"must have {lo}..{hi} hidden layers, got {len(layers)}")
    lo, hi = LIMITS["width"]
    if not all(lo <= w <= hi for w in layers):
        raise SettingsError("layers", f"widths must be in {lo}..{hi}, got {layers}")
    sizes = [784, *layers, 10]
    parameters = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    if parameters > LIMITS["parameters"]:
        raise SettingsError(
            "layers", f"{parameters:,} weights and biases; the limit is {LIMITS['parameters']:,}"
        )
    return layers


def _schedule(kind, lr, decay_steps):
    from ..core.schedules import Constant, LinearDecay

    if kind == "constant":
        return Constant(lr)
    return LinearDecay.thousandfold(lr, decay_steps)


def row_of(settings):
    """The ``experiments.Row`` a row run trains (a report row, or custom settings)."""
    from ..study.rows import ROWS, Row

    if settings["preset"] is not None:
        return ROWS[settings["preset"]]
    return Row(
        "custom",
        tuple(settings["layer_sizes"]),
        settings["activation"],
        settings["init"],
        schedule_from_dict(settings["schedule_spec"]),
        None,
        None,
        "",
        settings["epochs"],
    )


def label(settings):
    """A short name for a run: its preset and seed, or its custom network."""
    extra = []
    if settings["dataset"] != "mnist":
        extra.append(settings["dataset"])
    if settings["kind"] == "row" and settings["n_train"] != 60_000:
        extra.append(f"{settings['n_train']:,} images")
    if settings["preset"] is None:
        hidden = "-".join(map(str, settings["layer_sizes"][1:-1]))
        name = f"{hidden} {settings['activation']} {settings['init']} {settings['schedule']}"
    else:
        name = settings["preset"]
    extra.append(f"{settings['epochs']} ep")
    return f"{name} · seed {settings['seed']} ({', '.join(extra)})"


def reference_for(row_id, dataset):
    """The report's figures for a row and our committed five-seed results
    (``results/ROW.json`` of a source checkout), or None for other runs."""
    from ..study.rows import ROWS

    row = ROWS.get(row_id)
    if row is None or dataset != "mnist":
        return None
    reference = {"report_loss": row.report_loss, "report_accuracy": row.report_accuracy}
    path = RESULTS_DIR / f"{row_id}.json"
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return reference
    accs = np.array([r["test_accuracy"] for r in runs], dtype=float)
    losses = np.array([r["test_loss"] for r in runs], dtype=float)
    ddof = 1 if len(runs) > 1 else 0
    with np.errstate(all="ignore"):
        reference.update(
            seeds=[r["seed"] for r in runs],
            acc_mean=float(np.nanmean(accs)),
            acc_std=float(np.nanstd(accs, ddof=ddof)),
            loss_mean=float(np.nanmean(losses)),
            loss_std=float(np.nanstd(losses, ddof=ddof)),
            by_seed={
                str(r["seed"]): {"test_loss": r["test_loss"], "test_accuracy": r["test_accuracy"]}
                for r in runs
            },
        )
    return json.loads(json.dumps(reference).replace("NaN", "null"))
