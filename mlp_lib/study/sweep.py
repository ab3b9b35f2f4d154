"""Sweeps: rows or rungs × seeds × datasets, one JSON line per finished run.

A sweep is a list of ``Job`` objects (``jobs.Job``). ``run_sweep`` runs those not yet in its
results file and appends one JSON line per finished run (with provenance) as
soon as it finishes, so a sweep that is stopped or crashes resumes by skipping
what is done. The runs go to local processes (one BLAS thread each) or to a
Dask distributed cluster (``scheduler="tcp://HOST:PORT"``, or ``"local:N"``
for a ``LocalCluster`` of N worker processes; ``pip install -e .[cluster]``).
Each run is the same function of its job whichever executor runs it, so the
results are bit-identical. A worker that dies loses only its run: it is run
again (Dask reschedules it; the local pool is rebuilt) up to ``retries``
times, then reported in ``SweepReport.lost``, never silently dropped.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


from ..engines.lifecycle import progress_bar
from .jobs import Job, run_pool, train

__all__ = [
    "Job",
    "SweepReport",
    "connect",
    "grid",
    "load_config",
    "read_results",
    "run_job",
    "run_sweep",
]


@dataclass
class SweepReport:
    """What a sweep ended with: every finished record (in the jobs' order), the
    number of runs skipped as already done, and the runs lost (job, error)."""

    records: list
    skipped: int
    lost: list = field(default_factory=list)
    seconds: float = 0.0


def grid(rows=(), rungs=(), seeds=(0,), datasets=("mnist",), epochs=None, n_train=None):
    """Every (row or rung) × seed × dataset, as checked ``Job`` objects, datasets outermost."""
    jobs = [
        Job(kind, name, int(seed), dataset, epochs, n_train if kind == "row" else None)
        for dataset in datasets
        for kind, names in (("row", rows), ("rung", rungs))
        for name in names
        for seed in seeds
    ]
    return [job.check() for job in jobs]


def load_config(path):
    """A sweep's grid from a TOML file with keys ``rows``, ``rungs``, ``seeds``,
    ``datasets``, ``epochs`` and ``n_train`` (all optional)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    path = Path(path)
    try:
        config = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: sweep file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    known = {"rows", "rungs", "seeds", "datasets", "epochs", "n_train"}
    unknown = set(config) - known
    if unknown:
        raise ValueError(
            f"{path}: unknown keys {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    return config


def run_job(job: Job, command=None):
    """Train one job (``jobs.train``: one BLAS thread); its JSON-ready record, with
    provenance."""
    from .provenance import provenance

    result = train(job.check())
    if job.kind == "row":
        figures = {
            "test_loss": result.test_loss,
            "test_accuracy": result.test_accuracy,
            "diverged_at": result.diverged_at,
            "loss_curve": [float(v) for v in result.loss_curve],
        }
    else:
        figures = {
            "test_loss": result.test_loss,
            "test_accuracy": result.test_accuracy,
            "train_loss": result.train_loss,
            "val_loss": result.val_loss,
            "val_accuracy": result.val_accuracy,
            "best_epoch": result.best_epoch,
        }
    return {
        "key": job.key,
        **asdict(job),
        **figures,
        "seconds": round(result.seconds, 3),
        "provenance": provenance(command),
    }


def read_results(path):
    """The records of a results file, by key. A last line cut short by a crash
    is ignored (that run is simply run again)."""
    path = Path(path)
    records = {}
    if not path.is_file():
        return records
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records[record["key"]] = record
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                break  # a write cut short by a crash
            raise ValueError(
                f"{path}, line {number}: not a sweep record; the file is "
                f"damaged (fix or remove that line)"
            ) from None
    return records


def _drop_cut_line(path):
    """Remove a last line left without its newline by a crash, so that the next
    record starts on a line of its own (that run is simply run again)."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _append(path, record):
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _local(jobs, processes, retries, command, done, lost):
    run_pool(
        run_job,
        [(job, {"command": command}) for job in jobs],
        processes,
        done=lambda index, record: done(record),
        lost=lambda index, exc: lost(jobs[index], exc),
        retries=retries,
    )


def connect(scheduler):
    """A Dask ``(client, cluster)`` for ``"local:N"`` (a new LocalCluster of N
    single-threaded worker processes; close both when done) or
    ``"tcp://HOST:PORT"`` (a running scheduler; ``cluster`` is None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("--scheduler needs Dask distributed: pip install -e .[cluster]") from None
    if scheduler.startswith("local:"):
        try:
            workers = int(scheduler[len("local:") :])
            assert workers >= 1
        except (ValueError, AssertionError):
            raise ValueError(f"--scheduler local:N needs N >= 1, got {scheduler!r}") from None
        import dask

        # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes
        # glibc's mmap threshold: every per-sample step then maps and unmaps its
        # larger temporaries, and a run takes 1.8 times as long (measured). Unset.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
        return Client(cluster), cluster
    return Client(scheduler, timeout="30s"), None


def _dask(jobs, scheduler, retries, command, done, lost, client=None):
    from distributed import as_completed as dask_completed

    owned = None
    if client is None:
        client, owned = connect(scheduler)
    try:
        futures = {}
        for job in sorted(jobs, key=Job.cost, reverse=True):
            future = client.submit(
                run_job,
                job,
                command,
                pure=False,
                retries=retries,
                key=f"mlp_lib-{job.key}-{time.time_ns()}",
            )
            futures[future] = job
        for future in dask_completed(list(futures)):
            job = futures[future]
            try:
                done(future.result())
            except Exception as exc:  # KilledWorker after repeated deaths, or a bug
                lost(job, exc)
    finally:
        if owned is not None:
            client.close()
            owned.close()


def run_sweep(
    jobs,
    path,
    scheduler=None,
    processes=None,
    retries=2,
    progress=None,
    restart=False,
    command=None,
    client=None,
):
    """Run the ``jobs`` not yet recorded in ``path`` (JSON lines); see the module.

    Parameters
    ----------
    scheduler : None, "local:N" or "tcp://HOST:PORT"
        None: local processes (``processes`` of them, default one per core).
    retries : int
        Times a run is tried again after its worker died or it failed.
    restart : bool
        Start the file afresh instead of skipping what it holds.
    client : distributed.Client, optional
        Use this Dask client (tests; ``scheduler`` is then ignored).

    Returns
    -------
    SweepReport
    """
    jobs = [job.check() for job in jobs]
    if len({job.key for job in jobs}) != len(jobs):
        raise ValueError("the sweep lists a run twice")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if restart and path.exists():
        path.unlink()
    records = read_results(path)
    _drop_cut_line(path)
    todo = [job for job in jobs if job.key not in records]
    bar = progress_bar(progress, len(todo), "sweep", unit="run")
    lost_runs = []
    start = time.perf_counter()

    def done(record):
        _append(path, record)
        records[record["key"]] = record
        bar.update(1)

    def lost(job, exc):
        lost_runs.append((job, f"{type(exc).__name__}: {exc}"))
        bar.update(1)

    try:
        if todo and (client is not None or scheduler is not None):
            _dask(todo, scheduler, retries, command, done, lost, client=client)
        else:
            _local(todo, processes, retries, command, done, lost)
    finally:
        bar.close()
    return SweepReport(
        [records[job.key] for job in jobs if job.key in records],
        len(jobs) - len(todo),
        lost_runs,
        time.perf_counter() - start,
    )
