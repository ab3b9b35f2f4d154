"""Benchmark suite: side-by-side timings, ratios and exactness, written with
their provenance to ``results/bench.json`` (the README's performance section is
generated from that file: ``python3 tasks.py readme``).

    python3 tasks.py bench                 # parts 1 and 2
    python3 tasks.py bench --reproduction  # also part 3 (all rows x 5 seeds, ~10 min)

1. Per-sample SGD, for a ReLU row (``relu-he-const``) and a sigmoid row
   (``sigmoid-normal``): ``mlp_lib.train_per_sample`` over the **whole row**
   (3 epochs, 180,000 steps: its cost per step falls as ReLU units die) against
   the report's loop as the report writes it (``report_loop.py``: C-ordered
   weights, one-hot labels, its own functions) and idiomatic PyTorch
   per-sample SGD (``nn.Linear`` + ``optim.SGD``, batch 1, float64). The
   baselines' cost per step does not depend on how far training has gone, so
   they are timed on ``--steps`` steps from the initial weights and from the
   row's trained weights; each baseline runs with 1 and with all BLAS threads
   and keeps the faster. Also the max |weight difference| after ``--steps``
   steps from the same weights (the same maths), and where a step's time
   goes (``per_sample_floor``): the first layer's sparse kernels alone, and
   the whole step on 16-unit hidden layers (the cost of its calls).
2. Mini-batch SGD (batch 128, 784-512-256-64-10 ReLU, float32, 1 epoch):
   mlp_lib against PyTorch CPU and scikit-learn's MLPClassifier when installed
   (``pip install -e .[bench]``), and GFLOP/s against a measured matmul peak.
3. Reproduction throughput: wall time of all the report's rows x 5 seeds.
4. ``serve`` latency: 1,000 ``POST /api/predict`` requests, one after another,
   from a client on the same machine to a server holding the report's net
   (784-512-256-64-10 ReLU): the page's own request (a 280x280 PNG drawing,
   prepared by the server) and already-prepared pixels; p50 and p95.

Every part goes round robin (each round times every contender once) and
quotes medians of per-round ratios, so a slow phase of a shared, noisy machine
hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.linalg.blas import sgemm
from numba import njit
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_loop import one_hot, report_train, report_weights  # noqa: E402

from mlp_lib import MLP, Constant, load_mnist, train_minibatch  # noqa: E402
from mlp_lib.study import experiments  # noqa: E402
from mlp_lib import train_per_sample  # noqa: E402
from mlp_lib.core.blas import add_product, matmul  # noqa: E402
from mlp_lib.study.provenance import provenance  # noqa: E402

FOUR = [784, 512, 256, 64, 10]
PRODUCTS = "its matrix products alone (the BLAS ceiling)"
PER_SAMPLE_ROWS = {"relu": "relu-he-const", "sigmoid": "sigmoid-normal"}
RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench.json"


def _timed(fn, *args, **kwargs):
    """(seconds, result) of ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def torch_per_sample_fn(model, images, labels):
    """Idiomatic PyTorch per-sample SGD from ``model``'s weights: float64,
    ``nn.Linear`` layers, ``optim.SGD``, one sample per step. Returns
    ``(train(rates, steps, threads), name)``, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    act = torch.nn.ReLU if model.activation == "relu" else torch.nn.Sigmoid

    def train(rates, steps, threads):
        torch.set_num_threads(threads)
        layers = []
        for w, b in zip(model.weights, model.biases):
            linear = torch.nn.Linear(*w.shape, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T))
                linear.bias.copy_(torch.from_numpy(b))
            layers += [linear, act()]
        net = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.SGD(net.parameters(), lr=rates[0])
        x, y = torch.from_numpy(images[:steps]), torch.from_numpy(labels[:steps])
        loss_fn = torch.nn.CrossEntropyLoss()
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = rates[step]
            opt.zero_grad()
            loss_fn(net(x[step : step + 1]), y[step : step + 1]).backward()
            opt.step()
        return [
            (lin.weight.detach().numpy().T, lin.bias.detach().numpy())
            for lin in net
            if isinstance(lin, torch.nn.Linear)
        ]

    return train, f"PyTorch {torch.__version__} per-sample SGD (float64)"


@njit
def _read_modify_write(a, times):
    for _ in range(times):
        for j in range(a.size):
            a[j] += 1e-300


def update_bandwidth(n_bytes, repeats=30):
    """Bytes per second that one core reads and writes back in a pass over an array of
    ``n_bytes`` (float64, ``a += c``), the best of ``repeats``: the bandwidth a step's
    weight traffic meets, for the weights' size (cache-resident as they are)."""
    a = np.zeros(max(1, n_bytes // 8))
    _read_modify_write(a, 1)
    best = min(_timed(_read_modify_write, a, 3)[0] / 3 for _ in range(repeats))
    return 2 * a.nbytes / best


def step_traffic(model, images):
    """Mean bytes a per-sample step must move through the caches for ``images`` and
    ``model``'s weights: each weight row it touches is read for the forward pass, and
    read and written back for the update (layer 1: the rows of the nonzero pixels;
    later ReLU layers: the rows of active units; sigmoid: every row)."""
    item = model.dtype.itemsize
    _, cache = model.forward_cache(images)
    touched = [(images != 0).sum(axis=1).mean()] + [
        ((a > 0).sum(axis=1).mean() if model.activation == "relu" else a.shape[1])
        for a in cache["A"][1:]
    ]
    return float(sum(3 * rows * w.shape[1] * item for rows, w in zip(touched, model.weights)))


def per_sample_floor(model, images):
    """The step's floor for trained ``model`` on ``images``: the bytes it must move
    (``step_traffic``) at the bandwidth measured for arrays of the weights' size."""
    traffic = step_traffic(model, images)
    size = sum(w.nbytes + b.nbytes for w, b in zip(model.weights, model.biases))
    bandwidth = update_bandwidth(size)
    return {
        "traffic_mb": traffic / 1e6,
        "bandwidth_gbs": bandwidth / 1e9,
        "floor_us": traffic / bandwidth * 1e6,
    }


def _max_diff(params, model):
    weights, biases = params
    return max(
        max(np.abs(w - mw).max(), np.abs(b - mb).max())
        for w, b, mw, mb in zip(weights, biases, model.weights, model.biases)
    )


def per_sample(images, labels, steps, repeats, whole_rows=True, threads=None):
    """Part 1; returns, per activation, the figures and the per-round times."""
    from peers import jax_per_sample, jax_version, numba_per_sample

    threads = threads or os.cpu_count() or 1
    thread_options = sorted({1, threads})
    onehot = one_hot(labels)
    out = {}
    for activation, row_id in PER_SAMPLE_ROWS.items():
        row = experiments.ROWS[row_id]
        start = MLP(row.layer_sizes, row.activation, row.init, seed=0)
        epochs = row.epochs if whole_rows else 1
        n_train = len(images) if whole_rows else steps
        rates = np.asarray(row.schedule.values(epochs * n_train))
        print(f"\n## 1. Per-sample SGD, {row_id} ({activation}, {row.layer_sizes}, float64)")
        # the same maths: `steps` steps from the same weights, for every contender
        ours = start.copy()
        train_per_sample(
            ours, images[:steps], labels[:steps], epochs=1, schedule=row.schedule, progress=False
        )
        theirs = report_weights(start)
        with threadpool_limits(1):
            report_train(theirs, images[:steps], onehot[:steps], rates[:steps], activation)
        diffs = {"report": max(np.abs(a - b).max() for a, b in zip(report_weights(ours), theirs))}
        diffs["numba"] = _max_diff(
            numba_per_sample(start, images[:steps], labels[:steps], rates[:steps]), ours
        )
        torch_train = torch_per_sample_fn(start, images, labels)
        if torch_train is not None:
            peer = torch_train[0](rates[:steps].tolist(), steps, 1)
            diffs["torch"] = _max_diff(([w for w, _ in peer], [b for _, b in peer]), ours)
        names = ("engine", "report", "torch", "numba", "jax", "engine_windows")
        times = {name: [] for name in names}
        best_threads = {"report": [], "torch": []}
        floors, jax_runs = [], None

        def per_step(run, *args):
            return _timed(run, *args)[0] / steps * 1e6

        def engine_window(m, lo, r):
            return train_per_sample(
                m.copy(),
                images[lo : lo + steps],
                labels[lo : lo + steps],
                epochs=1,
                schedule=Constant(float(r[0])),
                progress=False,
            )

        for _ in range(repeats):
            model = start.copy()
            seconds, history = _timed(
                train_per_sample,
                model,
                images[:n_train],
                labels[:n_train],
                epochs=epochs,
                schedule=row.schedule,
                progress=False,
            )
            times["engine"].append(seconds / history.steps * 1e6)
            floors.append(per_sample_floor(model, images[max(0, n_train - 3000) : n_train]))
            # windows: the first `steps` images from the initial weights, the last `steps`
            # from the trained ones (the baselines' cost does not depend on the weights;
            # the engine's and the numba loop's do)
            windows = [(start, 0, rates[:steps]), (model, n_train - steps, rates[-steps:])]
            if jax_runs is None:  # built once; the first call of each compiles
                jax_runs = [
                    jax_per_sample(m, images[lo : lo + steps], labels[lo : lo + steps], r)
                    for m, lo, r in windows
                ]
                if jax_runs[0] is not None:
                    diffs["jax"] = _max_diff(jax_runs[0](), ours)
                    jax_runs[1]()
            times["engine_windows"].append(
                statistics.mean(per_step(engine_window, *w) for w in windows)
            )
            times["numba"].append(
                statistics.mean(
                    per_step(
                        numba_per_sample, m, images[lo : lo + steps], labels[lo : lo + steps], r
                    )
                    for m, lo, r in windows
                )
            )
            if jax_runs[0] is not None:
                times["jax"].append(statistics.mean(per_step(run) for run in jax_runs))
            report_round = {}
            for t in thread_options:
                with threadpool_limits(t):
                    report_round[t] = statistics.mean(
                        per_step(
                            report_train,
                            report_weights(m),
                            images[lo : lo + steps],
                            onehot[lo : lo + steps],
                            r,
                            activation,
                        )
                        for m, lo, r in windows
                    )
            best = min(report_round, key=report_round.get)
            times["report"].append(report_round[best])
            best_threads["report"].append(best)
            if torch_train is not None:
                torch_round = {
                    t: per_step(torch_train[0], rates[:steps].tolist(), steps, t)
                    for t in thread_options
                }
                best = min(torch_round, key=torch_round.get)
                times["torch"].append(torch_round[best])
                best_threads["torch"].append(best)

        def ratio(name, against="engine", times=times):
            return statistics.median(t / e for t, e in zip(times[name], times[against]))

        floor = {key: statistics.median(f[key] for f in floors) for key in floors[0]}
        engine = statistics.median(times["engine"])
        result = {
            "row": row_id,
            "activation": activation,
            "steps_engine": epochs * n_train,
            "steps_baselines": steps,
            "rounds": repeats,
            "engine_us": engine,
            "engine_windows_us": statistics.median(times["engine_windows"]),
            "report_us": statistics.median(times["report"]),
            "speedup_report": ratio("report"),
            "report_threads": best_threads["report"],
            "max_diff_report": diffs["report"],
            "numba_us": statistics.median(times["numba"]),
            "speedup_numba": ratio("numba", "engine_windows"),
            "max_diff_numba": diffs["numba"],
            **floor,
            "distance_to_floor": engine / floor["floor_us"],
            "times": times,
        }
        if torch_train is not None:
            result.update(
                torch_name=torch_train[1],
                torch_us=statistics.median(times["torch"]),
                speedup_torch=ratio("torch"),
                torch_threads=best_threads["torch"],
                max_diff_torch=diffs["torch"],
            )
        if times["jax"]:
            result.update(
                jax_name=f"JAX {jax_version()}",
                jax_us=statistics.median(times["jax"]),
                speedup_jax=ratio("jax", "engine_windows"),
                max_diff_jax=diffs["jax"],
            )
        print("| implementation | µs/step (median) | its time / mlp_lib's |\n|---|---|---|")
        print(
            f"| the report's loop ({result['report_threads']} BLAS threads per round) | "
            f"{result['report_us']:.0f} | {result['speedup_report']:.1f}× |"
        )
        for key, name in (
            ("torch", result.get("torch_name", "PyTorch")),
            ("jax", result.get("jax_name", "JAX")),
            ("numba", "hand-written numba loop"),
        ):
            if f"{key}_us" in result:
                print(f"| {name} | {result[key + '_us']:.1f} | {result['speedup_' + key]:.2f}× |")
            else:
                print(f"| {name} | skipped (not installed: pip install -e .[bench]) | |")
        print(
            f"| mlp_lib.train_per_sample, {epochs * n_train:,} steps | {engine:.1f} | 1.0× "
            f"(on the windows: {result['engine_windows_us']:.1f} µs) |"
        )
        print(
            f"floor: {result['traffic_mb']:.2f} MB a step at {result['bandwidth_gbs']:.0f} GB/s "
            f"= {result['floor_us']:.1f} µs; the engine takes {result['distance_to_floor']:.2f}× "
            f"that"
        )
        print(
            f"max |weight difference| after {steps} steps from the same weights: "
            + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
        )
        out[activation] = result
    return out


def matmul_peak():
    """GFLOP/s of one 2048×2048 float32 product, with numpy's and with scipy's
    BLAS (each wheel bundles its own OpenBLAS); the faster of the two."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    seconds = []
    for product in (lambda: a @ a, lambda: sgemm(1.0, a.T, a.T)):
        product()  # warm up the thread pool
        start = time.perf_counter()
        product()
        seconds.append(time.perf_counter() - start)
    return 2 * 2048**3 / min(seconds) / 1e9


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
            rows = order[start : start + 128]
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
        clf = MLPClassifier(
            hidden_layer_sizes=FOUR[1:-1],
            activation="relu",
            solver="sgd",
            batch_size=128,
            learning_rate_init=0.05,
            momentum=0.0,
            max_iter=1,
            shuffle=True,
            random_state=0,
            alpha=0.0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(x32, labels)

    return epoch, f"scikit-learn {sklearn.__version__} MLPClassifier"


def _jax_agrees(x32, labels):
    """Max |weight difference| between one JAX SGD step and mlp_lib's from the same
    weights on the same batch (float32), or None without JAX."""
    from peers import jax_minibatch

    from mlp_lib.engines.minibatch import sgd_backward_update

    start = MLP(FOUR, "relu", "he", seed=0, dtype=np.float32)
    one_batch = jax_minibatch(start, x32[:128], labels[:128], 0.05)
    if one_batch is None:
        return None
    theirs = one_batch()
    ours = start.copy()
    probs, cache = ours.forward_cache(x32[:128], labels=labels[:128])
    sgd_backward_update(ours, probs, cache, labels[:128], 0.05)
    return float(max(np.abs(w - t).max() for w, t in zip(ours.weights, theirs)))


def minibatch(images, labels, repeats, threads, cores=None):
    """Part 2 on ``cores`` cores (the process is pinned to them first, so every
    contender's threads, BLAS's and XLA's alike, run there) with ``threads`` BLAS
    threads; wall and CPU seconds per epoch."""
    from peers import jax_minibatch, jax_version

    if cores is not None:
        os.sched_setaffinity(0, set(range(cores)))
    print(
        f"\n## 2. Mini-batch SGD (batch 128, 784-512-256-64-10 ReLU, float32, 1 epoch, "
        f"{threads} BLAS threads, {cores or os.cpu_count()} cores)"
    )
    x32 = images.astype(np.float32)

    def ours():
        model = MLP(FOUR, "relu", "he", seed=0, dtype=np.float32)
        train_minibatch(
            model,
            x32,
            labels,
            epochs=1,
            batch_size=128,
            schedule=Constant(0.05),
            seed=0,
            progress=False,
        )

    torch_epoch, torch_name = torch_epoch_fn(x32, labels, threads)
    sklearn_epoch, sklearn_name = sklearn_epoch_fn(x32, labels)
    start = MLP(FOUR, "relu", "he", seed=0, dtype=np.float32)
    jax_step = jax_minibatch(start, x32, labels, 0.05)
    jax_scan = jax_minibatch(start, x32, labels, 0.05, scan=True)
    jax_diff = _jax_agrees(x32, labels)
    for run in (jax_step, jax_scan):
        if run is not None:
            run()  # compiles
    jax_name = f"JAX {jax_version()}" if jax_step is not None else "JAX"
    contenders = [
        ("mlp_lib.train_minibatch", ours),
        (torch_name, torch_epoch),
        (f"{jax_name}, jitted step per batch", jax_step),
        (f"{jax_name}, one jitted lax.scan over the epoch", jax_scan),
        (sklearn_name, sklearn_epoch),
        (PRODUCTS, products_epoch_fn(len(images))),
    ]
    # Round robin: each round times the peak and every contender once, so a
    # slow phase of this shared machine hits all of them alike; ratios are
    # medians of the per-round ratios.
    times = {name: [] for name, _ in contenders}
    cpu = {name: [] for name, _ in contenders}
    peaks = []
    with threadpool_limits(threads):
        for _ in range(repeats):
            peaks.append(matmul_peak())
            for name, epoch in contenders:
                if epoch is not None:
                    time.sleep(1.0)  # let the last one's threads go idle
                    started, cpu_started = time.perf_counter(), time.process_time()
                    epoch()
                    times[name].append(time.perf_counter() - started)
                    cpu[name].append(time.process_time() - cpu_started)
    flops = epoch_flops(len(images))
    ours_times = times["mlp_lib.train_minibatch"]
    peak = statistics.median(peaks)
    print(
        f"matmul peak (2048×2048 float32, {threads} threads, best of numpy's and scipy's "
        f"BLAS): median {peak:.1f} GFLOP/s over {repeats} rounds "
        f"({min(peaks):.0f}–{max(peaks):.0f})"
    )
    if jax_diff is not None:
        print(
            f"JAX's SGD step against mlp_lib's, same weights and batch: max |weight "
            f"difference| {jax_diff:.1e}"
        )
    print(
        "| implementation | s/epoch (median) | CPU s/epoch | its time / mlp_lib's | GFLOP/s | "
        "% of peak (median) |\n|---|---|---|---|---|---|"
    )
    result = {
        "peak": peak,
        "peaks": peaks,
        "threads": threads,
        "cores": cores or os.cpu_count(),
        "gflop_per_epoch": flops / 1e9,
        "max_diff_jax": jax_diff,
    }
    for name, epoch in contenders:
        if epoch is None:
            print(f"| {name} | skipped (not installed: pip install -e .[bench]) | | | | |")
            continue
        seconds = statistics.median(times[name])
        ratio = statistics.median(t / o for t, o in zip(times[name], ours_times))
        share = statistics.median(flops / t / 1e9 / p for t, p in zip(times[name], peaks))
        print(
            f"| {name} | {seconds:.2f} | {statistics.median(cpu[name]):.2f} | {ratio:.2f}× | "
            f"{flops / seconds / 1e9:.1f} | {100 * share:.0f}% |"
        )
        result[name] = {
            "seconds": seconds,
            "cpu_seconds": statistics.median(cpu[name]),
            "ratio": ratio,
            "share_of_peak": share,
            "gflops": flops / seconds / 1e9,
            "times": times[name],
            "cpu_times": cpu[name],
        }
    print(
        f"\nThe last row replays an epoch's matrix products (same shapes and layouts, "
        f"{flops / 1e9:.1f} GFLOP) without the element-wise work: no implementation on "
        f"this BLAS gets above it."
    )
    return result


def minibatch_on_cores(repeats):
    """Part 2 twice, each in a child process pinned to its cores: one core (one BLAS
    thread; XLA's threads share that core) and all cores (as many BLAS threads)."""
    import subprocess
    import tempfile

    out = {}
    for cores in sorted({1, os.cpu_count() or 1}):
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / "part2.json"
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--minibatch-only",
                    "--cores",
                    str(cores),
                    "--repeats",
                    str(repeats),
                    "--output",
                    str(target),
                ]
            )
            if done.returncode:
                raise SystemExit(f"the mini-batch part on {cores} core(s) failed")
            out[f"{cores} core" + ("s" if cores > 1 else "")] = json.loads(target.read_text())
    return out


def reproduction(processes):
    print("\n## 3. Reproduction throughput: all the report's rows × 5 seeds")
    start = time.perf_counter()
    results = experiments.run_many(list(experiments.ROWS), experiments.SEEDS, processes=processes)
    wall = time.perf_counter() - start
    busy = sum(r.seconds for r in results)
    processes = processes or os.cpu_count()
    print(
        f"{len(results)} runs in {wall / 60:.1f} min wall ({busy / 60:.1f} min of run time, "
        f"{processes} processes)"
    )
    return {"runs": len(results), "wall_s": wall, "run_time_s": busy, "processes": processes}


def serve_latency(requests=1000):
    """Part 4: p50/p95 of predict requests against a real local server."""
    import base64
    import http.client
    import io
    import threading

    from PIL import Image, ImageDraw

    from mlp_lib import MLP
    from mlp_lib.apps.serve import ModelStore, make_server

    store = ModelStore()
    store.add("relu-he-const", MLP(FOUR, "relu", "he", seed=0))
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    drawing = Image.new("L", (280, 280))
    ImageDraw.Draw(drawing).line([(70, 50), (210, 50), (120, 240)], fill=255, width=20)
    buffer = io.BytesIO()
    drawing.save(buffer, format="PNG")
    bodies = {
        "image (280x280 PNG)": {
            "image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        },
        "pixels (784 prepared)": {
            "pixels": (np.asarray(drawing.resize((28, 28))) / 255).ravel().tolist()
        },
    }
    out = {}
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    for name, body in bodies.items():
        payload = json.dumps(body)
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            connection.request(
                "POST", "/api/predict", body=payload, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            times.append(time.perf_counter() - start)
            assert response.status == 200
        ms = np.array(times) * 1e3
        out[name] = {
            "requests": requests,
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()),
        }
        print(
            f"serve, {name}: p50 {out[name]['p50_ms']:.1f} ms, p95 "
            f"{out[name]['p95_ms']:.1f} ms over {requests} requests"
        )
    connection.close()
    server.shutdown()
    server.server_close()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=1000, help="baseline steps per timing window in part 1 (1000)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="rounds of part 2 (5)")
    parser.add_argument(
        "--per-sample-rounds",
        type=int,
        default=3,
        help="rounds of part 1 (3; each trains two whole rows)",
    )
    parser.add_argument(
        "--reproduction",
        action="store_true",
        help="also time all rows × 5 seeds (about 10 minutes)",
    )
    parser.add_argument("--skip-per-sample", action="store_true")
    parser.add_argument("--skip-minibatch", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--minibatch-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cores", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"results file (default {RESULTS.relative_to(RESULTS.parents[1])})",
    )
    args = parser.parse_args(argv)
    if args.minibatch_only:  # the child of minibatch_on_cores
        images, labels = load_mnist("train")
        part = minibatch(images, labels, args.repeats, args.cores, args.cores)
        args.output.write_text(json.dumps(part) + "\n")
        return 0
    record = {"provenance": provenance("python3 tasks.py bench " + " ".join(argv or sys.argv[1:]))}
    made = record["provenance"]
    print(
        f"# mlp_lib benchmarks\n\nmachine: {made['cpu']}, {made['cores']} cores, Python "
        f"{made['python']}, numpy {made['numpy']}, scipy {made['scipy']}, BLAS: "
        f"{', '.join(made['blas'])}; commit {made['commit']}"
        + (" (uncommitted changes)" if made["dirty"] else "")
    )
    images, labels = load_mnist("train")
    if not args.skip_per_sample:
        record["per_sample"] = per_sample(images, labels, args.steps, args.per_sample_rounds)
    if not args.skip_minibatch:
        record["minibatch"] = minibatch_on_cores(args.repeats)
    if args.reproduction:
        record["reproduction"] = reproduction(None)
    if not args.skip_serve:
        record["serve"] = serve_latency()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwritten to {args.output}; python3 tasks.py readme puts it into README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
