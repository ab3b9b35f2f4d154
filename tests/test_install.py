"""A built wheel, installed in a fresh virtual environment, works from another directory.

This is what a user gets from ``pip install mlp_lib-*.whl``: no source
checkout beside the package, so no ``data/`` and no README to edit. The test
builds the wheel, installs it (its dependencies come from the package index
or pip's cache) and runs the CLI from a temporary directory.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args, cwd, **env):
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLP_LIB_DATA", "PYTHONPATH", "VIRTUAL_ENV")
    }
    environment.update(env, MPLBACKEND="Agg")
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv holding the wheel, an empty working directory)."""
    base = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", base / "dist", ROOT],
        cwd=base,
    )
    assert built.returncode == 0, built.stderr
    wheels = list((base / "dist").glob("mlp_lib-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(base / "venv", with_pip=True)
    python = base / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pip = _run([python, "-m", "pip", "install", "--quiet", wheels[0]], cwd=base)
    assert pip.returncode == 0, pip.stderr
    work = base / "elsewhere"
    work.mkdir()
    return python, work


def test_the_installed_package_is_not_the_checkout(installed):
    python, work = installed
    where = _run([python, "-c", "import mlp_lib; print(mlp_lib.__file__)"], cwd=work)
    assert where.returncode == 0, where.stderr
    assert "site-packages" in where.stdout and str(ROOT) not in where.stdout


def test_offline_without_data_it_says_where_it_looked_and_how_to_point_it(installed, tmp_path):
    python, work = installed
    out = _run(
        [python, "-m", "mlp_lib", "train", "--epochs", "1", "-o", "m.npz"],
        cwd=work,
        MLP_LIB_CACHE=str(tmp_path / "cache"),
        MLP_LIB_MIRRORS="http://127.0.0.1:9",  # nothing listens there: offline
    )
    assert out.returncode == 2
    error = out.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error:"), out.stderr
    for hint in ("could not be fetched", "Offline", "MLP_LIB_DATA", "--data DIR"):
        assert hint in error[0]
    assert str(tmp_path / "cache" / "data" / "mnist") in error[0]
    assert not (work / "m.npz").exists()


def test_it_fetches_the_data_on_first_use_into_its_cache(installed, tmp_path):
    """From a local mirror (an HTTP server on this machine serving data/mnist)."""
    import functools
    import http.server
    import threading

    python, work = installed
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(ROOT / "data" / "mnist")
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(
        MLP_LIB_CACHE=str(tmp_path / "cache"),
        MLP_LIB_MIRRORS=f"http://127.0.0.1:{server.server_port}/",
    )
    try:
        code = "from mlp_lib import load_mnist; print(load_mnist('test')[0].shape)"
        out = _run([python, "-c", code], cwd=work, **env)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(10000, 784)"
    cached = sorted(p.name for p in (tmp_path / "cache" / "data" / "mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_with_data_it_trains_evaluates_and_predicts(installed):
    from PIL import Image
    from mlp_lib.io.data import load_mnist

    python, work = installed
    data = ROOT / "data" / "mnist"
    train = _run(
        [
            python,
            "-m",
            "mlp_lib",
            "--data",
            data,
            "train",
            "--layers",
            "784",
            "32",
            "10",
            "--batch-size",
            "128",
            "--epochs",
            "1",
            "--quiet",
            "-o",
            "m.npz",
        ],
        cwd=work,
    )
    assert train.returncode == 0, train.stderr
    assert (work / "m.npz").is_file()
    evaluate = _run(
        [python, "-m", "mlp_lib", "evaluate", "m.npz"], cwd=work, MLP_LIB_DATA=str(data)
    )
    assert evaluate.returncode == 0, evaluate.stderr
    accuracy = float(evaluate.stdout.split("accuracy")[1].split()[0].strip(":=,"))
    assert accuracy > 0.85
    images, labels = load_mnist("test")
    Image.fromarray((images[0].reshape(28, 28) * 255).round().astype(np.uint8)).save(
        work / "digit.png"
    )
    predict = _run([python, "-m", "mlp_lib", "predict", "m.npz", "digit.png"], cwd=work)
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout.startswith(f"digit.png: {labels[0]} (")


def test_the_console_command_runs_and_the_checkout_tools_stay_behind(installed):
    """`mlp-lib` is installed with the wheel; the README generator (tools/) is not, and
    nothing of the package can edit a README."""
    python, work = installed
    command = python.parent / ("mlp-lib.exe" if os.name == "nt" else "mlp-lib")
    out = _run([command, "--help"], cwd=work)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: mlp-lib ") and "reproduce" in out.stdout
    out = _run([python, "-m", "mlp_lib", "table", "--update-readme"], cwd=work)
    assert out.returncode == 2 and "unrecognized arguments: --update-readme" in out.stderr
    files = _run(
        [python, "-c", "import importlib.metadata as m; print(*m.files('mlp_lib'), sep='\\n')"],
        cwd=work,
    ).stdout.split()
    assert not [f for f in files if f.startswith("tools/") or f.endswith("readme.py")], files
    site = _run(
        [python, "-c", "import mlp_lib, pathlib; print(pathlib.Path(mlp_lib.__file__).parents[1])"],
        cwd=work,
    ).stdout.strip()
    assert not (Path(site) / "README.md").exists() and not (work / "README.md").exists()


def test_the_wheel_carries_the_serve_page(installed):
    python, work = installed
    out = _run(
        [
            python,
            "-c",
            "from mlp_lib.apps.serve import STATIC; "
            "print(' '.join(sorted(p.name for p in STATIC.iterdir())))",
        ],
        cwd=work,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "app.js",
        "index.html",
        "playground.css",
        "playground.html",
        "playground.js",
        "style.css",
        "uPlot.LICENSE.txt",
        "uPlot.iife.min.js",
        "uPlot.min.css",
    ]


def test_a_read_only_installation_trains_and_caches_its_kernels_elsewhere(installed, tmp_path):
    """The compiled engine caches its kernels beside its source; where that folder
    cannot be written (a system-wide install), numba caches in the user's folder and
    training works the same, twice (the second time from that cache)."""
    python, work = installed
    where = _run(
        [python, "-c", "import mlp_lib, pathlib; print(pathlib.Path(mlp_lib.__file__).parent)"],
        cwd=work,
    ).stdout.strip()
    package = Path(where)
    modes = {p: p.stat().st_mode for p in [package, *package.rglob("*")]}
    try:
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        code = (
            "import numpy as np, mlp_lib.engines.per_sample as ps; from mlp_lib import MLP; "
            "m = MLP([784, 32, 10], seed=0); x = np.random.default_rng(0).random((300, 784)); "
            "ps.train_per_sample(m, x, np.arange(300) % 10, epochs=1, progress=False); "
            "print(ps._steps.stats.cache_hits.total() if hasattr(ps._steps.stats.cache_hits, "
            "'total') else sum(ps._steps.stats.cache_hits.values()), float(m.weights[0].sum()))"
        )
        runs = [
            _run(
                [python, "-c", code],
                cwd=work,
                HOME=str(tmp_path),
                XDG_CACHE_HOME="",
                NUMBA_CACHE_DIR="",
            )
            for _ in range(2)
        ]
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    (first_hits, first_sum), (second_hits, second_sum) = (r.stdout.split() for r in runs)
    assert first_sum == second_sum and int(second_hits) >= 1
