import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mlp_lib import load_checkpoint, load_mnist
from mlp_lib.io.data import image_to_mnist

SMALL = ["--layers", "784", "16", "10", "--quiet"]


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mlp_lib", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def test_help_lists_every_command():
    out = cli("--help")
    for command in ("reproduce", "rows", "train", "evaluate", "predict", "table"):
        assert command in out.stdout
    for command in ("train", "evaluate", "predict"):
        assert cli(command, "--help").returncode == 0


@pytest.mark.slow
def test_train_evaluate_predict(tmp_path):
    model_path = tmp_path / "m.npz"
    out = cli(
        "train",
        *SMALL,
        "--batch-size",
        "64",
        "--epochs",
        "1",
        "--schedule",
        "0.1",
        "--dtype",
        "float32",
        "-o",
        model_path,
    )
    assert out.returncode == 0, out.stderr
    assert "test loss" in out.stdout and model_path.is_file()
    model, state = load_checkpoint(model_path)
    assert state is None and model.layer_sizes == [784, 16, 10]
    out = cli("evaluate", model_path, "--json")
    assert out.returncode == 0 and '"accuracy"' in out.stdout

    # digits drawn dark on light paper, larger than MNIST and off-centre
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images, labels = load_mnist("test")
    paths = []
    for k in range(8):
        paper = np.ones((160, 200))
        paper[20:160, 40:180] = 1 - np.kron(images[k].reshape(28, 28), np.ones((5, 5)))
        paths.append(tmp_path / f"digit{k}.png")
        plt.imsave(paths[-1], paper, cmap="gray", vmin=0, vmax=1)
        prepared = image_to_mnist(paths[-1])
        assert np.corrcoef(prepared, images[k])[0, 1] > 0.5
    out = cli("predict", model_path, *paths, "--top", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 8
    guesses = [int(line.split(": ")[1][0]) for line in lines]
    assert np.mean(np.array(guesses) == labels[:8]) >= 0.75


@pytest.mark.parametrize(
    "args, message",
    [
        (("evaluate", "missing.npz"), "missing.npz: checkpoint not found"),
        (("train", "--layers", "784", "0", "10"), "--layers: 0 must be at least 1"),
        (("train", "--epochs", "0"), "--epochs: 0 must be at least 1"),
        (("train", "--epochs", "three"), "--epochs: 'three' is not an integer"),
        (("train", "--batch-size", "64", "--dropout", "1.5"), "--dropout: 1.5 must be in [0, 1.0)"),
        (("train", "--batch-size", "64", "--scale", "nan"), "--scale: nan must be a finite"),
        (("predict", "m.npz", "x.png", "--top", "-1"), "--top: -1 must be at least 1"),
        (("train", "--no-such-flag"), "unrecognized arguments: --no-such-flag"),
        (("train", "--layers", "100", "10"), "must start with 784"),
        (("train", "--schedule", "linear:0.1"), "bad --schedule"),
        (("train", "--schedule", "-1", *SMALL), "positive finite learning rate"),
    ],
)
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    """In this process (a third of a second each saved): what `mlp-lib ARGS` returns and
    prints; any exception other than the CLI's own exit would fail the test."""
    from mlp_lib.apps.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit:  # argparse's errors
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2 and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model.npz").exists()


@pytest.mark.slow
def test_predict_rejects_bad_images(tmp_path):
    model_path = tmp_path / "m.npz"
    assert (
        cli("train", *SMALL, "--batch-size", "256", "--epochs", "1", "-o", model_path).returncode
        == 0
    )
    (tmp_path / "bad.png").write_bytes(b"not a png")
    out = cli("predict", model_path, tmp_path / "bad.png")
    assert out.returncode == 2 and "not a readable image" in out.stderr
    import matplotlib.pyplot as plt

    plt.imsave(tmp_path / "blank.png", np.ones((30, 30)), cmap="gray", vmin=0, vmax=1)
    out = cli("predict", model_path, tmp_path / "blank.png")
    assert out.returncode == 2 and "blank" in out.stderr


def _interrupt_and_resume(args, partial, reference):
    """Run ``train ARGS -o partial``, Ctrl-C it after its "training" line, check
    it saved a checkpoint, resume it with --resume alone and check it ends with
    the weights of ``reference`` (the uninterrupted run). Returns the state
    the interrupted run saved."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mlp_lib", *args, "-o", str(partial)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line.startswith("training "), line
    # soon after: the compiled engine runs 784-8-10's 480,000 steps in under a second,
    # and a signal sent after 2 s found the run finished now and then (exit 0)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "checkpoint saved to" in err and "--resume" in err and "Traceback" not in err
    _, state = load_checkpoint(partial)
    out = cli("train", "--resume", partial, "--quiet")
    assert out.returncode == 0, out.stderr
    done, _ = load_checkpoint(partial)
    expected, _ = load_checkpoint(reference)
    for a, b in zip(done.weights + done.biases, expected.weights + expected.biases):
        assert np.array_equal(a, b)
    return state


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_matches_uninterrupted(tmp_path):
    # the signal goes when the CLI says it is training (after loading the data);
    # from that line on a Ctrl-C always stops the run with a checkpoint, at the
    # first step if the trainer is still setting up
    args = ["train", *SMALL, "--layers", "784", "8", "10", "--epochs", "8", "--batch-size", "1"]
    reference = tmp_path / "reference.npz"
    assert cli(*args, "-o", reference).returncode == 0
    partial = tmp_path / "run.npz"
    state = _interrupt_and_resume(args, partial, reference)
    assert state is not None and 0 <= state.step < 480000


@pytest.mark.parametrize(
    "output, message",
    [
        ("{tmp}", "is a directory; name a file"),
        ("{tmp}/missing/m.npz", "does not exist"),
        ("/proc/m.npz", "cannot write in /proc"),
    ],
)
def test_bad_output_is_refused_before_any_work(tmp_path, output, message):
    """A path the model could not be saved to is an error at once (about a
    second: no data loaded, nothing trained), with exit status 2."""
    started = time.perf_counter()
    out = cli("train", *SMALL, "--epochs", "1", "-o", output.format(tmp=tmp_path))
    assert out.returncode == 2 and message in out.stderr
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert time.perf_counter() - started < 10  # generous: refused before loading data


def test_a_failed_final_save_falls_back_and_says_where(tmp_path, monkeypatch):
    from mlp_lib import MLP
    from mlp_lib.apps.commands import save_model
    from mlp_lib.io.checkpoint import save_checkpoint

    monkeypatch.chdir(tmp_path)
    calls = []

    def flaky(path, model):
        calls.append(path)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied")
        return save_checkpoint(path, model)

    model = MLP([4, 3, 2], seed=0)
    saved, error = save_model(tmp_path / "gone" / "m.npz", model, flaky)
    assert isinstance(error, PermissionError) and saved.parent == tmp_path
    assert saved.name.startswith("mlp_lib-model-") and load_checkpoint(saved)[0].layer_sizes == [
        4,
        3,
        2,
    ]


@pytest.mark.slow
def test_ctrl_c_and_resume_with_notebook_05_options(tmp_path):
    """Nesterov, cosine schedule, dropout, max-norm, shifts and a validation split
    through the CLI: Ctrl-C, then --resume alone (the options come from the
    checkpoint), ends with the weights of the uninterrupted run."""
    args = [
        "train",
        "--layers",
        "784",
        "8",
        "10",
        "--quiet",
        "--batch-size",
        "100",
        "--epochs",
        "12",
        "--dtype",
        "float32",
        "--optimizer",
        "nesterov",
        "--schedule",
        "cosine:0.1",
        "--dropout",
        "0.2",
        "--max-norm",
        "3.5",
        "--shift",
        "1",
        "--validation",
        "10000",
    ]
    reference = tmp_path / "reference.npz"
    out = cli(*args, "-o", reference)
    assert out.returncode == 0, out.stderr
    partial = tmp_path / "run.npz"
    state = _interrupt_and_resume(args, partial, reference)
    assert state.extra["info"]["optimizer"] == "nesterov" and 0 <= state.step < 12 * 500


def test_mini_batch_options_need_a_batch(tmp_path):
    out = cli("train", *SMALL, "--dropout", "0.3", "-o", tmp_path / "m.npz")
    assert out.returncode == 2 and "--dropout is a mini-batch option" in out.stderr


def test_data_folder_from_the_command_line(tmp_path):
    """--data points every command at a folder of IDX files; a folder without
    them is a one-line error that says where it looked and how to fix it."""
    model_path = tmp_path / "m.npz"
    from mlp_lib import MLP, save_checkpoint

    save_checkpoint(model_path, MLP([784, 8, 10], seed=0))
    out = cli("--data", tmp_path, "evaluate", model_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{tmp_path}/t10k-images-idx3-ubyte.gz: file not found" in out.stderr
    assert "MLP_LIB_DATA=DIR" in out.stderr and "--data DIR" in out.stderr
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "mnist"
    out = cli("--data", data, "evaluate", model_path, cwd=tmp_path)
    assert out.returncode == 0 and "on the test set" in out.stdout


def _digit_png(path, value=255):
    from PIL import Image

    canvas = np.zeros((60, 60), np.uint8)
    canvas[10:50, 27:33] = value  # a "1", or nothing at all with value=0
    Image.fromarray(canvas).save(path)
    return path


def test_predict_classifies_every_readable_image_and_reports_each_bad_one(tmp_path):
    from mlp_lib import MLP, save_checkpoint

    model = save_checkpoint(tmp_path / "m.npz", MLP([784, 16, 10], seed=0))
    a, blank, b = (
        _digit_png(tmp_path / "a.png"),
        _digit_png(tmp_path / "blank.png", 0),
        _digit_png(tmp_path / "b.png"),
    )
    out = cli("predict", model, a, blank, b, tmp_path / "missing.png")
    assert out.returncode == 2
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == [str(a), str(b)]
    errors = out.stderr.splitlines()
    assert "blank" in errors[0] and str(blank) in errors[0] and "missing.png" in errors[1]
    assert errors[-1] == "error: 2 of 4 images could not be classified"


def _png_header(path, width, height):
    """A PNG whose header claims width × height (no pixel data): what a 'decompression
    bomb' looks like to a reader that opens it."""
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_an_oversized_image_gets_the_projects_pixel_limit_whatever_pillow_says(tmp_path):
    from mlp_lib.io.data import MAX_IMAGE_PIXELS, DataError, read_image

    for side in (6000, 20000):  # over our limit only; over Pillow's own limit too
        path = _png_header(tmp_path / f"{side}.png", side, side)
        with pytest.raises(DataError) as raised:
            read_image(path)
        message = str(raised.value)
        assert f"{side * side:,} pixels, more than the limit of {MAX_IMAGE_PIXELS:,}" in message
        assert "decompression bomb" not in message.lower()


def test_a_bad_schedule_lists_the_forms_before_any_work():
    out = cli("train", "--schedule", "fast", *SMALL)
    assert out.returncode == 2 and "training" not in out.stdout
    for form in ("RATE", "constant:RATE", "linear:START,END,STEPS", "cosine:RATE"):
        assert form in out.stderr
    assert cli("train", "--schedule", "linear:0.1,x", *SMALL).returncode == 2


def test_every_bad_input_exits_with_status_2(tmp_path):
    assert cli("reproduce", "no-such-row").returncode == 2
    assert "unknown row no-such-row" in cli("reproduce", "no-such-row").stderr
    assert cli("evaluate", tmp_path / "missing.npz").returncode == 2
    assert cli("train", "--epochs", "0").returncode == 2


def test_serve_on_a_busy_port_suggests_another():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cli("serve", "--port", port, "--cache", "/nonexistent-unused")
    assert out.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr


def test_setup_ends_with_the_next_commands(monkeypatch, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "tasks", Path(__file__).resolve().parents[1] / "tasks.py"
    )
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    monkeypatch.setattr(tasks, "setup", lambda *args, **kwargs: None)
    assert tasks.setup_command() == 0
    said = capsys.readouterr().out
    for command in ("python3 tasks.py lab", "python3 tasks.py reproduce", "python3 tasks.py test"):
        assert command in said
