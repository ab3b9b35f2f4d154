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
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_loop import one_hot, report_train, report_weights  # noqa: E402

from mlp_lib import MLP, Constant, experiments, load_mnist, train_minibatch  # noqa: E402
from mlp_lib import train_per_sample  # noqa: E402
from mlp_lib._blas import add_product, matmul  # noqa: E402
from mlp_lib.provenance import provenance  # noqa: E402

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


def per_sample_floor(model, images, labels, steps, schedule):
    """Where a per-sample step's time goes, for the trained ``model``, over the
    first ``steps`` images: (a) the first layer's two sparse kernels alone
    (forward read and in-place update of the rows of the image's nonzero
    pixels; memory traffic that no rearrangement of the other layers removes),
    and (b) the engine's whole step on a net of the same depth and activation
    with 16-unit hidden layers, where the arithmetic is negligible: the cost of
    the step's Python and numpy/scipy calls. Microseconds per step."""
    from mlp_lib.per_sample import _sparse_rows, csc_matvecs, csr_matvecs

    if csr_matvecs is None:
        return None
    ptr, columns, values = _sparse_rows(images[:steps], bias_column=model.layer_sizes[0])
    first = np.vstack((model.weights[0], model.biases[0][None, :]))
    flat, (n_rows, width) = first.reshape(-1), first.shape
    delta = np.full(width, -1e-300)  # a step too small to move the weights
    with threadpool_limits(1):
        start = time.perf_counter()
        for i in range(steps):
            span = ptr[i : i + 2]
            z = np.zeros(width)
            csr_matvecs(1, n_rows, width, span, columns, values, flat, z)
            csc_matvecs(n_rows, 1, width, span, columns, values, delta, flat)
        kernels = (time.perf_counter() - start) / steps * 1e6
    narrow = MLP(
        [model.layer_sizes[0]] + [16] * (model.n_layers - 1) + [model.layer_sizes[-1]],
        model.activation,
        "he",
        seed=0,
    )
    seconds, _ = _timed(
        lambda: train_per_sample(
            narrow, images[:steps], labels[:steps], epochs=1, schedule=schedule, progress=False
        )
    )
    return {
        "first_layer_kernels_us": kernels,
        "narrow_net_us": seconds / steps * 1e6,
        "floor_steps": steps,
    }


def per_sample(images, labels, steps, repeats, whole_rows=True, threads=None):
    """Part 1; returns, per activation, the figures and the per-round times."""
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
        # the same maths: `steps` steps from the same weights
        ours = start.copy()
        train_per_sample(
            ours, images[:steps], labels[:steps], epochs=1, schedule=row.schedule, progress=False
        )
        theirs = report_weights(start)
        with threadpool_limits(1):
            report_train(theirs, images[:steps], onehot[:steps], rates[:steps], activation)
        diff = max(np.abs(a - b).max() for a, b in zip(report_weights(ours), theirs))
        torch_train = torch_per_sample_fn(start, images, labels)
        torch_diff = None
        if torch_train is not None:
            peer = torch_train[0](rates[:steps].tolist(), steps, 1)
            torch_diff = max(
                max(np.abs(w - pw).max(), np.abs(b - pb).max())
                for (pw, pb), w, b in zip(peer, ours.weights, ours.biases)
            )
        times = {"engine": [], "report": [], "torch": [], "kernels": [], "narrow": []}
        floor_steps = min(3 * steps, n_train)
        best_threads = {"report": [], "torch": []}
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
            floor = per_sample_floor(model, images, labels, floor_steps, row.schedule)
            if floor is not None:
                times["kernels"].append(floor["first_layer_kernels_us"])
                times["narrow"].append(floor["narrow_net_us"])
            window = rates[-steps:]
            report_round = {}
            for t in thread_options:
                with threadpool_limits(t):
                    costs = [
                        _timed(
                            report_train,
                            report_weights(m),
                            images[:steps],
                            onehot[:steps],
                            r,
                            activation,
                        )[0]
                        for m, r in ((start, rates[:steps]), (model, window))
                    ]
                report_round[t] = sum(costs) / (2 * steps) * 1e6
            best = min(report_round, key=report_round.get)
            times["report"].append(report_round[best])
            best_threads["report"].append(best)
            if torch_train is not None:
                torch_round = {}
                for t in thread_options:
                    torch_round[t] = (
                        _timed(torch_train[0], rates[:steps].tolist(), steps, t)[0] / steps * 1e6
                    )
                best = min(torch_round, key=torch_round.get)
                times["torch"].append(torch_round[best])
                best_threads["torch"].append(best)
        engine = statistics.median(times["engine"])
        result = {
            "row": row_id,
            "activation": activation,
            "steps_engine": epochs * n_train,
            "steps_baselines": steps,
            "rounds": repeats,
            "engine_us": engine,
            "report_us": statistics.median(times["report"]),
            "speedup_report": statistics.median(
                r / e for r, e in zip(times["report"], times["engine"])
            ),
            "report_threads": best_threads["report"],
            "max_diff_report": diff,
            "times": times,
        }
        if times["kernels"]:
            result.update(
                first_layer_kernels_us=statistics.median(times["kernels"]),
                narrow_net_us=statistics.median(times["narrow"]),
                floor_steps=floor_steps,
            )
        if torch_train is not None:
            result.update(
                torch_name=torch_train[1],
                torch_us=statistics.median(times["torch"]),
                speedup_torch=statistics.median(
                    t / e for t, e in zip(times["torch"], times["engine"])
                ),
                torch_threads=best_threads["torch"],
                max_diff_torch=torch_diff,
            )
        print("| implementation | µs/step (median) | speed-up of mlp_lib |\n|---|---|---|")
        print(
            f"| the report's loop ({result['report_threads']} BLAS threads per round) | "
            f"{result['report_us']:.0f} | {result['speedup_report']:.1f}× |"
        )
        if torch_train is not None:
            print(
                f"| {result['torch_name']} ({result['torch_threads']} threads) | "
                f"{result['torch_us']:.0f} | {result['speedup_torch']:.1f}× |"
            )
        else:
            print("| PyTorch per-sample SGD | skipped (not installed: pip install -e .[bench]) | |")
        print(f"| mlp_lib.train_per_sample, {epochs * n_train:,} steps | {engine:.0f} | 1.0× |")
        if "first_layer_kernels_us" in result:
            print(
                f"where a step's time goes: layer 1's two sparse kernels alone "
                f"{result['first_layer_kernels_us']:.0f} µs; the whole step on 16-unit "
                f"hidden layers (the calls' cost) {result['narrow_net_us']:.0f} µs; "
                f"20× the report's loop needs ≤ {result['report_us'] / 20:.0f} µs"
            )
        print(
            f"max |weight difference| after {steps} steps from the same weights: report's "
            f"loop {diff:.1e}" + ("" if torch_diff is None else f", PyTorch {torch_diff:.1e}")
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


def minibatch(images, labels, repeats, threads):
    print(
        f"\n## 2. Mini-batch SGD (batch 128, 784-512-256-64-10 ReLU, float32, 1 epoch, "
        f"{threads} threads)"
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
    contenders = [
        ("mlp_lib.train_minibatch", ours),
        (torch_name, torch_epoch),
        (sklearn_name, sklearn_epoch),
        (PRODUCTS, products_epoch_fn(len(images))),
    ]
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
                    time.sleep(1.0)  # let the last one's threads go idle
                    start = time.perf_counter()
                    epoch()
                    times[name].append(time.perf_counter() - start)
    flops = epoch_flops(len(images))
    ours_times = times["mlp_lib.train_minibatch"]
    peak = statistics.median(peaks)
    print(
        f"matmul peak (2048×2048 float32, {threads} threads, best of numpy's and scipy's "
        f"BLAS): median {peak:.1f} GFLOP/s over {repeats} rounds "
        f"({min(peaks):.0f}–{max(peaks):.0f})"
    )
    print(
        "| implementation | s/epoch (median) | its time / mlp_lib's | GFLOP/s | "
        "% of peak (median) | % of peak (best round) |"
    )
    print("|---|---|---|---|---|---|")
    result = {"peak": peak, "peaks": peaks, "threads": threads, "gflop_per_epoch": flops / 1e9}
    for name, epoch in contenders:
        if epoch is None:
            print(f"| {name} | skipped (not installed: pip install -e .[bench]) | | | | |")
            continue
        seconds = statistics.median(times[name])
        ratio = statistics.median(t / o for t, o in zip(times[name], ours_times))
        shares = [flops / t / 1e9 / p for t, p in zip(times[name], peaks)]
        share = statistics.median(shares)
        print(
            f"| {name} | {seconds:.2f} | {ratio:.2f}× | {flops / seconds / 1e9:.1f} | "
            f"{100 * share:.0f}% | {100 * max(shares):.0f}% |"
        )
        result[name] = {
            "seconds": seconds,
            "ratio": ratio,
            "share_of_peak": share,
            "gflops": flops / seconds / 1e9,
            "times": times[name],
            "best_share_of_peak": max(shares),
        }
    print(
        f"\nThe last row replays an epoch's gemm calls (same shapes and layouts, "
        f"{flops / 1e9:.1f} GFLOP) without the element-wise work: "
        f"no implementation on this BLAS gets above it."
    )
    return result


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
    from mlp_lib.serve import ModelStore, make_server

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
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="threads for the mini-batch part (all cores)",
    )
    parser.add_argument(
        "--reproduction",
        action="store_true",
        help="also time all rows × 5 seeds (about 10 minutes)",
    )
    parser.add_argument("--skip-per-sample", action="store_true")
    parser.add_argument("--skip-minibatch", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"results file (default {RESULTS.relative_to(RESULTS.parents[1])})",
    )
    args = parser.parse_args(argv)
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
        record["minibatch"] = minibatch(images, labels, args.repeats, args.threads)
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
