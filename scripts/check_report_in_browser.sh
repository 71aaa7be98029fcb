#!/usr/bin/env bash
# Open a report in headless Chromium (OS package: apt-get install chromium), fail on any
# console error, uncaught exception or failed resource load, check that the summary table
# is there and every figure decoded, and save a full-page screenshot.
# usage: scripts/check_report_in_browser.sh REPORT.html SCREENSHOT.png
# Exit: 0 clean, 1 problems (listed on stderr), 3 no Chromium. Keep screenshots out of the repo.
# Uses the DevTools protocol over --remote-debugging-pipe (rai_multi/report/browser.py),
# because Chromium's stderr log does not tell console.error from console.log.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 REPORT.html SCREENSHOT.png" >&2; exit 2; }
cd "$(dirname "$0")/.." && root="$PWD" && cd - >/dev/null
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m rai_multi.report.browser "$1" "$2"
