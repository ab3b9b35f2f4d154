import os
import signal
import threading
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest

from mlp_lib import MLP, Constant, LinearDecay, train_minibatch, train_per_sample
from mlp_lib import minibatch, per_sample
from mlp_lib.lifecycle import TrainingInterrupted
from mlp_lib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class _InterruptAt:
    """Stands in for the Ctrl-C flag: reads True from the `at`-th check on."""

    def __init__(self, at):
        self.at, self.checks = at, 0

    def __getitem__(self, index):
        self.checks += 1
        return self.checks > self.at


def _interrupt_after(monkeypatch, steps):
    @contextmanager
    def fake_flag():
        yield _InterruptAt(steps)
    for trainer in (per_sample, minibatch):
        monkeypatch.setattr(trainer, "sigint_flag", fake_flag)


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))


def test_model_roundtrip(tmp_path):
    model = MLP([784, 16, 10], "sigmoid", "xavier", seed=3, dtype=np.float32)
    save_checkpoint(tmp_path / "m.npz", model)
    loaded, state = load_checkpoint(tmp_path / "m.npz")
    assert state is None and _same(model, loaded)
    assert (loaded.layer_sizes, loaded.activation, loaded.dtype) == ([784, 16, 10], "sigmoid",
                                                                     np.float32)


@pytest.mark.parametrize("stop_at", [1, 137, 300, 599])
def test_per_sample_resume_is_bit_identical(tmp_path, monkeypatch, mnist_train, stop_at):
    images, labels = mnist_train[0][:300], mnist_train[1][:300]
    kwargs = dict(epochs=2, schedule=LinearDecay(0.05, 0.001, 400), record_every=50,
                  progress=False)
    reference = MLP([784, 32, 16, 10], "relu", "he", seed=1)
    full = train_per_sample(reference, images, labels, **kwargs)

    model = MLP([784, 32, 16, 10], "relu", "he", seed=1)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, stop_at)
        with pytest.raises(TrainingInterrupted, match="resume") as info:
            train_per_sample(model, images, labels, checkpoint=tmp_path / "c.npz", **kwargs)
    assert info.value.step == stop_at and info.value.checkpoint == tmp_path / "c.npz"
    restored, state = load_checkpoint(tmp_path / "c.npz")
    assert state.step == stop_at and _same(restored, model)
    rest = train_per_sample(restored, images, labels, resume=state, progress=False)
    assert _same(restored, reference)
    assert np.array_equal(rest.losses, full.losses)
    assert np.array_equal(rest.loss_curve, full.loss_curve)


@pytest.mark.parametrize("stop_at", [5, 16, 25])   # mid-epoch, at an epoch boundary, later
def test_minibatch_resume_is_bit_identical(tmp_path, monkeypatch, mnist_train, stop_at):
    images, labels = mnist_train[0][:500], mnist_train[1][:500]
    kwargs = dict(epochs=3, batch_size=32, schedule=Constant(0.05), record_every=4,
                  progress=False)
    reference = MLP([784, 24, 10], "relu", "he", seed=2, dtype=np.float32)
    full = train_minibatch(reference, images, labels, seed=9, **kwargs)
    model = MLP([784, 24, 10], "relu", "he", seed=2, dtype=np.float32)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, stop_at)
        with pytest.raises(TrainingInterrupted):
            train_minibatch(model, images, labels, seed=9, checkpoint=tmp_path / "c.npz",
                            **kwargs)
    restored, state = load_checkpoint(tmp_path / "c.npz")
    rest = train_minibatch(restored, images, labels, resume=state, batch_size=32,
                           progress=False)
    assert _same(restored, reference)
    assert np.array_equal(rest.losses, full.losses)


def test_real_ctrl_c_saves_a_checkpoint(tmp_path, mnist_train):
    images, labels = mnist_train[0][:2000], mnist_train[1][:2000]
    model = MLP([784, 64, 10], "relu", "he", seed=0)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(TrainingInterrupted) as info:
            train_per_sample(model, images, labels, epochs=1000, progress=False,
                             checkpoint=tmp_path / "ctrl-c.npz")
    finally:
        timer.cancel()
    restored, state = load_checkpoint(tmp_path / "ctrl-c.npz")
    assert 0 < state.step == info.value.step < 1000 * 2000 and _same(restored, model)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_rejects_other_data_or_settings(tmp_path, monkeypatch, mnist_train):
    images, labels = mnist_train[0][:100], mnist_train[1][:100]
    model = MLP([784, 8, 10], seed=0)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 10)
        with pytest.raises(TrainingInterrupted):
            train_per_sample(model, images, labels, progress=False,
                             checkpoint=tmp_path / "c.npz")
    restored, state = load_checkpoint(tmp_path / "c.npz")
    before = restored.copy()
    with pytest.raises(ValueError, match="resume: data"):
        train_per_sample(restored, mnist_train[0][100:200], mnist_train[1][100:200],
                         resume=state, progress=False)
    with pytest.raises(ValueError, match="resume: epochs 5 differs"):
        train_per_sample(restored, images, labels, resume=state, epochs=5, progress=False)
    with pytest.raises(ValueError, match="resume: schedule"):
        train_per_sample(restored, images, labels, resume=state, schedule=Constant(0.5),
                         progress=False)
    with pytest.raises(ValueError, match="resume: trainer 'minibatch'"):
        train_minibatch(restored, images, labels, resume=state, progress=False)
    assert _same(restored, before)


def test_bad_checkpoint_files(tmp_path):
    model = MLP([20, 5, 3], seed=0)
    good = save_checkpoint(tmp_path / "good.npz", model)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.npz: not a readable checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"hello, not a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(garbage)
    # an archive whose arrays do not match the stated architecture
    with np.load(good) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["weights_1"] = np.zeros((4, 3))
    np.savez(tmp_path / "mismatch.npz", **arrays)
    with pytest.raises(CheckpointError, match=r"weights_1 has shape \(4, 3\).*needs \(5, 3\)"):
        load_checkpoint(tmp_path / "mismatch.npz")
    del arrays["weights_1"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(CheckpointError, match="weights_1 is missing"):
        load_checkpoint(tmp_path / "missing.npz")
    # something that needs pickle is refused, not executed
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "pickled.npz")
    assert zipfile.is_zipfile(good)
