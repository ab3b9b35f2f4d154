"""``python3 tasks.py lab``: JupyterLab on working copies of the notebooks, with a
kernel that has the project, talking over IPC (no unencrypted TCP), as root too."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    token = uuid.uuid4().hex
    port = _free_port()
    log = tmp_path_factory.mktemp("lab") / "lab.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(log.parent / "runtime")}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tasks.py"),
                "lab",
                "--no-browser",
                f"--port={port}",
                "--ip=127.0.0.1",
                f"--IdentityProvider.token={token}",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: the teardown stops all of it
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"tasks.py lab exited {server.returncode}:\n{log.read_text()}")
            time.sleep(0.5)
    else:
        os.killpg(server.pid, signal.SIGKILL)
        pytest.fail(f"JupyterLab did not answer:\n{log.read_text()}")
    yield base, token, log
    os.killpg(server.pid, signal.SIGTERM)  # tasks.py and the jupyter-lab it started
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def _api(base, token, path, method="GET", body=None):
    request = Request(
        f"{base}{path}?token={token}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def test_lab_serves_working_copies_of_every_notebook_outside_git(lab):
    base, token, _ = lab
    listing = _api(base, token, "/api/contents/lab")
    names = sorted(item["name"] for item in listing["content"])
    committed = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert names == committed
    ignored = subprocess.run(["git", "check-ignore", "-q", "lab/" + names[0]], cwd=ROOT)
    assert ignored.returncode == 0
    assert _api(base, token, "/api/kernelspecs")["default"] == "python3"


def test_the_lab_kernel_has_the_project_and_talks_over_ipc(lab):
    import websocket

    base, token, log = lab
    kernel = _api(base, token, "/api/kernels", "POST", {"name": "python3"})
    ws = websocket.create_connection(
        f"ws://{base[7:]}/api/kernels/{kernel['id']}/channels?token={token}", timeout=60
    )
    msg_id = uuid.uuid4().hex
    code = "import sys, mlp_lib; print(sys.prefix, mlp_lib.__file__)"
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
    )
    printed, status = "", None
    deadline = time.monotonic() + 60
    while status is None and time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream":
            printed += message["content"]["text"]
        elif message["msg_type"] == "execute_reply":
            status = message["content"]["status"]
    ws.close()
    _api(base, token, f"/api/kernels/{kernel['id']}", "DELETE")
    assert status == "ok", printed
    prefix, module = printed.split()
    assert Path(prefix).resolve() == (ROOT / ".venv").resolve()
    assert Path(module).resolve() == (ROOT / "mlp_lib" / "__init__.py").resolve()
    text = log.read_text()
    assert "without encryption" not in text and "Kernel started" in text
    assert (os.geteuid() != 0) or "--allow-root" in " ".join(
        open(f"/proc/{pid}/cmdline").read().replace("\0", " ")
        for pid in os.listdir("/proc")
        if pid.isdigit() and "jupyter" in _cmdline(pid) and "lab" in _cmdline(pid)
    )


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline").read()
    except OSError:
        return ""
