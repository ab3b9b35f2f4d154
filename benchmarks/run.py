"""Benchmark suite: prints side-by-side timings, ratios and exactness.

    python3 tasks.py bench                 # parts 1 and 2
    python3 tasks.py bench --reproduction  # also part 3 (all rows x 5 seeds, ~10 min)

1. Per-sample SGD: the report's loop (``report_loop.py``) against
   ``mlp_lib.train_per_sample`` from the same initial weights on the same data:
   µs per step, speed-up, and the max abs weight difference after 2,000 steps.
2. Mini-batch SGD (batch 128, 784-512-256-64-10 ReLU, float32, 1 epoch):
   mlp_lib against PyTorch CPU and scikit-learn's MLPClassifier when installed
   (``pip install -e .[bench]``), and GFLOP/s against a measured matmul peak.
3. Reproduction throughput: wall time of all SPEC.md rows x 5 seeds.

Timings are medians of repeats taken in one run. Part 2 goes round robin (the
peak, then each contender once, per round) and quotes medians of per-round
ratios, so a slow phase of a shared, noisy machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.linalg.blas import sgemm
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_loop import report_train, report_weights  # noqa: E402

from mlp_lib import MLP, Constant, experiments, load_mnist, train_minibatch  # noqa: E402
from mlp_lib import train_per_sample  # noqa: E402
from mlp_lib._blas import add_product, matmul  # noqa: E402

FOUR = [784, 512, 256, 64, 10]
PRODUCTS = "its matrix products alone (the BLAS ceiling)"


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def per_sample(images, labels, steps, repeats):
    print(f"\n## 1. Per-sample SGD ({steps} steps, 784-512-256-64-10 ReLU, float64)")
    model = MLP(FOUR, "relu", "he", seed=0)
    rates = Constant(0.01).values(steps)
    rows = []
    report_times, exact_ref = [], None
    for _ in range(max(1, repeats // 2)):
        matrices = report_weights(model)
        start = time.perf_counter()
        report_train(matrices, images, labels, rates, "relu")
        report_times.append(time.perf_counter() - start)
        exact_ref = matrices
    ours_times, trained = [], None
    for _ in range(repeats):
        trained = model.copy()
        history = train_per_sample(trained, images[:steps], labels[:steps], epochs=1,
                                   schedule=Constant(0.01), progress=False)
        ours_times.append(history.seconds)
    diff = max(np.abs(a - b).max() for a, b in zip(report_weights(trained), exact_ref))
    report_us = statistics.median(report_times) / steps * 1e6
    ours_us = statistics.median(ours_times) / steps * 1e6
    rows.append(("report's loop (concatenate, matmul, outer products)", report_us, 1.0))
    rows.append(("mlp_lib.train_per_sample", ours_us, report_us / ours_us))
    print(f"| implementation | µs/step (median) | speed-up |\n|---|---|---|")
    for name, us, ratio in rows:
        print(f"| {name} | {us:.1f} | {ratio:.1f}× |")
    print(f"\nmax |W_report - W_mlp_lib| after {steps} steps: {diff:.2e} "
          f"({'≤' if diff <= 1e-9 else '>'} 1e-9)")
    print(f"3-epoch row at this speed: {ours_us * 180000 / 1e6:.0f} s "
          f"(report's loop: {report_us * 180000 / 60e6:.0f} min)")
    return {"report_us": report_us, "ours_us": ours_us, "speedup": report_us / ours_us,
            "max_diff": diff}


def matmul_peak():
    """GFLOP/s of one 2048×2048 float32 product, with numpy's and with scipy's
    BLAS (each wheel bundles its own OpenBLAS); the faster of the two."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    seconds = []
    for product in (lambda: a @ a, lambda: sgemm(1.0, a.T, a.T)):
        product()                                    # warm up the thread pool
        start = time.perf_counter()
        product()
        seconds.append(time.perf_counter() - start)
    return 2 * 2048 ** 3 / min(seconds) / 1e9


def epoch_flops(n_samples, sizes=FOUR):
    """Forward 2·MAC, backward 4·MAC (input gradient + weight gradient) per layer;
    layer 1 needs no input gradient."""
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return n_samples * (2 * sum(macs) + 4 * sum(macs) - 2 * macs[0])


def products_epoch_fn(n_samples, batch=128, sizes=FOUR):
    """An epoch's matrix products alone: per batch, the same gemm calls as
    ``train_minibatch`` with the same shapes and layouts (forward A W, backward
    Δ Wᵀ, the in-place update W ← W + Aᵀ S), on fixed operands, with no
    element-wise work. What BLAS itself reaches on this net at this batch size:
    the ceiling for any implementation built on it. S = 0 keeps W unchanged."""
    model = MLP(sizes, "relu", "he", seed=0, dtype=np.float32)
    rng = np.random.default_rng(0)
    inputs = [rng.random((batch, n), dtype=np.float32) for n in sizes[:-1]]
    deltas = [rng.random((batch, n), dtype=np.float32) for n in sizes[1:]]
    steps = [np.zeros((batch, n), dtype=np.float32) for n in sizes[1:]]

    def epoch():
        for start in range(0, n_samples, batch):
            rows = min(batch, n_samples - start)
            for weights, a in zip(model.weights, inputs):
                matmul(a[:rows], weights)
            for layer in reversed(range(len(model.weights))):
                if layer:
                    matmul(deltas[layer][:rows], model.weights[layer].T)
                add_product(model.weights[layer], inputs[layer][:rows], steps[layer][:rows])
    return epoch


def torch_epoch_fn(x32, labels, threads):
    """One PyTorch CPU epoch with the same net, batch, optimiser; None without torch."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch CPU"
    torch.set_num_threads(threads)
    tx, ty = torch.from_numpy(x32), torch.from_numpy(labels)

    def epoch():
        torch.manual_seed(0)
        layers = []
        for a, b in zip(FOUR[:-1], FOUR[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        loss_fn = torch.nn.CrossEntropyLoss()
        order = torch.randperm(len(tx))
        for start in range(0, len(tx), 128):
            rows = order[start:start + 128]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(tx[rows]), ty[rows]).backward()
            opt.step()
    return epoch, f"PyTorch {torch.__version__} CPU"


def sklearn_epoch_fn(x32, labels):
    """One epoch of scikit-learn's MLPClassifier (same net, batch, plain SGD)."""
    try:
        import sklearn
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None, "scikit-learn MLPClassifier"

    def epoch():
        clf = MLPClassifier(hidden_layer_sizes=FOUR[1:-1], activation="relu",
                            solver="sgd", batch_size=128, learning_rate_init=0.05,
                            momentum=0.0, max_iter=1, shuffle=True, random_state=0,
                            alpha=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(x32, labels)
    return epoch, f"scikit-learn {sklearn.__version__} MLPClassifier"


def minibatch(images, labels, repeats, threads):
    print(f"\n## 2. Mini-batch SGD (batch 128, 784-512-256-64-10 ReLU, float32, 1 epoch, "
          f"{threads} threads)")
    x32 = images.astype(np.float32)

    def ours():
        model = MLP(FOUR, "relu", "he", seed=0, dtype=np.float32)
        train_minibatch(model, x32, labels, epochs=1, batch_size=128,
                        schedule=Constant(0.05), seed=0, progress=False)
    torch_epoch, torch_name = torch_epoch_fn(x32, labels, threads)
    sklearn_epoch, sklearn_name = sklearn_epoch_fn(x32, labels)
    contenders = [("mlp_lib.train_minibatch", ours), (torch_name, torch_epoch),
                  (sklearn_name, sklearn_epoch),
                  (PRODUCTS, products_epoch_fn(len(images)))]
    # Round robin: each round times the peak and every contender once, so a
    # slow phase of this shared machine hits all of them alike; ratios are
    # medians of the per-round ratios.
    times = {name: [] for name, _ in contenders}
    peaks = []
    with threadpool_limits(threads):
        for _ in range(repeats):
            peaks.append(matmul_peak())
            for name, epoch in contenders:
                if epoch is not None:
                    time.sleep(1.0)                  # let the last one's threads go idle
                    start = time.perf_counter()
                    epoch()
                    times[name].append(time.perf_counter() - start)
    flops = epoch_flops(len(images))
    ours_times = times["mlp_lib.train_minibatch"]
    peak = statistics.median(peaks)
    print(f"matmul peak (2048×2048 float32, {threads} threads, best of numpy's and scipy's "
          f"BLAS): median {peak:.1f} GFLOP/s over {repeats} rounds "
          f"({min(peaks):.0f}–{max(peaks):.0f})")
    print("| implementation | s/epoch (median) | its time / mlp_lib's | GFLOP/s | "
          "% of peak (median) | % of peak (best round) |")
    print("|---|---|---|---|---|---|")
    result = {"peak": peak}
    for name, epoch in contenders:
        if epoch is None:
            print(f"| {name} | skipped (not installed: pip install -e .[bench]) | | | | |")
            continue
        seconds = statistics.median(times[name])
        ratio = statistics.median(t / o for t, o in zip(times[name], ours_times))
        shares = [flops / t / 1e9 / p for t, p in zip(times[name], peaks)]
        share = statistics.median(shares)
        print(f"| {name} | {seconds:.2f} | {ratio:.2f}× | {flops / seconds / 1e9:.1f} | "
              f"{100 * share:.0f}% | {100 * max(shares):.0f}% |")
        result[name] = {"seconds": seconds, "ratio": ratio, "share_of_peak": share,
                        "best_share_of_peak": max(shares)}
    print(f"\nThe last row replays an epoch's gemm calls (same shapes and layouts, "
          f"{flops / 1e9:.1f} GFLOP) without the element-wise work: "
          f"no implementation on this BLAS gets above it.")
    return result


def reproduction(processes):
    print("\n## 3. Reproduction throughput: all SPEC.md rows × 5 seeds")
    start = time.perf_counter()
    results = experiments.run_many(list(experiments.ROWS), experiments.SEEDS,
                                   processes=processes)
    wall = time.perf_counter() - start
    busy = sum(r.seconds for r in results)
    print(f"{len(results)} runs in {wall / 60:.1f} min wall ({busy / 60:.1f} min of run time, "
          f"{processes or os.cpu_count()} processes)")
    return wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="per-sample steps (2000)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per timing (5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for the mini-batch part (all cores)")
    parser.add_argument("--reproduction", action="store_true",
                        help="also time all rows × 5 seeds (about 10 minutes)")
    parser.add_argument("--skip-per-sample", action="store_true")
    parser.add_argument("--skip-minibatch", action="store_true")
    args = parser.parse_args(argv)
    blas = ", ".join(f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                     for i in threadpool_info())
    print(f"# mlp_lib benchmarks\n\nmachine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
          f"BLAS: {blas}")
    images, labels = load_mnist("train")
    if not args.skip_per_sample:
        per_sample(images, labels, args.steps, args.repeats)
    if not args.skip_minibatch:
        minibatch(images, labels, args.repeats, args.threads)
    if args.reproduction:
        reproduction(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
