"""Toxicity on RTP-format prompt files in several languages (sliced by language and tier,
English-only scorers flagged), metrics through a calibration (raw and calibrated), and
the report's scorer-validity block. Scripted continuations with table-scored toxicities,
so every expected value is worked out by hand."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rai_multi.data.rtp import read_rtp_jsonl
from rai_multi.errors import ConfigError, DataError
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.report.build import build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.scoring.calibration import load_calibration
from rai_multi.scoring.validate import validity_report
from rai_multi.tasks.toxicity import ToxicityTask, language_notes

# prompt id suffix -> (lang, prompt toxicity, toxicities of its two continuations)
PROMPTS = [("en", 0.9, (0.9, 0.2)), ("en", 0.1, (0.1, 0.3)), ("fr", 0.8, (0.6, 0.4)), ("fr", 0.2, (0.55, 0.1)),
           ("sw", 0.7, (0.2, 0.1)), ("sw", 0.3, (0.45, 0.05))]
TABLE = {f"c{i}{ab}": t for i, (_, _, pair) in enumerate(PROMPTS) for ab, t in zip("ab", pair)}


class TableScorer:
    def __init__(self, languages):
        self.languages = languages
        self.name = "table"

    def describe(self):
        return {"name": "table", "version": "1", "weights_hash": "h" * 64, "languages": self.languages,
                "multilingual": None if self.languages is None else len(self.languages) > 1}

    def score(self, texts):
        return [TABLE[t] for t in texts]


def _prompt_file(folder: Path) -> Path:
    path = folder / "multi.jsonl"
    path.write_text("".join(json.dumps({"lang": lang, "challenging": False, "prompt": {"text": f"p{i}", "toxicity": tox}})
                            + "\n" for i, (lang, tox, _) in enumerate(PROMPTS)), encoding="utf-8")
    return path


def _run(tmp_path: Path, scorer, calibration=None, name="s") -> Path:
    task = ToxicityTask(scorer, [_prompt_file(tmp_path)], prompts_per_file=None, samples=2, calibration=calibration)
    adapter = ScriptedAdapter(name, generate_fn=lambda r, i: [f"c{i.rsplit('/', 1)[1]}a", f"c{i.rsplit('/', 1)[1]}b"])
    return evaluate(task, adapter, RunOptions(tmp_path / "runs", name, progress=False))


def _metrics(run: Path) -> dict[tuple[str, str], float]:
    return {(m["name"], m["slice"]): m["value"] for m in json.loads((run / "metrics.json").read_text())["metrics"]}


def test_lang_field_is_read_and_validated(tmp_path):
    prompts = read_rtp_jsonl(_prompt_file(tmp_path))
    assert [p.lang for p in prompts] == ["en", "en", "fr", "fr", "sw", "sw"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"lang": "FR", "prompt": {"text": "x"}}) + "\n")
    with pytest.raises(DataError, match="lower-case language code"):
        read_rtp_jsonl(bad)


def test_metrics_sliced_by_language_and_tier(tmp_path):
    run = _run(tmp_path, TableScorer(["en", "fr", "sw"]))
    got = _metrics(run)
    # per-prompt maxima: en .9 .3 | fr .6 .55 | sw .2 .45
    # all: the macro over languages, (.6 + .575 + .325) / 3; pooled: the mean over prompts, 3.0 / 6
    assert got[("expected_max_toxicity", "all")] == pytest.approx((0.6 + 0.575 + 0.325) / 3)
    assert got[("expected_max_toxicity", "pooled")] == pytest.approx(3.0 / 6)
    assert got[("expected_max_toxicity", "lang=en")] == pytest.approx(0.6)
    assert got[("expected_max_toxicity", "lang=fr")] == pytest.approx(0.575)
    assert got[("expected_max_toxicity", "lang=sw")] == pytest.approx(0.325)
    assert got[("expected_max_toxicity", "tier=high")] == pytest.approx(0.575)  # fr is the only high-tier language
    assert got[("expected_max_toxicity", "tier=low")] == pytest.approx(0.325)
    assert got[("expected_max_toxicity", "all_excl_en")] == pytest.approx((0.575 + 0.325) / 2)
    assert got[("toxicity_probability", "lang=fr")] == 1.0 and got[("toxicity_probability", "lang=sw")] == 0.0
    assert got[("toxicity_probability", "all")] == pytest.approx(0.5)
    assert got[("expected_max_toxicity", "prompts=toxic")] == pytest.approx((0.9 + 0.6 + 0.2) / 3)
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert [r["lang"] for r in rows] == ["en", "en", "fr", "fr", "sw", "sw"] and rows[2]["tier"] == "high"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["languages"] == ["en", "fr", "sw"] and "notes" not in manifest["config"]
    assert not any(k[0].endswith("_calibrated") for k in got)


def test_english_only_scorer_on_other_languages_is_flagged(tmp_path, capsys):
    run = _run(tmp_path, TableScorer(["en"]))
    note = "scorer table covers en only; its toxicity scores for prompts in fr, sw do not measure toxicity"
    assert note in capsys.readouterr().err
    assert any(n.startswith(note) for n in json.loads((run / "metrics.json").read_text())["notes"])
    assert any(n.startswith(note) for n in json.loads((run / "manifest.json").read_text())["config"]["notes"])
    paths = build_report([run], "s", tmp_path / "r.html")
    assert note in paths.html.read_text() and note in paths.markdown.read_text()
    assert language_notes({"name": "x", "languages": None}, ["en", "de"])[0].startswith(
        "scorer x does not say which languages it covers")
    assert language_notes({"name": "x", "languages": ["en"]}, ["en"]) == []


def _calibration_file(tmp_path: Path, scorer_hash: str = "h" * 64) -> Path:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"format": "rai-multi-calibration", "kind": "isotonic", "seed": 1, "fit_n": 3,
                                "heldout_n": 3, "scorer": {"name": "table", "weights_hash": scorer_hash},
                                "heldout": {"raw": {"n": 3, "auc": 0.5}, "calibrated": {"n": 3, "auc": 0.75}},
                                "x": [0.0, 0.5, 1.0], "y": [0.0, 0.2, 1.0]}))
    return path


def test_metrics_raw_and_calibrated(tmp_path):
    cal = load_calibration(_calibration_file(tmp_path))
    run = _run(tmp_path, TableScorer(["en", "fr", "sw"]), cal)
    got = _metrics(run)
    # raw unchanged by the calibration
    assert got[("expected_max_toxicity", "all")] == pytest.approx(0.5)
    # through the knots (0,0)-(0.5,0.2)-(1,1): maxima .9 .3 .6 .55 .2 .45 -> .84 .12 .36 .28 .08 .18
    assert got[("expected_max_toxicity_calibrated", "all")] == pytest.approx(1.86 / 6)
    assert got[("toxicity_probability_calibrated", "all")] == pytest.approx(1 / 6)  # only .84 >= .5
    assert got[("expected_max_toxicity_calibrated", "lang=fr")] == pytest.approx((0.36 + 0.28) / 2)
    sha = hashlib.sha256((tmp_path / "cal.json").read_bytes()).hexdigest()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["scorer"]["calibration"]["sha256"] == sha
    assert json.loads((run / "metrics.json").read_text())["scorer"]["calibration"]["sha256"] == sha
    html = build_report([run], "s", tmp_path / "r.html").html.read_text()
    assert "isotonic calibration" in html and sha[:12] in html and "toxicity_probability_calibrated" in html
    assert "Held-out half, calibrated" in html
    with pytest.raises(ConfigError, match="fitted for scorer table"):
        ToxicityTask(TableScorer(["en"]), [], calibration=load_calibration(_calibration_file(tmp_path, "x" * 64)))


def test_report_shows_the_validity_table_of_the_runs_scorer(tmp_path):
    run = _run(tmp_path, TableScorer(["en", "fr", "sw"]))
    rtp = tmp_path / "val.jsonl"
    rows = [("c0a", 0.8, "c1a", 0.2), ("c2a", 0.7, "c3b", 0.9)]  # table scores .9 .1 | .6 .1
    rtp.write_text("".join(json.dumps({"challenging": i == 0, "prompt": {"text": p, "toxicity": pt},
                                       "continuation": {"text": c, "toxicity": ct}}) + "\n"
                           for i, (p, pt, c, ct) in enumerate(rows)))
    doc = validity_report(TableScorer(["en"]), [rtp])
    # positives (Perspective >= .5): c0a .9, c2a .6, c3b .1; negative c1a .1 -> AUC pairs vs .1: win, win, tie -> 2.5/3
    assert doc["n"] == 4 and doc["auc"] == pytest.approx(2.5 / 3) and doc["challenging"]["n"] == 2
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "scorer_validity.json").write_text(json.dumps(doc))
    paths = build_report([run], "s", tmp_path / "r.html", scorer_validity=[tmp_path / "v" / "scorer_validity.json"])
    html = paths.html.read_text()
    assert "Toxicity scorer vs Perspective: table" in html and "Used by: s toxicity/rtp" in html
    assert f"{2.5 / 3:.3f}" in html and "not comparable with Perspective" not in html
    assert json.loads(paths.json.read_text())["scorer_validity"]["tables"][0]["rows"][0]["auc"] == pytest.approx(2.5 / 3)
    # without a validity file the report says the agreement is not shown
    bare = build_report([run], "s", tmp_path / "bare.html").html.read_text()
    assert "its agreement with Perspective is not shown" in bare
