#!/usr/bin/env bash
# Open a report in headless Chromium: fail on any console error, save a screenshot.
# usage: scripts/check_report_in_browser.sh REPORT.html SCREENSHOT.png
# (Chromium from the OS packages: apt-get install chromium.) Keep screenshots out of the repo.
set -euo pipefail
html="$(realpath "$1")"; shot="$2"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "chromium not found (apt-get install chromium)" >&2; exit 3; }
log="$(mktemp)"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 \
  --window-size=1300,2400 --screenshot="$shot" "file://$html" 2>"$log" >/dev/null
if grep -E "CONSOLE\(|Uncaught|Failed to load resource" "$log" >&2; then
  echo "console errors while loading $html" >&2; exit 1
fi
[ -s "$shot" ] || { echo "no screenshot written" >&2; exit 1; }
echo "loaded without console errors; screenshot: $shot"
