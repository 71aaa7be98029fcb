"""Language configs (``lang_configs/<iso>.toml``) and resource tiers.

Each language is one TOML file: codes, script, native digits and separators, the MGSM
prompt phrases exactly as the MGSM exemplars write them, a zero-shot CoT trigger, stop
sequences and two tier fields. Loading validates every field and names the file and field
at fault. Adding a language is one file (plus its extractor test row).

Tiers: ``tier`` is the MGSM paper's split (``high``: de es fr ja ru zh; ``low``
(under-represented): bn sw te th; ``en`` on its own). Languages outside MGSM get the
split from Joshi et al. (2020)'s class: 4-5 -> high, 0-3 -> low, which reproduces the MGSM
split for every MGSM language. ``joshi_class`` is kept as its own field.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rai_multi.errors import ConfigError
from rai_multi.paths import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TIERS = ("high", "low", "en")
MGSM_LANGS = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")


@dataclass(frozen=True)
class MgsmPhrases:
    """Prompt phrases as the MGSM exemplars use them. ``final_answer`` holds ``{N}``."""

    question: str
    answer_prefix: str
    final_answer: str
    direct_answer_prefix: str
    zero_shot_cot_trigger: str
    source: str  # "mgsm-exemplars" or "rai-multi" (own translation, no exemplars exist)
    final_answer_alternatives: tuple[str, ...] = ()  # other prefixes the exemplars use

    @property
    def final_answer_prefix(self) -> str:
        """The text before the number in the final-answer sentence (used for extraction)."""
        return self.final_answer.split("{N}")[0].strip()

    @property
    def final_answer_prefixes(self) -> tuple[str, ...]:
        """Every final-answer prefix the exemplars use (German: "ist" and "lautet")."""
        return (self.final_answer_prefix, *self.final_answer_alternatives)


@dataclass(frozen=True)
class LanguageConfig:
    code: str
    iso639_3: str
    name: str
    native_name: str
    script: str
    native_digits: str
    decimal_separator: str
    thousands_separators: tuple[str, ...]
    tier: str
    joshi_class: int
    mgsm: MgsmPhrases | None
    stop: tuple[str, ...]
    uses_spaces: bool
    path: Path


def config_dir() -> Path:
    """``RAI_MULTI_LANG_CONFIGS``, else the checkout's lang_configs/ (editable install),
    else the copy a regular ``pip install`` puts under ``<prefix>/share/rai-multi``."""
    env = os.environ.get("RAI_MULTI_LANG_CONFIGS")
    if env:
        return Path(env)
    checkout = REPO_ROOT / "lang_configs"
    installed = Path(sys.prefix) / "share" / "rai-multi" / "lang_configs"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


def _field(data: dict[str, Any], key: str, kind: type, path: Path, section: str = "") -> Any:
    where = f"{section}.{key}" if section else key
    if key not in data:
        raise ConfigError(f"{path}: missing field '{where}'")
    value = data[key]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{path}: field '{where}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _str_list(data: dict[str, Any], key: str, path: Path, section: str = "") -> tuple[str, ...]:
    value = _field(data, key, list, path, section)
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: field '{section + '.' if section else ''}{key}' must be a list of strings")
    return tuple(value)


def parse_language(path: Path) -> LanguageConfig:
    """Load and validate one language file; errors name the file and field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    code = _field(data, "iso639_1", str, path)
    if code != path.stem:
        raise ConfigError(f"{path}: field 'iso639_1' is {code!r} but the file is named {path.stem}.toml")
    digits = _field(data, "native_digits", str, path)
    if digits and len(digits) != 10:
        raise ConfigError(f"{path}: field 'native_digits' must hold 10 digits 0-9 or be empty")
    for position, ch in enumerate(digits):
        if unicodedata.digit(ch, None) != position:
            raise ConfigError(
                f"{path}: field 'native_digits': {ch!r} at position {position} is not the digit {position}"
            )
    tier_section = _field(data, "tier", dict, path)
    joshi = _field(tier_section, "joshi_class", int, path, "tier")
    if not 0 <= joshi <= 5:
        raise ConfigError(f"{path}: field 'tier.joshi_class' must be 0-5, got {joshi}")
    mgsm_tier = _field(tier_section, "mgsm", str, path, "tier")
    if mgsm_tier not in (*TIERS, "none"):
        raise ConfigError(f"{path}: field 'tier.mgsm' must be one of high, low, en, none; got {mgsm_tier!r}")
    tier = mgsm_tier if mgsm_tier != "none" else ("high" if joshi >= 4 else "low")
    mgsm = None
    if "mgsm" in data:
        section = _field(data, "mgsm", dict, path)
        final = _field(section, "final_answer", str, path, "mgsm")
        if "{N}" not in final:
            raise ConfigError(f"{path}: field 'mgsm.final_answer' must contain the placeholder {{N}}")
        mgsm = MgsmPhrases(
            question=_field(section, "question", str, path, "mgsm"),
            answer_prefix=_field(section, "answer_prefix", str, path, "mgsm"),
            final_answer=final,
            direct_answer_prefix=_field(section, "direct_answer_prefix", str, path, "mgsm"),
            zero_shot_cot_trigger=_field(section, "zero_shot_cot_trigger", str, path, "mgsm"),
            source=_field(section, "source", str, path, "mgsm"),
            final_answer_alternatives=(
                _str_list(section, "final_answer_alternatives", path, "mgsm")
                if "final_answer_alternatives" in section
                else ()
            ),
        )
    decimal = _field(data, "decimal_separator", str, path)
    thousands = _str_list(data, "thousands_separators", path)
    if decimal in thousands:
        raise ConfigError(f"{path}: decimal separator {decimal!r} is also listed as a thousands separator")
    return LanguageConfig(
        code=code,
        iso639_3=_field(data, "iso639_3", str, path),
        name=_field(data, "name", str, path),
        native_name=_field(data, "native_name", str, path),
        script=_field(data, "script", str, path),
        native_digits=digits,
        decimal_separator=decimal,
        thousands_separators=thousands,
        tier=tier,
        joshi_class=joshi,
        mgsm=mgsm,
        stop=_str_list(data, "stop", path),
        uses_spaces=_field(data, "uses_spaces", bool, path),
        path=path,
    )


@lru_cache(maxsize=4)
def _load_all(directory: str) -> dict[str, LanguageConfig]:
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(f"language config folder not found: {folder}")
    return {p.stem: parse_language(p) for p in sorted(folder.glob("*.toml"))}


def all_languages() -> dict[str, LanguageConfig]:
    return _load_all(str(config_dir()))


def get_language(code: str) -> LanguageConfig:
    langs = all_languages()
    if code not in langs:
        raise ConfigError(f"unknown language code {code!r}; known: {', '.join(sorted(langs))}")
    return langs[code]


def tier_of(code: str) -> str:
    """Resource tier of a language code (``high``/``low``/``en``); ``unknown`` if unlisted."""
    langs = all_languages()
    return langs[code].tier if code in langs else "unknown"


def resolve_languages(
    langs: str | None, tier: str | None, available: tuple[str, ...]
) -> list[str]:
    """Turn ``--langs bn,sw`` / ``--tier low`` into a checked list within ``available``."""
    if langs and tier:
        raise ConfigError("give --langs or --tier, not both")
    if tier:
        if tier not in TIERS:
            raise ConfigError(f"unknown tier {tier!r}; known: {', '.join(TIERS)}")
        chosen = [c for c in available if get_language(c).tier == tier]
        if not chosen:
            raise ConfigError(f"no language of tier {tier!r} in this task ({', '.join(available)})")
        return chosen
    if not langs:
        return list(available)
    chosen = [c.strip() for c in langs.split(",") if c.strip()]
    for code in chosen:
        get_language(code)  # raises on a code with no config
        if code not in available:
            raise ConfigError(f"language {code!r} is not part of this task; available: {', '.join(available)}")
    return chosen
