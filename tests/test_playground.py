"""The playground's API on a real server: runs in worker processes, their events,
pause/step/resume/cancel, queueing, predictions mid-run, every bad request, and
what happens to runs when viewers or the server go away."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlp_lib.apps import run_settings
from mlp_lib.apps import serve as serve_module
from mlp_lib.apps.run_settings import LIMITS, settings_from
from mlp_lib.apps.runs import Runs
from mlp_lib.apps.serve import ModelStore, make_server

ROOT = Path(__file__).resolve().parents[1]
SHORT = {"row": "relu-he-const", "seed": 1, "epochs": 1, "n_train": 2000}


class Client:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, raw=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        if headers is None:  # as the page sends them
            headers = {"Content-Type": "application/json"} if method == "POST" else {}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read()
        connection.close()
        answer = json.loads(text) if text else None
        return response.status, answer, dict(response.getheaders())

    def get(self, path):
        return self.call("GET", path)[:2]

    def post(self, path, body=None):
        return self.call("POST", path, {} if body is None else body)[:2]

    def wait(self, run_id, states, timeout=120):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status, run = self.get(f"/api/runs/{run_id}")
            assert status == 200
            if run["state"] in states:
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} never reached {states}: {run}")

    def events(self, run_id, last_event_id=None):
        """The run's whole event stream (it ends with the run), parsed."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        connection.request("GET", f"/api/runs/{run_id}/events", headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/event-stream"
        text = response.read().decode()
        connection.close()
        return parse_events(text)


def parse_events(text):
    events = []
    for chunk in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in chunk.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


def _serve(workers):
    server = make_server(ModelStore(), port=0, runs=Runs(workers=workers))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server():
    server = _serve(workers=2)
    yield server
    server.stopping = True
    server.runs.close()
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(server):
    return Client(server.server_port)


def _reproduce(body):
    """What ``python -m mlp_lib reproduce`` prints for the same row, seed and size."""
    done = subprocess.run(
        [sys.executable, "-m", "mlp_lib", "reproduce", body["row"], "--seed", str(body["seed"]),
         "--epochs", str(body["epochs"]), "--n-train", str(body["n_train"]), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reproduced():
    return _reproduce(SHORT)


@pytest.mark.slow  # worker processes
def test_a_run_watched_by_twenty_viewers_ends_with_reproduce_s_figures(client, reproduced):
    """POST a row and seed: 201 and the run; twenty viewers follow it to the end and
    all see the same events (blocks of 100 steps, tests, states, done); the result is
    reproduce's to the last bit. A viewer that connects after the end gets it all."""
    status, run = client.post("/api/runs", SHORT)
    assert status == 201 and run["state"] in ("queued", "running")
    assert run["steps"] == 2000 and run["settings"]["layer_sizes"] == [784, 512, 256, 64, 10]
    seen = [None] * 20

    def watch(k):
        seen[k] = client.events(run["id"])

    viewers = [threading.Thread(target=watch, args=(k,)) for k in range(20)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(120)
    late = client.events(run["id"])
    assert all(events == late for events in seen)
    kinds = [kind for _, kind, _ in late]
    assert kinds[0] == "state" and kinds[-1] == "done"
    assert [e[0] for e in late] == list(range(len(late)))
    blocks = [data for _, kind, data in late if kind == "block"]
    assert [b["step"] for b in blocks] == list(range(100, 2001, 100))
    assert all(len(b["grad_norm"]) == 4 and len(b["active"]) == 3 for b in blocks)
    assert all(0 < b["loss"] < 10 and b["rate"] == 0.01 for b in blocks)
    evals = [data for _, kind, data in late if kind == "eval"]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 2000
    assert all(e["images"] == 1000 and len(e["weights"]) == 8 for e in evals)
    result = late[-1][2]["result"]
    assert result["test_loss"] == reproduced["test_loss"]
    assert result["test_accuracy"] == reproduced["test_accuracy"]
    status, done = client.get(f"/api/runs/{run['id']}")
    assert done["state"] == "done" and done["step"] == 2000 and done["result"] == result
    assert client.events(run["id"], last_event_id=late[-2][0]) == late[-1:]


@pytest.mark.slow  # worker processes
def test_a_paused_stepped_and_resumed_run_is_the_same_computation(client, reproduced):
    """Pause takes effect between two blocks; the step count then stays; step runs
    one block of 100; predictions answer with the weights of that moment; resume
    finishes with exactly reproduce's figures."""
    status, run = client.post("/api/runs", SHORT)
    assert status == 201
    assert client.post(f"/api/runs/{run['id']}/pause")[0] == 200
    paused = client.wait(run["id"], ("paused",))
    time.sleep(0.5)
    assert client.get(f"/api/runs/{run['id']}")[1]["step"] == paused["step"] < 2000
    status, again = client.post(f"/api/runs/{run['id']}/pause")
    assert status == 409 and "paused" in again["error"]
    assert client.post(f"/api/runs/{run['id']}/step")[0] == 200
    end = time.monotonic() + 30
    while client.get(f"/api/runs/{run['id']}")[1]["step"] != paused["step"] + 100:
        assert time.monotonic() < end, "step did not run one block"
        time.sleep(0.05)
    stepped = client.wait(run["id"], ("paused",))
    assert stepped["step"] == paused["step"] + 100
    digit = _a_test_digit()
    status, answer = client.post("/api/predict", {"run": run["id"], "pixels": digit})
    assert status == 200 and answer["model"] == run["id"] and len(answer["probabilities"]) == 10
    assert client.post(f"/api/runs/{run['id']}/resume")[0] == 200
    done = client.wait(run["id"], ("done",))
    assert done["result"]["test_loss"] == reproduced["test_loss"]
    assert done["result"]["test_accuracy"] == reproduced["test_accuracy"]
    states = [d["state"] for _, kind, d in client.events(run["id"]) if kind == "state"]
    assert states == ["queued", "running", "paused", "running", "paused", "running"]
    status, after = client.post("/api/predict", {"run": run["id"], "pixels": digit})
    assert status == 200 and after["label"] == int(np.argmax(after["probabilities"]))


def _a_test_digit():
    from mlp_lib import load_mnist

    images, _ = load_mnist("test")
    return [round(float(v), 4) for v in images[0]]


@pytest.mark.slow  # worker processes
def test_queueing_cancel_and_the_freed_worker():
    """One worker: a second run waits (its place shown), a third too; cancelling a
    queued run drops it, cancelling the running one frees the worker for the next."""
    server = _serve(workers=1)
    client = Client(server.server_port)
    try:
        long = {"row": "sigmoid-normal", "epochs": 3}
        first, second, third = (client.post("/api/runs", long)[1] for _ in range(3))
        assert first["queue_position"] is None
        assert (second["queue_position"], third["queue_position"]) == (1, 2)
        client.wait(first["id"], ("running",))
        assert client.get(f"/api/runs/{second['id']}")[1]["state"] == "queued"
        status, cancelled = client.post(f"/api/runs/{third['id']}/cancel")
        assert status == 200 and cancelled["state"] == "cancelled"
        status, listing = client.get("/api/runs")
        assert [r["state"] for r in listing["runs"]] == ["running", "queued", "cancelled"]
        assert listing["runs"][1]["queue_position"] == 1 and listing["workers"] == 1
        status, answer = client.post("/api/predict", {"run": second["id"], "pixels": [0] * 784})
        assert status == 409 and "queued" in answer["error"]
        assert client.post(f"/api/runs/{first['id']}/cancel")[0] == 200
        client.wait(first["id"], ("cancelled",), timeout=30)
        client.wait(second["id"], ("running",), timeout=30)
        process, end = server.runs.get(first["id"]).ended_process, time.monotonic() + 10
        while process.is_alive():  # (the server's own threads reap it)
            assert time.monotonic() < end, "a cancelled run's process lives on"
            time.sleep(0.05)
        assert client.post(f"/api/runs/{first['id']}/resume")[0] == 409
        assert client.post(f"/api/runs/{second['id']}/cancel")[0] == 200
        client.wait(second["id"], ("cancelled",), timeout=30)
    finally:
        server.runs.close()
        server.shutdown()
        server.server_close()


@pytest.mark.slow  # worker processes
def test_a_full_queue_answers_429(monkeypatch):
    server = _serve(workers=1)
    client = Client(server.server_port)
    monkeypatch.setitem(LIMITS, "queued", 1)
    try:
        body = {"row": "sigmoid-normal"}
        assert [client.post("/api/runs", body)[0] for _ in range(2)] == [201, 201]
        status, answer = client.post("/api/runs", body)
        assert status == 429 and "queue is full" in answer["error"]
    finally:
        server.runs.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"row": "relu-he-konst"}, "row"),
        ({"row": 3}, "row"),
        ({"row": "relu-he", "rung": "mini-batch SGD"}, "row"),
        ({"row": "relu-he", "layers": [10]}, "layers"),
        ({"row": "relu-he", "seed": -1}, "seed"),
        ({"row": "relu-he", "seed": 1.5}, "seed"),
        ({"row": "relu-he", "seed": True}, "seed"),
        ({"row": "relu-he", "seed": "1"}, "seed"),
        ({"row": "relu-he", "epochs": 0}, "epochs"),
        ({"row": "relu-he", "epochs": 11}, "epochs"),
        ({"row": "relu-he", "n_train": 99}, "n_train"),
        ({"row": "relu-he", "n_train": 60001}, "n_train"),
        ({"row": "relu-he", "dataset": "cifar"}, "dataset"),
        ({"rung": "nope"}, "rung"),
        ({"rung": "mini-batch SGD", "epochs": 71}, "epochs"),
        ({"rung": "mini-batch SGD", "n_train": 1000}, "n_train"),
        ({"layers": []}, "layers"),
        ({"layers": [64] * 7}, "layers"),
        ({"layers": [0]}, "layers"),
        ({"layers": [1025]}, "layers"),
        ({"layers": [1024, 1024, 1024]}, "layers"),
        ({"layers": "512,256"}, "layers"),
        ({"layers": [64.0]}, "layers"),
        ({"activation": "softplus"}, "activation"),
        ({"init": "zeros"}, "init"),
        ({"schedule": "cosine"}, "schedule"),
        ({"lr": 0}, "lr"),
        ({"lr": 2}, "lr"),
        ({"lr": "0.01"}, "lr"),
        ({"schedule": "decay", "decay_steps": 0}, "decay_steps"),
        ({"epochs": 7, "n_train": 60000}, "epochs"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_every_bad_setting_gets_a_400_that_names_its_field(client, body, field):
    status, answer = client.post("/api/runs", body)
    assert status == 400, answer
    assert answer["field"] == field and answer["error"].startswith(f"{field}:")


@pytest.mark.parametrize(
    "method, path, raw, status",
    [
        ("POST", "/api/runs", b"{not json", 400),
        ("POST", "/api/runs", b"[1, 2]", 400),
        ("POST", "/api/runs", b'{"lr": NaN}', 400),
        ("POST", "/api/runs", b"[" * 100000 + b"]" * 100000, 400),  # too deep for json
        ("POST", "/api/runs", b"[" * 600000 + b"]" * 600000, 413),
        ("GET", "/api/runs/r999", None, 404),
        ("GET", "/api/runs/r999/events", None, 404),
        ("POST", "/api/runs/r999/pause", b"{}", 404),
        ("POST", "/api/runs/r1/fly", b"{}", 404),
        ("GET", "/api/runs/r1/pause", None, 405),
        ("POST", "/api/runs/r1", b"{}", 405),
        ("DELETE", "/api/runs", None, 405),
        ("PUT", "/api/presets", None, 405),
        ("POST", "/api/predict", b'{"run": "r999", "pixels": []}', 400),
        ("POST", "/api/predict", b'{"run": 1, "pixels": []}', 400),
    ],
)
def test_bad_requests_get_their_status_and_an_error(client, method, path, raw, status):
    got, answer, headers = client.call(method, path, raw=raw)
    assert got == status and isinstance(answer["error"], str) and answer["error"]
    if status == 405:
        assert headers["Allow"]


@pytest.mark.slow  # worker processes
def test_predict_with_an_unknown_run_is_404_and_a_body_on_a_command_is_400(client):
    status, answer = client.post("/api/predict", {"run": "r999", "pixels": [0.0] * 784})
    assert status == 404 and "r999" in answer["error"]
    status, run = client.post("/api/runs", {**SHORT, "n_train": 100})
    status, answer = client.post(f"/api/runs/{run['id']}/pause", {"now": True})
    assert status == 400
    client.wait(run["id"], ("done",))


def test_presets_list_every_row_and_rung_with_the_limits(client):
    status, answer = client.get("/api/presets")
    names = [(p["kind"], p["name"]) for p in answer["presets"]]
    assert ("row", "relu-he-const") in names and ("rung", "60-second sprint") in names
    relu = next(p for p in answer["presets"] if p["name"] == "relu-he-const")
    assert relu["reference"]["report_accuracy"] == 0.9723 and len(relu["reference"]["seeds"]) == 5
    assert answer["limits"] == json.loads(json.dumps(LIMITS))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_run_keys = st.sampled_from(
    ["row", "rung", "seed", "epochs", "n_train", "dataset", "layers", "activation", "init",
     "schedule", "lr", "decay_steps", "x"]
)  # fmt: skip
_good_values = {
    "row": st.sampled_from(["relu-he-const", "sigmoid-normal", "six-layer"]),
    "rung": st.sampled_from(["mini-batch SGD", "60-second sprint"]),
    "seed": st.integers(-3, 2**31 + 3),
    "epochs": st.integers(-1, 80),
    "n_train": st.integers(0, 70000),
    "layers": st.lists(st.integers(-2, 1100), max_size=8),
    "lr": st.floats(-1, 3),
}


@st.composite
def run_bodies(draw):
    keys = draw(st.lists(_run_keys, max_size=6, unique=True))
    return {
        k: draw(_good_values[k] if k in _good_values and draw(st.booleans()) else _json_values)
        for k in keys
    }


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=run_bodies())
def test_fuzzed_run_bodies_get_201_or_a_400_naming_a_field_never_a_crash(body):
    """settings_from accepts exactly what is within LIMITS; every refusal names the
    field it blames, one of the body's keys (or "body")."""
    try:
        settings = settings_from(body)
    except run_settings.SettingsError as exc:
        assert exc.field in body or exc.field == "body", (exc.field, body)
        return
    assert 1 <= settings["steps"] and settings["seed"] >= 0
    if settings["kind"] == "row":
        assert settings["steps"] <= LIMITS["steps"]
        assert 1 <= len(settings["layer_sizes"]) - 2 <= LIMITS["hidden_layers"][1]
        assert all(1 <= w <= LIMITS["width"][1] for w in settings["layer_sizes"][1:-1])


@pytest.fixture(scope="module")
def closed_server():
    """A server whose queue takes nothing: a valid body gets 429, so fuzzing the
    HTTP layer starts no process."""
    server = _serve(workers=1)
    yield server
    server.shutdown()
    server.server_close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=run_bodies())
def test_fuzzed_bodies_over_http_get_json_answers(closed_server, body):
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(LIMITS, "queued", 0)
        status, answer, _ = Client(closed_server.server_port).call("POST", "/api/runs", body)
    assert status in (400, 429) and answer["error"]


_predict_keys = st.sampled_from(["run", "model", "pixels", "image", "x"])


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(
        _predict_keys,
        st.one_of(_json_values, st.sampled_from(["r1", "r999"]), st.lists(st.floats(0, 1), min_size=784, max_size=784)),
        max_size=3,
    )
)  # fmt: skip
def test_fuzzed_predict_bodies_get_an_answer_or_a_json_error(closed_server, body):
    status, answer, _ = Client(closed_server.server_port).call("POST", "/api/predict", body)
    assert status in (200, 400, 404, 409, 503)
    assert status == 200 or answer["error"]


def _settled_thread_count(quiet=0.5, timeout=5):
    """The number of threads once the server's threads for the requests just answered
    have ended (it stopped changing for ``quiet`` seconds): the thread of a request whose
    answer has been read can outlive it by a moment, and counting it made the test below
    fail now and then on a busy machine (one stream thread seemed missing)."""
    count, since, end = threading.active_count(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet and time.monotonic() < end:
        time.sleep(0.02)
        if threading.active_count() != count:
            count, since = threading.active_count(), time.monotonic()
    return count


@pytest.mark.slow  # worker processes
def test_a_viewer_that_hangs_up_leaves_nothing_behind(client, server, monkeypatch):
    """A stream's thread ends once its viewer has gone (found at the next write:
    an event, or the keep-alive comment)."""
    monkeypatch.setattr(serve_module, "_KEEPALIVE", 0.2)
    status, run = client.post("/api/runs", {"row": "sigmoid-normal", "epochs": 3})
    client.wait(run["id"], ("running",))
    client.post(f"/api/runs/{run['id']}/pause")
    client.wait(run["id"], ("paused",))
    before = _settled_thread_count()
    sockets = []
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server.server_port))
        sock.sendall(
            f"GET /api/runs/{run['id']}/events HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.server_port}\r\n\r\n".encode()
        )
        sock.settimeout(10)
        received = b""
        while b"event: state" not in received:
            received += sock.recv(65536)
        sockets.append(sock)
    assert threading.active_count() >= before + 5
    for sock in sockets:
        sock.close()
    end = time.monotonic() + 10
    while threading.active_count() > before:
        assert time.monotonic() < end, "stream threads outlived their viewers"
        time.sleep(0.05)
    client.post(f"/api/runs/{run['id']}/cancel")
    client.wait(run["id"], ("cancelled",), timeout=30)


def _children(pid):
    """The worker processes whose parent is ``pid`` (Linux /proc): multiprocessing's
    spawned children, not its resource tracker."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow  # a server and its workers
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_stopping_the_server_stops_its_runs(tmp_path, how):
    """Ctrl-C stops the server and its workers; so does a kill -9 of the server
    (a worker sees its pipe close at the next block and ends)."""
    from mlp_lib import MLP
    from mlp_lib.io.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "tiny.npz", MLP([784, 8, 10], seed=0))
    server = subprocess.Popen(
        [sys.executable, "-m", "mlp_lib", "serve", str(tmp_path / "tiny.npz"), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "MLP_LIB_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    try:
        port = int(server.stdout.readline().split("localhost:")[1].split("/")[0])
        client = Client(port)
        ids = [
            client.post("/api/runs", {"row": "sigmoid-normal", "seed": s})[1]["id"] for s in (0, 1)
        ]
        for run_id in ids:
            client.wait(run_id, ("running",))
        end = time.monotonic() + 30
        while len(workers := _children(server.pid)) < 2:
            assert time.monotonic() < end
            time.sleep(0.1)
        server.send_signal(getattr(signal, how))
        server.wait(30)
        end = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in workers):
            assert time.monotonic() < end, f"workers {workers} outlived the server ({how})"
            time.sleep(0.1)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.slow  # worker processes
def test_a_rung_run_is_sweep_s_computation(client, tmp_path):
    """A notebook-05 rung (mini-batch, BLAS) on the page: one BLAS thread, as
    ``sweep`` and notebook 05 train it, so the same bits as ``sweep --rungs``."""
    status, run = client.post("/api/runs", {"rung": "mini-batch SGD", "epochs": 1})
    assert status == 201 and run["steps"] == 391
    done = client.wait(run["id"], ("done",))
    blocks = [d for _, kind, d in client.events(run["id"]) if kind == "block"]
    assert [b["step"] for b in blocks] == [100, 200, 300, 391]
    swept = subprocess.run(
        [sys.executable, "-m", "mlp_lib", "sweep", "--rungs", "mini-batch SGD", "--epochs", "1",
         "--results", str(tmp_path / "runs.jsonl"), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    record = json.loads(swept.stdout.strip().splitlines()[-1])
    assert done["result"]["test_loss"] == record["test_loss"]
    assert done["result"]["test_accuracy"] == record["test_accuracy"]
