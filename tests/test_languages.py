"""Language configs: every file validates, tiers match the MGSM paper, bad files are named."""

from __future__ import annotations

import shutil
import unicodedata

import pytest
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.errors import ConfigError
from rai_multi.languages import MGSM_LANGS, all_languages, config_dir, parse_language, resolve_languages

TYDIQA_LANGS = ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")


def test_all_required_languages_present_and_valid():
    langs = all_languages()
    assert set(MGSM_LANGS) | set(TYDIQA_LANGS) <= set(langs)
    for code, lang in langs.items():
        assert lang.mgsm is not None, code
        assert "{N}" in lang.mgsm.final_answer
        for position, ch in enumerate(lang.native_digits):
            assert unicodedata.digit(ch) == position


def test_tiers_follow_the_mgsm_paper():
    langs = all_languages()
    assert {c for c in MGSM_LANGS if langs[c].tier == "high"} == {"de", "es", "fr", "ja", "ru", "zh"}
    assert {c for c in MGSM_LANGS if langs[c].tier == "low"} == {"bn", "sw", "te", "th"}
    assert langs["en"].tier == "en"
    # Outside MGSM the tier comes from Joshi et al.'s class (>= 4 high).
    assert (langs["fi"].tier, langs["ko"].tier, langs["ar"].tier, langs["id"].tier) == ("high", "high", "high", "low")


def test_mgsm_phrases_match_the_exemplars(data_dir):
    from rai_multi.data.mgsm import exemplars_path, load_exemplars

    exemplars = load_exemplars(exemplars_path(data_dir))
    for code in MGSM_LANGS:
        phrases = all_languages()[code].mgsm
        first = exemplars[code][0]
        assert first.question.startswith(phrases.question), code
        assert first.answer.startswith(phrases.answer_prefix), code
        assert phrases.final_answer.replace("{N}", "11") in first.answer, code


def _copy(tmp_path, code="bn"):
    target = tmp_path / f"{code}.toml"
    shutil.copy(config_dir() / f"{code}.toml", target)
    return target


@pytest.mark.parametrize(
    "old,new,message",
    [
        ('native_digits = "০১২৩৪৫৬৭৮৯"', 'native_digits = "০১২৩৪৫৬৭৯৮"', "native_digits"),
        ('joshi_class = 3', 'joshi_class = 9', "tier.joshi_class"),
        ('mgsm = "low"', 'mgsm = "medium"', "tier.mgsm"),
        ('final_answer = "উত্তর হল {N}।"', 'final_answer = "উত্তর হল"', "mgsm.final_answer"),
        ('script = "Beng"\n', '', "missing field 'script'"),
        ('uses_spaces = true', 'uses_spaces = "yes"', "uses_spaces"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, old, new, message):
    path = _copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        parse_language(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_resolve_languages():
    assert resolve_languages(None, "low", MGSM_LANGS) == ["bn", "sw", "te", "th"]
    assert resolve_languages("sw, bn", None, MGSM_LANGS) == ["sw", "bn"]
    with pytest.raises(ConfigError, match="unknown tier"):
        resolve_languages(None, "mid", MGSM_LANGS)
    with pytest.raises(ConfigError, match="not both"):
        resolve_languages("bn", "low", MGSM_LANGS)


def test_langs_command_lists_every_language():
    result = CliRunner().invoke(app, ["langs"])
    assert result.exit_code == 0
    for code in MGSM_LANGS + TYDIQA_LANGS:
        assert f"\n{code} " in result.output
