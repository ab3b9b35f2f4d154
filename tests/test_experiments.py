import json
import subprocess
import sys

import numpy as np
import pytest

from mlp_lib.study import experiments
from mlp_lib.study.experiments import (
    ROWS,
    RunResult,
    fingerprint,
    prediction_interval,
    run,
    summarize,
    verdict,
)

SPECIFIED_ROWS = {
    # id: (sizes, activation, init, lr at step 0, lr at step 10**6, report loss, report acc)
    "sigmoid-normal": ((784, 512, 256, 64, 10), "sigmoid", "normal", 0.01, 1e-5, 0.1893, 0.9444),
    "sigmoid-xavier": ((784, 512, 256, 64, 10), "sigmoid", "xavier", 0.01, 1e-5, 0.3105, 0.9084),
    "relu-normal": ((784, 512, 256, 64, 10), "relu", "normal", 0.01, 1e-6, 0.1666, 0.9495),
    "relu-xavier": ((784, 512, 256, 64, 10), "relu", "xavier", 0.01, 1e-6, 0.1652, 0.9500),
    "relu-he": ((784, 512, 256, 64, 10), "relu", "he", 0.01, 1e-6, 0.1553, 0.9521),
    "relu-he-const": ((784, 512, 256, 64, 10), "relu", "he", 0.01, 0.01, 0.1041, 0.9723),
    "six-layer": ((784, 512, 256, 128, 64, 32, 10), "relu", "he", 0.01, 0.01, 0.1530, 0.9618),
    "relu-uniform": ((784, 512, 256, 64, 10), "relu", "uniform", 0.01, 1e-6, None, None),
}


def test_rows_are_specs_rows():
    assert list(ROWS) == list(SPECIFIED_ROWS)
    for row_id, (sizes, act, init, lr0, lr_end, loss, acc) in SPECIFIED_ROWS.items():
        row = ROWS[row_id]
        assert (row.layer_sizes, row.activation, row.init, row.epochs) == (sizes, act, init, 3)
        assert row.schedule(0) == lr0 and row.schedule(10**6) == lr_end
        assert (row.report_loss, row.report_accuracy) == (loss, acc)
    assert ROWS["relu-he"].schedule.n_steps == 15000
    assert ROWS["sigmoid-normal"].schedule.n_steps == 100000


def test_run_is_deterministic_and_complete():
    a = run("relu-he", seed=3, epochs=1, n_train=300, progress=False)
    b = run("relu-he", seed=3, epochs=1, n_train=300, progress=False)
    assert (a.test_loss, a.test_accuracy) == (b.test_loss, b.test_accuracy)
    assert a.loss_curve.shape == (3,) and a.seconds > 0 and a.diverged_at is None
    assert 0.3 < a.test_accuracy < 1
    assert set(a.as_dict()) == {
        "row",
        "seed",
        "test_loss",
        "test_accuracy",
        "seconds",
        "diverged_at",
    }


def test_a_job_trains_on_the_blas_threads_it_is_given():
    from threadpoolctl import threadpool_info

    from mlp_lib.study.jobs import Job, train

    def blas_threads():
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    seen = []
    job = Job("row", "relu-he", 0, epochs=1, n_train=50)
    one = train(job, on_start=lambda model: seen.append(blas_threads()))
    mine = train(job, threads=None, on_start=lambda model: seen.append(blas_threads()))
    assert seen == [{1}, blas_threads()]  # one thread by default; None: BLAS's own count
    # the per-sample engine trains without BLAS: the same bits (testing uses BLAS, so not its last bits)
    assert np.array_equal(one.loss_curve, mine.loss_curve)
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="threads must be a positive int or None"):
            train(job, threads=bad)


@pytest.mark.slow  # a process pool
def test_run_many_parallel_equals_serial():
    kwargs = dict(epochs=1, n_train=200)
    serial = experiments.run_many(["relu-he", "six-layer"], [0, 1], processes=1, **kwargs)
    parallel = experiments.run_many(["relu-he", "six-layer"], [0, 1], processes=2, **kwargs)
    assert [(r.row, r.seed) for r in parallel] == [
        ("relu-he", 0),
        ("relu-he", 1),
        ("six-layer", 0),
        ("six-layer", 1),
    ]
    assert [r.test_loss for r in serial] == [r.test_loss for r in parallel]


def test_unknown_row():
    with pytest.raises(ValueError, match="unknown row 'relu'; valid: sigmoid-normal"):
        run("relu")


def test_verdict_and_summary():
    assert verdict([0.95, 0.96, 0.97], 0.955).startswith("inside")
    # mean 0.93, s = 0.01, t(0.975, 2) = 4.303: 0.93 ± 4.303 · 0.01 · sqrt(4/3)
    assert verdict([0.92, 0.93, 0.94], 0.9444) == "inside [0.8803, 0.9797], z = +1.4"
    assert verdict([0.92, 0.93, 0.94], 1.0) == "above [0.8803, 0.9797], z = +7.0"
    assert verdict([0.92, 0.93, 0.94], 0.85) == "below [0.8803, 0.9797], z = -8.0"
    assert verdict([0.5, 0.5], 0.6) == "above (no spread)"
    assert verdict([0.5], None) == "the report gives no figure"
    results = [
        RunResult("relu-he", s, 0.15 + s / 100, 0.95 + s / 100, np.zeros(1), 1.0) for s in range(3)
    ]
    (summary,) = summarize(results)
    assert summary["seeds"] == [0, 1, 2]
    assert summary["acc_mean"] == pytest.approx(0.96) and summary["acc_std"] == pytest.approx(0.01)
    assert summary["acc_min"] == 0.95 and summary["report_accuracy"] == 0.9521
    assert summary["acc_verdict"].startswith("inside")


def test_prediction_interval_covers_new_draws_at_its_level():
    """Of many 5-seed samples from a normal law, about 95% of the intervals hold
    one more draw (the t-based interval is exact for normal data)."""
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 6))
    held = [low <= d[5] <= high for d in draws for low, high in [prediction_interval(d[:5])]]
    assert abs(np.mean(held) - 0.95) < 0.015
    assert all(np.isnan(prediction_interval([1.0])))


def test_fingerprint_lists_seed_zero_to_six_figures():
    results = [
        RunResult("relu-he", s, 0.1, 0.9, np.array([2.302585093, 1.23456789, 0.5]), 1.0)
        for s in (1, 0)
    ]
    assert (
        fingerprint(results, entries=2)
        == "relu-he seed 0, loss per 100 steps from step 0: 2.30259 1.23457"
    )


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "mlp_lib", *args], capture_output=True, text=True, timeout=900
    )


def test_cli_help_and_rows():
    out = _cli("--help")
    assert out.returncode == 0 and "reproduce" in out.stdout and "rows" in out.stdout
    out = _cli("reproduce", "--help")
    assert "--json" in out.stdout and "--seed" in out.stdout
    out = _cli("rows")
    assert out.returncode == 0 and out.stdout.count("\n") == len(ROWS)


def test_cli_bad_row_is_one_line_error():
    out = _cli("reproduce", "nope")
    assert out.returncode != 0 and "unknown row nope" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_cli_reproduces_relu_he_const():
    """The acceptance check of the core issue: 3 full epochs (about a minute)."""
    out = _cli("reproduce", "relu-he-const", "--seed", "0", "--json", "--quiet")
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["row"] == "relu-he-const" and record["seed"] == 0
    assert abs(record["test_accuracy"] - 0.9723) < 0.005
