"""``srnn report`` pages in a real headless Chromium (Debian's ``chromium``), driven over the
DevTools protocol: each page loads without a console error or a failed request, sends no
request beyond 127.0.0.1, every image decodes and every audio element resolves to a sound
with a duration; a screenshot of each page is written for the record.

Skips without Chromium (or the ``websocket-client`` package) unless SRNN_REQUIRE_CHROMIUM=1,
as CI sets it (.ci/run installs Chromium), where it fails instead.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_report import train_tiny_run

from srnn.cli import main
from srnn.experiments.compare import row, write_tables
from srnn.experiments.jobs import Job
from srnn.report_page import PAGE, RUNS
from srnn.train.run_dir import REPORT, RunDirectory

REQUIRED = os.environ.get("SRNN_REQUIRE_CHROMIUM") == "1"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium"
                                        if Path("/usr/bin/chromium").is_file() else None)
TIMEOUT = 60.0  # seconds for the browser to start, a page to load, its media to resolve
# Nothing but the loopback: the background services off, and every other host unresolvable.
FLAGS = ["--headless=new", "--remote-debugging-port=0", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--no-default-browser-check", "--disable-sync", "--disable-extensions",
         "--disable-default-apps", "--disable-domain-reliability", "--mute-audio",
         "--disable-gpu", "--disable-features=Translate,MediaRouter,OptimizationHints",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def _need(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"SRNN_REQUIRE_CHROMIUM=1 but {what}")
    pytest.skip(what)


class DevTools:
    """A DevTools-protocol connection to the browser: commands (with a session for a page)
    and the events that arrive meanwhile."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=TIMEOUT, suppress_origin=True)
        self.ids = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.ids += 1
        msg: dict[str, Any] = {"id": self.ids, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.ids:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})
            self.events.append(reply)

    def wait(self, method: str, session: str) -> dict[str, Any]:
        """The first event ``method`` of ``session`` (arrived already, or within TIMEOUT)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for e in self.events:
                if e.get("method") == method and e.get("sessionId") == session:
                    return e
            assert time.monotonic() < deadline, f"no {method} within {TIMEOUT} s"
            self.events.append(json.loads(self.ws.recv()))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable, once the DevTools client is known to be importable too."""
    if CHROMIUM is None:
        _need("chromium is not installed (apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        _need("the websocket-client package is missing (pip install -e '.[test]')")
    return str(CHROMIUM)


@contextlib.contextmanager
def browser(exe: str, profile: Path) -> Iterator[DevTools]:
    """Headless Chromium ``exe`` with its own profile folder; its DevTools port is read from
    the DevToolsActivePort file it writes there."""
    flags = [*FLAGS, f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses its sandbox to root
    proc = subprocess.Popen([exe, *flags, "about:blank"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + TIMEOUT
    while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            proc.kill()
            pytest.fail(f"chromium did not start (exit {proc.poll()}): {err}")
        time.sleep(0.1)
    port, path = port_file.read_text().split()[:2]
    tools = DevTools(f"ws://127.0.0.1:{port}{path}")
    try:
        yield tools
    finally:
        with contextlib.suppress(Exception):
            tools.send("Browser.close")
        tools.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group it was started in
            proc.wait(timeout=10)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 (a free port), in a thread; yields its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# What a page's images and audio elements came to, once every audio element has its
# metadata, or an error, or TIMEOUT has passed.
CHECK_MEDIA = """
(async () => {
  const images = [...document.images].map(i => ({src: i.getAttribute('src'),
      complete: i.complete, width: i.naturalWidth}));
  const audio = await Promise.all([...document.querySelectorAll('audio')].map(a =>
    new Promise(resolve => {
      const done = () => resolve({src: a.getAttribute('src'), ready: a.readyState,
          duration: a.duration, error: a.error ? a.error.code : null});
      if (a.readyState >= 1 || a.error) return done();
      a.addEventListener('loadedmetadata', done, {once: true});
      a.addEventListener('error', done, {once: true});
      setTimeout(done, TIMEOUT_MS);
      a.load();
    })));
  return {images, audio, links: [...document.links].map(l => l.getAttribute('href'))};
})()
""".replace("TIMEOUT_MS", str(int(TIMEOUT * 1000)))


def open_page(tools: DevTools, url: str, screenshot: Path) -> dict[str, Any]:
    """Load ``url`` in a new tab and return what it showed: its media, its console errors, its
    failed requests and the hosts it asked; writes a full-page screenshot."""
    target = tools.send("Target.createTarget", url="about:blank")["targetId"]
    session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        tools.send(f"{domain}.enable", session)
    tools.send("Page.navigate", session, url=url)
    tools.wait("Page.loadEventFired", session)
    media = tools.send("Runtime.evaluate", session, expression=CHECK_MEDIA, awaitPromise=True,
                       returnByValue=True)["result"]["value"]
    size = tools.send("Page.getLayoutMetrics", session)["cssContentSize"]
    tools.send("Emulation.setDeviceMetricsOverride", session, width=1200,
               height=min(int(size["height"]) + 1, 12000), deviceScaleFactor=1, mobile=False)
    shot = tools.send("Page.captureScreenshot", session, format="png")["data"]
    screenshot.write_bytes(base64.b64decode(shot))
    events = [e for e in tools.events if e.get("sessionId") == session]
    tools.send("Target.closeTarget", targetId=target)
    params = [(e["method"], e.get("params", {})) for e in events]
    failed = {p["requestId"]: p for m, p in params if m == "Network.loadingFailed"}
    urls = {p["requestId"]: (p["request"]["url"], p.get("type")) for m, p in params
            if m == "Network.requestWillBeSent"}
    return {
        "media": media,
        "errors": [p for m, p in params
                   if (m == "Runtime.consoleAPICalled" and p.get("type") == "error")
                   or m == "Runtime.exceptionThrown"
                   or (m == "Log.entryAdded" and p["entry"].get("level") == "error")],
        # A media download the player stops once it has what it needs is cancelled, not
        # failed; anything else that did not arrive, or arrived as an HTTP error, failed.
        "failed": [(urls.get(i, ("?", None))[0], p.get("errorText")) for i, p in failed.items()
                   if not (p.get("canceled") and urls.get(i, ("", ""))[1] == "Media")]
        + [(p["response"]["url"], p["response"]["status"]) for m, p in params
           if m == "Network.responseReceived" and p["response"]["status"] >= 400],
        "hosts": {urlsplit(u).hostname for u, _ in urls.values()
                  if urlsplit(u).scheme not in ("data", "about")},
        "requests": len(urls),
    }


def check_page(shown: dict[str, Any], url: str) -> None:
    assert not shown["errors"], (url, shown["errors"])
    assert not shown["failed"], (url, shown["failed"])
    assert shown["hosts"] == {"127.0.0.1"}, (url, shown["hosts"])
    media = shown["media"]
    for img in media["images"]:
        assert img["complete"] and img["width"] > 0, (url, img)
    for audio in media["audio"]:
        assert audio["error"] is None and audio["ready"] >= 1, (url, audio)
        assert audio["duration"] > 0, (url, audio)


@pytest.fixture(scope="module")
def sweep(chromium, tmp_path_factory) -> Path:
    """A folder laid out as ``srnn compare`` writes it: one tiny trained model under
    ``srnn/``, its ``plan.json`` and the comparison tables of the project's own writer, and
    its report (made only where there is a browser to read it)."""
    tmp = tmp_path_factory.mktemp("browser")
    out = tmp / "sweep"
    run = train_tiny_run(tmp, out / "srnn")
    cfg = RunDirectory(run).config()
    job = Job(label="srnn", dataset=cfg.dataset, model="srnn", model_options=cfg.model_options,
              folder="srnn")
    (out / "plan.json").write_text(json.dumps({"dataset": cfg.dataset, "flat": False,
                                               "models": {"srnn": cfg.model_options}}))
    write_tables(out, [row(job, RunDirectory(run).results())], cfg.dataset,
                 command="srnn compare --models srnn")
    assert main(["report", str(out), "--num", "2", "--length", "16", "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_the_report_pages_load_cleanly_in_chromium(chromium, sweep, tmp_path) -> None:
    served = tmp_path / "served"
    shutil.copytree(sweep / REPORT, served)
    # A copy of the run's page with a missing image, a missing sound and a console error:
    # what the checks must catch.
    run_page = served / RUNS / "srnn" / PAGE
    broken = run_page.read_text(encoding="utf-8").replace(
        "</main>", '<img src="missing.png" alt=""><audio controls src="missing.wav"></audio>'
        '<script>console.error("broken")</script></main>')
    run_page.with_name("broken.html").write_text(broken, encoding="utf-8")
    pages = {"index": PAGE, "run": f"{RUNS}/srnn/{PAGE}", "broken": f"{RUNS}/srnn/broken.html"}
    with serve(served) as base, browser(chromium, tmp_path / "profile") as tools:
        shown = {name: open_page(tools, f"{base}/{page}", tmp_path / f"{name}.png")
                 for name, page in pages.items()}
    bad = shown.pop("broken")
    assert sorted(u.rsplit("/", 1)[-1] for u, _ in bad["failed"]) == ["missing.png",
                                                                      "missing.wav"]
    assert any(e.get("type") == "error" for e in bad["errors"])  # the console's
    assert [i["src"] for i in bad["media"]["images"] if not i["width"]] == ["missing.png"]
    assert [a["src"] for a in bad["media"]["audio"] if a["error"]] == ["missing.wav"]
    for name, page in pages.items():
        if name not in shown:
            continue
        check_page(shown[name], page)
        print(f"screenshot of {page}: {tmp_path / f'{name}.png'}")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # The index links the run's page; the run's page plays its piece, its reconstruction,
    # two samples and two continuations.
    assert f"{RUNS}/srnn/{PAGE}" in shown["index"]["media"]["links"]
    assert len(shown["run"]["media"]["audio"]) == 6
    assert len(shown["run"]["media"]["images"]) >= 7
