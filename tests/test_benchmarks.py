"""Smoke tests of the benchmark suite (benchmarks/run.py): it runs, its
exactness check holds, missing optional peers are reported as skipped. No
timing is asserted: speed figures live in the benchmark's output."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
_spec = importlib.util.spec_from_file_location("mlp_lib_benchmarks", _path)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_per_sample_part_is_exact(mnist_train, capsys):
    images, labels = mnist_train
    result = bench.per_sample(images, labels, steps=60, repeats=1)
    assert result["max_diff"] <= 1e-9
    assert result["report_us"] > 0 and result["ours_us"] > 0
    assert "(≤ 1e-9)" in capsys.readouterr().out


def test_epoch_flops_counts_forward_and_backward():
    # [4, 3, 2]: 12 + 6 multiply-adds; forward 2 each, backward 4 each, less
    # the input gradient of layer 1 (2 x 12), which nobody needs
    assert bench.epoch_flops(1, [4, 3, 2]) == 2 * 18 + 4 * 18 - 2 * 12
    assert bench.epoch_flops(10, [4, 3, 2]) == 10 * bench.epoch_flops(1, [4, 3, 2])


def test_minibatch_part_reports_missing_peers_as_skipped(mnist_train, capsys, monkeypatch):
    images, labels = mnist_train
    monkeypatch.setitem(sys.modules, "torch", None)      # import torch -> ImportError
    monkeypatch.setitem(sys.modules, "sklearn", None)
    result = bench.minibatch(images[:512], labels[:512], repeats=1, threads=1)
    out = capsys.readouterr().out
    assert "| PyTorch CPU | skipped" in out
    assert "| scikit-learn MLPClassifier | skipped" in out
    ours = result["mlp_lib.train_minibatch"]
    assert ours["seconds"] > 0 and ours["ratio"] == 1.0 and 0 < ours["share_of_peak"]
    assert result["peak"] > 0
    ceiling = result[bench.PRODUCTS]                      # the products alone always run
    assert ceiling["seconds"] > 0 and 0 < ceiling["share_of_peak"] <= ceiling["best_share_of_peak"]


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
    batches = 3                                            # 128 + 128 + 44 rows
    assert len(products) == batches * (3 + 2) and len(updates) == batches * 3
    assert ((44, 6), True) in updates                      # the short last batch
    assert all(unchanged for _, unchanged in updates)
