"""The local server answers its own page only (``mlp_lib.apps.guard``): every request a
page of another site could send is refused, over a real socket, and the page's own are
answered. The browser tests (tests/test_browser.py) drive the page itself."""

import http.client
import json
import threading

import pytest

from mlp_lib import MLP
from mlp_lib.apps.guard import COOKIE, Guard
from mlp_lib.apps.serve import ModelStore, make_server

EVIL = "http://evil.example"
PIXELS = json.dumps({"pixels": [0.0] * 784})


@pytest.fixture(scope="module")
def store():
    store = ModelStore()
    store.add("tiny", MLP([784, 8, 10], seed=0), "a tiny model", test_accuracy=0.1)
    return store


def _serve(store, **options):
    server = make_server(store, port=0, **options)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(store):
    server = _serve(store)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def port(server):
    return server.server_port


def send(port, method, path, body=None, host=None, **headers):
    """(status, JSON answer, response headers) of one request; ``host`` replaces the Host
    header http.client sends (127.0.0.1:PORT)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.putrequest(method, path, skip_host=host is not None)
    if host is not None:
        connection.putheader("Host", host)
    data = body.encode() if isinstance(body, str) else body
    for name, value in headers.items():
        connection.putheader(name.replace("_", "-"), value)
    if data is not None:
        connection.putheader("Content-Length", str(len(data)))
    connection.endheaders(data)
    response = connection.getresponse()
    text = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    answer = json.loads(text) if kind.startswith("application/json") and text else text
    return response.status, answer, dict(response.getheaders())


JSON = {"Content_Type": "application/json"}


def test_the_page_and_its_own_requests_are_answered(port):
    own = f"http://127.0.0.1:{port}"
    assert send(port, "GET", "/")[0] == 200
    assert send(port, "GET", "/playground")[0] == 200
    assert send(port, "GET", "/api/models")[0] == 200
    status, answer, _ = send(port, "POST", "/api/predict", PIXELS, Origin=own, **JSON)
    assert status == 200 and answer["model"] == "tiny"
    # the same, named localhost, and from a script (no Origin, no Referer)
    status, _, _ = send(
        port, "POST", "/api/predict", PIXELS, host=f"localhost:{port}",
        Origin=f"http://localhost:{port}", **JSON,
    )  # fmt: skip
    assert status == 200
    assert send(port, "POST", "/api/predict", PIXELS, **JSON)[0] == 200
    assert send(port, "POST", "/api/predict", PIXELS, Referer=f"{own}/playground", **JSON)[0] == 200
    # a bad setting passes the guard and is refused by the settings' own checks
    status, answer, _ = send(port, "POST", "/api/runs", '{"lr": 2}', Origin=own, **JSON)
    assert status == 400 and answer["field"] == "lr"


@pytest.mark.parametrize(
    "what, method, path, body, host, headers, status, words",
    [
        ("a run from another site", "POST", "/api/runs", '{"row": "relu-he"}', None,
         {"Origin": EVIL, **JSON}, 403, "another site (http://evil.example)"),
        ("a run sent as text/plain (a form)", "POST", "/api/runs", '{"row": "relu-he"}', None,
         {"Content_Type": "text/plain"}, 415, "application/json"),
        ("a run with no Content-Type", "POST", "/api/runs", '{"row": "relu-he"}', None,
         {}, 415, "it had no Content-Type"),
        ("a run from another site, as text/plain", "POST", "/api/runs", '{"row": "relu-he"}',
         None, {"Origin": EVIL, "Content_Type": "text/plain"}, 403, "another site"),
        ("a run under another site's name", "POST", "/api/runs", '{"row": "relu-he"}',
         "evil.example:{port}", JSON, 403, "Host 'evil.example:"),
        ("a cancel from another site", "POST", "/api/runs/r1/cancel", "", None,
         {"Origin": EVIL}, 403, "another site"),
        ("a cancel as a form with no body", "POST", "/api/runs/r1/cancel", "", None,
         {"Content_Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ("a predict from another site", "POST", "/api/predict", PIXELS, None,
         {"Origin": EVIL, **JSON}, 403, "another site"),
        ("a predict referred by another site", "POST", "/api/predict", PIXELS, None,
         {"Referer": f"{EVIL}/page.html", **JSON}, 403, "another site"),
        ("a predict from a sandboxed page (Origin null)", "POST", "/api/predict", PIXELS,
         None, {"Origin": "null", **JSON}, 403, "another site (null)"),
        ("the model list under another name (DNS rebinding)", "GET", "/api/models", None,
         "evil.example:{port}", {}, 403, "not this server's address"),
        ("the runs under another name", "GET", "/api/runs", None, "attacker.test:{port}", {},
         403, "not this server's address"),
        ("the page under another name", "GET", "/", None, "evil.example:{port}", {}, 403,
         "open the page at http://localhost:"),
        ("the right name on another port", "GET", "/api/models", None, "127.0.0.1:1", {}, 403,
         "not this server's address"),
        ("no Host at all", "GET", "/api/models", None, "", {}, 403, "Host ''"),
    ],
)  # fmt: skip
def test_requests_another_site_could_send_are_refused(
    port, what, method, path, body, host, headers, status, words
):
    host = None if host is None else host.format(port=port)
    got, answer, _ = send(port, method, path, body, host=host, **headers)
    assert got == status, (what, got, answer)
    assert words in answer["error"], (what, answer)


def test_a_cross_site_preflight_is_not_granted(port):
    status, _, headers = send(
        port, "OPTIONS", "/api/runs", Origin=EVIL, Access_Control_Request_Method="POST",
        Access_Control_Request_Headers="content-type",
    )  # fmt: skip
    assert status == 405
    assert not any(name.lower().startswith("access-control-") for name in headers)


def test_a_refused_request_starts_nothing(server, port):
    send(port, "POST", "/api/runs", '{"row": "relu-he"}', Origin=EVIL, **JSON)
    send(port, "POST", "/api/runs", '{"row": "relu-he"}', Content_Type="text/plain")
    send(port, "POST", "/api/runs", '{"row": "relu-he"}', host="evil.example:1", **JSON)
    assert server.runs.listing() == []


def test_with_a_token_every_request_needs_it(store):
    token = "a-token-of-twenty-chars"
    server = _serve(store, token=token)
    try:
        port = server.server_port
        status, answer, _ = send(port, "GET", "/api/models")
        assert status == 403 and "token" in answer["error"]
        assert send(port, "GET", "/api/models", Authorization="token wrong-token-xxxxxxx")[0] == 403
        assert send(port, "GET", "/api/models", Authorization=f"token {token}")[0] == 200
        # the printed address carries it once; the answer keeps it as a same-site cookie
        status, _, headers = send(port, "GET", f"/?token={token}")
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}={token};") and "SameSite=Strict" in cookie
        assert "HttpOnly" in cookie
        assert send(port, "GET", "/api/runs", Cookie=f"{COOKIE}={token}")[0] == 200
        status, _, _ = send(
            port, "POST", "/api/predict", PIXELS, Cookie=f"{COOKIE}={token}", **JSON
        )
        assert status == 200
        # the token does not open the door to another site's page
        status, _, _ = send(
            port, "POST", "/api/predict", PIXELS, Cookie=f"{COOKIE}={token}", Origin=EVIL, **JSON
        )
        assert status == 403
    finally:
        server.shutdown()
        server.server_close()


def test_an_address_off_loopback_always_gets_a_token():
    guard = Guard.for_address("0.0.0.0", 8000)
    assert guard.token and len(guard.token) >= 16 and not guard.hosts
    assert guard.url("0.0.0.0", 8000) == f"http://0.0.0.0:8000/?token={guard.token}"
    assert Guard.for_address("127.0.0.1", 8000).token is None
    with pytest.raises(ValueError, match="16 characters"):
        Guard.for_address("0.0.0.0", 8000, token="short")
