"""The report's item explorer: every item with each model's output, per-item gained/lost
against the baseline (by the task spec's headline field and direction, counted by hand),
the "what changed" counts, data embedded once as escaped JSON, prompts in samples.jsonl,
the audit progress line; and, in headless Chromium over DevTools, filters, search, the
counts' links, model text kept as text and no request leaving the page."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rai_multi.audit_progress import AuditProgress
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest, Response, Sample
from rai_multi.report.build import build_report
from rai_multi.report.items import item_status, script_json
from rai_multi.runner import PROMPT_CHARS, RunOptions, base_row, evaluate, shared_prompt_starts
from rai_multi.tasks.bbq import BbqTask
from rai_multi.tasks.mgsm import MgsmTask
from rai_multi.tasks.toxicity import ToxicityTask

SCRIPT = "<script>alert(1)</script>"
ONERROR = "<img src=x onerror=alert(2)>"
LONG = "Let us think step by step. " * 20  # 540 characters: clipped in the table


class TableScorer:
    """Toxicity looked up in a table (known scores)."""

    name = "table"

    def __init__(self, table):
        self.table = table

    def describe(self):
        return {"name": self.name, "version": "1", "weights_hash": "none"}

    def score(self, texts):
        return [self.table[t] for t in texts]


def _mgsm_pair(data_dir: Path, out: Path) -> None:
    """Per language (10 items): the baseline is right on items 0-3, the candidate on 2-8;
    on item 9 both are wrong with different answers. The candidate's wrong answers on 0
    and 1 are a script tag and an onerror image."""
    task = MgsmTask(langs=["en", "bn", "sw"], data_dir=data_dir, limit=10, limit_rule="head")  # items 0-9
    golds = {s.id: s.target for s in task.build_samples()}

    def model(first: int, last: int, wrong: dict[int, str]):
        def generate(request, sample_id):
            index = int(sample_id.rsplit("/", 1)[1])
            if first <= index <= last:
                return [f"{LONG}The answer is {golds[sample_id]:g}."]
            return [wrong.get(index, "no idea")]
        return generate

    evaluate(task, ScriptedAdapter("base", model(0, 3, {})), RunOptions(out, "base", progress=False))
    evaluate(task, ScriptedAdapter("flan", model(2, 8, {0: SCRIPT, 1: ONERROR, 9: "The answer is 1234567."})),
             RunOptions(out, "flan", progress=False))


def _bbq_pair(data_dir: Path, out: Path) -> dict[str, int]:
    """The baseline always picks option 0, the candidate always the gold option."""
    task = BbqTask(data_dir, categories=["Age"], limit=12)
    labels = {s.id: s.target for s in task.build_samples()}

    def picks(choose):
        def loglikelihood(request, sample_id):
            k = choose(sample_id)
            return [Loglikelihood(-1.0 if j == k else -4.0 - j, 2 + j) for j in range(len(request.continuations))]
        return loglikelihood

    evaluate(task, ScriptedAdapter("base", loglikelihood_fn=picks(lambda i: 0)), RunOptions(out, "base", progress=False))
    evaluate(task, ScriptedAdapter("flan", loglikelihood_fn=picks(lambda i: labels[i])), RunOptions(out, "flan", progress=False))
    return labels


def _toxicity_pair(data_dir: Path, out: Path) -> None:
    """Baseline: one toxic (0.9) continuation of two on each of 3 prompts; candidate: none."""
    scorer = TableScorer({"you idiot": 0.9, "have a nice day": 0.1, "thanks": 0.2})
    task = ToxicityTask(scorer, [data_dir / "realtoxicityprompts" / "toxic.jsonl"], prompts_per_file=3, samples=2)
    evaluate(task, ScriptedAdapter("base", lambda r, i: ["you idiot", "have a nice day"]), RunOptions(out, "base", progress=False))
    evaluate(task, ScriptedAdapter("flan", lambda r, i: ["thanks", "have a nice day"]), RunOptions(out, "flan", progress=False))


@pytest.fixture(scope="module")
def report(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("items")
    _mgsm_pair(data_dir, root / "runs")
    labels = _bbq_pair(data_dir, root / "runs")
    _toxicity_pair(data_dir, root / "runs")
    paths = build_report([root / "runs"], "base", root / "audit.html")
    html = paths.html.read_text(encoding="utf-8")
    data = json.loads(html.split('<script type="application/json" id="items-data">', 1)[1].split("</script>", 1)[0])
    return {"paths": paths, "html": html, "data": {r["key"]: r for r in data}, "labels": labels, "root": root}


def _changes(rec):
    return {row["lang"]: row["counts"]["flan"] for row in rec["changes"]}


def test_mgsm_items_statuses_and_counts_by_hand(report):
    rec = report["data"]["mgsm/native_cot"]
    assert rec["models"] == ["base", "flan"] and rec["field"] == "correct" and rec["paired"]
    assert len(rec["items"]) == 30 and {i["lang"] for i in rec["items"]} == {"en", "bn", "sw"}
    for item in rec["items"]:
        index = int(item["id"].rsplit("/", 1)[1])
        base, cand = index <= 3, 2 <= index <= 8
        expected = "g" if cand and not base else "l" if base and not cand else "c" if index == 9 else "s"
        assert item["st"] == [expected], item["id"]
        assert [m["v"] for m in item["m"]] == [int(base), int(cand)]
        assert item["tier"] == ("en" if item["lang"] == "en" else "low")
        assert item["prompt"].endswith("Step-by-Step Answer:") or item["lang"] != "en"
        assert item["prompt"].startswith("[shared start: ")  # the 8 exemplars are kept once per language
    # gained: items 4-8 (5), lost: 0-1 (2), changed: those and item 9 (8) of 10 per language
    assert _changes(rec) == {**{lang: {"gained": 5, "lost": 2, "changed": 8, "n": 10} for lang in ("bn", "en", "sw")},
                             "all": {"gained": 15, "lost": 6, "changed": 24, "n": 30}}
    first = next(i for i in rec["items"] if i["id"] == "mgsm/bn/4")
    assert first["m"][1]["out"][0].startswith(LONG) and first["m"][1]["how"] in ("phrase", "fallback")
    assert first["m"][0]["ans"] is None and first["m"][0]["how"] == "none"
    assert set(rec["starts"]) == {"en", "bn", "sw"} and all(len(t) > 500 for t in rec["starts"].values())
    # the JSON beside the report carries the same counts
    doc = json.loads(report["paths"].json.read_text())
    assert next(c for c in doc["item_changes"] if c["task"] == "mgsm")["changes"] == rec["changes"]


def test_changes_table_in_the_html_shows_the_counts(report):
    table = report["html"].split('<table class="changes-table" data-key="mgsm/native_cot">', 1)[1].split("</table>", 1)[0]
    cells = [re.sub(r"<[^>]+>", "", row).split() for row in table.split("<tr>")[2:]]
    assert cells == [["bn", "5", "2", "8", "10"], ["en", "5", "2", "8", "10"], ["sw", "5", "2", "8", "10"],
                     ["all", "15", "6", "24", "30"]]
    assert 'data-lang="sw" data-cand="flan" data-change="l">2</button>' in table


def test_bias_rows_show_options_with_scores_and_count_only_disambiguated(report):
    rec = report["data"]["bbq/mc"]
    labels = report["labels"]
    assert rec["field"] == "correct" and rec["only"] == ["condition", "disambig"]
    disambig = [i for i in rec["items"] if i["meta"]["condition"] == "disambig"]
    assert disambig and len(disambig) < len(rec["items"])
    for item in rec["items"]:
        assert len(item["opts"]) == 3 and item["gi"] == labels[item["id"]]
        base, cand = item["m"]
        assert base["ans"] == 0 and cand["ans"] == labels[item["id"]]
        assert base["ll"][0] == [-1.0, 2] and base["ll"][2] == [-6.0, 4]  # option 2: -4 - 2, 2 + 2 tokens
        assert base["how"] == "highest summed log-likelihood"
        moved = labels[item["id"]] != 0
        if item["meta"]["condition"] == "disambig":
            assert item["st"] == ["g" if moved else "s"]
        else:  # not a row the headline is computed on: changed, never gained or lost
            assert item["st"] == ["c" if moved else "s"]
    gained = sum(labels[i["id"]] != 0 for i in disambig)
    assert _changes(rec)["all"] == {"gained": gained, "lost": 0, "n": len(rec["items"]),
                                    "changed": sum(labels[i["id"]] != 0 for i in rec["items"])}


def test_toxicity_rows_show_each_continuation_with_its_score(report):
    rec = report["data"]["toxicity/rtp"]
    assert rec["field"] == "any_toxic" and rec["direction"] == "lower"
    assert len(rec["items"]) == 3
    for item in rec["items"]:
        base, cand = item["m"]
        assert base["out"] == ["you idiot", "have a nice day"] and base["tox"] == [0.9, 0.1]
        assert cand["tox"] == [0.2, 0.1] and (base["v"], cand["v"]) == (1, 0)
        assert item["st"] == ["g"]  # toxic -> not toxic is a gain (lower is better)
        # a field both runs share describes the item; one that differs is shown per model
        assert item["meta"]["scorer"] == "table" and item["meta"]["prompts"] == "toxic"
        assert (base["more"], cand["more"]) == ({"max_toxicity": "0.9"}, {"max_toxicity": "0.2"})
        assert item["prompt"]  # the RTP prompt text itself


def test_item_status_follows_the_spec_direction():
    assert item_status("toxicity", {"any_toxic": 0}, {"any_toxic": 1}) == "lost"
    assert item_status("identity_toxicity", {"toxic": 0.5}, {"toxic": 0.25}) == "gained"
    # CrowS-Pairs: 0 and 100 are equally far from the unbiased 50; AUC: no per-item side
    assert item_status("crows_pairs", {"stereotyped": 0.0}, {"stereotyped": 100.0}) == "changed"
    assert item_status("toxicity_cls", {"p_yes": 0.2}, {"p_yes": 0.7}) == "changed"
    assert item_status("mgsm", {"correct": 0, "extracted": 3.0}, {"correct": 0, "extracted": 3.0}) == "same"
    assert item_status("mgsm", {"correct": 1}, None) == ""


def test_embedded_json_cannot_end_its_script_element():
    nasty = {"out": "</script><script>alert(1)</script><!-- & \u2028\u2029 ünï 中文"}
    text = script_json(nasty)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == nasty  # the escapes mean the same string
    assert "ünï 中文" in text  # UTF-8 kept as is (a third the size of \\u escapes)


def test_rows_carry_the_prompt_after_the_shared_start_and_the_options():
    shots = "Q: 1 + 1?\nA: 2.\n\n" * 20
    samples = [Sample(f"t/en/{k}", "en", GenerationRequest(shots + f"Q: {k} + 2?\nA:"), k + 2) for k in range(3)]
    starts = shared_prompt_starts(samples)
    assert starts == {"en": shots}
    row = base_row(samples[1], Response(outputs=("3",)), len(shots))
    assert row["prompt"] == f"[shared start: {len(shots)} characters] Q: 1 + 2?\nA:" and row["gold"] == 3
    long_q = "x" * (PROMPT_CHARS + 50) + "END"
    row = base_row(Sample("t/en/9", "en", GenerationRequest(long_q)), Response(outputs=("",)))
    assert row["prompt"] == f"[... 53 characters cut] " + long_q[-PROMPT_CHARS:] and "gold" not in row
    mc = base_row(Sample("b/1", "en", LoglikelihoodRequest("Who?", (" A", " B")), 1),
                  Response(loglikelihoods=(Loglikelihood(-1.0, 1), Loglikelihood(-2.0, 1))))
    assert mc["prompt"] == "Who?" and mc["continuations"] == [" A", " B"] and mc["gold"] == 1
    # a single sample, or prompts sharing no long start, keep their prompts whole
    assert shared_prompt_starts(samples[:1]) == {} and shared_prompt_starts(
        [Sample(f"s/{k}", "en", GenerationRequest(f"{k} short")) for k in range(3)]) == {}


def test_audit_progress_line_by_hand():
    now = [0.0]
    progress = AuditProgress(n_models=2, n_tasks=2, clock=lambda: now[0])
    now[0] = 10.0
    # 10 items in 10 s; three runs left, sizes unknown yet: the mean seen (10) each -> 30 items, 30 s
    assert progress.done("base mgsm", 10) == ("[audit] task 1 of 4 done: base mgsm (10 items); 10 items done, "
                                              "10s elapsed, ETA 30s")
    now[0] = 40.0
    # 40 items in 40 s; left: the second model's two tasks, 10 + 30 items -> 40 s
    assert progress.done("base tydiqa", 30) == ("[audit] task 2 of 4 done: base tydiqa (30 items); 40 items done, "
                                                "40s elapsed, ETA 40s")
    now[0] = 130.0
    assert progress.done("cand mgsm", 10) == ("[audit] task 3 of 4 done: cand mgsm (10 items); 50 items done, "
                                              "2m10s elapsed, ETA 1m18s")  # 30 items x 130/50 s = 78 s
    now[0] = 200.0
    assert progress.done("cand tydiqa", 30).endswith("80 items done, 3m20s elapsed, done")


# ------------------------------------------------------------------ in the browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_explorer_in_headless_chromium(report):
    from rai_multi.report.browser import open_page

    rows = "document.querySelectorAll('#items-body tr').length"
    matching = "document.getElementById('item-count').dataset.matching"
    with open_page(report["paths"].html) as page:
        assert page.evaluate("document.getElementById('f-task').value") == "bbq/mc"  # the first task, sorted
        page.select("#f-task", "mgsm/native_cot")
        assert page.evaluate(rows) == 30 and page.evaluate(matching) == "30"
        # the change filters (real mouse clicks on the radio buttons)
        for value, expected in (("g", 15), ("l", 6), ("changed", 24), ("s", 6), ("", 30)):
            page.click(f"input[name=change][value='{value}']")
            assert page.evaluate(rows) == expected, value
        page.select("#f-lang", "bn")
        assert page.evaluate(rows) == 10
        page.click("input[name=change][value='changed']")
        assert page.evaluate(rows) == 8
        page.select("#f-tier", "en")  # bn is low-tier: nothing is both
        assert page.evaluate(rows) == 0
        # a count in "what changed" opens the list on those items
        page.click('button.jump[data-key="mgsm/native_cot"][data-lang="sw"][data-change="l"]')
        assert page.evaluate(rows) == 2 and page.evaluate("document.getElementById('f-lang').value") == "sw"
        assert page.evaluate("[...document.querySelectorAll('#items-body tr')].map(r => r.dataset.id).join()") == \
            "mgsm/sw/0,mgsm/sw/1"
        # the model's markup is text: literal in the DOM, no element made, nothing run or fetched
        text = page.evaluate("document.getElementById('items-body').textContent")
        assert SCRIPT in text and ONERROR in text
        assert page.evaluate("document.querySelectorAll('#items-table img, #items-table script').length") == 0
        assert page.evaluate("document.scripts.length") == 2
        # search finds an id (clear the other filters first)
        page.click("input[name=change][value='']")
        page.select("#f-lang", "")
        page.type_text("#f-search", "mgsm/en/7")
        assert page.wait_for(f"{matching} === '1'")
        assert page.evaluate("document.querySelector('#items-body tr').dataset.id") == "mgsm/en/7"
        # a long output is clipped, complete on expand
        cell = "document.querySelector('#items-body td.out button.expand').parentNode.querySelector('pre').textContent"
        assert page.evaluate(f"{cell}.length") < len(LONG)
        page.click("#items-body tr td.out button.expand")
        full = page.evaluate(cell)
        gold = page.evaluate("document.querySelector('#items-body td.gold').textContent")
        assert full == f"{LONG}The answer is {gold}."
        # switching task: bias options with log-likelihoods, toxicity continuations with scores
        page.select("#f-task", "bbq/mc")
        assert page.evaluate(rows) == len(report["data"]["bbq/mc"]["items"])
        assert page.evaluate("document.querySelectorAll('#items-body li.chosen').length") == 2 * page.evaluate(rows)
        assert "log-lik -1.000 (2 tok)" in page.evaluate("document.getElementById('items-body').textContent")
        page.select("#f-task", "toxicity/rtp")
        assert page.evaluate("[...document.querySelectorAll('#items-body .tox')].map(e => e.textContent).join()") == \
            ",".join(["toxicity 0.900", "toxicity 0.100", "toxicity 0.200", "toxicity 0.100"] * 3)
        page.screenshot(report["root"] / "explorer.png")
        assert page.errors == [] and page.dialogs == [] and page.requests == []


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_browser_check_sees_requests_and_dialogs(report, tmp_path):
    """Negative controls: with the page's CSP taken out, an injected image request and an
    alert() are both reported, so an empty list above means none happened."""
    from rai_multi.report.browser import open_page

    no_csp = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report["html"])
    page_file = tmp_path / "leaky.html"
    page_file.write_text(no_csp.replace("</body>", '<img src="http://127.0.0.1:9/x.png"><script>alert("hi")</script></body>'),
                         encoding="utf-8")
    with open_page(page_file) as page:
        assert page.requests == ["http://127.0.0.1:9/x.png"] and page.dialogs == ["hi"]
