"""The mini-batch trainer's options beyond the report: optimisers, weight decay,
dropout, max-norm, augmentation, validation and early stopping."""

import numpy as np
import pytest

from mlp_lib import MLP, Constant, evaluate, train_minibatch
from mlp_lib.core.augment import distort
from mlp_lib.core.optim import SGD, Adam


@pytest.fixture(scope="module")
def small(mnist_train):
    images, labels = mnist_train
    x = images[:3000].astype(np.float32)
    return x[:2500], labels[:2500], x[2500:], labels[2500:3000]


def _fit(small, epochs=2, **kwargs):
    x, y, xv, yv = small
    model = MLP([784, 48, 10], "relu", "he", seed=0, dtype=np.float32)
    history = train_minibatch(
        model,
        x,
        y,
        epochs=epochs,
        batch_size=50,
        seed=1,
        progress=False,
        validation=(xv, yv),
        **kwargs,
    )
    return model, history


def test_momentum_and_adam_beat_plain_sgd_early(small):
    plain = _fit(small, schedule=Constant(0.01))[1].val_loss[-1]
    momentum = _fit(small, schedule=Constant(0.01), optimizer=SGD(0.9))[1].val_loss[-1]
    adam = _fit(small, schedule=Constant(0.001), optimizer=Adam())[1].val_loss[-1]
    assert momentum < plain and adam < plain


def test_max_norm_holds_after_training(small):
    model, _ = _fit(small, schedule=Constant(0.5), max_norm=1.5)
    norms = np.linalg.norm(model.weights[0], axis=0)
    assert norms.max() <= 1.5 * (1 + 1e-6)
    unconstrained, _ = _fit(small, schedule=Constant(0.5))
    assert np.linalg.norm(unconstrained.weights[0], axis=0).max() > 1.5


def test_dropout_augment_and_weight_decay_are_reproducible(small):
    def fit():
        return _fit(
            small,
            epochs=3,
            schedule=Constant(0.05),
            optimizer=SGD(0.9),
            dropout=0.3,
            input_dropout=0.1,
            weight_decay=1e-4,
            augment=lambda b, rng: distort(b, rng, elastic_alpha=20),
        )

    (a, ha), (b, hb) = fit(), fit()
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    assert ha.val_loss == hb.val_loss and ha.val_accuracy[-1] > 0.8
    plain, _ = _fit(small, schedule=Constant(0.05), optimizer=SGD(0.9))
    assert not np.array_equal(plain.weights[0], a.weights[0])


def test_validation_keeps_the_best_epoch_and_early_stopping(small):
    x, y, xv, yv = small
    model, history = _fit(small, epochs=6, schedule=Constant(2.0), patience=2)
    assert len(history.epoch_loss) == len(history.val_loss) <= 6
    best = int(np.argmin(history.val_loss))
    assert history.best_epoch == best
    assert evaluate(model, xv, yv)[0] == pytest.approx(history.val_loss[best], rel=1e-5)


def test_early_stopping_stops_after_patience_epochs_without_a_new_best(small):
    """Validation labels shuffled: the better the model fits the training
    labels, the worse its validation loss, so the best epoch comes early and
    training must stop `patience` epochs later."""
    x, y, xv, yv = small
    wrong = np.random.default_rng(0).permutation(yv)
    model = MLP([784, 32, 10], "relu", "he", seed=0)
    history = train_minibatch(
        model,
        x,
        y,
        epochs=20,
        batch_size=32,
        schedule=Constant(0.1),
        seed=0,
        validation=(xv, wrong),
        patience=2,
        progress=False,
    )
    best = int(np.argmin(history.val_loss))
    assert len(history.val_loss) < 20  # it did stop early
    assert len(history.val_loss) == best + 2 + 1  # two epochs after the best
    assert history.best_epoch == best


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(patience=2, validation=None), "needs a validation set"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
        (dict(max_norm=0.0), "max_norm > 0"),
        (dict(optimizer="adam"), "optimizer must be one of mlp_lib.core.optim"),
        (dict(dropout=1.0), r"dropout rate must be in \[0, 1\)"),
    ],
)
def test_bad_options(small, kwargs, message):
    x, y, _, _ = small
    model = MLP([784, 8, 10], seed=0, dtype=np.float32)
    before = [w.copy() for w in model.weights]
    with pytest.raises(ValueError, match=message):
        train_minibatch(model, x, y, progress=False, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.weights))


def test_distort_identity_shift_and_determinism(mnist_train):
    images = mnist_train[0][:6]
    rng = np.random.default_rng(0)
    assert np.array_equal(distort(images, rng, 0, 0, 0), images)
    a = distort(images, np.random.default_rng(5), elastic_alpha=30)
    b = distort(images, np.random.default_rng(5), elastic_alpha=30)
    assert np.array_equal(a, b) and a.shape == images.shape
    assert 0 <= a.min() and a.max() <= 1 and not np.array_equal(a, images)
    with pytest.raises(ValueError, match=r"shape \(N, 784\)"):
        distort(images.reshape(6, 28, 28), rng)


@pytest.mark.slow
def test_ladder_rung_runs_and_uses_the_validation_split():
    from mlp_lib.study.beyond import LADDER, N_TRAIN, run_rung, split

    x, y, xv, yv = split()
    assert len(x) == N_TRAIN == 50000 and len(xv) == 10000 and x.dtype == np.float32
    assert len({rung.name for rung in LADDER}) == len(LADDER)
    result = run_rung(LADDER[0], seed=0, epochs=1, progress=False)
    assert len(result.val_loss) == 1 and result.best_epoch == 0
    assert 0.9 < result.test_accuracy < 1 and result.seconds > 0


def test_distort_matches_a_direct_shift_and_scipy_smoothing():
    from scipy import ndimage

    from mlp_lib.core.augment import _bilinear, gaussian_matrix

    rng = np.random.default_rng(0)
    images = rng.random((3, 28, 28))
    rows, cols = np.mgrid[0:28, 0:28].astype(float)
    # whole-pixel shift by (2, -1): output (r, c) reads input (r - 2, c + 1), 0 outside
    shifted = _bilinear(
        images, np.broadcast_to(rows - 2, images.shape), np.broadcast_to(cols + 1, images.shape)
    )
    expected = np.zeros_like(images)
    expected[:, 2:, :27] = images[:, :26, 1:]
    np.testing.assert_array_equal(shifted, expected)
    # half-pixel shift: the mean of two neighbours (and half the edge pixel)
    half = _bilinear(
        images, np.broadcast_to(rows, images.shape), np.broadcast_to(cols + 0.5, images.shape)
    )
    np.testing.assert_allclose(half[:, :, :27], (images[:, :, :27] + images[:, :, 1:]) / 2)
    np.testing.assert_allclose(half[:, :, 27], images[:, :, 27] / 2)
    field = rng.uniform(-1, 1, (4, 28, 28))
    smooth = gaussian_matrix(4.0)
    np.testing.assert_allclose(
        smooth @ field @ smooth.T,
        ndimage.gaussian_filter(field, sigma=(0, 4, 4), mode="constant"),
        atol=1e-14,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bilinear_equals_scipy_map_coordinates_inside_outside_and_far_away(dtype):
    """Any position, in the frame, on its edge, beyond it, or absurdly far
    away (the index arithmetic clamps before it narrows to int32): the same
    samples as SciPy's linear interpolation with zeros outside."""
    from scipy import ndimage

    from mlp_lib.core.augment import _bilinear

    rng = np.random.default_rng(2)
    images = rng.random((5, 28, 28)).astype(dtype)
    rows = rng.uniform(-4, 32, (5, 28, 28))
    cols = rng.uniform(-4, 32, (5, 28, 28))
    rows[0, :3, :3], cols[1, :3, :3] = 1e12, -1e12
    rows[2, 0, :4] = [-1.0, 0.0, 27.0, 28.0]  # whole pixels on the edges
    got = _bilinear(images, rows, cols)
    assert got.dtype == dtype
    for k in range(5):
        expected = ndimage.map_coordinates(
            images[k].astype(np.float64),
            [rows[k], cols[k]],
            order=1,
            mode="grid-constant",
            cval=0.0,
        )
        np.testing.assert_allclose(
            got[k], expected, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-12
        )


def test_the_observer_sees_each_block_and_changes_no_bit():
    """Every record_every batches (and the last): step, mean loss of the block, rate,
    the last batch's gradient norms (MLP.backward's) and active fractions; the
    weights are the same bits with or without an observer."""
    from mlp_lib import MLP, Constant, train_minibatch

    rng = np.random.default_rng(0)
    x, y = rng.random((300, 784)), rng.integers(0, 10, 300)
    plain = MLP([784, 16, 10], seed=0)
    watched = plain.copy()
    history = train_minibatch(
        plain, x, y, 2, 32, Constant(0.1), seed=1, record_every=4, progress=False
    )
    blocks = []
    train_minibatch(
        watched,
        x,
        y,
        2,
        32,
        Constant(0.1),
        seed=1,
        record_every=4,
        progress=False,
        observer=blocks.append,
    )
    for mine, theirs in zip(plain.weights + plain.biases, watched.weights + watched.biases):
        assert np.array_equal(mine, theirs)
    assert [b.step for b in blocks] == [4, 8, 12, 16, 20]
    assert [b.loss for b in blocks[:4]] == pytest.approx(history.loss_curve[:4], rel=1e-12)
    assert blocks[-1].loss == pytest.approx(history.losses[16:].mean(), rel=1e-12)
    assert len(blocks[0].grad_norm) == 2 and len(blocks[0].active) == 1
    assert all(g > 0 for b in blocks for g in b.grad_norm)
