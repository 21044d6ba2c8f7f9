"""A live TensorBoard server on 127.0.0.1, started and stopped by the test that needs it."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tensorboard(logdir, load_fast: bool):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            f"--load_fast={str(load_fast).lower()}",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(base, path, **query):
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def poll(fetch, ready, what: str, timeout: float = 60, interval: float = 0.5) -> object:
    """Call ``fetch()`` until ``ready(answer)`` holds: the server needs a moment to start and
    load. Connection errors and unparsable answers count as not ready yet."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fetch()
            if ready(last):
                return last
        except (OSError, ValueError):
            pass
        time.sleep(interval)
    raise AssertionError(f"{what} never became ready; last answer: {last!r}")


def poll_json(
    base: str, path: str, ready, timeout: float = 60, interval: float = 0.5, **query
) -> object:
    """GET ``path`` until its JSON answer satisfies ``ready``."""
    return poll(
        lambda: json.loads(get(base, path, **query)), ready, f"{path} {query}", timeout, interval
    )


def post_json(base: str, path: str, body: dict) -> object:
    """POST a JSON body; the decoded JSON answer."""
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def poll_post(base: str, path: str, body: dict, ready, timeout: float = 60) -> object:
    """POST ``body`` to ``path`` until its JSON answer satisfies ``ready``."""
    return poll(lambda: post_json(base, path, body), ready, f"{path} {body}", timeout)
