"""Sweeps: resumable results files, local processes and a real Dask cluster give
the same runs, and a worker killed mid-sweep loses nothing silently."""

import json
import multiprocessing
import os
import signal
import threading
import time

import pytest

from mlp_lib.study.sweep import Job, grid, load_config, read_results, run_sweep

SMALL = dict(
    rows=["relu-he-const", "sigmoid-normal"],
    seeds=[0, 1],
    datasets=["mnist", "fashion-mnist"],
    epochs=1,
    n_train=600,
)


def _same(records):
    """Records without what differs between runs of the same job (time, machine)."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "provenance")} for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small sweep, one run after another in this process."""
    path = tmp_path_factory.mktemp("sweep") / "sequential.jsonl"
    report = run_sweep(grid(**SMALL), path, processes=1, progress=False)
    assert report.lost == [] and len(report.records) == 8
    return report.records


def test_a_results_file_holds_one_line_per_run_with_provenance(reference):
    keys = [r["key"] for r in reference]
    assert keys[0] == "mnist/row:relu-he-const/seed=0/epochs=1/n_train=600"
    assert keys[-1] == "fashion-mnist/row:sigmoid-normal/seed=1/epochs=1/n_train=600"
    for record in reference:
        assert set(record["provenance"]) >= {"commit", "date", "cpu", "numpy"}
        assert 0 < record["test_accuracy"] < 1 and len(record["loss_curve"]) > 0
    by_dataset = {r["dataset"] for r in reference}
    assert by_dataset == {"mnist", "fashion-mnist"}


def test_a_stopped_sweep_resumes_by_skipping_what_is_done(tmp_path, reference):
    path = tmp_path / "runs.jsonl"
    lines = [json.dumps(r) for r in reference[:4]]
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])  # the 4th cut short by a crash
    report = run_sweep(grid(**SMALL), path, processes=1, progress=False)
    assert report.skipped == 3 and _same(report.records) == _same(reference)
    assert len(read_results(path)) == 8
    again = run_sweep(grid(**SMALL), path, processes=1, progress=False)
    assert again.skipped == 8 and _same(again.records) == _same(reference)


def test_a_damaged_line_in_the_middle_is_an_error_not_a_silent_rerun(tmp_path, reference):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(reference[0]) + "\nnot json\n" + json.dumps(reference[1]) + "\n")
    with pytest.raises(ValueError, match="line 2: not a sweep record"):
        run_sweep(grid(**SMALL), path, progress=False)


def test_bad_sweeps_are_refused_before_running(tmp_path):
    with pytest.raises(ValueError, match="unknown row 'nope'"):
        grid(rows=["nope"])
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        grid(rows=["relu-he"], datasets=["cifar"])
    with pytest.raises(ValueError, match="unknown rung"):
        grid(rungs=["no such rung"])
    with pytest.raises(ValueError, match="twice"):
        run_sweep([Job("row", "relu-he", 0)] * 2, tmp_path / "x.jsonl")
    config = tmp_path / "sweep.toml"
    config.write_text('rows = ["relu-he"]\nseed = [1]\n')
    with pytest.raises(ValueError, match="unknown keys seed"):
        load_config(config)
    config.write_text('rows = ["relu-he"\n')
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(config)
    config.write_text(
        'rows = ["relu-he", "six-layer"]\nseeds = [3, 4]\n'
        'datasets = ["fashion-mnist"]\nepochs = 1\n'
    )
    assert len(grid(**load_config(config))) == 4


@pytest.mark.slow
def test_local_processes_give_the_sequential_results(tmp_path, reference):
    report = run_sweep(grid(**SMALL), tmp_path / "local.jsonl", processes=2, progress=False)
    assert _same(report.records) == _same(reference)


def _kill_when_started(path, kill):
    """Once the first result is in ``path``, call ``kill`` (in a thread)."""

    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().count("\n") >= 1:
                kill()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_killed_local_worker_loses_no_run(tmp_path, reference):
    path = tmp_path / "local.jsonl"
    killed = []

    def kill():
        children = multiprocessing.active_children()
        if children:
            os.kill(children[0].pid, signal.SIGKILL)
            killed.append(children[0].pid)

    watcher = _kill_when_started(path, kill)
    report = run_sweep(grid(**SMALL), path, processes=2, progress=False)
    watcher.join()
    assert killed, "the kill did not happen"
    assert report.lost == [] and _same(report.records) == _same(reference)


@pytest.mark.slow
def test_without_retries_a_killed_worker_s_runs_are_reported_lost(tmp_path):
    path = tmp_path / "local.jsonl"

    def kill():
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)

    watcher = _kill_when_started(path, kill)
    report = run_sweep(grid(**SMALL), path, processes=2, retries=0, progress=False)
    watcher.join()
    assert report.lost, "nothing was lost: the kill came too late"
    assert len(report.records) + len(report.lost) == 8
    assert {job.key for job, _ in report.lost}.isdisjoint(r["key"] for r in report.records)
    assert all("BrokenProcessPool" in error or "terminated" in error for _, error in report.lost)


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    from mlp_lib.study.sweep import connect

    client, cluster = connect("local:2")  # as --scheduler local:2 makes it
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_local_cluster_workers_keep_glibcs_dynamic_malloc_thresholds(dask_client):
    """Dask's default MALLOC_TRIM_THRESHOLD_=65536 makes a per-sample run 1.8x slower."""
    found = dask_client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert len(found) == 2 and set(found.values()) == {None}


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_results(tmp_path, reference, dask_client):
    report = run_sweep(grid(**SMALL), tmp_path / "dask.jsonl", client=dask_client, progress=False)
    assert report.lost == [] and _same(report.records) == _same(reference)


@pytest.mark.slow
def test_a_killed_dask_worker_loses_no_run(tmp_path, reference, dask_client):
    path = tmp_path / "dask-kill.jsonl"
    pids = dask_client.run(os.getpid)  # worker address -> process id
    assert len(pids) == 2
    victim = sorted(pids.values())[0]
    watcher = _kill_when_started(path, lambda: os.kill(victim, signal.SIGKILL))
    report = run_sweep(grid(**SMALL), path, client=dask_client, progress=False)
    watcher.join()
    assert victim not in dask_client.run(os.getpid).values()  # it did die (and came back)
    assert report.lost == [] and _same(report.records) == _same(reference)


@pytest.mark.slow
def test_the_cli_sweeps_on_a_local_cluster_and_resumes(tmp_path):
    import subprocess
    import sys

    args = [
        sys.executable,
        "-m",
        "mlp_lib",
        "sweep",
        "--rows",
        "relu-he",
        "--seeds",
        "0",
        "1",
        "--datasets",
        "fashion-mnist",
        "--epochs",
        "1",
        "--n-train",
        "1000",
        "--results",
        str(tmp_path / "cli.jsonl"),
        "--quiet",
    ]
    first = subprocess.run(
        args + ["--scheduler", "local:2"], capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr
    assert "2 runs in" in first.stdout and "(0 already there, 2 run now" in first.stdout
    second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "(2 already there, 0 run now" in second.stdout
    lines = (tmp_path / "cli.jsonl").read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] in ([0, 1], [1, 0])
