"""Smoke tests of the benchmark suite (benchmarks/run.py): it runs, its
exactness check holds, missing optional peers are reported as skipped. No
timing is asserted: speed figures live in the benchmark's output."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
_spec = importlib.util.spec_from_file_location("mlp_lib_benchmarks", _path)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.slow
def test_per_sample_part_is_exact_for_both_activations(mnist_train, capsys):
    images, labels = mnist_train
    result = bench.per_sample(images, labels, steps=60, repeats=1, whole_rows=False)
    for activation in ("relu", "sigmoid"):
        figures = result[activation]
        assert figures["max_diff_report"] <= 1e-12
        assert figures["report_us"] > 0 and figures["engine_us"] > 0
        assert figures["speedup_report"] == figures["report_us"] / figures["engine_us"]
        # the floor: bytes a step moves at the measured bandwidth, and the distance to it
        assert figures["floor_us"] == pytest.approx(
            figures["traffic_mb"] * 1e6 / (figures["bandwidth_gbs"] * 1e9) * 1e6
        )
        assert figures["distance_to_floor"] == figures["engine_us"] / figures["floor_us"]
        assert figures["max_diff_numba"] <= 1e-12 and figures["numba_us"] > 0
        for peer in ("torch", "jax"):  # optional peers, each checked before it is timed
            if f"{peer}_us" in figures:
                assert figures[f"max_diff_{peer}"] <= 1e-12
    assert "max |weight difference| after 60 steps" in capsys.readouterr().out


def test_report_baseline_has_the_reports_memory_layout():
    """The report creates each W with np.random.normal(0, σ, (H_len, X_len)): a
    C-ordered (n_out, n_in + 1) float64 array. A Fortran-ordered copy would make
    every `W -= lr * dL_W` a strided pass and slow the baseline down."""
    from report_loop import report_weights

    model = bench.MLP([784, 512, 256, 64, 10], "relu", "he", seed=0)
    reported = np.random.normal(0, 0.1, (512, 785))
    for W, w, b in zip(report_weights(model), model.weights, model.biases):
        assert W.flags.c_contiguous and W.flags.owndata and W.dtype == np.float64
        assert W.shape == (w.shape[1], w.shape[0] + 1) and W.strides[1] == 8
        assert np.array_equal(W[:, 0], b) and np.array_equal(W[:, 1:], w.T)
    assert reported.flags.c_contiguous  # what the report's code makes


def test_epoch_flops_counts_forward_and_backward():
    # [4, 3, 2]: 12 + 6 multiply-adds; forward 2 each, backward 4 each, less
    # the input gradient of layer 1 (2 x 12), which nobody needs
    assert bench.epoch_flops(1, [4, 3, 2]) == 2 * 18 + 4 * 18 - 2 * 12
    assert bench.epoch_flops(10, [4, 3, 2]) == 10 * bench.epoch_flops(1, [4, 3, 2])


@pytest.mark.slow
def test_minibatch_part_reports_missing_peers_as_skipped(mnist_train, capsys, monkeypatch):
    images, labels = mnist_train
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "jax", None)
    result = bench.minibatch(images[:512], labels[:512], repeats=1, threads=1)
    out = capsys.readouterr().out
    assert "| PyTorch CPU | skipped" in out
    assert "| scikit-learn MLPClassifier | skipped" in out
    assert "| JAX, one jitted lax.scan over the epoch | skipped" in out
    ours = result["mlp_lib.train_minibatch"]
    assert ours["seconds"] > 0 and ours["ratio"] == 1.0 and 0 < ours["share_of_peak"]
    assert result["peak"] > 0
    ceiling = result[bench.PRODUCTS]  # the products alone always run
    assert ceiling["seconds"] > 0 and 0 < ceiling["share_of_peak"]
    assert ceiling["cpu_seconds"] > 0


@pytest.mark.slow
def test_jax_peer_agrees_with_mlp_lib_before_it_is_timed(mnist_train):
    pytest.importorskip("jax")
    images, labels = mnist_train
    diff = bench._jax_agrees(images[:256].astype(np.float32), labels[:256])
    assert diff is not None and diff < 1e-5


def test_products_epoch_counts_every_batch_and_leaves_the_weights(monkeypatch):
    """The BLAS-ceiling replay makes, per batch, one forward product per layer,
    one Δ Wᵀ per layer above the first and one update per layer; its zero steps
    leave the weights unchanged."""
    products, updates = [], []
    real_add = bench.add_product

    def add(weights, inputs, step):
        before = weights.copy()
        real_add(weights, inputs, step)
        updates.append((inputs.shape, np.array_equal(weights, before)))

    monkeypatch.setattr(bench, "matmul", lambda a, b: products.append((a.shape, b.shape)))
    monkeypatch.setattr(bench, "add_product", add)
    bench.products_epoch_fn(300, batch=128, sizes=[6, 5, 4, 3])()
    batches = 3  # 128 + 128 + 44 rows
    assert len(products) == batches * (3 + 2) and len(updates) == batches * 3
    assert ((44, 6), True) in updates  # the short last batch
    assert all(unchanged for _, unchanged in updates)


def test_serve_latency_part_answers_every_request(capsys):
    result = bench.serve_latency(requests=20)
    assert set(result) == {"image (280x280 PNG)", "pixels (784 prepared)"}
    for figures in result.values():
        assert figures["requests"] == 20 and 0 < figures["p50_ms"] <= figures["p95_ms"]
    assert "p95" in capsys.readouterr().out


def test_step_traffic_counts_the_rows_a_step_touches(mnist_train):
    """Layer 1: three passes (forward read, update read and write) over the rows of
    the nonzero pixels; a ReLU layer: over its active inputs' rows; sigmoid: all."""
    from mlp_lib import MLP

    images = mnist_train[0][:20]
    nonzero = (images != 0).sum(axis=1).mean()
    sigmoid = MLP([784, 16, 10], "sigmoid", "normal", seed=0)
    assert bench.step_traffic(sigmoid, images) == pytest.approx(3 * 8 * (nonzero * 16 + 16 * 10))
    relu = MLP([784, 16, 10], "relu", "he", seed=0)
    relu.biases[0][:] = -1e9  # every hidden unit off
    assert bench.step_traffic(relu, images) == pytest.approx(3 * 8 * nonzero * 16)
    assert bench.update_bandwidth(1 << 20, repeats=2) > 1e8


@pytest.mark.slow  # a second copy of the package, compiled by numba again
def test_ab_tool_finds_the_committed_engine_identical_to_itself(capsys):
    """benchmarks/ab.py loads mlp_lib at a git revision beside the working
    tree's; against HEAD of a clean checkout both are the same code, so the
    per-sample results must be bit-identical (and an unknown row is refused)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    changed = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "mlp_lib"], capture_output=True, text=True
    )
    if changed.returncode != 0:
        pytest.skip("not a git checkout")
    if changed.stdout.strip():
        pytest.skip("mlp_lib has uncommitted changes: HEAD differs from the working tree")
    spec = importlib.util.spec_from_file_location("mlp_lib_ab", root / "benchmarks" / "ab.py")
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    assert (
        ab.main(
            ["HEAD", "--rows", "relu-he-const", "--steps", "40", "--rounds", "1", "--warmup", "0"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "relu-he-const: base" in out and "bit-identical: True" in out
    with pytest.raises(SystemExit):
        ab.main(["HEAD", "--rows", "no-such-row"])


@pytest.mark.slow
def test_the_playground_bench_runs_and_finds_the_same_result_with_viewers(tmp_path):
    """benchmarks/playground.py --quick: both parts run, every figure is there, and a
    run followed by twenty viewers ends with the result of one followed by none."""
    import json
    import subprocess

    output = tmp_path / "bench.json"
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, str(root / "benchmarks" / "playground.py"), "--quick", "--output", str(output)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    document = json.loads(output.read_text())
    for row in ("relu-he-const", "sigmoid-normal"):
        rates = document["observer"][row]["steps_per_second"]
        assert set(rates) == {"none", "no-op", "playground"} and min(rates.values()) > 0
    assert document["viewers"]["identical_results"] is True
    assert document["provenance"]["command"].endswith("--quick")
