"""The compiled per-sample engine: the same bits on any CPU target, float32, the
cache, and what no other test covers."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mlp_lib import MLP, Constant, LinearDecay, per_sample, reference

_TRAIN = """
import hashlib, numpy as np
from mlp_lib import MLP, load_mnist, experiments
from mlp_lib.per_sample import train_per_sample
x, y = load_mnist("train")
for row_id in ("relu-he-const", "sigmoid-normal"):
    row = experiments.ROWS[row_id]
    model = MLP(row.layer_sizes, row.activation, row.init, seed=0)
    train_per_sample(model, x[:2500], y[:2500], epochs=1, schedule=row.schedule, progress=False)
    digest = hashlib.sha256(b"".join(p.tobytes() for p in model.weights + model.biases))
    print(row_id, digest.hexdigest())
"""


@pytest.mark.slow
def test_a_row_trains_to_the_same_bits_on_every_compiler_target_and_blas(tmp_path):
    """No BLAS call, no fastmath, no threads: the kernel compiled for a generic x86-64
    (SSE2 only) and for this machine's CPU (with its wider vectors), and run under
    two OpenBLAS core types, gives bit-identical weights for a ReLU and a sigmoid row."""
    settings = {
        "host": {},
        "generic CPU": {"NUMBA_CPU_NAME": "generic"},
        "OpenBLAS Haswell": {"OPENBLAS_CORETYPE": "Haswell"},
        "OpenBLAS Prescott": {"OPENBLAS_CORETYPE": "Prescott"},
    }
    digests = {}
    for name, extra in settings.items():
        env = {**os.environ, **extra, "NUMBA_CACHE_DIR": str(tmp_path / name.replace(" ", "-"))}
        done = subprocess.run(
            [sys.executable, "-c", _TRAIN],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        digests[name] = done.stdout
    assert len(set(digests.values())) == 1, digests
    assert digests["host"].count("\n") == 2


def test_the_first_call_per_dtype_compiles_or_loads_the_cache_then_runs_compiled():
    model = MLP([784, 8, 10], seed=0)
    x = np.random.default_rng(0).random((50, 784))
    per_sample.train_per_sample(model, x, np.arange(50) % 10, epochs=1, progress=False)
    signatures = per_sample._steps.signatures
    assert any("float64" in str(s) for s in signatures)
    stats = per_sample._steps.stats
    assert sum(stats.cache_hits.values()) + sum(stats.cache_misses.values()) >= 1


@pytest.mark.parametrize(
    "activation, init",
    [("relu", "he"), ("sigmoid", "normal"), ("tanh", "xavier"), ("leaky_relu", "he")],
)
def test_float32_stays_float32_and_close_to_the_reference(mnist_train, activation, init):
    images, labels = mnist_train[0][:500].astype(np.float32), mnist_train[1][:500]
    start = MLP([784, 64, 32, 10], activation, init, seed=4, dtype=np.float32)
    fast, slow = start.copy(), start.copy()
    got = per_sample.train_per_sample(
        fast, images, labels, epochs=1, schedule=LinearDecay(0.05, 0.01, 500), progress=False
    )
    expected = reference.train_per_sample(
        slow, images, labels, epochs=1, schedule=LinearDecay(0.05, 0.01, 500)
    )
    assert all(p.dtype == np.float32 for p in fast.weights + fast.biases)
    diff = max(
        np.abs(a - b).max() for a, b in zip(fast.weights + fast.biases, slow.weights + slow.biases)
    )
    assert diff < 2e-5
    assert np.abs(got.losses - expected.losses).max() < 1e-4


def test_weights_that_are_not_c_ordered_are_trained_in_place_all_the_same(mnist_train):
    images, labels = mnist_train[0][:300], mnist_train[1][:300]
    ordered = MLP([784, 32, 10], "relu", "he", seed=2)
    strided = ordered.copy()
    strided.weights = [np.asfortranarray(w) for w in strided.weights]
    kept = strided.weights[0]
    for model in (ordered, strided):
        per_sample.train_per_sample(
            model, images, labels, epochs=1, schedule=Constant(0.02), progress=False
        )
    assert strided.weights[0] is kept  # the model's own array, written back
    for a, b in zip(ordered.weights + ordered.biases, strided.weights + strided.biases):
        assert np.array_equal(a, b)


def test_nonzero_pixels_lists_each_images_pixels_in_order():
    images = np.array([[0.0, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0]])
    ptr, pixels, values = per_sample.nonzero_pixels(images)
    assert ptr.tolist() == [0, 2, 2, 3]
    assert pixels.tolist() == [1, 3, 0] and values.tolist() == [0.5, 1.0, 0.2]
