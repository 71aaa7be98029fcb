"""Size of a full MGSM audit report: every item (2,750 questions, 11 languages) for two
scripted models, each output OUTPUT_CHARS characters long in the question's own script.

usage: RAI_MULTI_DATA=... python benchmarks/report_size.py OUT_DIR [--browser]
Prints the HTML, embedded-data and samples.jsonl sizes and the build time; with
``--browser`` also the time Chromium takes to load the page and to apply a filter.
The outputs repeat the question's text (so Bengali, Japanese, Thai... outputs weigh what
those scripts weigh in UTF-8), end with "The answer is N." and are right for a
model-specific half of the items, so the report has gains and losses to show.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from rai_multi.languages import MGSM_LANGS
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.paths import data_dir
from rai_multi.report.build import build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.tasks.mgsm import MgsmTask

OUTPUT_CHARS = 600


def scripted(name: str, task: MgsmTask, right_when: int) -> ScriptedAdapter:
    samples = {s.id: s for s in task.build_samples()}

    def generate(request, sample_id):
        sample = samples[sample_id]
        index = int(sample_id.rsplit("/", 1)[1])
        answer = sample.target if index % 3 != right_when else sample.target + 1
        question = request.prompt.rsplit("\n\n", 1)[-1]
        body = (question + " ") * (OUTPUT_CHARS // max(1, len(question)) + 1)
        tail = f" The answer is {answer:g}."
        return [body[: OUTPUT_CHARS - len(tail)] + tail]

    return ScriptedAdapter(name, generate)


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    root = data_dir(None, required=True)
    task = MgsmTask(langs=list(MGSM_LANGS), data_dir=root)
    n = len(task.build_samples())
    for name, right_when in (("base", 0), ("flan", 1)):
        evaluate(task, scripted(name, task, right_when), RunOptions(out / "runs", name, progress=False))
    started = time.perf_counter()
    paths = build_report([out / "runs"], "base", out / "audit.html")
    built = time.perf_counter() - started
    html = paths.html.read_text(encoding="utf-8")
    data = re.search(r'<script type="application/json" id="items-data">(.*?)</script>', html, re.S)
    samples = sum(p.stat().st_size for p in (out / "runs").rglob("samples.jsonl"))
    print(f"items: {n} x 2 models, outputs {OUTPUT_CHARS} characters")
    print(f"report HTML: {paths.html.stat().st_size / 1e6:.2f} MB (embedded item data "
          f"{len(data.group(1).encode('utf-8')) / 1e6:.2f} MB); samples.jsonl of both runs: {samples / 1e6:.2f} MB")
    print(f"build_report: {built:.1f} s")
    if "--browser" in argv:
        from rai_multi.report.browser import open_page

        started = time.perf_counter()
        with open_page(paths.html, timeout=180) as page:
            loaded = time.perf_counter() - started
            page.wait_for("document.getElementById('item-count').textContent")
            t0 = time.perf_counter()
            page.click("input[name=change][value=l]")
            page.wait_for("document.getElementById('item-count').dataset.matching !== String(%d)" % n)
            filtered = time.perf_counter() - t0
            count = page.evaluate("document.getElementById('item-count').textContent")
            print(f"chromium: page loaded in {loaded:.1f} s (incl. start); 'lost' filter applied in {filtered:.2f} s: "
                  f"{count}")
            print(f"errors: {page.errors}; requests: {page.requests}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
