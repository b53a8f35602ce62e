"""The operator's page and the API docs in headless Chromium, driven through chromedriver's WebDriver HTTP API (with
httpx, no client library), against the real service on loopback: the page loads with no request leaving for another
host, an image uploaded through its file input shows its verdict and heatmap, a refused write shows the service's
message, a write with the token adds a product, and Swagger UI renders offline and uploads an image with "Try it out".
Chromium and chromedriver come from the Debian packages that scripts/test.sh installs (as for the report's test)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from nipad.serve.app import create_app
from nipad.serve.service import InspectionService
from nipad.serve.settings import ServeSettings

from live import free_port, serving

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--window-size=1280,1600"]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
TOKEN = "browser-write-token-0123456789"


def _binary(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.fail(f"{names[0]} is not installed: run `bash scripts/test.sh`, which installs the Debian packages "
                "chromium and chromium-driver.")


class Browser:
    """One chromedriver session: the few WebDriver commands these tests need."""

    def __init__(self, driver: str, session: str) -> None:
        self.http = httpx.Client(base_url=f"{driver}/session/{session}", timeout=120)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        value = response.json()["value"]
        assert response.status_code == 200, value
        return value

    def open(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css: str | dict[str, str], text: str) -> None:
        """Keys into an element (a CSS selector or an element a script returned); into a file input, local paths
        (one a line) that it uploads."""
        element = self.find(css) if isinstance(css, str) else css[ELEMENT]
        self.call("POST", f"/element/{element}/clear", {})
        self.call("POST", f"/element/{element}/value", {"text": text})

    def click(self, css: str) -> None:
        self.call("POST", f"/element/{self.find(css)}/click", {})

    def wait(self, script: str, what: str, seconds: float = 90) -> Any:
        """The first truthy value of `script`, polled."""
        deadline = time.monotonic() + seconds
        while not (value := self.js(script)):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)
        return value

    def log(self, kind: str) -> list[dict[str, Any]]:
        return self.call("POST", "/se/log", {"type": kind})

    def requested(self) -> list[str]:
        """Every URL the browser asked for since the last call: from Chromium's network events (so failed requests
        too) and the page's resource timing entries, as the page sees them."""
        urls = [json.loads(entry["message"])["message"] for entry in self.log("performance")]
        urls = [m["params"]["request"]["url"] for m in urls if m["method"] == "Network.requestWillBeSent"]
        return urls + self.js("return performance.getEntriesByType('resource').map(e => e.name)")


@pytest.fixture(scope="module")
def service(untrained_onenip_run, tmp_path_factory):
    """The service of a copy of the tiny run, with a write token, on a free loopback port (uvicorn in a thread)."""
    run = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(untrained_onenip_run, run)
    app = create_app(InspectionService(ServeSettings(run_dir=run, threads=1, max_wait_ms=0, write_token=TOKEN)))
    with serving(app) as url:
        yield url


@pytest.fixture
def browser(tmp_path) -> Browser:
    chromium, chromedriver = _binary("chromium", "chromium-browser"), _binary("chromedriver")
    port = free_port()
    log = tmp_path / "chromedriver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen([chromedriver, f"--port={port}"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/status", timeout=2).json()["value"]["ready"]:
                    break
            except (httpx.TransportError, ValueError, KeyError):
                pass
            assert driver.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        capabilities = {"browserName": "chrome", "goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"},
                        "goog:chromeOptions": {"binary": chromium, "args": [
                            *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]}}
        created = httpx.post(f"{base}/session", json={"capabilities": {"alwaysMatch": capabilities}}, timeout=120)
        assert created.status_code == 200, created.text
        session = created.json()["value"]["sessionId"]
        browser = Browser(base, session)
        browser.open("about:blank")
        browser.requested()  # what the browser's start page asked for is no test's
        browser.log("browser")
        yield browser
        httpx.delete(f"{base}/session/{session}", timeout=60)
    finally:
        driver.terminate()
        try:
            driver.wait(timeout=20)
        except subprocess.TimeoutExpired:
            driver.kill()


def _only_from(base: str, urls: list[str]) -> None:
    here = urlsplit(base).netloc
    assert urls, "no request seen: the network log is empty"
    # data:, blob: and chrome:// (the browser's own pages) are not on the network
    others = [url for url in urls if urlsplit(url).scheme in ("http", "https", "ws", "wss", "ftp")
              and urlsplit(url).netloc != here]
    assert not others, f"requests that left the service: {others}"


def _no_console_errors(browser: Browser, allowed: Callable[[str], bool] = lambda _: False) -> None:
    errors = [e["message"] for e in browser.log("browser") if e["level"] == "SEVERE" and not allowed(e["message"])]
    assert not errors, errors


def test_an_uploaded_image_shows_its_verdict_and_heatmap_and_nothing_leaves(service, browser, tiny_mvtec):
    browser.open(f"{service}/")
    classes = httpx.get(f"{service}/classes").json()["classes"]
    browser.wait(f"return document.querySelectorAll('#classes tr[data-class]').length === {len(classes)}",
                 "the products table")
    shown = browser.js("return [...document.querySelectorAll('#classes tr')].map(r => r.cells[0].textContent + '=' + "
                       "r.cells[2].textContent)")
    assert [s.split("=")[0] for s in shown] == [c["name"] for c in classes]
    assert browser.js("return document.getElementById('health').textContent").endswith("ok")

    image = sorted((tiny_mvtec / "stripes/test/blob").glob("*.png"))[0]
    browser.type("#inspect-files", str(image))
    card = browser.wait("const c = document.querySelector('#results .card'); return c && c.dataset.state !== "
                        "'pending' && {state: c.dataset.state, verdict: c.dataset.verdict || null, text: c.innerText,"
                        " file: c.dataset.file}", "the image's verdict")
    assert card["state"] == "done", card["text"]
    assert card["file"] == image.name and card["verdict"] in ("OK", "DEFECT")
    assert card["verdict"] in card["text"] and "score" in card["text"]
    heatmap = browser.wait("const i = document.querySelector('#results .card img.overlay'); return i && i.complete && "
                           "[i.naturalWidth, i.naturalHeight]", "the heatmap to decode")
    assert heatmap == [64, 64]  # the overlay comes at the image's size
    expected = httpx.post(f"{service}/predict", files=[("files", (image.name, image.read_bytes(), "image/png"))])
    assert card["verdict"] == ("DEFECT" if expected.json()["results"][0]["pred_label"] else "OK")

    _only_from(service, browser.requested())
    _no_console_errors(browser)


def test_a_refused_write_is_shown_and_the_token_adds_a_product(service, browser, tiny_mvtec):
    browser.open(f"{service}/")
    browser.wait("return document.querySelectorAll('#classes tr[data-class]').length > 0", "the products table")
    images = sorted((tiny_mvtec / "stripes/train/good").glob("*.png"))[:3]
    browser.type("#prompt-class", "boards")
    browser.type("#prompt-files", "\n".join(str(p) for p in images))
    browser.type("#prompt-token", "not-the-token-0123456789")
    browser.click("#prompt-submit")
    refused = browser.wait("const a = document.querySelector('#prompt-answer .answer.bad'); return a && a.innerText",
                           "the refusal")
    assert refused.startswith("Refused (401): ") and "Authorization: Bearer" in refused
    assert "boards" not in {c["name"] for c in httpx.get(f"{service}/classes").json()["classes"]}

    browser.type("#prompt-token", TOKEN)
    browser.click("#prompt-submit")
    answer = browser.wait("const a = document.querySelector('#prompt-answer .answer'); return a && "
                          "{good: a.classList.contains('good'), text: a.innerText}", "the update's answer", seconds=180)
    assert answer["good"], answer["text"]  # the refusal's answer was replaced when the form was sent again
    assert "Added 1 prompt to “boards”" in answer["text"] and "threshold" in answer["text"]
    browser.wait("return !!document.querySelector('#classes tr[data-class=\"boards\"]')", "the new product listed")
    _only_from(service, browser.requested())
    _no_console_errors(browser, allowed=lambda m: "401" in m)  # the refused write, as Chromium logs it


def test_swagger_ui_renders_offline_and_uploads_an_image(service, browser, tiny_mvtec):
    browser.open(f"{service}/docs")
    browser.wait("return document.querySelectorAll('.opblock').length >= 5", "Swagger UI's operations")
    predict = ("[...document.querySelectorAll('.opblock-post')].find(b => b.querySelector("
               "'.opblock-summary-path').textContent.trim() === '/predict')")
    browser.js(f"{predict}.querySelector('.opblock-summary-control').click()")
    browser.wait(f"return !!{predict}.querySelector('.try-out__btn')", "the Try it out button")
    browser.js(f"{predict}.querySelector('.try-out__btn').click()")
    browser.wait(f"return !!{predict}.querySelector('input[type=file]')", "a file input for the images")
    image = sorted((tiny_mvtec / "dots/test/good").glob("*.png"))[0]
    browser.type(browser.js(f"return {predict}.querySelector('input[type=file]')"), str(image))
    browser.js(f"{predict}.querySelector('.execute').click()")
    answer = browser.wait(f"const r = {predict}.querySelector('.live-responses-table .response .response-col_status');"
                          f" return r && [r.textContent.trim(), {predict}.querySelector('.live-responses-table "
                          f".microlight, .live-responses-table pre').textContent]", "Swagger UI's answer")
    assert answer[0] == "200" and f'"file": "{image.name}"' in answer[1], answer
    _only_from(service, browser.requested())
    _no_console_errors(browser)
