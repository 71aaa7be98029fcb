"""Open a report in headless Chromium and collect what went wrong while loading it.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (standard library only), so it
sees every console error, uncaught exception and failed resource load (Chromium's plain
stderr log does not tell ``console.error`` from ``console.log``), checks that the summary
table is there and every embedded figure decoded, and saves a full-page screenshot.

usage: python -m rai_multi.report.browser REPORT.html SCREENSHOT.png
exit: 0 clean, 1 console errors, requests, dialogs or missing summary/figures, 3 no Chromium.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--remote-debugging-pipe"]
PAGE_FACTS = """JSON.stringify({
  summary_rows: document.querySelectorAll('#summary-table tr').length,
  images: document.images.length,
  broken_images: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length,
  scripts: document.scripts.length,
  item_data: !!document.getElementById('items-data'),
  item_rows: document.querySelectorAll('#items-body tr').length,
  item_count: (document.getElementById('item-count') || {}).textContent || '',
  title: document.title
})"""
# Added by DevTools before the page's own scripts (and exempt from its CSP): records what
# the page's Content-Security-Policy blocked, which Chromium does not log as an error.
WATCH_CSP = """window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__cspViolations.push(e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline')));"""


@dataclass
class BrowserCheck:
    errors: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.w, self.r, self.deadline = write_fd, read_fd, deadline
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _write(self, method: str, params: dict[str, Any] | None, session: str | None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        wanted = self._write(method, params, session)
        while True:
            reply = self._read()
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._record(reply)

    def _record(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event.get("method") == "Page.javascriptDialogOpening":
            # an alert() blocks the page (its load, any evaluate) until answered; it stays recorded
            self._write("Page.handleJavaScriptDialog", {"accept": True}, event.get("sessionId"))

    def wait_event(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self._record(self._read())

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = self.deadline - time.time()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)


def _describe(event: dict[str, Any]) -> str | None:
    method, p = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
        return f"console.{p['type']}: {text}"
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        return f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}"
    if method == "Network.loadingFailed":
        return f"failed to load ({p.get('errorText')}{', ' + p['blockedReason'] if p.get('blockedReason') else ''})"
    if method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        return f"{e.get('source')} error: {e.get('text')} {e.get('url', '')}".strip()
    return None


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are numbered 10 or above, clear of the fds 3 and 4 Chromium reads."""
    import fcntl

    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


def _requests_out(events: list[dict[str, Any]], page_url: str) -> list[str]:
    """URLs the page asked for besides itself and inline ``data:`` content: anything here
    would have left the page (or tried to)."""
    urls = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return [u for u in urls if u != page_url and not u.startswith(("data:", "about:"))]


class Page:
    """One report open in headless Chromium, driven over the DevTools pipe: evaluate
    JavaScript, click an element with real mouse events, type into a field, take a
    screenshot. ``errors``, ``requests`` and ``dialogs`` say what went wrong so far."""

    def __init__(self, pipe: _Pipe, session: str, url: str):
        self.pipe, self.session, self.url = pipe, session, url

    def evaluate(self, expression: str) -> Any:
        reply = self.pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"evaluate {expression!r}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 5.0) -> Any:
        """Poll ``expression`` until it is truthy (renders after a debounced input)."""
        end = time.time() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.time() > end:
                return value
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """Scroll the element into view and click its centre with the mouse."""
        box = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")
        if box is None:
            raise RuntimeError(f"no element {selector!r} to click")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.pipe.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                        "clickCount": 1}, self.session)

    def type_text(self, selector: str, text: str) -> None:
        """Focus the field and type ``text`` into it (fires input events as typing does)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.pipe.send("Input.insertText", {"text": text}, self.session)

    def select(self, selector: str, value: str) -> None:
        """Choose an option of a ``<select>`` as a user does (value set, change fired)."""
        self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)}); e.value = {json.dumps(value)};
            e.dispatchEvent(new Event('change', {{bubbles: true}})); }})()""")

    def screenshot(self, path: Path, max_height: int = 16000) -> Path:
        size = self.pipe.send("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        shot = self.pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                              self.session)
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return Path(path)

    @property
    def errors(self) -> list[str]:
        blocked = self.evaluate("JSON.stringify(window.__cspViolations || [])")  # also flushes pending events
        return [text for text in map(_describe, self.pipe.events) if text] + \
            [f"content security policy: {v}" for v in json.loads(blocked)]

    @property
    def requests(self) -> list[str]:
        return _requests_out(self.pipe.events, self.url)

    @property
    def dialogs(self) -> list[str]:
        return [e["params"].get("message", "") for e in self.pipe.events if e.get("method") == "Page.javascriptDialogOpening"]


@contextlib.contextmanager
def open_page(html: Path, timeout: float = 90.0, width: int = 1300) -> Iterator[Page]:
    """Start Chromium, load ``html`` (file URL) and yield the :class:`Page`; Chromium is
    closed on exit."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("chromium not found (apt-get install chromium)")
    url = Path(html).resolve().as_uri()
    to_child_r, to_child_w = _high_pipe()
    from_child_r, from_child_w = _high_pipe()
    with tempfile.TemporaryDirectory(prefix="rai-multi-chromium-") as profile:
        # bash moves the pipe ends onto fds 3 (commands in) and 4 (replies out), as Chromium expects
        cmd = ["bash", "-c", f'exec "$@" 3<&{to_child_r} 4>&{from_child_w} {to_child_r}<&- {from_child_w}>&-', "chromium",
               browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1000", "about:blank"]
        proc = subprocess.Popen(cmd, pass_fds=(to_child_r, from_child_w), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        pipe = _Pipe(to_child_w, from_child_r, time.time() + timeout)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for method in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
                pipe.send(method, session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session)
            pipe.send("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_CSP}, session)
            pipe.send("Page.navigate", {"url": url}, session)
            pipe.wait_event("Page.loadEventFired")
            time.sleep(0.5)  # late console messages
            yield Page(pipe, session, url)
            try:
                pipe.send("Browser.close")
            except RuntimeError:
                pass
        finally:
            os.close(to_child_w)
            os.close(from_child_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_report(html: Path, screenshot: Path | None = None, timeout: float = 90.0, width: int = 1300) -> BrowserCheck:
    """Load ``html`` and return console errors (and requests leaving the page), page facts
    and the screenshot."""
    result = BrowserCheck()
    with open_page(html, timeout, width) as page:
        result.facts = json.loads(page.evaluate(PAGE_FACTS))
        if screenshot is not None:
            result.screenshot = page.screenshot(Path(screenshot))
        result.errors = page.errors + [f"network request: {u}" for u in page.requests] + \
            [f"dialog opened: {m}" for m in page.dialogs]
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m rai_multi.report.browser REPORT.html SCREENSHOT.png", file=sys.stderr)
        return 2
    try:
        check = check_report(Path(args[0]), Path(args[1]))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 3
    except (TimeoutError, RuntimeError) as exc:
        print(f"browser check failed: {exc}", file=sys.stderr)
        return 1
    problems = list(check.errors)
    if check.facts.get("summary_rows", 0) < 2:
        problems.append("no summary table rows (#summary-table)")
    if check.facts.get("item_data") and not check.facts.get("item_count"):
        problems.append("the item explorer did not render (#item-count is empty)")
    if check.facts.get("broken_images"):
        problems.append(f"{check.facts['broken_images']} of {check.facts['images']} figures did not decode")
    for p in problems:
        print(p, file=sys.stderr)
    print(json.dumps(check.facts))
    if problems:
        print(f"problems while loading {args[0]}", file=sys.stderr)
        return 1
    print(f"loaded without console errors; screenshot: {check.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
