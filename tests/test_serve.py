"""`mlp-lib serve`: the JSON API on a real server, and bad input of every kind."""

import base64
import http.client
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mlp_lib import MLP
from mlp_lib.apps.serve import MAX_BODY, ModelStore, make_server


@pytest.fixture(scope="module")
def server():
    store = ModelStore()
    store.add("relu", MLP([784, 16, 8, 10], "relu", "he", seed=0), "test relu net")
    store.add("sigmoid", MLP([784, 12, 10], "sigmoid", "xavier", seed=1), "test sigmoid net")
    store.expect("later", "a model still training")
    httpd = make_server(store, port=0)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.server_port
    httpd.shutdown()
    httpd.server_close()


def request(port, method, path, body=None, headers=None):
    """(status, parsed JSON or text) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if headers is None:  # as the page sends them
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(data) if kind.startswith("application/json") else data


def png_data_url(array):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def stroke_image():
    canvas = np.zeros((140, 140), np.uint8)
    canvas[20:120, 65:75] = 255  # a "1"
    return canvas


def test_models_lists_every_model_with_its_state(server):
    status, answer = request(server, "GET", "/api/models")
    assert status == 200
    by_name = {m["name"]: m for m in answer["models"]}
    assert set(by_name) == {"relu", "sigmoid", "later"}
    assert by_name["relu"]["ready"] and by_name["relu"]["layer_sizes"] == [784, 16, 8, 10]
    assert by_name["sigmoid"]["dead"] is None and not by_name["later"]["ready"]
    assert len(by_name["relu"]["dead"]) == 2


def test_predict_pixels_answers_every_field(server):
    pixels = np.random.default_rng(0).uniform(0, 1, 784)
    status, answer = request(server, "POST", "/api/predict", {"pixels": pixels.tolist()})
    assert status == 200 and answer["model"] == "relu"
    model = MLP([784, 16, 8, 10], "relu", "he", seed=0)
    expected = model.forward(pixels[None, :])[0]
    assert np.allclose(answer["probabilities"], expected, atol=1e-6)
    assert answer["label"] == int(np.argmax(expected))
    assert len(answer["input"]) == 784 and [len(a) for a in answer["activations"]] == [16, 8]
    hidden = np.maximum(pixels @ model.weights[0] + model.biases[0], 0)
    top = answer["first_layer"][0]
    assert top["unit"] == int(np.argmax(hidden)) and len(top["weights"]) == 784
    assert np.allclose(top["weights"], model.weights[0][:, top["unit"]], atol=1e-4)


def test_predict_image_uses_predicts_preparation(server):
    from mlp_lib.io.data import image_to_mnist

    url = png_data_url(stroke_image())
    status, answer = request(server, "POST", "/api/predict", {"image": url, "model": "sigmoid"})
    assert status == 200 and answer["model"] == "sigmoid"
    raw = base64.b64decode(url.split(",", 1)[1])
    assert np.allclose(answer["input"], image_to_mnist(raw), atol=1e-4)
    assert len(answer["activations"]) == 1 and len(answer["activations"][0]) == 12


def _huge_png():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, format="PNG")  # 100 Mpx, small file
    assert len(buffer.getvalue()) < MAX_BODY
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


BAD = [
    ("malformed JSON", "{pixels: [", 400, "malformed JSON"),
    ("not an object", "[1, 2]", 400, "JSON object"),
    ("no input", {}, 400, 'needs "pixels"'),
    ("short", {"pixels": [0.5] * 783}, 400, "784 numbers, got 783"),
    ("long", {"pixels": [0.5] * 785}, 400, "784 numbers, got 785"),
    ("not a list", {"pixels": "0.5"}, 400, "784 numbers"),
    ("strings", {"pixels": ["0.5"] * 784}, 400, "numbers only"),
    ("booleans", {"pixels": [True] * 784}, 400, "numbers only"),
    ("NaN", '{"pixels": [NaN' + ", 0" * 783 + "]}", 400, "NaN"),
    ("Infinity", '{"pixels": [Infinity' + ", 0" * 783 + "]}", 400, "Infinity"),
    ("huge number", '{"pixels": [1e999' + ", 0" * 783 + "]}", 400, "finite"),
    ("above 1", {"pixels": [2] + [0] * 783}, 400, "[0, 1]"),
    ("negative", {"pixels": [-0.1] + [0] * 783}, 400, "[0, 1]"),
    ("both inputs", {"pixels": [0] * 784, "image": "data:image/png;base64,"}, 400, "not both"),
    ("unknown key", {"pixels": [0] * 784, "colour": 1}, 400, "unknown keys"),
    ("unknown model", {"pixels": [0] * 784, "model": "nope"}, 400, "unknown model"),
    ("model not a string", {"pixels": [0] * 784, "model": 3}, 400, "must be a string"),
    ("model still training", {"pixels": [0] * 784, "model": "later"}, 503, "still training"),
    ("not a data URL", {"image": "http://example.com/x.png"}, 400, "data URL"),
    ("bad base64", {"image": "data:image/png;base64,@@@"}, 400, "base64"),
    (
        "not an image",
        {"image": "data:image/png;base64," + base64.b64encode(b"hello").decode()},
        400,
        "not a readable image",
    ),
    ("blank image", {"image": png_data_url(np.zeros((40, 40), np.uint8))}, 400, "blank"),
    ("100-megapixel image", {"image": _huge_png()}, 400, "more than the limit"),
    ("bad UTF-8", b"\xff\xfe{", 400, "malformed JSON"),
]


@pytest.mark.parametrize("name, body, status, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_a_reason(server, name, body, status, message):
    got, answer = request(server, "POST", "/api/predict", body)
    assert (got, message in answer["error"]) == (status, True), answer


def test_a_body_over_one_megabyte_is_413_without_being_read(server):
    got, answer = request(server, "POST", "/api/predict", b"x" * (MAX_BODY + 1))
    assert got == 413 and "limit" in answer["error"]
    # a client that only announces a huge body is answered at once, too
    sock = socket.create_connection(("127.0.0.1", server), timeout=10)
    sock.sendall(
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server}\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000000\r\n\r\n".encode()
    )
    assert sock.recv(100).startswith(b"HTTP/1.0 413")
    sock.close()


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/nope", 404),
        ("POST", "/nope", 404),
        ("GET", "/static/../serve.py", 404),
        ("GET", "/static/nothing.js", 404),
        ("GET", "/api/predict", 405),
        ("POST", "/api/models", 405),
        ("DELETE", "/api/predict", 405),
        ("PUT", "/", 405),
        ("POST", "/", 405),
        ("GET", "/", 200),
        ("GET", "/static/app.js", 200),
        ("GET", "/static/style.css", 200),
    ],
)
def test_paths_and_methods(server, method, path, status):
    got, _ = request(server, method, path, b"{}" if method in ("POST", "PUT") else None)
    assert got == status


def test_a_stalled_client_does_not_stall_the_server(server):
    sock = socket.create_connection(("127.0.0.1", server), timeout=10)
    sock.sendall(
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server}\r\nContent-Type: application/json\r\n"
        "Content-Length: 5000\r\n\r\n{".encode()
    )
    status, _ = request(server, "GET", "/api/models")  # answered while the other waits
    assert status == 200
    sock.close()


@pytest.mark.slow
def test_fifty_concurrent_clients_for_ten_seconds(server):
    """Mixed good and bad requests from 50 threads for 10 s: every answer is the
    expected one, none fails, and the server answers afterwards."""
    stop = time.monotonic() + 10
    pixels = {"pixels": np.random.default_rng(1).uniform(0, 1, 784).tolist()}
    image = {"image": png_data_url(stroke_image()), "model": "sigmoid"}

    def client(k):
        counts = {"ok": 0, "wrong": 0}
        while time.monotonic() < stop:
            body, expected = [(pixels, 200), (image, 200), ({"pixels": [2]}, 400)][k % 3]
            status, _ = request(server, "POST", "/api/predict", body)
            counts["ok" if status == expected else "wrong"] += 1
        return counts

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(client, range(50)))
    total = sum(r["ok"] for r in results)
    assert sum(r["wrong"] for r in results) == 0 and total > 500, (total, results)
    assert request(server, "GET", "/api/models")[0] == 200
    print(f"load test: {total} requests in 10 s from 50 clients, none failed")


def _start_cli(*args, env=None):
    import os
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "mlp_lib", "serve", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, **(env or {})),
    )
    line = process.stdout.readline()
    return process, line


def test_the_cli_serves_checkpoints_and_warns_off_loopback(tmp_path):
    from mlp_lib.io.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "tiny.npz", MLP([784, 8, 10], seed=0))
    process, line = _start_cli(tmp_path / "tiny.npz", "--port", "0", "--host", "0.0.0.0")
    try:
        assert line.startswith("serving http://0.0.0.0:"), line
        url = line.split()[1]  # http://0.0.0.0:PORT/?token=TOKEN
        port, token = int(url.split(":")[2].split("/")[0]), url.split("?token=")[1]
        assert len(token) >= 16
        status, answer = request(port, "GET", "/api/models")
        assert status == 403 and "token" in answer["error"]
        headers = {"Authorization": f"token {token}"}
        status, answer = request(port, "GET", "/api/models", headers=headers)
        assert status == 200 and [m["name"] for m in answer["models"]] == ["tiny"]
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "warning: serving on 0.0.0.0" in err


def test_the_cli_refuses_a_bad_checkpoint_before_serving(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    process, line = _start_cli(tmp_path / "bad.npz", "--port", "0")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2 and line == "" and err.startswith("error: ")


def test_default_models_come_from_the_cache_when_present(tmp_path):
    """With every default model cached, nothing is trained and all are ready."""
    from mlp_lib.io.checkpoint import save_checkpoint
    from mlp_lib.apps.models import DEFAULT_MODELS, load_defaults

    for k, name in enumerate(DEFAULT_MODELS):
        save_checkpoint(tmp_path / f"{name}.npz", MLP([784, 8 + k, 10], seed=k))
    store, said = ModelStore(), []
    load_defaults(store, tmp_path, announce=said.append)
    listing = store.listing()
    assert [m["name"] for m in listing] == list(DEFAULT_MODELS) and said == []
    assert all(m["ready"] and m["error"] is None for m in listing)
    assert [m["layer_sizes"][1] for m in listing] == [8, 9, 10]


def test_each_default_model_is_listed_with_its_own_description_layers_and_accuracy(tmp_path):
    """What /api/models says of each default model is what its checkpoint and cache
    record hold (every model once had the last model's description)."""
    from mlp_lib.io.checkpoint import load_checkpoint, save_checkpoint
    from mlp_lib.apps.models import DEFAULT_MODELS, load_defaults

    for k, name in enumerate(DEFAULT_MODELS):
        save_checkpoint(tmp_path / f"{name}.npz", MLP([784, 8 + k, 10], seed=k))
        record = {"model": name, "test_accuracy": 0.9 + k / 100}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    store = ModelStore()
    load_defaults(store, tmp_path, announce=lambda message: None)
    httpd = make_server(store, port=0)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        status, answer = request(httpd.server_port, "GET", "/api/models")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert status == 200
    for listed in answer["models"]:
        name = listed["name"]
        model, _ = load_checkpoint(tmp_path / f"{name}.npz")
        record = json.loads((tmp_path / f"{name}.json").read_text())
        assert listed["description"] == DEFAULT_MODELS[name][0]
        assert listed["layer_sizes"] == model.layer_sizes and listed["activation"] == "relu"
        assert listed["test_accuracy"] == record["test_accuracy"]
        assert listed["state"] == "ready" and listed["progress"] is None
    assert len({m["description"] for m in answer["models"]}) == len(DEFAULT_MODELS)


def test_a_checkpoint_is_listed_with_its_measured_test_accuracy(mnist_test):
    from mlp_lib import evaluate

    model = MLP([784, 16, 10], "relu", "he", seed=3)
    store = ModelStore()
    store.add("mine", model, "checkpoint mine.npz")
    (listed,) = store.listing()
    assert listed["test_accuracy"] == evaluate(model, *mnist_test)[1]


@pytest.mark.slow
def test_a_default_model_in_training_shows_its_progress_then_its_accuracy(tmp_path, monkeypatch):
    import mlp_lib.apps.models as models

    monkeypatch.setattr(
        models,
        "DEFAULT_MODELS",
        {
            "small": (
                "a short run of the report's best row",
                ("row", "relu-he-const", {"n_train": 20000, "epochs": 1}),
            )
        },
    )
    store = ModelStore()
    loader = threading.Thread(
        target=models.load_defaults,
        args=(store, tmp_path),
        kwargs={"announce": lambda message: None},
    )
    loader.start()
    seen = []
    while loader.is_alive():
        for listed in store.listing():  # (empty until the loader announces the model)
            seen.append((listed["state"], listed["progress"]))
        time.sleep(0.05)
    loader.join()
    progress = [p for state, p in seen if state == "training" and p is not None]
    assert progress and progress == sorted(progress) and any(0 < p < 1 for p in progress)
    (done,) = store.listing()
    record = json.loads((tmp_path / "small.json").read_text())
    assert done["state"] == "ready" and done["test_accuracy"] == record["test_accuracy"] > 0.9
