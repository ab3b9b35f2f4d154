"""The `serve` page in a real browser (Debian's chromium, driven by selenium).

A person's strokes are replayed as pointer events on the drawing pad; the test
reads what the page shows, as a person would, and saves screenshots to
``test-artifacts/``. Without chromium the tests skip, except where
``MLP_LIB_REQUIRE_BROWSER=1`` (``.ci/run`` sets it after installing chromium):
there a missing browser fails.
"""

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from mlp_lib.io.checkpoint import load_checkpoint
from mlp_lib.study.notebook import NOTEBOOKS, REPORT_SECTIONS
from mlp_lib.apps.serve import ModelStore, make_server

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.slow


def _require_browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing or not shutil.which("true"):
        if os.environ.get("MLP_LIB_REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"MLP_LIB_REQUIRE_BROWSER=1 but {missing} missing: apt-get install "
                f"chromium chromium-driver"
            )
        pytest.skip(f"no browser here ({', '.join(missing)})")
    return (
        pytest.importorskip("selenium")
        if os.environ.get("MLP_LIB_REQUIRE_BROWSER") != "1"
        else __import__("selenium")
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two checkpoints as the CLI writes them: the report's ReLU net after one
    per-sample epoch (about 96%) and a one-hidden-layer sigmoid net."""
    from mlp_lib.apps.cli import main

    folder = tmp_path_factory.mktemp("models")
    assert main(["train", "--epochs", "1", "--quiet", "-o", str(folder / "relu.npz")]) == 0
    assert (
        main(
            [
                "train",
                "--activation",
                "sigmoid",
                "--init",
                "normal",
                "--layers",
                "784",
                "64",
                "10",
                "--batch-size",
                "32",
                "--schedule",
                "0.5",
                "--epochs",
                "2",
                "--quiet",
                "-o",
                str(folder / "sigmoid.npz"),
            ]
        )
        == 0
    )
    return folder


@pytest.fixture(scope="module")
def page(trained):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    store = ModelStore()
    for name in ("relu", "sigmoid"):
        store.add(name, load_checkpoint(trained / f"{name}.npz")[0], f"test {name}")
    store.expect("still-training", "a default model being trained")
    store.training("still-training", type("Shared", (), {"value": 0.4})())
    store.expect("queued", "a default model waiting its turn")
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = trained / "profile"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1200,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver, f"http://127.0.0.1:{server.server_port}/"
    driver.quit()
    server.shutdown()
    server.server_close()


def _wait(condition, timeout=20, what="the page"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _draw(driver, strokes):
    """Replay strokes (lists of (x, y) in the pad's 0..1 coordinates) as pointer events."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pad = driver.find_element("id", "pad")
    size = pad.size
    actions = ActionBuilder(driver, mouse=PointerInput("mouse", "pen"))
    pointer = actions.pointer_action
    for stroke in strokes:
        for k, (x, y) in enumerate(stroke):
            pointer.move_to(pad, int((x - 0.5) * size["width"]), int((y - 0.5) * size["height"]))
            if k == 0:
                pointer.pointer_down()
        pointer.pointer_up()
    actions.perform()


def _dense(points, steps=12):
    """A stroke through ``points`` with ``steps`` moves between each pair."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        out += [
            (x0 + (x1 - x0) * t / steps, y0 + (y1 - y0) * t / steps) for t in range(1, steps + 1)
        ]
    return out


ONE = [_dense([(0.52, 0.15), (0.50, 0.85)])]
SEVEN = [_dense([(0.25, 0.18), (0.75, 0.18), (0.45, 0.85)])]


def _shown(driver):
    """What the page shows: label, bar count and probabilities, layer panels."""
    return driver.execute_script("""
        return {label: document.getElementById('label').textContent,
                bars: [...document.querySelectorAll('#bars .bar')].map(b => +b.dataset.probability),
                layers: [...document.querySelectorAll('#layers .layer')].map(f => ({
                    units: +f.dataset.units, active: +f.dataset.active,
                    lit: (() => { const c = f.querySelector('canvas');
                                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                                  let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 40;
                                  return n; })()})),
                weights: document.querySelectorAll('#weights canvas').length,
                status: document.getElementById('status').textContent};""")


def _console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.parametrize("digit, strokes", [(1, ONE), (7, SEVEN)])
def test_drawing_a_digit_shows_its_label_bars_layers_and_weights(page, digit, strokes):
    driver, url = page
    driver.get(url)
    _wait(
        lambda: (
            driver.execute_script(
                "return document.querySelectorAll('#model option:not([disabled])').length"
            )
            == 2
        ),
        what="the model list",
    )
    driver.find_element("id", "clear").click()
    _draw(driver, strokes)
    shown = _wait(lambda: (s := _shown(driver))["label"] == str(digit) and s, what=f"a {digit}")
    assert len(shown["bars"]) == 10 and abs(sum(shown["bars"]) - 1) < 1e-3
    assert max(range(10), key=lambda d: shown["bars"][d]) == digit
    assert [layer["units"] for layer in shown["layers"]] == [512, 256, 64]
    assert all(layer["active"] > 0 and layer["lit"] > 0 for layer in shown["layers"])
    assert shown["weights"] == 6
    driver.save_screenshot(str(ARTIFACTS / f"serve-draw-{digit}.png"))
    driver.execute_script("document.getElementById('layers-title').scrollIntoView()")
    driver.save_screenshot(str(ARTIFACTS / f"serve-layers-{digit}.png"))
    assert _console_errors(driver) == []


def test_the_page_shows_each_models_accuracy_and_a_bar_per_model_in_training(page):
    driver, url = page
    driver.get(url)
    _wait(lambda: driver.find_elements("css selector", "#training progress"), what="the bars")
    rows = driver.execute_script("""
        return [...document.querySelectorAll('#training .training-row')].map(r => [
            r.dataset.model, r.querySelector('label').textContent, r.querySelector('progress').value])""")
    assert rows == [
        ["still-training", "still-training: training 40%", 0.4],
        ["queued", "queued: waiting to train", 0],
    ]
    about = driver.find_element("id", "model-about").text
    assert "test relu" in about and "test accuracy 9" in about and "784-512-256-64-10" in about
    driver.save_screenshot(str(ARTIFACTS / "serve-models-training.png"))
    assert _console_errors(driver) == []


def test_switching_to_the_sigmoid_model_redraws_its_one_layer(page):
    from selenium.webdriver.support.ui import Select

    driver, url = page
    driver.get(url)
    _wait(
        lambda: (
            driver.execute_script(
                "return document.querySelectorAll('#model option:not([disabled])').length"
            )
            == 2
        )
    )
    _draw(driver, ONE)
    _wait(lambda: _shown(driver)["label"] == "1", what="a 1")
    Select(driver.find_element("id", "model")).select_by_value("sigmoid")
    shown = _wait(
        lambda: (s := _shown(driver))["layers"] and [x["units"] for x in s["layers"]] == [64] and s,
        what="the sigmoid layers",
    )
    assert shown["layers"][0]["lit"] > 0
    driver.find_element("id", "clear").click()
    assert _shown(driver)["label"] == "–"
    assert _console_errors(driver) == []


def test_phone_width_has_no_sideways_scroll_and_labels_controls(page):
    driver, url = page
    driver.set_window_size(390, 844)
    try:
        driver.get(url)
        _wait(
            lambda: (
                driver.execute_script(
                    "return document.querySelectorAll('#model option:not([disabled])').length"
                )
                == 2
            )
        )
        _draw(driver, SEVEN)
        _wait(lambda: _shown(driver)["label"] not in ("–", ""), what="an answer")
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        labelled = driver.execute_script("""
            return [...document.querySelectorAll('canvas, select, button, input')].every(e =>
                e.getAttribute('aria-label') || e.labels && e.labels.length ||
                e.textContent.trim())""")
        assert labelled
        driver.save_screenshot(str(ARTIFACTS / "serve-phone.png"))
    finally:
        driver.set_window_size(1200, 1000)
    assert _console_errors(driver) == []


def _requests_elsewhere(driver):
    """URLs the page asked for from any host but this machine (from the performance log)."""
    import json

    asked = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith(("http:", "https:", "ws:", "wss:")) and not url.startswith(
                ("http://127.0.0.1", "http://localhost")
            ):
                asked.add(url)
    return asked


@pytest.fixture(scope="module")
def site(page):
    """The site as ``python3 tasks.py site`` builds it, served from site/ on localhost."""
    import functools
    import http.server
    import subprocess
    import sys

    built = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "site.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ROOT / "site"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pages = ["index.html", "experiments.html"] + [
        f"notebooks/{nb.file[:-6]}.html" for nb in NOTEBOOKS.values()
    ]
    pages += [f"api/{layer}.html" for layer in ("core", "io", "engines", "study")]
    yield f"http://127.0.0.1:{server.server_port}/", pages
    server.shutdown()
    server.server_close()


def _typeset(driver):
    """(maths elements, those typeset by MathJax) once MathJax has finished, if it has."""
    return driver.execute_script("""
        const maths = [...document.querySelectorAll('.math')];
        return [maths.length, maths.filter(m => m.querySelector('mjx-container') ||
                                               m.tagName === 'MJX-CONTAINER').length];""")


def test_every_site_page_typesets_its_equations_offline_with_working_images_and_links(page, site):
    from urllib.error import HTTPError
    from urllib.request import urlopen

    driver, _ = page
    base, pages = site
    checked_images = checked_links = typeset_pages = 0
    for name in pages:
        driver.get(base + name)
        maths, _ = _typeset(driver)
        if maths:
            _wait(lambda: (t := _typeset(driver))[0] == t[1], timeout=30, what=f"MathJax on {name}")
            typeset_pages += 1
        # the prose, not code: notebook 01 shows library code whose docstrings hold TeX
        text = driver.execute_script(
            "const body = document.body.cloneNode(true);"
            "body.querySelectorAll('pre, code').forEach(e => e.remove());"
            "return body.textContent"
        )
        for tex in ("\\frac{\\partial", "\\mathcal", "$$", "\\("):
            assert tex not in text, (name, tex, "shown as text, not typeset")
        images = driver.execute_script(
            "return [...document.images].map(i => [i.src.slice(0, 60), i.complete && i.naturalWidth > 0])"
        )
        broken = [src for src, ok in images if not ok]
        assert not broken, (name, broken)
        links = driver.execute_script(
            "return [...document.querySelectorAll('a[href]')].map(a => a.href)"
        )
        for link in {link.split("#")[0] for link in links if link.startswith(base)}:
            try:
                assert urlopen(link, timeout=10).status == 200, (name, link)
            except HTTPError as error:
                raise AssertionError(f"{name} links to {link}: {error}") from None
            checked_links += 1
        checked_images += len(images)
        assert _requests_elsewhere(driver) == set(), name
        assert _console_errors(driver) == [], name
    assert typeset_pages >= 4 and checked_images >= 10 and checked_links >= 8
    driver.get(base + "index.html")
    driver.save_screenshot(str(ARTIFACTS / "site-index.png"))
    driver.get(base + "notebooks/01_four_layer_sigmoid.html")
    _wait(lambda: (t := _typeset(driver))[0] == t[1], timeout=30, what="MathJax")
    driver.execute_script(
        "[...document.querySelectorAll('h2')].find(h => h.textContent.includes('Backprop'))"
        ".scrollIntoView()"
    )
    driver.save_screenshot(str(ARTIFACTS / "site-01-backpropagation.png"))


def test_notebook_01_on_the_site_shows_the_backward_code_and_keeps_solutions_behind_a_click(
    page, site
):
    driver, _ = page
    base, _ = site
    driver.get(base + "notebooks/01_four_layer_sigmoid.html")

    def shown():
        return driver.execute_script("return document.body.innerText")

    assert "def delta_below(self, layer, delta, cache)" in shown()  # the library's own code
    assert "beside_committed" not in shown()  # a cell tagged remove-cell
    solutions = driver.find_elements("css selector", "details.hide.above-input")
    assert len(solutions) >= 4 and not any(d.get_attribute("open") for d in solutions)
    assert "return a * (1 - a)" not in shown() and "correct: σ'(z) = a (1 - a)" in shown()
    solutions[0].find_element("css selector", "summary").click()
    _wait(lambda: "return a * (1 - a)" in shown(), timeout=5, what="the opened solution")
    driver.save_screenshot(str(ARTIFACTS / "site-01-solution-open.png"))


def _first_markdown(notebook):
    import json

    cells = json.loads(notebook.path.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_the_site_labels_each_notebook_with_the_report_sections_the_notebook_names(page, site):
    driver, _ = page
    base, _ = site
    driver.get(base + "index.html")
    rows = driver.execute_script(
        "return [...document.querySelectorAll('table')[0].querySelectorAll('tbody tr')]"
        ".map(r => [...r.cells].map(c => c.innerText))"
    )
    assert [row[0] for row in rows] == list(NOTEBOOKS)
    for (number, _title, report), nb in zip(rows, NOTEBOOKS.values()):
        assert nb.report in report, (number, report)
        assert nb.report in _first_markdown(nb) or not nb.sections, (number, nb.report)
        for label in nb.sections:  # the report's own heading for each section
            assert REPORT_SECTIONS[label].split(" (")[0] in report, (number, label)
        driver.get(base + f"notebooks/{nb.file[:-6]}.html")
        banner = driver.find_element("css selector", "section section p, article p").text
        for label in nb.sections:
            assert label in driver.execute_script("return document.body.innerText"), label
        assert "The report" in banner or "report" in banner.lower(), banner
        driver.get(base + "index.html")


# ---- the playground (/playground): live runs in worker processes


def _playground(driver):
    """What the playground shows: each run's line, each chart's points per line."""
    return driver.execute_script("""
        const points = id => (document.getElementById(id).dataset.points || '')
            .split(',').filter(Boolean).map(Number);
        return {runs: [...document.querySelectorAll('#runs li')].map(li => ({
                    id: li.dataset.run, state: li.dataset.state,
                    text: li.querySelector('.state').textContent,
                    step: +li.querySelector('.state').textContent.match(/step ([\\d,]+)/)[1]
                        .replace(/,/g, '')})),
                loss: points('loss-chart'), accuracy: points('acc-chart'),
                grad: points('grad-chart'), active: points('active-chart'),
                weights: document.querySelectorAll('#weights canvas').length,
                label: document.getElementById('label').textContent,
                padStatus: document.getElementById('pad-status').textContent,
                formStatus: document.getElementById('form-status').textContent};""")


def _whole_page_screenshot(driver, name):
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, height + 120)
    try:
        time.sleep(0.3)
        driver.save_screenshot(str(ARTIFACTS / name))
    finally:
        driver.set_window_size(1200, 1000)


def _click_run(driver, run_id, what):
    driver.find_element(
        "css selector", f'#runs li[data-run="{run_id}"] button[data-do="{what}"]'
    ).click()


def test_the_playground_trains_pauses_resumes_compares_and_answers_a_drawing(page):
    """A link with settings opens them; Train starts the run and its loss curve grows;
    Pause stops the step count, Resume moves it on; a second setting draws its own
    curve beside the first; the pad answers with the selected run's weights mid-run;
    no console error."""
    from selenium.webdriver.support.ui import Select

    driver, url = page
    driver.get(url + "playground?row=relu-he-const&seed=1&epochs=2")
    _wait(lambda: driver.find_element("id", "preset").get_attribute("value") == "row:relu-he-const")
    assert driver.find_element("id", "seed").get_attribute("value") == "1"
    assert driver.find_element("id", "epochs").get_attribute("value") == "2"
    driver.find_element("id", "train").click()
    shown = _wait(lambda: (s := _playground(driver))["loss"] and s["loss"][0] >= 5 and s,
                  timeout=60, what="a growing loss curve")  # fmt: skip
    first = shown["runs"][0]["id"]
    assert shown["accuracy"][0] >= 1 and len(shown["grad"]) == 4 and len(shown["active"]) == 3
    assert shown["weights"] == 8
    _click_run(driver, first, "pause")
    paused = _wait(lambda: (s := _playground(driver))["runs"][0]["state"] == "paused" and s,
                   what="the run paused")  # fmt: skip
    time.sleep(1.0)
    assert _playground(driver)["runs"][0]["step"] == paused["runs"][0]["step"]
    driver.find_element("id", "clear").click()
    _draw(driver, SEVEN)
    answered = _wait(lambda: (s := _playground(driver))["label"] in "0123456789" and s,
                     what="an answer from the paused run")  # fmt: skip
    assert f"{first} at step" in answered["padStatus"]
    _whole_page_screenshot(driver, "playground-paused.png")
    _click_run(driver, first, "resume")
    _wait(lambda: _playground(driver)["runs"][0]["step"] > paused["runs"][0]["step"],
          what="the step count moving again")  # fmt: skip
    Select(driver.find_element("id", "preset")).select_by_value("row:sigmoid-normal")
    _wait(lambda: "row=sigmoid-normal" in driver.current_url, what="the address to follow")
    driver.find_element("id", "train").click()
    both = _wait(lambda: len((s := _playground(driver))["loss"]) == 2 and min(s["loss"]) >= 3 and s,
                 timeout=60, what="two loss curves")  # fmt: skip
    assert len(both["runs"]) == 2 and both["runs"][1]["state"] == "running"
    _wait(lambda: len(driver.find_elements("css selector", "#runs li input:checked")) == 1)
    time.sleep(1.5)
    _whole_page_screenshot(driver, "playground-two-runs.png")
    for run in both["runs"]:
        _click_run(driver, run["id"], "cancel")
    _wait(lambda: all(r["state"] in ("cancelled", "done") for r in _playground(driver)["runs"]),
          timeout=30, what="both runs cancelled")  # fmt: skip
    assert _console_errors(driver) == []


def test_the_playground_names_a_bad_setting_and_fits_a_phone(page):
    driver, url = page
    driver.set_window_size(390, 844)
    try:
        driver.get(url + "playground?layers=512,2000&activation=relu")
        _wait(lambda: driver.find_element("id", "preset").get_attribute("value") == "custom")
        driver.find_element("id", "train").click()
        status = _wait(
            lambda: (s := _playground(driver))["formStatus"].startswith("Not started") and s
        )
        assert "layers" in status["formStatus"] and "1..1024" in status["formStatus"]
        assert driver.find_element("id", "layers").get_attribute("aria-invalid") == "true"
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        driver.save_screenshot(str(ARTIFACTS / "playground-phone.png"))
    finally:
        driver.set_window_size(1200, 1000)
    errors = _console_errors(driver)  # the browser logs the 400 it was answered, and only that
    assert [e["source"] for e in errors] == ["network"] and "/api/runs" in errors[0]["message"]
