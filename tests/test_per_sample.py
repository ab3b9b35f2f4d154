"""The compiled per-sample engine: the same bits on any CPU target, float32, the
cache, and what no other test covers."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mlp_lib import MLP, Constant, LinearDecay
from mlp_lib.engines import per_sample, reference

_TRAIN = """
import hashlib, numpy as np
from mlp_lib import MLP, load_mnist
from mlp_lib.study import experiments
from mlp_lib.engines.per_sample import train_per_sample
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


def _sparse_images(n, rng):
    """MNIST-like inputs: most pixels 0, the rest in (0, 1]."""
    x = rng.random((n, 784))
    x[x < 0.8] = 0
    return x


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_the_observer_sees_each_block_and_changes_no_bit(activation):
    """Per block: the step, the block's loss_curve entry, the rate of its last step;
    a last, shorter block is told too. Training with an observer gives the same
    weights, bit for bit, as without."""
    rng = np.random.default_rng(3)
    x, y = _sparse_images(250, rng), rng.integers(0, 10, 250)
    plain = MLP([784, 32, 16, 10], activation, seed=1)
    watched = plain.copy()
    schedule = LinearDecay(0.05, 0.001, 250)
    history = per_sample.train_per_sample(plain, x, y, 1, schedule, record_every=50, progress=False)
    blocks = []
    per_sample.train_per_sample(
        watched, x, y, 1, schedule, record_every=60, progress=False, observer=blocks.append
    )
    for mine, theirs in zip(plain.weights + plain.biases, watched.weights + watched.biases):
        assert np.array_equal(mine, theirs)
    assert [b.step for b in blocks] == [60, 120, 180, 240, 250]
    rates = schedule.values(250)
    assert [b.rate for b in blocks] == [rates[s - 1] for s in (60, 120, 180, 240, 250)]
    assert blocks[-1].loss == pytest.approx(history.losses[240:].mean(), rel=1e-12)
    assert len(blocks[0].grad_norm) == 3 and len(blocks[0].active) == 2


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_the_observer_s_gradient_norms_and_active_fractions_are_the_backward_pass_s(activation):
    """One step per block: the norms are ‖∂L/∂W_l‖ of MLP.backward on that step's
    image with the weights before it, and the fractions its nonzero hidden units."""
    rng = np.random.default_rng(4)
    x, y = _sparse_images(5, rng), rng.integers(0, 10, 5)
    model = MLP([784, 32, 16, 10], activation, seed=2)
    before = [model.copy()]
    blocks = []

    def observe(block):
        blocks.append(block)
        before.append(model.copy())

    per_sample.train_per_sample(
        model, x, y, 1, Constant(0.05), record_every=1, progress=False, observer=observe
    )
    assert [b.step for b in blocks] == [1, 2, 3, 4, 5]
    for i, block in enumerate(blocks):
        probs, cache = before[i].forward_cache(x[i : i + 1], labels=y[i : i + 1])
        grads, _ = before[i].backward(probs, cache, y[i : i + 1])
        assert block.grad_norm == pytest.approx([np.linalg.norm(g) for g in grads], rel=1e-9)
        active = [float((a != 0).mean()) for a in cache["A"][1:]]
        assert block.active == pytest.approx(active, rel=1e-12)
        assert block.loss == pytest.approx(cache["loss"], rel=1e-12)


def test_a_dead_network_reports_zero_gradients_below_the_dead_layer():
    """U[0,1) init: every ReLU unit dies within a few steps; then the observer says
    0 active and 0 gradient for every layer below, as the maths does."""
    rng = np.random.default_rng(5)
    x, y = _sparse_images(300, rng), rng.integers(0, 10, 300)
    model = MLP([784, 64, 32, 10], "relu", "uniform", seed=0)
    blocks = []
    per_sample.train_per_sample(
        model, x, y, 1, Constant(0.01), record_every=100, progress=False, observer=blocks.append
    )
    last = blocks[-1]
    assert last.active[-1] == 0.0 or last.active[0] == 0.0
    assert last.grad_norm[0] == 0.0
