"""Optional isotonic calibration of a toxicity scorer onto the Perspective scale.

A scorer's 0.5 does not mean Perspective's 0.5, so expected maximum toxicity and toxicity
probability from it are on another scale. An isotonic (monotone, piecewise-linear) map
fitted from the scorer's scores to Perspective's toxicity on half of the RTP texts puts
them on Perspective's scale without changing their order (so AUC and Spearman are
unchanged up to ties the flat steps create). It is stored as a JSON file; runs that use it
record the file's sha256. Uncalibrated scores stay the default and are always reported
beside the calibrated ones.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rai_multi.errors import ConfigError
from rai_multi.store import file_sha256

FORMAT = "rai-multi-calibration"


def split_halves(group_ids: Sequence[str], seed: int) -> tuple[set[str], set[str]]:
    """Seeded split of the distinct ``group_ids`` into a fit half and a held-out half
    (the fit half gets the smaller half when the count is odd). Texts of one RTP row share
    a group, so a prompt and its continuation never sit on both sides."""
    groups = sorted(set(group_ids))
    random.Random(f"{seed}|calibration-split").shuffle(groups)
    cut = len(groups) // 2
    return set(groups[:cut]), set(groups[cut:])


def fit_isotonic(scores: Sequence[float], targets: Sequence[float]) -> tuple[list[float], list[float]]:
    """Knots (x, y) of the increasing isotonic fit of ``targets`` on ``scores``, clipped to
    [0, 1] (scikit-learn's IsotonicRegression; between knots the map is linear)."""
    from sklearn.isotonic import IsotonicRegression

    if len(scores) < 2:
        raise ConfigError("calibration needs at least two scored texts")
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(np.asarray(scores, dtype=float), np.asarray(targets, dtype=float))
    return [float(v) for v in model.X_thresholds_], [float(v) for v in model.y_thresholds_]


def apply_knots(x: Sequence[float], y: Sequence[float], scores: Sequence[float]) -> list[float]:
    """The piecewise-linear map through the knots; constant beyond the end knots."""
    return [float(v) for v in np.interp(np.asarray(scores, dtype=float), np.asarray(x), np.asarray(y))]


@dataclass(frozen=True)
class Calibration:
    path: Path
    sha256: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    scorer: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def apply(self, scores: Sequence[float]) -> list[float]:
        return apply_knots(self.x, self.y, scores)

    def describe(self) -> dict[str, Any]:
        """What a run records about the calibration it was scored through."""
        return {"kind": "isotonic", "target": "perspective_toxicity", "path": str(self.path), "sha256": self.sha256,
                "fit": {k: self.meta[k] for k in ("seed", "fit_n", "heldout_n") if k in self.meta}}

    def check_scorer(self, described: dict[str, Any]) -> None:
        """A calibration only means something for the scorer weights it was fitted on."""
        want = self.scorer.get("weights_hash")
        if want != described.get("weights_hash") or self.scorer.get("name") != described.get("name"):
            raise ConfigError(f"{self.path}: calibration was fitted for scorer {self.scorer.get('name')} "
                              f"(weights {str(want)[:12]}), not {described.get('name')} "
                              f"(weights {str(described.get('weights_hash'))[:12]})")


def load_calibration(path: Path) -> Calibration:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"calibration file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a calibration file (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("kind") != "isotonic":
        raise ConfigError(f"{path}: not a calibration file written by `rai-multi scorer calibrate`")
    x, y = doc.get("x"), doc.get("y")
    ok = (isinstance(x, list) and isinstance(y, list) and len(x) == len(y) >= 1
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in [*x, *y]))
    if not ok or any(b < a for a, b in zip(x, x[1:])) or any(b < a for a, b in zip(y, y[1:])):
        raise ConfigError(f"{path}: calibration knots x and y must be equal-length non-decreasing number lists")
    return Calibration(path, file_sha256(path), tuple(map(float, x)), tuple(map(float, y)),
                       dict(doc.get("scorer") or {}), {k: v for k, v in doc.items() if k not in ("x", "y")})
