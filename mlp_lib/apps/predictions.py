"""What the pages show of one prediction: the probabilities and every layer.

Used by the server (``POST /api/predict``) and by a playground run's worker
(predicting with the weights as they are mid-training). It only reads a model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["describe_prediction", "TOP_UNITS"]

TOP_UNITS = 6  # first-layer units whose weights the page draws


def describe_prediction(name, model, x):
    """What ``POST /api/predict`` answers for the prepared pixels ``x`` (784)."""
    probs, cache = model.forward_cache(np.asarray(x).astype(model.dtype)[None, :])
    hidden = [a[0] for a in cache["A"][1:]]
    top = np.argsort(-hidden[0], kind="stable")[:TOP_UNITS]
    first = model.weights[0]
    with np.errstate(all="ignore"):
        return {
            "model": name,
            "label": int(np.argmax(probs[0])),
            "probabilities": np.round(probs[0].astype(float), 6).tolist(),
            "input": np.round(np.asarray(x, dtype=float), 4).tolist(),
            "activations": [np.round(a.astype(float), 4).tolist() for a in hidden],
            "first_layer": [
                {
                    "unit": int(j),
                    "activation": round(float(hidden[0][j]), 4),
                    "weights": np.round(first[:, j].astype(float), 4).tolist(),
                }
                for j in top
            ],
        }
