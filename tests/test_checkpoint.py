import os
import signal
import threading
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest

from mlp_lib import MLP, Constant, LinearDecay, train_minibatch, train_per_sample
from mlp_lib.engines import lifecycle
from mlp_lib.engines.interruption import TrainingInterrupted
from mlp_lib.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


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

    monkeypatch.setattr(lifecycle, "sigint_flag", fake_flag)  # where Run.running looks it up


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))


def test_model_roundtrip(tmp_path):
    model = MLP([784, 16, 10], "sigmoid", "xavier", seed=3, dtype=np.float32)
    save_checkpoint(tmp_path / "m.npz", model)
    loaded, state = load_checkpoint(tmp_path / "m.npz")
    assert state is None and _same(model, loaded)
    assert (loaded.layer_sizes, loaded.activation, loaded.dtype) == (
        [784, 16, 10],
        "sigmoid",
        np.float32,
    )


@pytest.mark.parametrize("record_every, checks", [(50, 1), (1, 137), (50, 6), (1, 599)])
def test_per_sample_resume_is_bit_identical(
    tmp_path, monkeypatch, mnist_train, record_every, checks
):
    """The engine looks for Ctrl-C before each block of ``record_every`` steps (its
    compiled loop runs a block at a time): stopped there, and resumed, the run ends
    with exactly the weights and losses of one never stopped."""
    images, labels = mnist_train[0][:300], mnist_train[1][:300]
    kwargs = dict(
        epochs=2, schedule=LinearDecay(0.05, 0.001, 400), record_every=record_every, progress=False
    )
    reference = MLP([784, 32, 16, 10], "relu", "he", seed=1)
    full = train_per_sample(reference, images, labels, **kwargs)

    model = MLP([784, 32, 16, 10], "relu", "he", seed=1)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, checks)
        with pytest.raises(TrainingInterrupted, match="resume") as info:
            train_per_sample(model, images, labels, checkpoint=tmp_path / "c.npz", **kwargs)
    stop_at = checks * record_every
    assert info.value.step == stop_at and info.value.checkpoint == tmp_path / "c.npz"
    restored, state = load_checkpoint(tmp_path / "c.npz")
    assert state.step == stop_at and _same(restored, model)
    rest = train_per_sample(restored, images, labels, resume=state, progress=False)
    assert _same(restored, reference)
    assert np.array_equal(rest.losses, full.losses)
    assert np.array_equal(rest.loss_curve, full.loss_curve)


@pytest.mark.parametrize("stop_at", [5, 16, 25])  # mid-epoch, at an epoch boundary, later
def test_minibatch_resume_is_bit_identical(tmp_path, monkeypatch, mnist_train, stop_at):
    images, labels = mnist_train[0][:500], mnist_train[1][:500]
    kwargs = dict(epochs=3, batch_size=32, schedule=Constant(0.05), record_every=4, progress=False)
    reference = MLP([784, 24, 10], "relu", "he", seed=2, dtype=np.float32)
    full = train_minibatch(reference, images, labels, seed=9, **kwargs)
    model = MLP([784, 24, 10], "relu", "he", seed=2, dtype=np.float32)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, stop_at)
        with pytest.raises(TrainingInterrupted):
            train_minibatch(model, images, labels, seed=9, checkpoint=tmp_path / "c.npz", **kwargs)
    restored, state = load_checkpoint(tmp_path / "c.npz")
    rest = train_minibatch(restored, images, labels, resume=state, batch_size=32, progress=False)
    assert _same(restored, reference)
    assert np.array_equal(rest.losses, full.losses)


def test_real_ctrl_c_saves_a_checkpoint(tmp_path, mnist_train):
    images, labels = mnist_train[0][:2000], mnist_train[1][:2000]
    model = MLP([784, 64, 10], "relu", "he", seed=0)
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(TrainingInterrupted) as info:
            train_per_sample(
                model,
                images,
                labels,
                epochs=1000,
                progress=False,
                checkpoint=tmp_path / "ctrl-c.npz",
            )
    finally:
        timer.cancel()
    restored, state = load_checkpoint(tmp_path / "ctrl-c.npz")
    assert 0 < state.step == info.value.step < 1000 * 2000 and _same(restored, model)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back


def test_resume_rejects_other_data_or_settings(tmp_path, monkeypatch, mnist_train):
    images, labels = mnist_train[0][:100], mnist_train[1][:100]
    model = MLP([784, 8, 10], seed=0)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 1)  # after the first block of 100 steps
        with pytest.raises(TrainingInterrupted):
            train_per_sample(model, images, labels, progress=False, checkpoint=tmp_path / "c.npz")
    restored, state = load_checkpoint(tmp_path / "c.npz")
    before = restored.copy()
    with pytest.raises(ValueError, match="resume: data"):
        train_per_sample(
            restored, mnist_train[0][100:200], mnist_train[1][100:200], resume=state, progress=False
        )
    with pytest.raises(ValueError, match="resume: epochs 5 differs"):
        train_per_sample(restored, images, labels, resume=state, epochs=5, progress=False)
    with pytest.raises(ValueError, match="resume: schedule"):
        train_per_sample(
            restored, images, labels, resume=state, schedule=Constant(0.5), progress=False
        )
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


def _with_meta(tmp_path, change):
    """A valid checkpoint with a training state, its metadata passed through ``change``."""
    import json

    from mlp_lib.io.checkpoint import TrainingState
    from mlp_lib.core.schedules import schedule_to_dict

    model = MLP([784, 16, 10], "relu", "he", seed=0)
    state = TrainingState(
        "per-sample", 2, 3, schedule_to_dict(Constant(0.01)), 100, "abc", np.zeros(2)
    )
    save_checkpoint(tmp_path / "good.npz", model, state)
    with np.load(tmp_path / "good.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["meta"] = np.array(json.dumps(change(json.loads(str(arrays["meta"])))))
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: [m], "a JSON object expected, got list"),
        (lambda m: {**m, "extra": 1}, r"unknown keys \['extra'\]"),
        (lambda m: {k: v for k, v in m.items() if k != "init"}, r"missing keys \['init'\]"),
        (lambda m: {**m, "layer_sizes": [784, 10**6, 10**6, 10]}, "more than the limit"),
        (lambda m: {**m, "layer_sizes": [784, True, 10]}, "layer_sizes must be"),
        (lambda m: {**m, "layer_sizes": "784-10"}, "layer_sizes must be"),
        (lambda m: {**m, "dtype": "float16"}, "dtype must be float32 or float64"),
        (lambda m: {**m, "activation": "swish"}, "unknown activation"),
        (
            lambda m: {**m, "training": {**m["training"], "epochs": "three"}},
            "training epochs has the wrong type",
        ),
        (lambda m: {**m, "training": {**m["training"], "epochs": 0}}, "epochs must be at least 1"),
        (lambda m: {**m, "training": {**m["training"], "trainer": "magic"}}, "unknown trainer"),
        (lambda m: {**m, "training": [1, 2]}, "training state must have the keys"),
    ],
)
def test_bad_metadata_is_refused_before_anything_is_allocated(tmp_path, change, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(_with_meta(tmp_path, change))


def test_member_sizes_are_checked_from_the_zip_headers(tmp_path, monkeypatch):
    from mlp_lib.io import checkpoint

    save_checkpoint(tmp_path / "m.npz", MLP([784, 16, 10], seed=0))
    monkeypatch.setattr(checkpoint, "MAX_MEMBER_BYTES", 50_000)  # weights_0: 100,352 bytes
    with pytest.raises(CheckpointError, match="weights_0.npy holds 100,[0-9]+ bytes, more than"):
        load_checkpoint(tmp_path / "m.npz")
    monkeypatch.setattr(checkpoint, "MAX_MEMBER_BYTES", 10**9)
    monkeypatch.setattr(checkpoint, "MAX_TOTAL_BYTES", 50_000)
    with pytest.raises(CheckpointError, match="bytes in all, more than the limit"):
        load_checkpoint(tmp_path / "m.npz")


def test_save_is_flushed_to_disk_and_follows_the_umask(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    previous = os.umask(0o027)
    try:
        save_checkpoint(tmp_path / "m.npz", MLP([4, 3, 2], seed=0))
    finally:
        os.umask(previous)
    assert len(synced) == 2  # the file, then its directory
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left


_WRITER = """
import sys
import numpy as np
from mlp_lib import MLP, save_checkpoint
model = MLP([784, 512, 10], seed=0)
version = 0
while True:
    for array in model.weights + model.biases:
        array.fill(version)
    save_checkpoint(sys.argv[1], model)
    version += 1
    if version == 1:
        print("saved", flush=True)
"""


@pytest.mark.slow  # child processes killed mid-write
def test_sigkill_while_writing_never_leaves_a_broken_checkpoint(tmp_path):
    """A process that writes checkpoints without pause is killed with SIGKILL at
    random moments; the file in place always loads whole, one version in all
    its arrays, and no run loses it."""
    import subprocess
    import sys
    import time

    path = tmp_path / "run.npz"
    rng = np.random.default_rng(0)
    versions = set()
    for _ in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0.05, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        model, _ = load_checkpoint(path)
        values = {float(np.unique(a)[0]) for a in model.weights + model.biases}
        assert len(values) == 1 and all(len(np.unique(a)) == 1 for a in model.weights)
        versions |= values
    assert len(versions) > 1  # the kills landed mid-run


@pytest.mark.parametrize(
    "rung_name",
    [
        "mini-batch SGD",
        "+ Nesterov, cosine",
        "+ wider (2×1024)",
        "+ dropout, max-norm",
        "+ affine augmentation",
        "60-second sprint",
        "+ elastic distortions",
    ],
)
def test_every_notebook_05_configuration_resumes_bit_identical(
    tmp_path, monkeypatch, mnist_train, rung_name
):
    """Each rung's options (optimiser, schedule, dropout, max-norm, augmentation,
    validation with the best epoch kept), on a small net and data: interrupted
    mid-epoch, at an epoch boundary and right after a new best epoch, then
    resumed, every run ends with the uninterrupted run's weights and history."""
    from dataclasses import replace

    from mlp_lib.study.beyond import ELASTIC, LADDER, SPRINT, rung_options

    rung = {r.name: r for r in LADDER + [SPRINT, ELASTIC]}[rung_name]
    rung = replace(rung, epochs=3, batch_size=50)
    images, labels = mnist_train
    x, y = images[:1000].astype(np.float32), labels[:1000]
    validation = (images[1000:1200].astype(np.float32), labels[1000:1200])
    sizes = [784] + [24, 16, 12][: len(rung.layer_sizes) - 2] + [10]

    def train(model, **kwargs):
        return train_minibatch(
            model,
            x,
            y,
            validation=validation,
            progress=False,
            **rung_options(rung, len(x), 3),
            **kwargs,
        )

    start = MLP(sizes, "relu", "he", seed=1, dtype=np.float32)
    expected = start.copy()
    full = train(expected)
    for stop_at in (7, 20, 40):  # mid-epoch, boundary, after a new best
        model = start.copy()
        path = tmp_path / f"run{stop_at}.npz"
        with monkeypatch.context() as patch:
            _interrupt_after(patch, stop_at)
            with pytest.raises(TrainingInterrupted):
                train(model, checkpoint=path)
        model, state = load_checkpoint(path)
        assert state.step == stop_at
        resumed = train(model, resume=state)
        assert _same(model, expected), (rung_name, stop_at)
        assert np.array_equal(resumed.losses, full.losses)
        assert resumed.val_loss == full.val_loss and resumed.epoch_loss == full.epoch_loss
        assert resumed.best_epoch == full.best_epoch


def test_ctrl_c_during_set_up_stops_at_the_first_step_with_a_checkpoint(tmp_path, mnist_train):
    """A caller's outer flag (as the CLI opens one) is shared by the trainer: a
    Ctrl-C that arrived before the loop started is not lost."""
    from mlp_lib.engines.interruption import sigint_flag

    images, labels = mnist_train[0][:100], mnist_train[1][:100]
    model = MLP([784, 8, 10], seed=0)
    with sigint_flag() as flag:
        flag[0] = True  # Ctrl-C during the set-up
        with pytest.raises(TrainingInterrupted) as info:
            train_per_sample(
                model, images, labels, progress=False, checkpoint=tmp_path / "early.npz"
            )
    assert info.value.step == 0
    restored, state = load_checkpoint(tmp_path / "early.npz")
    assert state.step == 0 and _same(restored, MLP([784, 8, 10], seed=0))
    resumed = train_per_sample(restored, images, labels, resume=state, progress=False)
    fresh = MLP([784, 8, 10], seed=0)
    train_per_sample(fresh, images, labels, progress=False)
    assert _same(restored, fresh) and resumed.steps == 300
