"""``mlp-lib serve``: a local page to draw a digit and watch every layer.

The page (``mlp_lib/apps/static/``: plain HTML, CSS and JavaScript, no network)
sends what is drawn to a small JSON API served by the standard library's
``ThreadingHTTPServer``:

``GET /api/models``
    ``{"models": [{"name", "description", "layer_sizes", "activation",
    "state", "ready", "error", "progress", "test_accuracy", "dead"}]}``:
    ``state`` is ``queued``, ``training``, ``ready`` or ``failed``;
    ``progress`` the fraction of a default model's training done (while it
    trains); ``test_accuracy`` on the 10,000 test images (from the cache's
    record for a default model, measured at start for a checkpoint; ``null``
    without the data); ``dead`` lists, per hidden layer, the units that are
    zero on every one of 2,000 test images (ReLU only; ``null`` otherwise or
    without the data).
``POST /api/predict``
    ``{"pixels": [784 numbers in 0..1]}`` (already prepared like MNIST) or
    ``{"image": "data:image/png;base64,..."}`` (raw; prepared here by
    ``data.image_to_mnist``, the function ``predict`` uses), and optionally
    ``"model"``. Answers ``{"model", "label", "probabilities" (10), "input"
    (784), "activations" (one list per hidden layer), "first_layer" (the most
    active units of layer 1: unit, activation and its 784 weights)}``.

``"run": ID`` instead of ``"model"`` answers with a playground run's weights
as they are at that moment.

The playground (``/playground``; its runs: ``mlp_lib.apps.runs``):

``GET /api/presets``
    The report's rows and notebook 05's rungs, and ``runs.LIMITS``.
``POST /api/runs``, ``GET /api/runs``, ``GET /api/runs/ID``
    Start a run (201), list them, one run (``Run.as_dict``).
``GET /api/runs/ID/events``
    Server-Sent Events: the run's history, then each event as it comes,
    until the run ends (``block``, ``eval``, ``state``, ``queue``, ``done``).
``POST /api/runs/ID/pause`` | ``resume`` | ``step`` | ``cancel``
    200, or 409 when the run's state does not allow it.

Bad input gets ``{"error": "..."}`` with 400 (malformed, wrong length,
NaN/inf, out of range, undecodable or oversized image, unknown model, a bad
setting: then also ``"field"``), 413 (body over 1 MB), 404 (unknown path or
run), 405 (wrong method), 409 (a run's state), 429 (queue full) or 503 (a
default model still training). The server binds 127.0.0.1 unless told otherwise,
and answers its own page only (``guard``: 403 for another site's ``Host`` or
``Origin``, 415 for a POST body not declared ``application/json``; a token
off loopback).
"""

from __future__ import annotations

import base64
import binascii
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from ..io.checkpoint import load_checkpoint
from ..io.data import DataError, image_to_mnist
from .guard import LOOPBACK, Guard
from ..io.project import cache_dir
from .models import ApiError, ModelStore, load_defaults
from .predictions import describe_prediction
from .run_settings import LIMITS, SettingsError, presets
from .runs import RunError, Runs

__all__ = [
    "MAX_BODY",
    "ModelStore",
    "make_server",
    "predict_json",
    "serve",
]

STATIC = Path(__file__).parent / "static"
_STATIC_FILES = {p.name: p for p in STATIC.iterdir() if p.is_file()}  # by name: no ../
MAX_BODY = 1_000_000  # bytes of a request body
_DRAIN_LIMIT = 8 * MAX_BODY  # a larger body is not even read before the 413
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _reject_constant(token):
    raise ValueError(f"{token} is not a number JSON allows")


def _pixels_from(request):
    """The 784 prepared pixels of a predict request, or ApiError(400)."""
    if "pixels" in request and "image" in request:
        raise ApiError(400, 'give "pixels" or "image", not both')
    if "pixels" in request:
        pixels = request["pixels"]
        if not isinstance(pixels, list) or len(pixels) != 784:
            raise ApiError(
                400,
                f'"pixels" must be a list of 784 numbers, got '
                f"{len(pixels) if isinstance(pixels, list) else type(pixels).__name__}",
            )
        if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in pixels):
            raise ApiError(400, '"pixels" must hold numbers only')
        values = np.array(pixels, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ApiError(400, '"pixels" must be finite numbers in [0, 1]')
        return values
    if "image" in request:
        image = request["image"]
        if (
            not isinstance(image, str)
            or not image.startswith("data:image/")
            or ";base64," not in image
        ):
            raise ApiError(400, '"image" must be a data URL: data:image/png;base64,...')
        try:
            raw = base64.b64decode(image.split(";base64,", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, '"image" is not valid base64') from None
        try:
            return image_to_mnist(raw, name="the image")
        except DataError as exc:
            raise ApiError(400, str(exc)) from None
    raise ApiError(400, 'a predict request needs "pixels" (784 numbers) or "image" (a data URL)')


def _json_object(body):
    """A request body (bytes) as a dict, or ApiError(400)."""
    try:
        request = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"malformed JSON ({exc})") from None
    if not isinstance(request, dict):
        raise ApiError(400, "the body must be a JSON object")
    return request


def predict_json(store, body, runs=None):
    """Answer a ``POST /api/predict`` body (bytes): the response dict, or
    ApiError / RunError. ``"run": ID`` predicts with a playground run's weights
    as they are at this moment (mid-training too)."""
    request = _json_object(body)
    unknown = set(request) - {"pixels", "image", "model", "run"}
    if unknown:
        raise ApiError(400, f"unknown keys: {', '.join(sorted(unknown))}")
    for key in ("model", "run"):
        if request.get(key) is not None and not isinstance(request[key], str):
            raise ApiError(400, f'"{key}" must be a string')
    if request.get("run") is not None:
        if request.get("model") is not None:
            raise ApiError(400, 'give "model" or "run", not both')
        x = _pixels_from(request)
        if runs is None:
            raise ApiError(404, "this server has no playground runs")
        return runs.predict(request["run"], x)
    name, model = store.get(request.get("model"))
    return describe_prediction(name, model, _pixels_from(request))


class _Handler(BaseHTTPRequestHandler):
    server_version = "mlp_lib"
    timeout = 15  # a client that stalls mid-request (or stops reading a stream) is dropped
    routes = {
        "/api/models": "GET",
        "/api/predict": "POST",
        "/api/presets": "GET",
        "/api/runs": "GET, POST",
    }

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, TimeoutError):  # a client that vanished or stalled
            self.close_connection = True

    def log_message(self, format, *args):  # quiet unless --verbose
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status, body, content_type="application/json", extra=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers(extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common_headers(self, extra=()):
        cookie = self.server.guard.cookie_for(self.path)
        if cookie is not None:  # a token given in the address: kept for the page's requests
            self.send_header("Set-Cookie", cookie)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()

    def _error(self, status, message, extra=(), **fields):
        self._send(status, {"error": message, **fields}, extra=extra)

    def _allowed(self, path):
        """The methods ``path`` takes, or None for a path that does not exist."""
        if path in self.routes:
            return self.routes[path]
        if _static_file(path) is not None:
            return "GET, HEAD"
        parts = path.split("/")  # /api/runs/ID[/what]
        if len(parts) == 4 and path.startswith("/api/runs/"):
            return "GET"
        if len(parts) == 5 and path.startswith("/api/runs/"):
            return "GET" if parts[4] == "events" else "POST" if parts[4] in _COMMANDS else None
        return None

    def _refuse(self, path):
        """405 (with ``Allow``) for a known path asked with the wrong method, else 404."""
        allowed = self._allowed(path)
        if allowed is None:
            return self._error(404, f"no such path: {path}")
        self._error(405, f"{path} takes {allowed}", extra=[("Allow", allowed)])

    def _refused_by_guard(self):
        """Answer 403 or 415 if the guard refuses this request (``guard``); True then."""
        refusal = self.server.guard.refusal(self.command, self.path, self.headers)
        if refusal is None:
            return False
        if self.command == "POST":
            self.close_connection = True  # its body is not read
        self._error(*refusal)
        return True

    def do_GET(self):
        if self._refused_by_guard():
            return
        path = self.path.split("?", 1)[0]
        runs = self.server.runs
        try:
            if path == "/api/models":
                return self._send(200, {"models": self.server.store.listing()})
            if path == "/api/presets":
                return self._send(200, {"presets": presets(), "limits": LIMITS})
            if path == "/api/runs":
                return self._send(
                    200, {"runs": runs.listing(), "limits": LIMITS, "workers": runs.workers}
                )
            if self._allowed(path) == "GET" and path.startswith("/api/runs/"):
                parts = path.split("/")
                if len(parts) == 5:
                    return self._stream(runs.get(parts[3]))
                return self._send(200, runs.describe(parts[3]))
        except RunError as exc:
            return self._error(exc.status, str(exc))
        target = _static_file(path)
        if target is not None:
            self._send(
                200,
                target.read_bytes(),
                _CONTENT_TYPES.get(target.suffix, "application/octet-stream"),
            )
        else:
            self._refuse(path)

    def do_HEAD(self):
        if self._refused_by_guard():
            return
        path = self.path.split("?", 1)[0]
        if path.startswith("/api/runs/") and path.endswith("/events"):
            return self._refuse(path)  # a stream has no head
        self.do_GET()

    def _stream(self, run):
        """Server-Sent Events: the run's history first, then each event as it
        comes, until the run ends, the viewer leaves or the server stops."""
        try:
            last = int(self.headers.get("Last-Event-ID", "-1"))
        except ValueError:
            last = -1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self._common_headers()
        self.wfile.write(b"retry: 2000\n\n")
        self.wfile.flush()
        while not self.server.stopping:
            events, ended = run.events_after(last, timeout=_KEEPALIVE)
            if events:
                chunks = [
                    f"id: {e.id}\nevent: {e.type}\ndata: {json.dumps(e.data)}\n\n" for e in events
                ]
                self.wfile.write("".join(chunks).encode())
                last = events[-1].id
            elif not ended:
                self.wfile.write(b": still here\n\n")  # finds a viewer that has gone
            self.wfile.flush()
            if ended and not events:
                break
            time.sleep(_STREAM_PAUSE)  # gather what comes meanwhile into one write
        self.close_connection = True

    def _body(self):
        """The request body, or None once an error has been answered."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            return self._error(411, "a Content-Length header is required")
        if length > MAX_BODY:
            self.close_connection = True
            if length <= _DRAIN_LIMIT:  # read and drop it, so the client sees the answer
                left = length
                while left > 0 and (chunk := self.rfile.read(min(65536, left))):
                    left -= len(chunk)
            return self._error(413, f"the body is {length:,} bytes; the limit is {MAX_BODY:,}")
        if length < 0:
            self.close_connection = True
            return self._error(400, "a negative Content-Length")
        body = self.rfile.read(length)
        if len(body) < length:  # the client hung up mid-body: nobody to answer
            self.close_connection = True
            return None
        return body

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        allowed = self._allowed(path) or ""
        if "POST" not in allowed:
            return self._refuse(path)
        if self._refused_by_guard():
            return
        body = self._body()
        if body is None:
            return
        runs = self.server.runs
        try:
            if path == "/api/predict":
                return self._send(200, predict_json(self.server.store, body, runs))
            if path == "/api/runs":
                return self._send(201, runs.create(_json_object(body)))
            parts = path.split("/")
            if body.strip() not in (b"", b"{}"):
                raise ApiError(400, f"{path} takes no body (or an empty JSON object)")
            self._send(200, runs.command(parts[3], parts[4]))
        except SettingsError as exc:
            self._error(400, str(exc), field=exc.field)
        except (ApiError, RunError) as exc:
            self._error(exc.status, str(exc))

    def _other_method(self):
        if not self._refused_by_guard():
            self._refuse(self.path.split("?", 1)[0])

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method


_COMMANDS = ("pause", "resume", "step", "cancel")
_STREAM_PAUSE = 0.05  # seconds between two writes to one viewer
_KEEPALIVE = 10  # seconds of silence before a stream sends a comment (finds viewers gone)


_PAGES = {"/": "index.html", "/index.html": "index.html", "/playground": "playground.html"}


def _is_page(path):
    return path in _PAGES or path.startswith("/static/")


def _static_file(path):
    """The file of ``mlp_lib/apps/static/`` that ``path`` names (``/`` is the page), or None."""
    if not _is_page(path):
        return None
    return _STATIC_FILES.get(_PAGES.get(path) or path[len("/static/") :])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def make_server(store, host="127.0.0.1", port=8000, verbose=False, runs=None, token=None):
    """A server bound to ``host:port`` (port 0: any free one); not yet serving.
    ``runs`` holds the playground's runs (default: a new ``Runs``); ``token``:
    see ``guard`` (one is made for an address other than loopback)."""
    server = _Server((host, port), _Handler)
    server.guard = Guard.for_address(host, server.server_port, token)
    server.store, server.verbose = store, verbose
    server.runs = Runs() if runs is None else runs
    server.stopping = False
    return server


def serve(
    checkpoints=(), host="127.0.0.1", port=8000, cache=None, verbose=False, ready=None, token=None
):
    """Serve the page until Ctrl-C. With no ``checkpoints``, the default models
    come from ``cache`` (trained there on first use, in the background: the
    page answers as soon as the first is ready). ``token``: see ``guard``."""
    store = ModelStore()
    for path in checkpoints:
        store.add(Path(path).stem, load_checkpoint(path)[0], f"checkpoint {path}")
    server = make_server(store, host, port, verbose, token=token)
    if host not in LOOPBACK:
        print(
            f"warning: serving on {host}: anyone who can reach this machine and has the "
            f"token can use the page and the API (the default, 127.0.0.1, is reachable "
            f"from this machine only)",
            file=sys.stderr,
        )
    url = server.guard.url(host, server.server_port)
    print(f"serving {url}  (Ctrl-C stops)", flush=True)
    page, _, query = url.partition("?")
    print(
        f"playground: {page}playground{'?' + query if query else ''}  (train the report's rows live)",
        flush=True,
    )
    if not checkpoints:

        def announce(message):
            print(f"[serve] {message}", flush=True)

        threading.Thread(
            target=load_defaults, args=(store, Path(cache or cache_dir()), announce), daemon=True
        ).start()
    if ready is not None:
        ready(server)
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and SIGTERM stop the server and its runs, even when started from a
        # shell that ignores SIGINT for background jobs (Python then keeps it ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.stopping = True
        server.runs.close()
        server.server_close()
    return 0


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt
