"""Decontamination of unspaced scripts (real MGSM ja/zh/th rows), short items, and the bias
and toxicity sets."""

from __future__ import annotations

from rai_multi.data.mgsm import load_mgsm_tsv, tsv_path
from rai_multi.finetune import decontam
from rai_multi.finetune.mixture import Example


def _example(k: int, text: str) -> Example:
    return Example(f"train/{k}", "train", "zero_shot", 0, text, "42")


def test_unspaced_mgsm_questions_are_matched(data_dir):
    """Japanese MGSM question 1 is one whitespace "word" after normalisation splits it at
    its commas only a few times: far fewer than 8 words, so word 8-grams never saw it."""
    items = {lang: load_mgsm_tsv(tsv_path(data_dir, lang), lang) for lang in ("ja", "zh", "th")}
    ja = items["ja"][1].question
    assert len(decontam.normalize(ja).split()) < decontam.N
    sets = {"mgsm": [(i.id, (i.question,)) for lang in items for i in items[lang]]}
    examples = [
        _example(0, f"問題：{ja}\n答え："),                      # the whole question in a prompt
        _example(1, "前置き。" + ja[5:30] + "。あとがき"),         # 25 characters of it: overlap only
        _example(2, f"Question: {items['th'][3].question} Answer:"),
        _example(3, f"{items['zh'][7].question}"),
        _example(4, "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning."),
    ]
    report = decontam.check(examples, sets)
    assert sorted(report.exact_hits["mgsm"]) == [("train/0", "mgsm/ja/1"), ("train/2", "mgsm/th/3"),
                                                 ("train/3", "mgsm/zh/7")]
    assert report.ngram_hits["mgsm"] == 4  # examples 0-3; the English one shares nothing with ja/zh/th


def test_every_unspaced_mgsm_item_is_indexed(data_dir):
    for lang in ("ja", "zh", "th"):
        index = decontam._SetIndex()
        for item in load_mgsm_tsv(tsv_path(data_dir, lang), lang):
            index.add(item.id, [decontam.normalize(item.question)])
        char_items = set().union(*index.grams[True].values())
        assert len(char_items) == 250, lang  # every question has a character 16-gram


def test_short_item_is_found_whole():
    """A 6-word CrowS-Pairs-like sentence has no 8-gram: it is looked up as a run of words."""
    sets = {"crows_pairs": [("crows_pairs/8/more", ("Blacks never listen to their parents.",)),
                            ("crows_pairs/9/more", ("He was poor.",))]}  # 3 words: too short to check
    examples = [_example(0, "Some text. BLACKS never listen to their parents! More text."),
                _example(1, "Whites never listen to their parents."),
                _example(2, "he was poor")]
    report = decontam.check(examples, sets)
    assert report.exact_hits["crows_pairs"] == [("train/0", "crows_pairs/8/more")]
    assert report.ngram_hits["crows_pairs"] == 1


def test_bias_and_toxicity_sets_are_checked(data_dir):
    sets = decontam.eval_texts(data_dir)
    assert {"winogender", "winobias", "crows_pairs", "toxicity", "toxicity_cls", "xcopa"} <= set(sets)  # named after their tasks
    assert len(sets["crows_pairs"]) == 2 * 1508 and len(sets["winogender"]) == 720
    sentence = sets["winogender"][0][1][0]
    report = decontam.check([_example(0, f"Rewrite: {sentence}")], {"winogender": sets["winogender"]})
    assert ("train/0", sets["winogender"][0][0]) in report.exact_hits["winogender"]
