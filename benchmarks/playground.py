"""What watching costs the playground's runs, written with its provenance to
``results/playground-bench.json`` (the README's playground section is generated
from it: ``python3 tasks.py readme``).

    .venv/bin/python benchmarks/playground.py            # ~5 min
    .venv/bin/python benchmarks/playground.py --quick    # a smoke run (tests)

1. The observer hook: ``train_per_sample`` on ``--images`` MNIST images (one
   epoch; each round the next images) of the report's ReLU row (``relu-he-const``) and sigmoid row
   (``sigmoid-normal``), without an observer, with one that does nothing, and
   with the playground's own (``run_worker.Watcher``, its messages read by a thread
   at the other end of a pipe, as the server does; no test-set evaluations,
   which are a cost of the page, not of the hook). Steps/s, and the hook's
   cost as 1 - steps/s with / without.
2. Viewers: a run of ``relu-he-const`` (one epoch of 60,000 images) through a
   real server, with no viewer and with twenty following its event stream;
   steps/s from the run's own block timings (the training loop, first block to
   last).

Round robin (each round times every contender once); steps/s are medians, costs
medians of the per-round ratios; one BLAS thread.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlp_lib import MLP, load_mnist  # noqa: E402
from mlp_lib.study.experiments import ROWS  # noqa: E402
from mlp_lib.engines.per_sample import train_per_sample  # noqa: E402
from mlp_lib.study.provenance import provenance  # noqa: E402


def _drain(conn):
    try:
        while True:
            conn.recv()
    except (EOFError, OSError):
        pass


def _watcher(steps):
    """The playground's observer with a pipe to a reading thread (as in a worker)."""
    from mlp_lib.apps import run_worker

    mine, theirs = multiprocessing.Pipe()
    reader = threading.Thread(target=_drain, args=(theirs,), daemon=True)
    reader.start()
    watcher = run_worker.Watcher(mine, {"steps": steps}, None, None)
    watcher.eval_every = 10**12  # no test-set evaluation: the hook alone
    watcher.started = time.perf_counter()
    return watcher, mine


def observer_cost(images, labels, rounds, chunk):
    """Steps/s of train_per_sample without / with a no-op / with the playground's
    observer: each round trains each variant from the same initial weights on
    the same ``chunk`` images, back to back (short runs, so the machine's slow
    and fast phases fall on all three alike)."""
    figures = {}
    for row_id in ("relu-he-const", "sigmoid-normal"):
        row = ROWS[row_id]
        rates = {"none": [], "no-op": [], "playground": []}
        for k in range(rounds):
            part = slice((k * chunk) % len(images), (k * chunk) % len(images) + chunk)
            x, y = images[part], labels[part]
            for name in rates:
                model = MLP(row.layer_sizes, row.activation, row.init, seed=0)
                observer, conn = None, None
                if name == "no-op":
                    observer = lambda block: None  # noqa: E731
                elif name == "playground":
                    observer, conn = _watcher(len(x))
                start = time.perf_counter()
                train_per_sample(model, x, y, 1, row.schedule, progress=False, observer=observer)
                rates[name].append(len(x) / (time.perf_counter() - start))
                if conn is not None:
                    conn.close()
        median = {name: statistics.median(values) for name, values in rates.items()}
        figures[row_id] = {
            "steps_per_second": {k: round(v, 1) for k, v in median.items()},
            "cost_no_op": round(_cost(rates["no-op"], rates["none"]), 4),
            "cost_playground": round(_cost(rates["playground"], rates["none"]), 4),
            "cost_playground_range": [
                round(1 - max(w / p for w, p in zip(rates["playground"], rates["none"])), 4),
                round(1 - min(w / p for w, p in zip(rates["playground"], rates["none"])), 4),
            ],
            "rounds": rounds,
            "images": chunk,
        }
    return figures


def _cost(watched, plain):
    """1 - (steps/s watched) / (steps/s plain): the median of the per-round ratios
    (a slow phase of the machine hits both runs of a round alike)."""
    return 1 - statistics.median(w / p for w, p in zip(watched, plain))


def _follow(port, run_id, done):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("GET", f"/api/runs/{run_id}/events")
    response = connection.getresponse()
    while response.read(65536):
        pass
    connection.close()
    done.append(run_id)


def _training_rate(port, body, viewers):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST", "/api/runs", json.dumps(body), headers={"Content-Type": "application/json"}
    )
    run = json.loads(connection.getresponse().read())
    connection.close()
    finished = []
    threads = [
        threading.Thread(target=_follow, args=(port, run["id"], finished)) for _ in range(viewers)
    ]
    for thread in threads:
        thread.start()
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", f"/api/runs/{run['id']}")
        state = json.loads(connection.getresponse().read())
        connection.close()
        if state["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.25)
    for thread in threads:
        thread.join(60)
    assert state["state"] == "done" and len(finished) == viewers, state
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", f"/api/runs/{run['id']}/events")
    text = connection.getresponse().read().decode()
    blocks = [
        json.loads(chunk.split("data: ", 1)[1])
        for chunk in text.split("\n\n")
        if "event: block" in chunk
    ]
    first, last = blocks[0], blocks[-1]
    return (last["step"] - first["step"]) / (last["seconds"] - first["seconds"]), state["result"]


def viewer_cost(rounds, n_train):
    from mlp_lib.apps.runs import Runs
    from mlp_lib.apps.serve import ModelStore, make_server

    server = make_server(ModelStore(), port=0, runs=Runs(workers=1))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    body = {"row": "relu-he-const", "seed": 0, "epochs": 1, "n_train": n_train}
    rates = {0: [], 20: []}
    results = set()
    _training_rate(server.server_port, {**body, "n_train": 2000}, 0)  # the worker's imports, cached
    try:
        for _ in range(rounds):
            for viewers in rates:
                rate, result = _training_rate(server.server_port, body, viewers)
                rates[viewers].append(rate)
                results.add((result["test_loss"], result["test_accuracy"]))
    finally:
        server.runs.close()
        server.shutdown()
        server.server_close()
    median = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "steps_per_second": {f"{k} viewers": round(v, 1) for k, v in median.items()},
        "cost_20_viewers": round(_cost(rates[20], rates[0]), 4),
        "cost_20_viewers_range": [
            round(1 - max(w / p for w, p in zip(rates[20], rates[0])), 4),
            round(1 - min(w / p for w, p in zip(rates[20], rates[0])), 4),
        ],
        "identical_results": len(results) == 1,
        "rounds": rounds,
        "run": body,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000, help="per round of the hook's part")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 images, 1 round")
    parser.add_argument("--output", default=str(ROOT / "results" / "playground-bench.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds = 500, 1
    images, labels = load_mnist("train")
    with threadpool_limits(1):
        hook = observer_cost(np.ascontiguousarray(images), labels, args.rounds, args.images)
        viewers = viewer_cost(1 if args.quick else 7, 2000 if args.quick else 60000)
    document = {
        "observer": hook,
        "viewers": viewers,
        "provenance": provenance(
            "python benchmarks/playground.py" + (" --quick" if args.quick else "")
        ),
    }
    Path(args.output).write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps({"observer": hook, "viewers": viewers}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
