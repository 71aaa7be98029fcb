"""Identity-subgroup AUCs (Borkan et al. 2019) on a Jigsaw Unintended Bias CSV written here
in the upstream format, with values worked out by hand; datasets without identity columns
say so in the run and the report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from rai_multi.data.jigsaw import load_jigsaw
from rai_multi.errors import ConfigError, DataError
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.records import Loglikelihood
from rai_multi.report.build import build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.tasks.toxicity_cls import ToxicityClsTask

HEADER = ["id", "comment_text", "toxicity", "severe_toxicity", "male", "female", "muslim", "jewish"]
# label = toxicity >= 0.5; muslim mentioned at >= 0.5 (0.5 counts, 0.4 and blank do not)
ROWS = [
    ["11", "first, with a comma\nand a newline", "0.9", "0.1", "", "", "0.8", ""],
    ["12", "second", "0.1", "0.0", "", "", "1.0", "0"],
    ["13", "third", "0.6", "0.0", "0.0", "", "0.5", ""],
    ["14", "fourth", "0.0", "0.0", "", "1.0", "0.4", ""],
    ["15", "fifth", "0.7", "0.2", "", "", "", ""],
    ["16", "sixth", "0.2", "0.0", "", "", "0.0", "0.3"],
]
P_YES = {"jigsaw/11": 0.9, "jigsaw/12": 0.8, "jigsaw/13": 0.3, "jigsaw/14": 0.2, "jigsaw/15": 0.7, "jigsaw/16": 0.1}


def _csv(folder: Path, header=HEADER, rows=ROWS, name="test_public_expanded.csv") -> Path:
    path = folder / name
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _scripted() -> ScriptedAdapter:
    def ll(request, sample_id):  # log P(yes), log P(no) chosen so that P(yes) is exactly the table's value
        p = P_YES.get(sample_id, 0.5)
        return [Loglikelihood(math.log(p), 1), Loglikelihood(math.log(1 - p), 1)]

    return ScriptedAdapter("s", loglikelihood_fn=ll)


def test_load_jigsaw_format(tmp_path):
    items, identities = load_jigsaw(_csv(tmp_path))
    assert identities == ["male", "female", "jewish", "muslim"]  # in the dataset's column order
    assert [x.label for x in items] == [1, 0, 1, 0, 1, 0]
    assert [x.identities["muslim"] for x in items] == [True, True, True, False, False, False]
    assert items[3].identities["female"] and not items[5].identities["jewish"]
    assert items[0].text == "first, with a comma\nand a newline" and items[0].id == "jigsaw/11"
    train = [["a", "x", "0.5", ""], ["b", "y", "0.49", ""]]  # train.csv names the label 'target'
    items, identities = load_jigsaw(_csv(tmp_path, ["id", "comment_text", "target", "black"], train, "train.csv"))
    assert [x.label for x in items] == [1, 0] and identities == ["black"]
    with pytest.raises(DataError, match="needs 'comment_text'"):
        load_jigsaw(_csv(tmp_path, ["id", "text", "toxicity"], [["1", "x", "0.1"]], "bad.csv"))
    with pytest.raises(DataError, match=r"bad2.csv:2: column 'muslim' must be a fraction"):
        load_jigsaw(_csv(tmp_path, ["comment_text", "toxicity", "muslim"], [["x", "0.1", "yes"]], "bad2.csv"))


def test_borkan_aucs_with_cis_through_a_run(tmp_path):
    task = ToxicityClsTask("jigsaw", None, path=_csv(tmp_path), exemplar_pool=0)
    run = evaluate(task, _scripted(), RunOptions(tmp_path / "runs", "s", progress=False))
    doc = json.loads((run / "metrics.json").read_text())
    got = {(m["name"], m["slice"]): m for m in doc["metrics"]}
    # positives {.9 .3 .7}, negatives {.8 .2 .1}: wrong pairs (.3<.8), (.7<.8) -> 7/9
    assert got[("auc", "all")]["value"] == pytest.approx(7 / 9)
    # muslim: subgroup pos {.9 .3} neg {.8}: one of two pairs right -> .5
    sub = got[("subgroup_auc", "identity=muslim")]
    assert sub["value"] == 0.5 and sub["n"] == 3
    assert 0.0 <= sub["ci"][0] <= 0.5 <= sub["ci"][1] <= 1.0
    # BPSN: background positive {.7} below subgroup negative {.8} in every resample holding both -> 0, CI [0, 0]
    assert got[("bpsn_auc", "identity=muslim")]["value"] == 0.0 and got[("bpsn_auc", "identity=muslim")]["ci"] == [0.0, 0.0]
    # BNSP: subgroup positives {.9 .3} above background negatives {.2 .1}: 1, CI [1, 1]
    assert got[("bnsp_auc", "identity=muslim")]["value"] == 1.0 and got[("bnsp_auc", "identity=muslim")]["ci"] == [1.0, 1.0]
    # female: one item (14, negative) -> subgroup AUC undefined (one class); BPSN: pos {.9 .3 .7} vs {.2} -> 1
    assert ("subgroup_auc", "identity=female") not in got
    assert got[("bpsn_auc", "identity=female")]["value"] == 1.0
    # male and jewish have no item at >= 0.5: no slice, and the run says so
    assert not any(s in ("identity=male", "identity=jewish") for _, s in got)
    assert doc["notes"] == ["identity columns with no evaluated item mentioning them (no subgroup AUCs): male, jewish"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["identity_columns"] == ["male", "female", "jewish", "muslim"]
    assert str(tmp_path / "test_public_expanded.csv") in manifest["data_files"]
    # same seed, same intervals
    again = evaluate(ToxicityClsTask("jigsaw", None, path=_csv(tmp_path), exemplar_pool=0), _scripted(),
                     RunOptions(tmp_path / "runs2", "s", progress=False))
    assert json.loads((again / "metrics.json").read_text())["metrics"] == doc["metrics"]


def test_dataset_without_identity_columns_says_so(tmp_path, data_dir):
    task = ToxicityClsTask("davidson", data_dir, limit=12)
    run = evaluate(task, _scripted(), RunOptions(tmp_path / "runs", "s", progress=False))
    note = "dataset davidson has no identity columns: subgroup, BPSN and BNSP AUCs (Borkan et al. 2019) are not computed"
    assert json.loads((run / "metrics.json").read_text())["notes"] == [note]
    assert json.loads((run / "manifest.json").read_text())["config"]["identity_columns"] == []
    html = build_report([run], "s", tmp_path / "r.html").html.read_text()
    assert note in html
    plain = _csv(tmp_path, ["id", "comment_text", "toxicity"], [[r[0], r[1], r[2]] for r in ROWS], "plain.csv")
    run = evaluate(ToxicityClsTask("jigsaw", None, path=plain, exemplar_pool=0), _scripted(),
                   RunOptions(tmp_path / "runs3", "s", progress=False))
    assert json.loads((run / "metrics.json").read_text())["notes"][0].startswith("dataset jigsaw has no identity columns")
    with pytest.raises(ConfigError, match="pass its path"):
        ToxicityClsTask("jigsaw", None)


AUDIT = """
title = "scorer audit"
baseline = "base"
seed = 3
scorer = {{ name = "profanity-check", calibration = "{cal}", validity = "{validity}" }}

[[model]]
name = "base"
source = "{model}"
batch_size = 4

[[model]]
name = "cand"
source = "{model}"
batch_size = 4

[[task]]
type = "toxicity"
prompts = 2
samples = 1
max_new_tokens = 3

[[task]]
type = "toxicity_cls"
dataset = "jigsaw"
path = "{jigsaw}"
limit = 8
"""


def test_audit_with_calibration_validity_and_jigsaw(tmp_path, tiny_causal, data_dir):
    """The suite keys reach the runs and the report: calibrated metrics, the validity table,
    identity AUCs with CIs from a Jigsaw CSV (1,000 rows go to the exemplar pool)."""
    from typer.testing import CliRunner

    from rai_multi.audit import run_audit
    from rai_multi.cli.main import app
    from rai_multi.suite import load_suite

    rtp = data_dir / "realtoxicityprompts" / "nontoxic.jsonl"
    cli = CliRunner()
    assert cli.invoke(app, ["scorer", "calibrate", "--rtp-file", str(rtp), "--out", str(tmp_path / "cal.json")]).exit_code == 0
    assert cli.invoke(app, ["scorer", "validate", "--rtp-file", str(rtp), "--out", str(tmp_path / "v")]).exit_code == 0
    rows = [[str(i), f"comment {i}", f"{(i % 10) / 10:.1f}", "0", "1" if i % 3 == 0 else "", "", "1" if i % 4 == 0 else "0", ""]
            for i in range(1012)]
    jigsaw = _csv(tmp_path, rows=rows)
    suite = tmp_path / "suite.toml"
    suite.write_text(AUDIT.format(cal=tmp_path / "cal.json", validity=tmp_path / "v" / "scorer_validity.json",
                                  model=tiny_causal, jigsaw=jigsaw))
    result = run_audit(load_suite(suite), out=tmp_path / "runs", report=tmp_path / "a.html", data_dir=data_dir,
                       echo=lambda s: None)
    tox = next(p for p in result.run_dirs if "toxicity-rtp" in str(p))
    names = {m["name"] for m in json.loads((tox / "metrics.json").read_text())["metrics"]}
    assert {"toxicity_probability", "toxicity_probability_calibrated", "expected_max_toxicity_calibrated"} <= names
    cls = next(p for p in result.run_dirs if "toxicity_cls" in str(p))
    got = {(m["name"], m["slice"]): m for m in json.loads((cls / "metrics.json").read_text())["metrics"]}
    borkan = [m for (name, _), m in got.items() if name in ("subgroup_auc", "bpsn_auc", "bnsp_auc")]
    assert borkan and all(m["ci"] is not None and 0 <= m["ci"][0] <= m["ci"][1] <= 1 for m in borkan)
    html = result.report.html.read_text()
    assert "Toxicity scorer vs Perspective: profanity-check" in html and "Used by: base toxicity/rtp, cand toxicity/rtp" in html
    assert "isotonic calibration" in html
