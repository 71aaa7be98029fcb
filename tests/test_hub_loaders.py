"""Hub loaders read a local copy in the hub's layout through ``datasets.load_dataset`` (the
same call the hub path makes) and must give the records the upstream-format loaders give on
the same real rows. Nothing here contacts the hub."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import pytest
from datasets import ClassLabel, Dataset, Features, Sequence, Value

from rai_multi.data.bbq import BBQ_CATEGORIES, load_bbq_hub, read_bbq_jsonl
from rai_multi.data.crows_pairs import load_crows_pairs, load_crows_pairs_hub
from rai_multi.data.hub import is_commit_sha
from rai_multi.data.toxicity_cls import DAVIDSON_CLASSES, load_davidson, load_davidson_hub
from rai_multi.data.winobias import load_winobias, load_winobias_hub
from rai_multi.errors import DataError


def _jsonl_rows(path, n):
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


def test_bbq_hub_layout_matches_the_jsonl(data_dir, tmp_path):
    """refs/convert/parquet layout: <config>/test/0000.parquet with the upstream columns."""
    local = tmp_path / "local"
    local.mkdir()
    expected = []
    for category in ("Age", "Religion"):
        rows = _jsonl_rows(data_dir / "bbq" / f"{category}.jsonl", 5)
        (tmp_path / "hub" / category / "test").mkdir(parents=True)
        Dataset.from_list(rows).to_parquet(str(tmp_path / "hub" / category / "test" / "0000.parquet"))
        copy = local / f"{category}.jsonl"
        copy.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        expected += read_bbq_jsonl(copy)
    got = load_bbq_hub(["Age", "Religion"], path=tmp_path / "hub", cache_dir=tmp_path / "cache")
    assert got == expected and len(got) == 10
    assert {i.category for i in got} == {"Age", "Religion"} and got[0].id.startswith("bbq/Age/")
    with pytest.raises(DataError, match="unknown BBQ category 'age'"):
        load_bbq_hub(["age"], path=tmp_path / "hub")
    with pytest.raises(DataError, match="cannot load .*Nationality"):
        load_bbq_hub(["Nationality"], path=tmp_path / "hub", cache_dir=tmp_path / "cache")
    assert len(BBQ_CATEGORIES) == 11


CROWS_BIAS_TYPES = ["race-color", "socioeconomic", "gender", "disability", "nationality", "sexual-orientation",
                    "physical-appearance", "religion", "age"]  # the hub ClassLabel order


def test_crows_pairs_hub_layout_matches_the_csv(data_dir, tmp_path):
    with open(data_dir / "crows_pairs" / "crows_pairs_anonymized.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        rows = [r for _, r in zip(range(40), reader)]
    assert {r["stereo_antistereo"] for r in rows} == {"stereo", "antistereo"}
    local = tmp_path / "local" / "crows_pairs"
    local.mkdir(parents=True)
    with open(local / "crows_pairs_anonymized.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    features = Features({"id": Value("int32"), "sent_more": Value("string"), "sent_less": Value("string"),
                         "stereo_antistereo": ClassLabel(names=["stereo", "antistereo"]),
                         "bias_type": ClassLabel(names=CROWS_BIAS_TYPES), "anon_writer": Value("string")})
    hub_rows = {"id": [int(r[""]) for r in rows], "sent_more": [r["sent_more"] for r in rows],
                "sent_less": [r["sent_less"] for r in rows],
                "stereo_antistereo": [["stereo", "antistereo"].index(r["stereo_antistereo"]) for r in rows],
                "bias_type": [CROWS_BIAS_TYPES.index(r["bias_type"]) for r in rows],
                "anon_writer": [r["anon_writer"] for r in rows]}
    (tmp_path / "hub" / "crows_pairs" / "test").mkdir(parents=True)
    Dataset.from_dict(hub_rows, features=features).to_parquet(str(tmp_path / "hub" / "crows_pairs" / "test" / "0000.parquet"))
    got = load_crows_pairs_hub(path=tmp_path / "hub", cache_dir=tmp_path / "cache")
    assert got == load_crows_pairs(tmp_path / "local") and len(got) == 40
    assert {p.direction for p in got} == {"stereo", "antistereo"} and all(p.bias_type in CROWS_BIAS_TYPES for p in got)
    # The same file without feature metadata (plain int columns): the card's label order decodes it.
    import pandas as pd

    plain = tmp_path / "plain" / "crows_pairs" / "test"
    plain.mkdir(parents=True)
    pd.DataFrame(hub_rows).to_parquet(plain / "0000.parquet")
    assert load_crows_pairs_hub(path=tmp_path / "plain", cache_dir=tmp_path / "cache") == got


def test_davidson_hub_layout_matches_the_csv_row_for_row(data_dir, tmp_path):
    """Rows 0-59 and 80 rows after the csv's first index gap: text and label equal row for
    row; ids are positions on the hub (it has no index column)."""
    with open(data_dir / "davidson_hate_offensive" / "labeled_data.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        all_rows = list(reader)
    gap = next(k for k in range(1, len(all_rows)) if int(all_rows[k][""]) != int(all_rows[k - 1][""]) + 1)
    rows = all_rows[:60] + all_rows[gap:gap + 80]
    assert len({r["class"] for r in rows}) == 3
    local = tmp_path / "local" / "davidson_hate_offensive"
    local.mkdir(parents=True)
    with open(local / "labeled_data.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    features = Features({"count": Value("int64"), "hate_speech_count": Value("int64"),
                         "offensive_language_count": Value("int64"), "neither_count": Value("int64"),
                         "class": ClassLabel(names=list(DAVIDSON_CLASSES)), "tweet": Value("string")})
    hub_rows = {"count": [int(r["count"]) for r in rows], "hate_speech_count": [int(r["hate_speech"]) for r in rows],
                "offensive_language_count": [int(r["offensive_language"]) for r in rows],
                "neither_count": [int(r["neither"]) for r in rows], "class": [int(r["class"]) for r in rows],
                "tweet": [r["tweet"] for r in rows]}
    (tmp_path / "hub" / "data").mkdir(parents=True)
    Dataset.from_dict(hub_rows, features=features).to_parquet(str(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet"))
    got = load_davidson_hub(path=tmp_path / "hub", cache_dir=tmp_path / "cache")
    want = load_davidson(tmp_path / "local")
    assert [(i.text, i.label) for i in got] == [(i.text, i.label) for i in want] and len(got) == 140
    assert [i.label for i in got] == [int(r["class"] in ("0", "1")) for r in rows]  # hate or offensive = toxic
    assert got[0].id == "davidson/row0" and got[-1].id == "davidson/row139"
    assert want[60].id != f"davidson/{60}"  # the local index jumps at the gap; hub ids cannot follow it


_LEADING_NUMBER = re.compile(r"^\s*\d+\s+")


def _conll_row(line):
    """The hub's CoNLL fields for one upstream txt line: tokens (final punctuation, n't and
    hyphens split off, as the CoNLL copy tokenizes) and the bracketed mentions' word spans."""
    tokens, clusters, start = [], [], None
    body = _LEADING_NUMBER.sub("", line.strip()).replace("[", " [ ").replace("]", " ] ")
    for word in body.split():
        if word == "[":
            start = len(tokens)
            continue
        if word == "]":
            clusters += [str(start), str(len(tokens) - 1)]
            continue
        trail = word[-1] if len(word) > 1 and word[-1] in ".," else ""
        core = word[:-1] if trail else word
        tokens += [core[:-3], "n't"] if core.endswith("n't") else [p for p in re.split(r"(-)", core) if p]
        if trail:
            tokens.append(trail)
    return {"document_id": "doc", "part_number": "0", "tokens": tokens, "coreference_clusters": clusters}


def test_winobias_hub_layout_matches_all_upstream_files(data_dir, tmp_path):
    """All 8 real files turned into the hub's CoNLL rows (its main-branch parquet layout);
    every item, ids included, must come back equal to the txt loader's."""
    hub = tmp_path / "hub"
    readme = ["---", "configs:"]
    for kind in (1, 2):
        for stereotype in ("pro", "anti"):
            config = f"type{kind}_{stereotype}"
            readme += [f"- config_name: {config}", "  data_files:"]
            (hub / config).mkdir(parents=True)
            for file_split, hub_split in (("dev", "validation"), ("test", "test")):
                lines = (data_dir / "winobias" / f"{stereotype}_stereotyped_type{kind}.txt.{file_split}").read_text(
                    encoding="utf-8").splitlines()
                rows = [_conll_row(line) for line in lines if line.strip()]
                Dataset.from_list(rows).to_parquet(str(hub / config / f"{hub_split}-00000-of-00001.parquet"))
                readme += [f"  - split: {hub_split}", f"    path: {config}/{hub_split}-*"]
    (hub / "README.md").write_text("\n".join(readme + ["---", ""]), encoding="utf-8")
    for split in (None, "dev"):
        got = load_winobias_hub(split, path=hub, cache_dir=tmp_path / "cache")
        want = load_winobias(data_dir, split)
        assert len(got) == len(want) == (8 if split is None else 4) * 396
        # Every field equal; the sentence up to runs of spaces (a few upstream lines have
        # "[ physician]", which the txt loader keeps as a double space and CoNLL tokens cannot).
        assert [replace(g, sentence=" ".join(g.sentence.split())) for g in got] == [
            replace(w, sentence=" ".join(w.sentence.split())) for w in want]
        exact = sum(g == w for g, w in zip(got, want))
        assert len(got) - exact == sum("  " in w.sentence for w in want) < 20
    with pytest.raises(DataError, match="unknown WinoBias split"):
        load_winobias_hub("train", path=hub)


def test_revisions_and_offline_errors(tmp_path):
    assert is_commit_sha("042f78955ba48e6404616762fa6e05e839c3907a")
    assert not is_commit_sha("main") and not is_commit_sha("refs/convert/parquet") and not is_commit_sha("3f31267")
    with pytest.raises(DataError, match=r"cannot load .* from the hub: .*; pass --data-dir"):
        load_crows_pairs_hub(path=tmp_path / "nothing-here")


def test_mgsm_hub_layout_matches_the_tsv(data_dir, tmp_path):
    from rai_multi.data.mgsm import load_mgsm_hub, load_mgsm_tsv, tsv_path

    lines = tsv_path(data_dir, "sw").read_text(encoding="utf-8").splitlines()[:6]
    copy = tmp_path / "mgsm_sw.tsv"
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [{"question": q, "answer": None, "answer_number": int(a), "equation_solution": None}
            for q, a in (line.split("\t") for line in lines)]
    (tmp_path / "hub" / "sw" / "test").mkdir(parents=True)
    Dataset.from_list(rows).to_parquet(str(tmp_path / "hub" / "sw" / "test" / "0000.parquet"))
    got = load_mgsm_hub("sw", path=tmp_path / "hub", cache_dir=tmp_path / "cache")
    assert got == load_mgsm_tsv(copy, "sw") and len(got) == 6


def test_tydiqa_hub_layout_matches_the_squad_json(data_dir, tmp_path):
    """secondary_task rows of two languages; the hub path keeps only the asked language."""
    from rai_multi.data.tydiqa import load_tydiqa_hub, read_squad_json

    rows, expected = [], []
    for name in ("swahili", "english"):
        items = read_squad_json(data_dir / "tydiqa_goldp" / "dev" / f"{name}.json")[:4]
        doc = json.loads((data_dir / "tydiqa_goldp" / "dev" / f"{name}.json").read_text(encoding="utf-8"))
        starts = {qa["id"]: [a["answer_start"] for a in qa["answers"]]
                  for art in doc["data"] for para in art["paragraphs"] for qa in para["qas"]}
        rows += [{"id": i.id, "title": i.title, "context": i.context, "question": i.question,
                  "answers": {"text": list(i.answers), "answer_start": starts[i.id]}} for i in items]
        expected += [i for i in items if i.lang == "sw"]
    (tmp_path / "hub" / "secondary_task").mkdir(parents=True)
    Dataset.from_list(rows).to_parquet(str(tmp_path / "hub" / "secondary_task" / "validation-00000-of-00001.parquet"))
    (tmp_path / "hub" / "README.md").write_text(
        "---\nconfigs:\n- config_name: secondary_task\n  data_files:\n  - split: validation\n"
        "    path: secondary_task/validation-*\n---\n", encoding="utf-8")
    got = load_tydiqa_hub("sw", "dev", path=tmp_path / "hub", cache_dir=tmp_path / "cache")
    assert got == expected and len(got) == 4
