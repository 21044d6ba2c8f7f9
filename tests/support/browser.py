"""Headless Chromium (Debian's ``chromium``), driven over the DevTools protocol, for tests that
look at TensorBoard's pages as a person would.

:func:`chromium_path` finds the browser, or skips the test with the reason (tests install
nothing; ``.ci/run`` installs Debian's package first).
:class:`Browser` starts it with ``--headless --no-sandbox`` (and the flags that keep it off the
network) on a fresh profile, and stops it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

# Every text node of the page, shadow roots included (TensorBoard's Polymer dashboards keep
# their content in shadow DOM, which a plain DOM dump leaves out).
DEEP_TEXT = """
(() => {
  const out = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) out.push(child.textContent);
      else walk(child);
    }
  };
  walk(document.documentElement);
  return out.join("\\n");
})()
"""

# How many drawn chart lines (SVG paths of class "line" with a path) the page holds.
DRAWN_LINES = """
(() => {
  let count = 0;
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children) {
      if (child.matches("path.line") && (child.getAttribute("d") || "").length > 1) count++;
      walk(child);
    }
  };
  walk(document.documentElement);
  return count;
})()
"""

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


def chromium_path() -> str:
    """Path of Debian's Chromium, or the calling test is skipped, saying why. Tests never
    install system packages: ``.ci/run`` installs Chromium before the suite runs."""
    found = shutil.which("chromium")
    if not found:
        pytest.skip(
            "Chromium is not installed: install Debian's chromium package (apt-get install "
            "chromium, as .ci/run does) to run this check"
        )
    return found


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, executable: str) -> None:
        import websocket  # websocket-client, a test dependency

        self._profile = tempfile.mkdtemp(prefix="gs-chromium-")
        self._process = subprocess.Popen(
            [executable, *_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._next_id = 0
        try:
            port = self._devtools_port()
            page = self._page_target(port)
            self._socket = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True
            )
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float = 30) -> int:
        marker = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self._process.returncode}")
            try:
                with open(marker) as file:
                    return int(file.readline())
            except (OSError, ValueError):
                time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    @staticmethod
    def _page_target(port: int) -> dict:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.loads(r.read()) if t.get("type") == "page"]
            if pages:
                return pages[0]
            time.sleep(0.1)
        raise RuntimeError("chromium has no page")

    def call(self, method: str, **params: object) -> dict:
        """Send one DevTools command; its result (events in between are skipped)."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            answer = json.loads(self._socket.recv())
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def text(self) -> str:
        """Every text on the page, shadow DOM included."""
        return self.evaluate(DEEP_TEXT) or ""

    def wait_for(self, expression: str, ready, what: str, timeout: float = 90) -> object:
        """Evaluate ``expression`` until ``ready(value)`` holds; the value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if ready(value):
                return value
            time.sleep(0.5)
        raise AssertionError(f"{what} never happened on the page; last value: {value!r:.2000}")

    def wait_for_text(self, wanted: str, timeout: float = 90) -> str:
        """Poll the page's text until it contains ``wanted``; the text."""
        return self.wait_for(DEEP_TEXT, lambda text: wanted in (text or ""),
                             f"{wanted!r} appearing", timeout)  # fmt: skip

    def screenshot(self, path: str) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self) -> None:
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close()
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
