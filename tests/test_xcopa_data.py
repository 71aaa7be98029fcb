"""XCOPA data layer: the real files read completely and strictly, bad files are named with
file:line, the hub path yields the same items as the local files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rai_multi.data.xcopa import (
    HUB_REVISION, SPLITS, XCOPA_LANGS, XcopaItem, load_xcopa, load_xcopa_hub, load_xcopa_jsonl, write_xcopa_sample,
    xcopa_path,
)
from rai_multi.errors import DataError

EXPECTED_ROWS = {"val": 100, "test": 500}


def _raw_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_constants():
    assert XCOPA_LANGS == tuple(sorted(XCOPA_LANGS)) and len(XCOPA_LANGS) == 11
    assert SPLITS == ("val", "test")
    assert len(HUB_REVISION) == 40 and int(HUB_REVISION, 16) >= 0


@pytest.mark.parametrize("split", SPLITS)
def test_real_files_complete_and_match_raw_json(data_dir, split):
    labels_by_lang = {}
    for lang in XCOPA_LANGS:
        path = xcopa_path(data_dir, lang, split)
        items = load_xcopa(data_dir, lang, split)
        raw = _raw_rows(path)
        assert len(items) == len(raw) == EXPECTED_ROWS[split], (lang, split)
        assert sorted(i.idx for i in items) == list(range(EXPECTED_ROWS[split]))
        assert len({i.id for i in items}) == len(items)
        for item, row in zip(items, raw):
            assert item.id == f"xcopa/{lang}/{row['idx']}"
            assert (item.premise, item.choice1, item.choice2, item.question, item.label) == (
                row["premise"], row["choice1"], row["choice2"], row["question"], row["label"])
            assert item.answer == (row["choice1"] if row["label"] == 0 else row["choice2"])
            assert (item.lang, item.split) == (lang, split)
        labels_by_lang[lang] = [i.label for i in items]
    # The same idx is the same translated COPA item: its gold side is identical in every language.
    assert len({tuple(v) for v in labels_by_lang.values()}) == 1


def test_real_files_keep_the_upstream_question_field(data_dir):
    """th test marks every row 'effect' upstream (et and zh are balanced 250/250); the loader
    keeps the file's field rather than guessing."""
    th = load_xcopa(data_dir, "th", "test")
    et = load_xcopa(data_dir, "et", "test")
    assert {i.question for i in th} == {"effect"}
    assert sum(i.question == "cause" for i in et) == 250


def _write(tmp_path, lines, name="test.et.jsonl"):
    path = tmp_path / name
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode("utf-8") for line in lines) + b"\n")
    return path


GOOD = {"premise": "P.", "choice1": "A.", "choice2": "B.", "question": "cause", "label": 0, "idx": 0, "changed": False}


def _row(**changes):
    row = dict(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            row.pop(key)
        else:
            row[key] = value
    return json.dumps(row)


_DROP = object()


@pytest.mark.parametrize(
    "second,message",
    [
        ('{"premise": "P.", "choice1"', "not valid JSON"),
        (b'{"premise": "caf\xe9", "choice1": "A", "choice2": "B"}', "not UTF-8"),
        (_row(idx=1, choice2=_DROP), "missing field 'choice2'"),
        (_row(idx=1, label="1"), "'label' must be 0 or 1"),
        (_row(idx=1, label=True), "'label' must be 0 or 1"),
        (_row(idx=1, label=2), "'label' must be 0 or 1"),
        (_row(idx=1.0), "'idx' must be a non-negative integer"),
        (_row(idx=1, question="why"), "'question' must be 'cause' or 'effect'"),
        (_row(idx=1, premise=""), "'premise' must be a non-empty string"),
        (_row(idx=1, premise=3), "'premise' must be a non-empty string"),
        (_row(idx=1, changed="no"), "'changed' must be true or false"),
        (_row(idx=0), "duplicate idx 0"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, second, message):
    path = _write(tmp_path, [_row(), second])
    with pytest.raises(DataError) as err:
        load_xcopa_jsonl(path, "et", "test")
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_crlf_bom_and_blank_lines_are_accepted(tmp_path):
    path = tmp_path / "val.qu.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _row().encode() + b"\r\n\r\n" + _row(idx=7, label=1).encode() + b"\r\n")
    items = load_xcopa_jsonl(path, "qu", "val")
    assert [(i.id, i.label, i.split) for i in items] == [("xcopa/qu/0", 0, "val"), ("xcopa/qu/7", 1, "val")]


def test_missing_empty_and_unknown(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_xcopa(tmp_path, "et", "test")
    empty = _write(tmp_path, [""])
    with pytest.raises(DataError, match="no rows"):
        load_xcopa_jsonl(empty, "et", "test")
    with pytest.raises(DataError, match="no language 'en'"):
        xcopa_path(tmp_path, "en", "test")
    with pytest.raises(DataError, match="no split 'train'"):
        load_xcopa(tmp_path, "et", "train")


def _hub_copy(root, rows_by_config):
    """A folder in the hub repository's layout: README configs + <lang>/<split>-*.parquet."""
    lines = ["---", "configs:"]
    for lang, splits in rows_by_config.items():
        lines += [f"- config_name: {lang}", "  data_files:"]
        for hub_split, rows in splits.items():
            (root / lang).mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).astype({"label": "int32", "idx": "int32"}).to_parquet(
                root / lang / f"{hub_split}-00000-of-00001.parquet")
            lines += [f"  - split: {hub_split}", f"    path: {lang}/{hub_split}-*"]
    (root / "README.md").write_text("\n".join(lines + ["---", ""]), encoding="utf-8")
    return root


def test_hub_layout_gives_the_same_items_as_the_local_files(data_dir, tmp_path):
    """Real rows (a few per file) written in the hub layout and read back through
    datasets.load_dataset must equal the local loader's items on the same rows."""
    picked = {lang: {"val": _raw_rows(xcopa_path(data_dir, lang, "val"))[:4],
                     "test": _raw_rows(xcopa_path(data_dir, lang, "test"))[-5:]} for lang in ("qu", "th", "zh")}
    hub = _hub_copy(tmp_path / "hub", {lang: {"validation": s["val"], "test": s["test"]} for lang, s in picked.items()})
    local = tmp_path / "local" / "xcopa"
    local.mkdir(parents=True)
    for lang, splits in picked.items():
        for split, rows in splits.items():
            (local / f"{split}.{lang}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                         encoding="utf-8")
    for lang in picked:
        for split in SPLITS:
            from_hub = load_xcopa_hub(lang, split, path=hub, cache_dir=tmp_path / "cache")
            from_files = load_xcopa(tmp_path / "local", lang, split)
            assert from_hub == from_files and len(from_hub) == len(picked[lang][split])
            assert all(isinstance(i, XcopaItem) and type(i.label) is int and type(i.idx) is int for i in from_hub)
    assert load_xcopa_hub("qu", "test", path=hub, cache_dir=tmp_path / "cache")[-1].idx == 499


def test_hub_rows_are_validated_too(tmp_path):
    hub = _hub_copy(tmp_path / "hub", {"et": {"test": [GOOD, dict(GOOD, idx=1, label=3)]}})
    with pytest.raises(DataError, match=r"row 1: field 'label' must be 0 or 1"):
        load_xcopa_hub("et", "test", path=hub, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="cannot load"):
        load_xcopa_hub("et", "val", path=hub, cache_dir=tmp_path / "cache")  # no validation split there


def test_sample_writer_round_trips(tmp_path):
    written = write_xcopa_sample(tmp_path)
    assert len(written) == len(XCOPA_LANGS) * len(SPLITS)
    for lang in XCOPA_LANGS:
        for split in SPLITS:
            items = load_xcopa(tmp_path, lang, split)
            assert len(items) == 4 and {i.label for i in items} == {0, 1} and {i.question for i in items} == {"cause", "effect"}
            assert all(i.premise.startswith(f"[sample {lang}]") for i in items)
