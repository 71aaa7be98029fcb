"""Open a report in headless Chromium and collect what went wrong while loading it.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (standard library only), so it
sees every console error, uncaught exception and failed resource load (Chromium's plain
stderr log does not tell ``console.error`` from ``console.log``), checks that the summary
table is there and every embedded figure decoded, and saves a full-page screenshot.

usage: python -m rai_multi.report.browser REPORT.html SCREENSHOT.png
exit: 0 clean, 1 console errors or missing summary/figures, 3 no Chromium.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--remote-debugging-pipe"]
PAGE_FACTS = """JSON.stringify({
  summary_rows: document.querySelectorAll('#summary-table tr').length,
  images: document.images.length,
  broken_images: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length,
  scripts: document.scripts.length,
  title: document.title
})"""


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

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read())

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buf:
            if time.time() > self.deadline:
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


def check_report(html: Path, screenshot: Path | None = None, timeout: float = 90.0, width: int = 1300) -> BrowserCheck:
    """Load ``html`` (file URL) and return console errors, page facts and the screenshot."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("chromium not found (apt-get install chromium)")
    url = Path(html).resolve().as_uri()
    to_child_r, to_child_w = _high_pipe()
    from_child_r, from_child_w = _high_pipe()
    result = BrowserCheck()
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
            for method in ("Runtime.enable", "Log.enable", "Page.enable"):
                pipe.send(method, session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session)
            pipe.send("Page.navigate", {"url": url}, session)
            pipe.wait_event("Page.loadEventFired")
            time.sleep(0.5)  # late console messages
            facts = pipe.send("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True}, session)
            result.facts = json.loads(facts["result"]["value"])
            if screenshot is not None:
                size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
                clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1}
                shot = pipe.send("Page.captureScreenshot",
                                 {"format": "png", "captureBeyondViewport": True, "clip": clip}, session)
                Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
                result.screenshot = Path(screenshot)
            pipe.send("Runtime.evaluate", {"expression": "1"}, session)  # flush pending events
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
    result.errors = [text for text in map(_describe, pipe.events) if text]
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
