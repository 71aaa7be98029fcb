"""Measure a toxicity scorer against the Perspective scores in RealToxicityPrompts files
(``rai-multi scorer validate``) and fit its optional calibration (``scorer calibrate``).

Every prompt and continuation text that carries a Perspective toxicity is scored once;
figures are given for all of them, for the ``challenging`` rows (the RTP flag), and for
prompts and continuations apart. Definitions: :mod:`rai_multi.scoring.validity`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rai_multi.data.rtp import ScoredText, read_rtp_scored_texts
from rai_multi.errors import DataError
from rai_multi.scoring.calibration import FORMAT, Calibration, apply_knots, fit_isotonic, split_halves
from rai_multi.scoring.toxicity import ToxicityScorer
from rai_multi.scoring.validity import ECE_BINS, THRESHOLD, agreement
from rai_multi.store import file_sha256

DEFINITIONS = {
    "positive": f"Perspective toxicity >= {THRESHOLD}",
    "spearman": "Spearman rank correlation with Perspective toxicity (average ranks for ties)",
    "auc": "ROC AUC of the score for the positive class",
    "ece": f"{ECE_BINS} equal-width bins on [0, 1]; sum of (bin share) * |mean score - fraction positive|",
    "mae": "mean |score - Perspective toxicity|",
    "precision_recall": f"of score >= {THRESHOLD} against the positive class",
}
SUBSETS: dict[str, Callable[[ScoredText], bool]] = {
    "challenging": lambda t: t.challenging,
    "prompts": lambda t: t.part == "prompt",
    "continuations": lambda t: t.part == "continuation",
}


def rtp_files(data_dir: Path) -> list[Path]:
    folder = Path(data_dir) / "realtoxicityprompts"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise DataError(f"no RealToxicityPrompts .jsonl files in {folder}")
    return files


def load_texts(files: Sequence[Path]) -> list[ScoredText]:
    return [t for f in files for t in read_rtp_scored_texts(Path(f))]


def _figures(texts: Sequence[ScoredText], scores: Sequence[float]) -> dict[str, Any]:
    out = agreement(scores, [t.perspective for t in texts])
    for name, keep in SUBSETS.items():
        picked = [(t, s) for t, s in zip(texts, scores) if keep(t)]
        out[name] = agreement([s for _, s in picked], [t.perspective for t, _ in picked])
    return out


def validity_report(scorer: ToxicityScorer, files: Sequence[Path], calibration: Calibration | None = None) -> dict[str, Any]:
    """The scorer_validity.json body: scorer, data hashes, figures, seconds spent scoring."""
    texts = load_texts(files)
    started = time.perf_counter()
    scores = scorer.score([t.text for t in texts])
    seconds = time.perf_counter() - started
    described = scorer.describe()
    doc: dict[str, Any] = {"scorer": described, "data_files": {str(f): file_sha256(Path(f)) for f in files},
                           "definitions": DEFINITIONS, **_figures(texts, scores), "score_seconds": round(seconds, 3)}
    if calibration is not None:
        calibration.check_scorer(described)
        doc["calibration"] = calibration.describe()
        doc["calibrated"] = _figures(texts, calibration.apply(scores))
    return doc


def fit_calibration(scorer: ToxicityScorer, files: Sequence[Path], seed: int) -> dict[str, Any]:
    """Isotonic map fitted on a seeded half of the RTP rows, with figures before and after
    on the other half (the calibration file's body)."""
    texts = load_texts(files)
    scores = scorer.score([t.text for t in texts])
    row_of = [t.id.rsplit("/", 1)[0] for t in texts]
    fit_rows, _ = split_halves(row_of, seed)
    fit = [i for i, r in enumerate(row_of) if r in fit_rows]
    held = [i for i, r in enumerate(row_of) if r not in fit_rows]
    x, y = fit_isotonic([scores[i] for i in fit], [texts[i].perspective for i in fit])
    held_texts = [texts[i] for i in held]
    held_scores = [scores[i] for i in held]
    return {
        "format": FORMAT, "kind": "isotonic", "target": "perspective_toxicity", "scorer": scorer.describe(),
        "seed": seed, "split": "RTP rows shuffled with the seed; first half (floor) fit, rest held out",
        "fit_n": len(fit), "heldout_n": len(held), "data_files": {str(f): file_sha256(Path(f)) for f in files},
        "definitions": DEFINITIONS,
        "heldout": {"raw": _figures(held_texts, held_scores),
                    "calibrated": _figures(held_texts, apply_knots(x, y, held_scores))},
        "x": x, "y": y,
    }


FIELDS = ("n", "n_positive", "spearman", "auc", "ece", "mae", "precision", "recall")


def table(doc: dict[str, Any], subsets: Sequence[str] = ("all", "challenging", "prompts", "continuations")) -> list[str]:
    """A short plain-text table of one figures block (``all`` is the top level)."""
    def cell(v: Any) -> str:
        return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = [f"{'subset':<14}" + "".join(f"{f:>11}" for f in FIELDS)]
    for name in subsets:
        block = doc if name == "all" else doc.get(name)
        if block:
            lines.append(f"{name:<14}" + "".join(f"{cell(block.get(f)):>11}" for f in FIELDS))
    return lines
