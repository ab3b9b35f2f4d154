"""The playground's training runs: a process per run, watched live.

A run is one training of a preset (a report row, a notebook-05 rung) or of
custom settings (``run_settings.settings_from``). ``Runs`` (the manager
``serve`` owns) keeps every run and its events, starts at most one worker
process (``run_worker.work``) per core and queues the rest. The server's
threads only read the runs' events (``Run.events_after``), so a viewer, however
slow, never slows the worker.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

from .predictions import describe_prediction
from .run_settings import LIMITS, label, reference_for, settings_from
from .run_worker import work

__all__ = ["Runs", "Run", "RunError", "STATES"]

STATES = ("queued", "running", "paused", "done", "cancelled", "failed")
FINAL = ("done", "cancelled", "failed")


@dataclass
class _Event:
    id: int
    type: str
    data: dict


class Run:
    """One run as the server sees it: its state and every event so far."""

    def __init__(self, run_id, settings):
        self.id, self.settings = run_id, settings
        self.label = label(settings)
        self.state, self.step, self.result, self.error = "queued", 0, None, None
        self.model = None  # the trained model, once done (predictions)
        self.created = time.time()
        self.started = self.finished = None
        self.events = []
        self.changed = threading.Condition()
        self.process = self.conn = self.ended_process = None
        self.send_lock = threading.Lock()
        self.cancelling = False
        self.reference = (
            reference_for(settings["preset"], settings["dataset"])
            if settings["kind"] == "row"
            else None
        )

    def add(self, type, data):
        self.add_many(type, [data])

    def add_many(self, type, items):
        with self.changed:
            for data in items:
                self.events.append(_Event(len(self.events), type, data))
            self.changed.notify_all()

    def events_after(self, last, timeout):
        """Events with id > ``last`` (waiting up to ``timeout`` s for one), and
        whether the run has ended and all its events are out."""
        with self.changed:
            if len(self.events) <= last + 1 and self.state not in FINAL:
                self.changed.wait(timeout)
            new = self.events[last + 1 :]
            return new, self.state in FINAL and self.finished is not None

    def as_dict(self, position=None):
        steps_per_second = None
        if self.started and self.step:
            end = self.finished or time.time()
            steps_per_second = round(self.step / max(end - self.started, 1e-9), 1)
        return {
            "id": self.id,
            "label": self.label,
            "state": self.state,
            "step": self.step,
            "steps": self.settings["steps"],
            "settings": self.settings,
            "result": self.result,
            "error": self.error,
            "queue_position": position,
            "steps_per_second": steps_per_second,
            "reference": self.reference,
        }


class RunError(Exception):
    """An answer other than 200 for a run request (``status``, message)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Runs:
    """Every run of a server: at most ``workers`` train at once (default: one
    per core), the others wait in a queue of at most ``LIMITS["queued"]``."""

    def __init__(self, workers=None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._runs = {}
        self._queue = deque()
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._answers = {}  # predict token -> [Event, answer]
        self._context = multiprocessing.get_context("spawn")
        self._closed = False

    # -- requests
    def create(self, request):
        settings = settings_from(request)
        with self._lock:
            if self._closed:
                raise RunError(503, "the server is stopping")
            if len(self._queue) >= LIMITS["queued"]:
                raise RunError(
                    429,
                    f"the queue is full ({len(self._queue)} of {LIMITS['queued']} places "
                    f"taken); cancel a run or wait",
                )
            self._forget_old()
            if len(self._runs) >= LIMITS["kept"]:
                raise RunError(429, f"{len(self._runs)} runs are alive; cancel one first")
            run = Run(f"r{next(self._ids)}", settings)
            self._runs[run.id] = run
            self._queue.append(run)
            run.add("state", {"state": "queued", "step": 0})
            self._start_waiting()
            return run.as_dict(self._position(run))

    def listing(self):
        with self._lock:
            return [run.as_dict(self._position(run)) for run in self._runs.values()]

    def get(self, run_id):
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunError(404, f"no run {run_id!r}; GET /api/runs lists them")
            return run

    def describe(self, run_id):
        run = self.get(run_id)
        with self._lock:
            return run.as_dict(self._position(run))

    def command(self, run_id, command):
        """``pause``, ``resume``, ``step`` or ``cancel``; 409 if the run's state
        does not allow it."""
        run = self.get(run_id)
        with self._lock:
            state = run.state
            if command == "cancel" and state == "queued":
                self._queue.remove(run)
                self._finish(run, "cancelled")
                return run.as_dict()
            allowed = {
                "pause": ("running",),
                "resume": ("paused",),
                "step": ("paused",),
                "cancel": ("running", "paused"),
            }[command]
            if state not in allowed:
                raise RunError(
                    409, f"run {run.id} is {state}; {command} needs it {' or '.join(allowed)}"
                )
        if command == "cancel":
            run.cancelling = True
        self._send(run, (command,))
        if command == "cancel":  # a worker mid-evaluation answers within a block
            threading.Thread(target=self._reap, args=(run, 5.0), daemon=True).start()
        return run.as_dict()

    def predict(self, run_id, pixels, timeout=10.0):
        """``serve.describe_prediction`` with the run's weights as they are now."""

        run = self.get(run_id)
        if run.state == "done":
            return describe_prediction(run.id, run.model, pixels)
        if run.state not in ("running", "paused"):
            raise RunError(409, f"run {run.id} is {run.state}: it has no weights to predict with")
        token = next(self._tokens)
        waiting = self._answers[token] = [threading.Event(), None]
        try:
            self._send(run, ("predict", token, pixels, run.id))
            if not waiting[0].wait(timeout):
                if run.state == "done":
                    return describe_prediction(run.id, run.model, pixels)
                raise RunError(503, f"run {run.id} did not answer within {timeout:g} s")
        finally:
            self._answers.pop(token, None)
        answer = waiting[1]
        if "error" in answer:
            raise RunError(503, answer["error"])
        return answer

    def close(self):
        """Stop every run (the server is stopping): cancel, then terminate."""
        with self._lock:
            self._closed = True
            alive = [r for r in self._runs.values() if r.process is not None]
            for run in list(self._queue):
                self._finish(run, "cancelled")
            self._queue.clear()
        for run in alive:
            try:
                self._send(run, ("cancel",))
            except RunError:
                pass
        for run in alive:
            self._reap(run, 2.0)

    # -- internals
    def _position(self, run):
        try:
            return self._queue.index(run) + 1
        except ValueError:
            return None

    def _forget_old(self):
        finished = [r for r in self._runs.values() if r.state in FINAL]
        while len(self._runs) >= LIMITS["kept"] and finished:
            del self._runs[finished.pop(0).id]

    def _send(self, run, message):
        with run.send_lock:
            try:
                run.conn.send(message)
            except (OSError, AttributeError, ValueError):
                raise RunError(409, f"run {run.id} is {run.state}") from None

    def _start_waiting(self):
        """Start queued runs while a worker is free (the lock is held)."""
        busy = sum(r.process is not None for r in self._runs.values())
        while self._queue and busy < self.workers and not self._closed:
            run = self._queue.popleft()
            mine, theirs = self._context.Pipe()
            run.conn = mine
            run.process = self._context.Process(
                target=work,
                args=(theirs, run.settings, run.id),
                daemon=True,
                name=f"mlp_lib run {run.id}",
            )
            run.process.start()
            theirs.close()
            run.state, run.started = "running", time.time()
            threading.Thread(target=self._listen, args=(run,), daemon=True).start()
            busy += 1
        for place, run in enumerate(self._queue, 1):
            run.add("queue", {"position": place})

    def _listen(self, run):
        """Read a worker's messages until it ends (one thread per live run)."""
        final = None
        try:
            while True:
                kind, *args = run.conn.recv()
                if kind == "blocks":
                    run.step = args[0][-1]["step"]
                    run.add_many("block", args[0])
                elif kind == "eval":
                    run.add("eval", args[0])
                elif kind == "prediction":
                    waiting = self._answers.get(args[0])
                    if waiting is not None:
                        waiting[1] = args[1]
                        waiting[0].set()
                elif kind == "state":
                    state, detail = args
                    if state in FINAL:
                        final = (state, detail)
                        break
                    run.state = state
                    run.add("state", {"state": state, "step": run.step})
                elif kind == "done":
                    run.result, run.model = args[0], args[1]
                    run.step = run.settings["steps"] if args[0]["diverged_at"] is None else run.step
                    final = ("done", None)
                    break
        except (EOFError, OSError):
            pass
        with self._lock:
            if final is None:
                code = run.process.exitcode if run.process else None
                final = ("failed", f"the worker process ended without a result (exit {code})")
                if self._closed or run.cancelling:
                    final = ("cancelled", None)
            self._finish(run, *final)
            self._start_waiting()
        self._reap(run, 2.0)

    def _finish(self, run, state, detail=None):
        """Record the end of ``run`` (the lock is held); the state and the last
        event change together, so a viewer that sees the end has its event."""
        if run.state in FINAL:
            return
        with run.changed:
            run.state, run.finished = state, time.time()
            if state == "failed":
                run.error = detail
            if state == "done":
                run.add("done", {"step": run.step, "result": run.result})
            else:
                run.add("state", {"state": state, "step": run.step, "error": run.error})
        run.ended_process, run.process = run.process, None

    def _reap(self, run, timeout):
        """Wait for the run's process to exit; terminate it if it will not."""
        process = run.process or run.ended_process
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(1.0)
