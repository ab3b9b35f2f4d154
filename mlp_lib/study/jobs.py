"""One way to run a job: a report row or a notebook-05 rung, trained on one BLAS thread.

Everything that trains a row or a rung goes through ``train``: the notebooks'
``run_many`` and ``run_jobs``, ``sweep`` (locally or on Dask), serve's default
models and the playground's worker. So a run is the same computation, to the
bit, whichever of them starts it. ``run_pool`` is the one process pool: one
worker per core, the longest jobs first (``Job.cost``), so no core idles at the
end behind one long job; a worker that dies costs only its job, which is tried
again ``retries`` times.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from ..io.data import DATASETS
from .beyond import rung_by_name, run_rung
from .rows import get_row, run

__all__ = ["Job", "train", "run_pool"]


@dataclass(frozen=True)
class Job:
    """One run: a report row (per-sample SGD) or a notebook-05 rung, a seed and a
    dataset. ``epochs`` and ``n_train`` shorten it (quick checks and tests)."""

    kind: str  # "row" or "rung"
    name: str  # row id, or rung name
    seed: int
    dataset: str = "mnist"
    epochs: int | None = None
    n_train: int | None = None

    @property
    def key(self):
        """The job's identity in a results file."""
        extra = "".join(
            f"/{k}={v}"
            for k, v in (("epochs", self.epochs), ("n_train", self.n_train))
            if v is not None
        )
        return f"{self.dataset}/{self.kind}:{self.name}/seed={self.seed}{extra}"

    def check(self):
        """The job itself if it names a known row or rung and sane sizes; else ValueError."""
        if self.kind == "row":
            get_row(self.name)
        elif self.kind == "rung":
            rung_by_name(self.name)
            if self.n_train is not None:
                raise ValueError("n_train applies to rows only")
        else:
            raise ValueError(f"a job's kind is 'row' or 'rung', got {self.kind!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        for name in ("epochs", "n_train"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        return self

    def cost(self):
        """A rough rank of how long the job takes, for starting the longest first:
        rungs (mini-batch, many epochs) before rows; then more epochs and images;
        then, per-sample, deeper nets (more calls) and sigmoid (exp)."""
        if self.kind == "rung":
            return (1, self.epochs or 0, 0, 0, False)
        row = get_row(self.name)
        return (
            0,
            self.epochs or row.epochs,
            self.n_train or 60_000,
            len(row.layer_sizes),
            row.activation == "sigmoid",
        )


def train(job: Job, *, threads=1, row=None, rung=None, progress=False, **options):
    """Train ``job`` on ``threads`` BLAS threads (default one) and test it; a
    ``RunResult`` (row) or a ``RungResult`` (rung).

    One thread: the machine's cores belong to the workers, and the last bits of
    a BLAS product depend on how many threads split it, so a job run alone, in
    a pool or in the playground gives the same bits. ``threads=None`` leaves
    BLAS its own count (every core): for a run timed alone on the machine, as
    notebook 05 times its rungs. ``row`` / ``rung`` train a
    ``Row`` or ``Rung`` of one's own under the job's seed and sizes (the
    playground's custom settings); ``options`` go to ``experiments.run``
    (``keep_model``, ``schedule``, ``start_model``, ``observer``, ``on_start``) or
    ``beyond.run_rung`` (``keep_model``, ``observer``, ``on_start``).
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    with threadpool_limits(threads):
        if job.kind == "row":
            return run(
                row if row is not None else job.name,
                seed=job.seed,
                progress=progress,
                epochs=job.epochs,
                n_train=job.n_train,
                dataset=job.dataset,
                **options,
            )
        if job.kind == "rung":
            return run_rung(
                rung if rung is not None else rung_by_name(job.name),
                seed=job.seed,
                epochs=job.epochs,
                progress=progress,
                dataset=job.dataset,
                **options,
            )
        raise ValueError(f"a job's kind is 'row' or 'rung', got {job.kind!r}")


def run_pool(call, tasks, processes=None, *, done, lost=None, retries=0):
    """``call(job, **options)`` for each ``(job, options)`` of ``tasks``.

    With one process (or one task) the calls run here, in order; otherwise in
    ``processes`` worker processes (default: one per core), the costliest jobs
    first. ``done(index, result)`` is told each result as it comes (``index``
    into ``tasks``). A call that raises (or whose worker died) is tried again up
    to ``retries`` times; then ``lost(index, exception)`` is told, or, without
    ``lost``, the exception is raised. ``call`` must be picklable (a function of
    a module).
    """
    tasks = list(tasks)
    workers = min(processes or os.cpu_count() or 1, len(tasks))
    attempts = Counter()

    def failed(index, exc):
        attempts[index] += 1
        if attempts[index] <= retries:
            return True
        if lost is None:
            raise exc
        lost(index, exc)
        return False

    pending = list(range(len(tasks)))
    while pending:
        if workers <= 1:
            index = pending.pop(0)
            job, options = tasks[index]
            try:
                result = call(job, **options)
            except Exception as exc:
                if failed(index, exc):
                    pending.insert(0, index)
                continue
            done(index, result)
            continue
        order = sorted(pending, key=lambda i: tasks[i][0].cost(), reverse=True)
        pending = []
        with ProcessPoolExecutor(min(workers, len(order))) as pool:
            futures = {pool.submit(call, tasks[i][0], **tasks[i][1]): i for i in order}
            for future in as_completed(futures):
                index = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # a dead worker breaks the pool: retry its jobs
                    if failed(index, exc):
                        pending.append(index)
                    continue
                done(index, result)
